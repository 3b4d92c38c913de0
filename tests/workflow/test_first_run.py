"""A newcomer's first run: dry runs without a profile, readable rerun reasons, quiet output."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO, criteria, results_of, run_spec, run_workflow, train_options

from gdbench.config import ConfigError, check_config
from gdbench.runs import cuda_present, describe_runs
from gdbench.timing.plans import reserved_slots


@pytest.mark.slow
def test_a_dry_run_needs_no_cores(tmp_path: Path) -> None:
    """`snakemake -n --workflow-profile none` plans the run instead of asking for --cores."""
    proc = run_workflow(tmp_path, {"grid": {"device": ["cpu"]}}, "-n", "--workflow-profile", "none")
    assert "Timing the engines on cpu (1 torch thread(s); 1 core(s) reserved)" in proc.stdout


@pytest.mark.parametrize("svg", [False, True])
def test_the_figures_are_pngs_and_svgs_only_with_plots_svg(tmp_path: Path, svg: bool) -> None:
    """A first run draws PNGs (what the report shows); `plots: {svg: true}` adds an SVG of each."""
    config = {"grid": {"device": ["cpu"]}, **({"plots": {"svg": True}} if svg else {})}
    proc = run_workflow(tmp_path, config, "-n", "--workflow-profile", "none")
    planned = proc.stdout
    for name in ("convergence", "rate", "divergence", "edge", "time_to_target", "profile", "timing"):
        assert f"plots/{name}.png" in planned, name
        assert (f"plots/{name}.svg" in planned) is svg, name


@pytest.mark.slow
def test_the_timing_job_runs_beside_the_others_unless_alone(tmp_path: Path) -> None:
    """By default the timing job reserves enough of --cores that the jobs beside it leave its
    torch thread's CPU free (--cores 3 on 2 CPUs: 2, so one job runs beside it); with
    timing.alone it holds all 3, so nothing runs beside its measurements."""
    proc = run_workflow(tmp_path, {"grid": {"device": ["cpu"]}}, "-n", "--cores", "3")
    cores = reserved_slots(3, os.cpu_count() or 1, 1, alone=False)
    assert f"Timing the engines on cpu (1 torch thread(s); {cores} core(s) reserved)" in proc.stdout
    alone = {"grid": {"device": ["cpu"]}, "timing": {"alone": True}}
    proc = run_workflow(tmp_path, alone, "-n", "--cores", "3")
    assert "Timing the engines on cpu (1 torch thread(s); 3 core(s) reserved)" in proc.stdout
    assert "gpu" not in proc.stdout + proc.stderr  # no GPU resource where the grid has no CUDA job


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (imports and torch's global state start clean)."""
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_learning_rate_gets_did_you_mean_lr() -> None:
    """A newcomer who writes grid.learning_rate is pointed at grid.lr, as one who writes lrs is."""
    for key in ("learning_rate", "learning-rates", "lrs"):
        with pytest.raises(ConfigError, match=r"unknown key; did you mean grid\.lr\?"):
            check_config({"grid": {key: [0.1]}})


def test_help_is_plain_and_does_not_load_torch() -> None:
    """`gdbench --help` shows no reStructuredText markup and answers without importing torch."""
    proc = _python(
        "import sys\nfrom gdbench.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('torch loaded' if 'torch' in sys.modules else 'torch not loaded')"
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: gdbench" in proc.stdout and "gdbench lesson" in proc.stdout and "tutorial" in proc.stdout
    assert "``" not in proc.stdout
    assert proc.stdout.rstrip().endswith("torch not loaded")


_DETERMINISM_STATE = (
    "import sys, torch\n{setup}\n"
    "compiler_loaded = 'torch._dynamo' in sys.modules or 'torch._inductor' in sys.modules\n"
    "import torch._inductor.config as inductor\n"
    "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
    " torch.backends.cudnn.deterministic, inductor.deterministic, compiler_loaded)"
)


@pytest.mark.slow
def test_set_deterministic_sets_what_torch_sets_without_loading_its_compiler() -> None:
    """set_deterministic leaves torch in the state torch.use_deterministic_algorithms(True)
    leaves it in (ATen's flag and the compiler's deterministic mode), without the ~1 s import
    of torch's compiler; also where the compiler was imported first."""
    ours = _python(
        _DETERMINISM_STATE.format(setup="from gdbench.determinism import set_deterministic\nset_deterministic(1)")
    )
    theirs = _python(
        _DETERMINISM_STATE.format(
            setup="torch.use_deterministic_algorithms(True)\ntorch.backends.cudnn.deterministic = True"
        )
    )
    assert ours.returncode == 0 and theirs.returncode == 0, ours.stderr + theirs.stderr
    assert ours.stdout.split() == ["True", "False", "True", "True", "False"]
    assert theirs.stdout.split()[:4] == ours.stdout.split()[:4]
    first = _python(
        "import torch._inductor.config as inductor\nfrom gdbench.determinism import set_deterministic\n"
        "set_deterministic()\nprint(inductor.deterministic)",
        TORCHINDUCTOR_DETERMINISTIC="0",
    )
    assert first.stdout.split() == ["True"], first.stderr


def test_cuda_present_needs_a_cuda_build_and_a_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`device: auto` adds cuda only where torch is a CUDA build and an NVIDIA driver is
    loaded, decided without importing torch; CUDA_VISIBLE_DEVICES="" hides the GPUs."""
    import importlib.util

    driver = tmp_path / "nvidiactl"
    driver.touch()
    package = tmp_path / "torch"
    (package / "lib").mkdir(parents=True)
    spec = importlib.util.spec_from_file_location(
        "torch", package / "__init__.py", submodule_search_locations=[str(package)]
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert not cuda_present([str(driver)])  # a CPU-only build
    (package / "lib" / "libtorch_cuda.so").touch()
    assert cuda_present([str(driver)])
    assert not cuda_present([str(tmp_path / "absent")])  # no driver
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not cuda_present([str(driver)])


def test_cuda_present_agrees_with_torch_here() -> None:
    """On this machine the rule gives the answer torch gives."""
    import torch

    assert cuda_present() == torch.cuda.is_available()


def test_timing_keeps_torchs_cuda_runtime_warning_out_of_the_log() -> None:
    """A CUDA build of torch without a GPU, where a CUDA toolkit is installed, warns "No CUDA
    runtime is found" when torch.utils.benchmark (or torch.utils.cpp_extension) loads; importing
    the timing package must not load them, so the timing log stays clean of it."""
    proc = _python(
        "import torch\ntorch.cuda._is_compiled = lambda: True\ntorch.version.cuda = '13.0'\n"
        "torch.cuda.is_available = lambda: False\nimport gdbench.timing",
        CUDA_HOME=os.getcwd(),
    )
    assert proc.returncode == 0, proc.stderr
    assert "No CUDA runtime" not in proc.stderr


def test_describe_runs_is_short_and_readable() -> None:
    """A training job's params summarise its runs in a line, whatever the grid's size."""
    runs = [run_spec("tutorial", lr, seed, 2000) for lr in (0.0001 * 1.1**i for i in range(100)) for seed in range(50)]
    text = describe_runs(runs)
    assert text.startswith("5000 runs: dataset tutorial; lr 0.0001..")
    assert "(100 values); seed 0..49 (50 values); epochs 2000; device cpu" in text
    assert len(text) < 250


def test_convergence_plot_keys_every_line_and_every_divergence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader can tell 0.17, 0.18 and 0.19 apart (distinct colours, each named on the colour
    bar) and read each diverged run's learning rate next to its x on the top edge."""
    import numpy as np
    from matplotlib.colors import to_rgb

    from gdbench import plots, tables
    from gdbench.analysis import analyse_runs
    from gdbench.data import parse_dataset
    from gdbench.engines import DataSource, train
    from gdbench.plots import style

    spec = parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]})
    lrs = [0.0001, 0.01, 0.05, 0.1, 0.15, 0.17, 0.18, 0.19, 0.25, 0.5]
    batch = train([run_spec("tutorial", lr, 1, 300) for lr in lrs], {"tutorial": spec}, train_options())
    summary = tables.summary(
        batch,
        analyse_runs(batch, DataSource({"tutorial": spec}), train_options().optimizers, criteria().diverged_factor),
    )
    figures = []
    monkeypatch.setattr(style, "save", lambda fig, png, svg: figures.append(fig))
    plots.convergence(tables.trajectories(batch), summary, tmp_path / "c.png", tmp_path / "c.svg")
    (fig,) = figures
    ax, bar = fig.axes[0], fig.axes[1]

    colours = {}
    for line in ax.get_lines():
        if line.get_marker() == "x":
            continue
        colours.setdefault(line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color()), line)
    rgb = np.array([to_rgb(c) for c in colours])
    assert len(rgb) == len(lrs)
    closest = min(np.linalg.norm(a - b) for i, a in enumerate(rgb) for b in rgb[i + 1 :])
    assert closest > 0.08, f"two learning rates get nearly the same colour (distance {closest:.3f})"
    assert [t.get_text() for t in bar.get_yticklabels()] == [f"{lr:g}" for lr in lrs]

    diverged = sorted(summary.loc[summary["diverged"], "lr"])
    assert diverged == [0.19, 0.25, 0.5]
    labels = {t.get_text() for t in ax.texts}
    assert {f"{lr:g}" for lr in diverged} <= labels, labels


@pytest.mark.slow
def test_a_run_ends_with_its_reproducibility_and_a_change_reads_short(tmp_path: Path) -> None:
    """The last lines of a run say PASSED (or FAILED, when a stored trajectory no longer
    matches a re-run); after a config change, the dry run names the one training job the change
    touches in a few short lines, instead of printing every run spec of the grid."""
    import pandas as pd

    grid = {"dataset": ["tutorial"], "lr": [0.01, 0.1, 0.5], "seed": [1, 2], "epochs": [60], "device": ["cpu"]}
    config = {"grid": grid, "timing": {"enabled": False}, "edge": {"enabled": False}, "verify": {"sample": 6}}
    config["sharding"] = {"min_runs_per_job": 1}  # two jobs of three runs each
    first = run_workflow(tmp_path, config, "--cores", "2")
    assert "gdbench: reproducibility PASSED: 6 of 6 re-trained runs bit-identical" in first.stdout

    grid["lr"] = [0.01, 0.1, 0.2]  # the second shard (lr 0.1, 0.5) changes, the first does not
    dry = run_workflow(tmp_path, config, "-n")
    out = dry.stdout + dry.stderr
    assert "Training shard cpu-001" in out and "Training shard cpu-000" not in out
    assert "grid.lr: 0.5 -> 0.2" in out  # what changed, readable
    assert max(len(line) for line in out.splitlines()) < 700
    assert "Shell command" not in out

    shard = results_of(tmp_path) / "shards" / "cpu-000" / "trajectories.parquet"
    table = pd.read_parquet(shard)
    table["W"] = table["W"] + 1e-3  # a stored trajectory that a re-run no longer reproduces
    table.to_parquet(shard)
    grid["lr"] = [0.01, 0.1, 0.5]
    failed = run_workflow(tmp_path, config, "--cores", "2", "verify", check=False)
    assert failed.returncode != 0
    assert "gdbench: reproducibility FAILED" in failed.stdout + failed.stderr


def test_readme_and_cluster_docs_tell_a_newcomer_what_they_need() -> None:
    """The set-up offers torch's CPU-only build beside the default, "What you get" lists the
    timing folder and the HTML pages, and the cluster guide asks for a shared file system."""
    readme = (REPO / "README.md").read_text()
    assert "pip install torch --index-url https://download.pytorch.org/whl/cpu" in readme
    assert "conda env create -f environment.yml" in readme
    assert "timing/" in readme and "*.html" in readme
    cluster = (REPO / "docs" / "cluster.md").read_text()
    assert "shared file system" in cluster.lower() or "file system the login node and every" in cluster
