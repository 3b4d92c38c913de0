"""The three figures build from real and awkward tables, and say what a reader needs.

Tables come from a small real grid (tutorial and a noisy synthetic line, lrs 0.001..1.0) and
are then cut or damaged the ways a real grid can be: every run diverged, none did, a single
run, costs that overflowed to inf/NaN/1e30. Every plot runs with warnings turned into errors.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import PIL.Image
import pytest
from helpers import LESSON_AND_NOISY, OPTIMIZER_SPECS, criteria, optimizer_spec, run_spec, train_options

from gdbench import plots, tables, theory
from gdbench.analysis import analyse_runs
from gdbench.data import parse_dataset
from gdbench.engines import DataSource, train
from gdbench.optimizers import PLAIN_SGD
from gdbench.plots import convergence_plot, reduction, timing_plot
from gdbench.theory import analyse

DATASETS = {
    "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
    "noisy": {"synthetic": {"n": 16, "slope": 2.0, "intercept": 0.5, "noise": 0.5, "x_min": 0.0, "x_max": 3.0}},
}
LRS = [0.001, 0.01, 0.1, 0.18, 0.19, 0.5, 1.0]


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    """Trajectories, summary and theory of a small real grid (2 datasets x 7 lrs x 2 seeds)."""
    specs = {name: parse_dataset(name, raw) for name, raw in DATASETS.items()}
    runs = [run_spec(ds, lr, seed, 300) for ds in specs for lr in LRS for seed in (1, 2)]
    batch = train(runs, specs, train_options())
    theories = {name: theory.analyse(spec.build()) for name, spec in specs.items()}
    return {
        "trajectories": tables.trajectories(batch),
        "summary": tables.summary(
            batch, analyse_runs(batch, DataSource(specs), train_options().optimizers, criteria().diverged_factor)
        ),
        "theory": tables.theory_table(theories, optimizers={PLAIN_SGD.name: PLAIN_SGD}),
    }


def subset(real: dict[str, pd.DataFrame], keep) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trajectory and summary rows of the runs whose summary row ``keep`` selects."""
    summary = real["summary"][keep(real["summary"])].reset_index(drop=True)
    traj = real["trajectories"]
    return traj[traj["run_id"].isin(summary["run_id"])].reset_index(drop=True), summary


def draw(fn, *args, tmp_path: Path, name: str) -> tuple[Path, str]:
    """Run a plot function with warnings as errors; return the PNG path and the SVG text."""
    png, svg = tmp_path / f"{name}.png", tmp_path / f"{name}.svg"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(*args, png, svg)
    assert png.is_file() and svg.is_file()
    image = matplotlib.image.imread(png)
    height, width = image.shape[:2]
    assert width >= 900 and height >= 500, f"{name}.png is only {width}x{height} pixels"
    assert image[..., :3].std() > 0.05, f"{name}.png is blank"
    with PIL.Image.open(png) as im:
        assert round(im.info["dpi"][0]) == plots.DPI
    text = svg.read_text()
    assert text.lstrip().startswith("<?xml") and text.rstrip().endswith("</svg>")
    assert not list(tmp_path.glob(".*.tmp")), "a temporary file was left behind"
    return png, text


# --------------------------------------------------------------------------------------------
# convergence


def test_convergence_mixed_grid(real, tmp_path, monkeypatch):
    """A user sees unlabelled axes, a categorical lr legend instead of a colour bar, or diverged
    runs without their marker; or the curves that go to 1e7 squash the converging ones into a
    flat line at the bottom (the y axis must stop at a few times the initial cost)."""
    seen = {}
    original = convergence_plot._cost_ranges

    def spy(agg, keys):
        seen.update(original(agg, keys))
        return seen

    monkeypatch.setattr(convergence_plot, "_cost_ranges", spy)
    _, svg = draw(plots.convergence, real["trajectories"], real["summary"], tmp_path=tmp_path, name="mixed")
    for text in ("excess cost (MSE − optimal MSE)", "epoch", "learning rate", "dataset = tutorial", "diverged"):
        assert text in svg, text
    assert "dataset = noisy" in svg
    assert "lr = 0.001" not in svg  # no categorical legend of lrs
    # The y axis is the excess over each run's optimum: its top follows the initial excess.
    first = real["trajectories"].query("epoch == 0").merge(real["summary"][["run_id", "optimal_cost"]], on="run_id")
    first["excess"] = first["cost"].astype(float) - first["optimal_cost"]
    initial = first.groupby("dataset", observed=True)["excess"].max()
    assert set(seen) == {"tutorial", "noisy"}
    for ds, (bottom, top, clipped) in seen.items():
        assert clipped  # the diverging runs left through the top
        assert top == pytest.approx(plots.TOP_FACTOR * initial[ds], rel=1e-6)
        assert bottom < 1e-3 * top


@pytest.mark.parametrize(
    "case",
    ["all_diverged", "none_diverged", "single_run", "single_diverged_run"],
)
def test_convergence_edge_grids(real, tmp_path, case):
    """A grid where every run (or no run) diverged, or a single run, crashes the plot or draws
    nothing; the user gets a traceback instead of a figure."""
    keep = {
        "all_diverged": lambda s: s["diverged"],
        "none_diverged": lambda s: ~s["diverged"],
        "single_run": lambda s: s["run_id"] == s.loc[~s["diverged"], "run_id"].iloc[0],
        "single_diverged_run": lambda s: s["run_id"] == s.loc[s["diverged"], "run_id"].iloc[0],
    }[case]
    traj, summary = subset(real, keep)
    _, svg = draw(plots.convergence, traj, summary, tmp_path=tmp_path, name=case)
    assert "excess cost (MSE − optimal MSE)" in svg and "learning rate" in svg


def test_convergence_nonfinite_and_zero_costs(real, tmp_path):
    """Overflowed costs (inf, NaN, 1e30) and exact zeros break a log axis: the plot must still
    build, without RuntimeWarnings, and say where zeros are drawn."""
    traj = real["trajectories"].copy()
    summary = real["summary"]
    stop = traj["run_id"].map(summary.set_index("run_id")["diverged_at"]).astype("Float64")
    last_rows = traj.index[(traj["epoch"] == stop).fillna(False).to_numpy(dtype=bool)]
    assert len(last_rows) == summary["diverged"].sum()
    values = np.resize(np.array([np.inf, np.nan, 1e30], dtype=traj["cost"].dtype), len(last_rows))
    traj.loc[last_rows, "cost"] = values
    converging = summary.loc[~summary["diverged"], "run_id"].iloc[0]
    rows = traj.index[traj["run_id"] == converging]
    traj.loc[rows[-20:], "cost"] = 0.0
    traj.loc[rows[5], "cost"] = np.nan
    _, svg = draw(plots.convergence, traj, summary, tmp_path=tmp_path, name="nonfinite")
    assert "excess exactly 0 drawn at" in svg


def test_convergence_devices_and_empty(real, tmp_path):
    """With cpu and cuda runs the user needs one facet row per device; an empty table (a failed
    shard) must still give a figure instead of an exception."""
    traj, summary = subset(real, lambda s: (s["dataset"] == "tutorial") & s["lr"].isin([0.01, 0.5]))
    parts = [
        (
            traj.assign(device=device, run_id=traj["run_id"] + offset),
            summary.assign(device=device, run_id=summary["run_id"] + offset),
        )
        for device, offset in (("cpu", 0), ("cuda", 10_000))
    ]
    traj2 = pd.concat([p[0] for p in parts], ignore_index=True).astype({"device": "category"})
    summ2 = pd.concat([p[1] for p in parts], ignore_index=True)
    _, svg = draw(plots.convergence, traj2, summ2, tmp_path=tmp_path, name="devices")
    assert "dataset = tutorial | device = cpu" in svg and "dataset = tutorial | device = cuda" in svg
    _, svg = draw(plots.convergence, traj.iloc[:0], summary.iloc[:0], tmp_path=tmp_path, name="empty")
    assert "no trajectories" in svg


def test_convergence_big_table_is_thinned(tmp_path):
    """A 1,000-run x 2,001-epoch table must be aggregated before drawing (at most MAX_POINTS
    points per line, max_lines lines per facet); otherwise big grids take minutes to plot."""
    n_lr, n_seed, epochs = 50, 20, 2000
    lr = np.repeat(np.geomspace(1e-3, 0.15, n_lr), n_seed)
    runs = lr.size
    rid = np.repeat(np.arange(runs, dtype=np.int32), epochs + 1)
    epoch = np.tile(np.arange(epochs + 1, dtype=np.int32), runs)
    cost = (18.7 * (1 - 11.09 * lr[rid]) ** (2.0 * epoch)).astype(np.float32)
    cat = pd.Categorical.from_codes(np.zeros(rid.size, np.int8), categories=["tutorial"])
    traj = pd.DataFrame({"run_id": rid, "dataset": cat, "lr": lr[rid], "epoch": epoch, "cost": cost})
    summary = pd.DataFrame(
        {"run_id": np.arange(runs), "diverged": False, "diverged_at": pd.array([pd.NA] * runs, "Int64")}
    )
    agg = reduction.aggregate_lines(traj, summary, max_lines=25)
    assert len(agg.lines) == 25
    assert np.diff(agg.start).max() <= plots.MAX_POINTS + 1
    _, svg = draw(
        lambda *a: plots.convergence(*a[:2], *a[2:], max_lines=25), traj, summary, tmp_path=tmp_path, name="big"
    )
    assert "25 of 50 learning rates drawn" in svg


@pytest.mark.parametrize("max_lines", [40, 4])
def test_convergence_lines_from_the_thin_table_are_those_of_the_full_one(real, tmp_path, max_lines):
    """The plots job reads run id, epoch and cost only (read_drawn) and takes each run's axes
    from the summary: the lines, their counts and divergences, and the drawn values are those
    of the full table's, with every learning rate or a few of them drawn."""
    traj, summary = real["trajectories"], real["summary"]
    traj.to_parquet(tmp_path / "t.parquet")
    thin = reduction.read_drawn(tmp_path / "t.parquet", summary, ["run_id", *tables.AXES, "epoch", "cost"])
    assert list(thin.columns) == ["run_id", "epoch", "cost"]
    for envelope in (False, True):
        full = reduction.aggregate_lines(traj, summary, max_lines, upper_envelope=envelope)
        got = reduction.aggregate_lines(thin, summary, max_lines, upper_envelope=envelope)
        assert full.lines["n_diverged"].sum() > 0 and len(full.lines) == 2 * min(max_lines, len(LRS))
        pd.testing.assert_frame_equal(got.lines, full.lines, check_categorical=False)
        for field in ("epoch", "median", "lo", "hi", "start"):
            np.testing.assert_array_equal(getattr(got, field), getattr(full, field))
        assert (got.floor, got.had_zero, got.notes) == (full.floor, full.had_zero, full.notes)
    # A run whose cost overflows (inf) with no verdict in the summary diverged at that epoch.
    rows = thin.index[thin["run_id"] == thin["run_id"].iloc[0]]  # its rows, contiguous
    thin.loc[rows[5] : rows[-1], "cost"] = np.inf
    lines = reduction.aggregate_lines(thin, summary.drop(columns=["diverged", "diverged_at"]), max_lines).lines
    assert lines["n_diverged"].sum() == 1 and [int(thin.loc[rows[5], "epoch"])] in lines["diverged_epochs"].tolist()


# --------------------------------------------------------------------------------------------
# divergence


def test_divergence_mixed_grid(real, tmp_path):
    """The reader cannot see where theory says runs diverge, or cannot tell diverged runs from
    converged ones, or the axes have no units."""
    _, svg = draw(plots.divergence, real["summary"], real["theory"], tmp_path=tmp_path, name="div")
    for text in ("learning rate", "final excess cost", "critical lr 2/λmax = 0.180", "fastest 2/(λmax+λmin) = 0.176"):
        assert text in svg, text
    assert "diverged: cost at the divergence epoch" in svg
    assert "dataset = noisy" in svg


@pytest.mark.parametrize("case", ["all_diverged", "none_diverged", "single_run"])
def test_divergence_edge_grids(real, tmp_path, case):
    """A grid with no diverged (or no converged) run, or one run, must still plot with the
    theory lines; the user otherwise gets a crash at the end of a long workflow."""
    keep = {
        "all_diverged": lambda s: s["diverged"],
        "none_diverged": lambda s: ~s["diverged"],
        "single_run": lambda s: s.index == 0,
    }[case]
    _, summary = subset(real, keep)
    _, svg = draw(plots.divergence, summary, real["theory"], tmp_path=tmp_path, name=case)
    assert "critical lr" in svg and "learning rate" in svg


def test_divergence_overflow_and_zero(real, tmp_path):
    """A diverged run whose cost overflowed (inf/NaN) vanishes from a log plot unless it is
    drawn on the top edge; an exact 0 vanishes unless floored (and noted)."""
    summary = real["summary"].copy()
    div = summary.index[summary["diverged"]]
    summary.loc[div[::2], "final_cost"] = np.inf
    summary.loc[div[1::2], "final_cost"] = np.nan
    summary.loc[summary.index[~summary["diverged"]][0], "final_cost"] = 0.0
    _, svg = draw(plots.divergence, summary, real["theory"], tmp_path=tmp_path, name="overflow")
    assert "cost overflowed (inf/NaN): drawn on the top edge" in svg
    assert "excess exactly 0 drawn at" in svg


# --------------------------------------------------------------------------------------------
# timing


def timing_table(devices=("cpu", "cuda")) -> pd.DataFrame:
    """A timing table where CUDA has a fixed launch cost and CPU scales with n (crossover ~1e4)."""
    names = {"cpu": "Test CPU", "cuda": "Test GPU"}
    rows = []
    for device in devices:
        for engine in ("loop", "batched"):
            for n in (3, 1_000, 100_000, 1_000_000):
                for runs in (1,) if engine == "loop" else (1, 100, 10_000):
                    t = 1e-4 + 1e-9 * n * runs if device == "cpu" else 5e-4 + 1e-12 * n * runs
                    rows.append(
                        {
                            "device": device, "device_name": names[device], "engine": engine, "n": n,
                            "runs": runs, "epochs": 100, "threads": 2 if device == "cpu" else 1,
                            "median_s_per_epoch": t, "iqr_s_per_epoch": t / 10, "repeats": 7,
                            "run_epochs_per_s": runs / t,
                        }
                    )  # fmt: skip
    return pd.DataFrame(rows)


def test_timing_two_devices_marks_crossover(tmp_path):
    """With cpu and cuda timings the user must see where CUDA overtakes CPU, per engine, and
    which machine was timed."""
    _, svg = draw(plots.timing, timing_table(), tmp_path=tmp_path, name="timing2")
    for text in ("seconds per epoch", "data points n", "run-epochs per second", "Test CPU", "Test GPU"):
        assert text in svg, text
    assert "crossover (loop): CUDA faster from n ≈ 350,000" in svg
    assert "crossover (batched)" in svg


def test_a_figure_without_its_svg_is_the_same_png(tmp_path):
    """plots.svg off (the default) draws the PNG only, byte for byte the PNG drawn beside an SVG."""
    plots.timing(timing_table(), tmp_path / "both.png", tmp_path / "both.svg")
    plots.timing(timing_table(), tmp_path / "png.png", None)
    assert (tmp_path / "png.png").read_bytes() == (tmp_path / "both.png").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["both.png", "both.svg", "png.png"]


def test_timing_crossover_interpolates():
    """The crossover n is interpolated on log-log axes between the bracketing sizes, and says so
    when CUDA never (or always) wins."""
    cpu = pd.Series([1.0, 10.0], index=[10.0, 1000.0])
    gpu = pd.Series([5.0, 5.0], index=[10.0, 1000.0])
    n, _ = timing_plot._crossover(cpu, gpu)
    assert n == pytest.approx(10 ** (1 + 2 * np.log(5) / np.log(10)), rel=1e-9)
    assert timing_plot._crossover(cpu, cpu * 2)[0] is None
    assert "not faster" in timing_plot._crossover(cpu, cpu * 2)[1]
    assert "already" in timing_plot._crossover(cpu, cpu / 2)[1]


@pytest.mark.parametrize("case", ["one_device", "nan_rows", "single_row", "all_nan"])
def test_timing_awkward_tables(tmp_path, case):
    """A machine without CUDA, a failed measurement (NaN), or a single measurement must give a
    figure, not a crash or a warning."""
    df = timing_table(("cpu",)) if case == "one_device" else timing_table()
    if case == "nan_rows":
        df.loc[df.index[::3], ["median_s_per_epoch", "iqr_s_per_epoch", "run_epochs_per_s"]] = np.nan
    elif case == "single_row":
        df = df.iloc[:1]
    elif case == "all_nan":
        df[["median_s_per_epoch", "iqr_s_per_epoch", "run_epochs_per_s"]] = np.nan
    _, svg = draw(plots.timing, df, tmp_path=tmp_path, name=case)
    assert "seconds per epoch" in svg
    if case == "one_device":
        assert "crossover" not in svg


# --------------------------------------------------------------------------------------------
# module behaviour


def test_backend_respects_the_callers_choice():
    """Importing gdbench.plots on a headless node must not need a display (Agg), and must not
    override a backend the user already chose (their notebook would stop showing figures)."""
    # A bare package object stands in for gdbench/__init__ (which imports torch): the check
    # then takes a second, not five.
    package = Path(plots.__file__).parents[1]
    stub = (
        f"import sys, types; g = types.ModuleType('gdbench'); g.__path__ = [{str(package)!r}]; "
        "sys.modules['gdbench'] = g; "
    )
    procs = {}
    for setup, expected in (("", "agg"), ("matplotlib.use('svg'); ", "svg")):
        code = f"{stub}import matplotlib; {setup}import gdbench.plots.style; print(matplotlib.get_backend().lower())"
        env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "DISPLAY")}
        procs[expected] = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    for expected, proc in procs.items():
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        assert out.strip() == expected


def test_same_input_same_svg(real, tmp_path):
    """Re-running the workflow on the same tables must give byte-identical SVGs (no dates or
    random ids), so a report diff shows only real changes."""
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        plots.timing(timing_table(), d / "x.png", d / "x.svg")
    assert (a / "x.svg").read_bytes() == (b / "x.svg").read_bytes()


def test_reduction_needs_no_matplotlib_and_figures_no_torch():
    """The workflow reads trajectories through gdbench.plots.reduction before drawing anything: it
    must not pay for matplotlib there, and no figure module may import torch (the plots job
    and notebooks reading tables would pay ~1.4 s, and need torch installed)."""
    code = (
        "import sys; import gdbench.plots.reduction; mpl = 'matplotlib' in sys.modules; "
        "from gdbench import plots; [getattr(plots, n) for n in plots.__all__]; "
        "print(mpl, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_read_drawn_reads_the_thinned_epochs_and_each_runs_ends(tmp_path):
    """The plots job reads only the epochs the convergence figure draws (at most MAX_POINTS per
    line), plus each run's last epoch and divergence epoch, never the whole table."""
    epochs = 3000
    traj = pd.DataFrame(
        {
            "run_id": np.repeat([0, 1], epochs + 1),
            "epoch": np.tile(np.arange(epochs + 1), 2),
            "cost": np.ones(2 * (epochs + 1)),
        }
    )
    traj.to_parquet(tmp_path / "t.parquet")
    summary = pd.DataFrame({"run_id": [0, 1], "epochs": [epochs, epochs], "diverged_at": [np.nan, 1777.0]})
    got = reduction.read_drawn(tmp_path / "t.parquet", summary, ["run_id", "epoch", "cost"])
    kept = set(got["epoch"])
    assert {0, 1, 1777, epochs} <= kept
    assert len(kept) <= reduction.MAX_POINTS + 2 and len(got) == 2 * len(kept)


def test_plots_facet_by_optimizer_with_each_ones_theory(tmp_path) -> None:
    """With several optimizers the reader sees one row of facets per optimizer, each with
    its own critical lr (heavy ball's is about twice plain SGD's), and Adam's facet says it
    has none, instead of every optimizer drawn against plain SGD's line."""
    from gdbench import plots

    specs = {s.name: s for s in (optimizer_spec("sgd"), OPTIMIZER_SPECS[1], optimizer_spec("adam", kind="adam"))}
    runs = [run_spec("tutorial", lr, 1, 100, optimizer=name) for name in specs for lr in (0.01, 0.1, 0.3)]
    batch = train(runs, LESSON_AND_NOISY, train_options(optimizers=specs))
    theories = {"tutorial": analyse(LESSON_AND_NOISY["tutorial"].build(seed=0))}
    summary = tables.summary(
        batch, analyse_runs(batch, DataSource(LESSON_AND_NOISY), specs, criteria().diverged_factor)
    )
    plots.divergence(summary, tables.theory_table(theories, optimizers=specs), tmp_path / "d.png", tmp_path / "d.svg")
    svg = (tmp_path / "d.svg").read_text()
    for text in (
        "dataset = tutorial | optimizer = sgd",
        "dataset = tutorial | optimizer = hb",
        "critical lr 2/λmax = 0.180",
        "critical lr 2(1+β)/λmax (β=0.9) = 0.343",
        "no closed-form critical lr",
    ):
        assert text in svg, text
    assert svg.index("optimizer = sgd") < svg.index("optimizer = hb") < svg.index("optimizer = adam")
    plots.convergence(tables.trajectories(batch), summary, tmp_path / "c.png", tmp_path / "c.svg")
    assert "dataset = tutorial | optimizer = adam" in (tmp_path / "c.svg").read_text()


def test_plots_import_seaborn_without_scipy_and_leave_it_usable() -> None:
    """The plotting jobs skip scipy.stats (~1 s of their start) and scipy.cluster (0.3 s), yet
    a user's later ``import scipy.stats`` works as usual, and seaborn's clustermap clusters
    with scipy's hierarchy (imported on its first use) as if nothing had been skipped."""
    import subprocess
    import sys

    code = (
        "import sys; import gdbench.plots.style as s; "
        "skipped = [m for m in sys.modules if m.startswith(('scipy.stats', 'scipy.cluster'))]; "
        "assert not skipped, skipped; "
        "assert s.sns.__name__ == 'seaborn'; import scipy.stats; print(scipy.stats.norm.cdf(0.0)); "
        "import numpy as np; from scipy.cluster import hierarchy; "
        "data = np.array([[0.0, 1.0], [0.1, 1.1], [5.0, 0.0], [5.2, 0.1]]); "
        "grid = s.sns.clustermap(data, row_cluster=True, col_cluster=False); "
        "theirs = hierarchy.leaves_list(hierarchy.linkage(data, 'average')); "
        "print(list(grid.dendrogram_row.reordered_ind) == list(theirs))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0.5", "True"]
