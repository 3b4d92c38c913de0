"""The small jobs Snakemake runs in its own process (``run:`` blocks) and its closing line:
joining CSVs, the theory table, the provenance record and the reproducibility check's line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from gdbench.config import check_config, config_hash
from gdbench.experiment import Experiment
from gdbench.io import join_csv
from gdbench.pipeline import write_theory
from gdbench.provenance import write_provenance
from gdbench.reproducibility import reproducibility_line, results_notice


def test_join_csv_concatenates_in_order_and_logs_the_table(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("device,s\ncpu,1.5\n")
    (tmp_path / "b.csv").write_text("device,s\ncuda,0.25\ncuda,0.5\n")
    join_csv([tmp_path / "a.csv", tmp_path / "b.csv"], tmp_path / "out" / "t.csv", tmp_path / "t.log")
    table = pd.read_csv(tmp_path / "out" / "t.csv")
    assert table.device.tolist() == ["cpu", "cuda", "cuda"] and table.s.tolist() == [1.5, 0.25, 0.5]
    assert "cuda" in (tmp_path / "t.log").read_text()


def test_write_theory_gives_one_row_per_dataset_and_optimizer(tmp_path: Path) -> None:
    config = check_config({"grid": {"dataset": ["tutorial"], "lr": [0.01], "seed": [0]}})
    csv, html, log = tmp_path / "theory.csv", tmp_path / "theory.html", tmp_path / "theory.log"
    write_theory(Experiment.from_checked(config, ["cpu"]), csv, html, log)
    table = pd.read_csv(csv)
    assert set(table.dataset) == {"tutorial"}
    assert len(table) == len(config["grid"]["optimizer"])
    assert "critical_lr" in table.columns and (table.critical_lr.dropna() > 0).all()
    assert "Theory per dataset" in html.read_text() and "tutorial" in log.read_text()
    # the fastest lr's predicted rate, ((lmax - lmin) / (lmax + lmin))^2 for plain descent
    sgd = table[table.optimizer == "sgd"].iloc[0]
    kappa = (sgd.lambda_max - sgd.lambda_min) / (sgd.lambda_max + sgd.lambda_min)
    assert abs(sgd.fastest_rate - kappa**2) < 1e-12
    assert table[table.optimizer != "sgd"].fastest_rate.isna().all()  # no fastest lr: no rate


def test_write_theory_writes_each_optimizers_rate_curve_for_the_plots(tmp_path: Path) -> None:
    """The rate figure draws this table (plots read tables only): plain descent's V is
    (1 - lr lambda)^2 maxed over both directions, 1 at the critical lr, above 1 past it;
    heavy ball is flat at beta where its roots are complex; Adam has no curve."""
    optimizers = ["sgd", "heavy_ball", "nesterov", "adam"]
    config = check_config({"grid": {"dataset": ["tutorial"], "optimizer": optimizers, "lr": [0.01], "seed": [0]}})
    out = [tmp_path / n for n in ("theory.csv", "theory.html", "theory.log", "curve.csv")]
    write_theory(Experiment.from_checked(config, ["cpu"]), *out)
    curve, theory = pd.read_csv(out[3]), pd.read_csv(out[0])
    assert set(curve.optimizer) == {"sgd", "heavy_ball", "nesterov"}  # adam: no closed form
    sgd = curve[curve.optimizer == "sgd"]
    row = theory[theory.optimizer == "sgd"].iloc[0]
    lam = [row.lambda_min, row.lambda_max]
    expected = [max((1 - lr * v) ** 2 for v in lam) for lr in sgd.lr]
    assert abs(sgd.predicted_rate - expected).max() < 1e-12
    assert abs(sgd[sgd.lr_ratio == 1.0].predicted_rate.iloc[0] - 1.0) < 1e-12
    assert (sgd[sgd.lr_ratio > 1.01].predicted_rate > 1).all() and sgd.lr_ratio.min() <= 1e-6
    hb = curve[(curve.optimizer == "heavy_ball") & curve.lr_ratio.between(0.2, 0.9)]
    assert abs(hb.predicted_rate - 0.9).max() < 1e-9


def test_write_provenance_records_the_jobs_and_the_config(tmp_path: Path) -> None:
    config = check_config({})
    runtime = {"versions": {"torch": "9.9"}, "devices": {"cuda": []}, "deterministic": {}}
    metas = []
    for i, started in enumerate(["2026-01-02T00:00:00", "2026-01-01T00:00:00"]):
        meta = {"started": started, "finished": started, "seconds": 1.0, "threads": 1, "runs": 2, "runtime": runtime}
        metas.append(tmp_path / f"m{i}.json")
        metas[-1].write_text(json.dumps(meta))
    out = tmp_path / "provenance.json"
    write_provenance(config, metas, out, tmp_path / "p.html", tmp_path / "p.log", tmp_path, ["cpu"])
    record = json.loads(out.read_text())
    assert record["config_hash"] == config_hash(config)
    assert record["started"] == "2026-01-01T00:00:00"  # the earliest job
    assert record["versions"] == {"torch": "9.9"} and record["grid_devices"] == ["cpu"]
    assert [job["runs"] for job in record["training_jobs"]] == [2, 2]
    assert (tmp_path / "p.log").read_text() == "provenance of 2 training jobs recorded\n"


def test_reproducibility_line_reads_the_check_its_time_and_its_age(tmp_path: Path) -> None:
    """If this fails, the end of a run misstates the reproducibility check: unknown when there
    is one, PASSED for results trained after it was checked, or no command to check again."""
    check, shard = tmp_path / "reproducibility.json", tmp_path / "shards" / "cpu-000" / "summary.parquet"
    recheck = "snakemake --configfile g.yaml verify"
    assert reproducibility_line(check, [shard], recheck) == (
        f"gdbench: reproducibility unknown: no {check} yet (to check: `{recheck}`)"
    )
    result = {"passed": True, "runs_identical": 4, "runs_checked": 4, "lesson_log_reproduced": True}
    check.write_text(json.dumps({**result, "checked": "2026-12-01T21:00:00+00:00"}))
    assert reproducibility_line(check, [shard], recheck) == (
        "gdbench: reproducibility PASSED: 4 of 4 re-trained runs bit-identical, the lesson's log "
        f"reproduced (checked 2026-12-01T21:00:00+00:00, {tmp_path / 'reproducibility.html'})"
    )
    shard.parent.mkdir(parents=True)
    shard.write_bytes(b"")
    later = check.stat().st_mtime + 10
    os.utime(shard, (later, later))
    assert f"PASSED for earlier results (the results changed since: `{recheck}` checks them)" in reproducibility_line(
        check, [shard], recheck
    )
    check.write_text(json.dumps({**result, "passed": False, "runs_identical": 3, "message": "run 3 differs"}))
    assert "reproducibility FAILED (run 3 differs): 3 of 4" in reproducibility_line(check, [], recheck)


def test_results_notice_names_a_folder_made_by_another_config(tmp_path: Path) -> None:
    """If this fails, a run that replaces another config's results in the same folder says
    nothing (or warns when the folder holds this very config's results)."""
    provenance = tmp_path / "results" / "default" / "provenance.json"
    assert results_notice(provenance, "abc", "default") is None  # a first run
    provenance.parent.mkdir(parents=True)
    provenance.write_text(json.dumps({"config_hash": "abc"}))
    assert results_notice(provenance, "abc", "default") is None
    notice = results_notice(provenance, "def", "default")
    assert notice is not None and notice.startswith(f"gdbench: {provenance.parent}/ holds the results of config abc")
    assert "--config name=" in notice
