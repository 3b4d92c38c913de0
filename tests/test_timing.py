"""Timing: the published table, a harness that adds nothing to the lesson's loop, clear device
errors, and (with CUDA) a timing smoke test and CPU-vs-CUDA agreement of the batched engine."""

from __future__ import annotations

import io
import logging
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import OPTIMIZERS, run_spec, train_options

from gdbench import cli, engines
from gdbench.data import parse_dataset
from gdbench.engines import DeviceError, train
from gdbench.experiment import Experiment, resolve
from gdbench.lesson import tutorial
from gdbench.theory import analyse
from gdbench.timing import harness, measure, measure_plan, plan, plans, workloads
from gdbench.timing.plans import reserved_slots
from gdbench.timing.results import TIMING_COLUMNS, TimingResult, crossover_n, timing_csv, timing_table, write_timing_csv

#: CUDA tests carry the ``cuda`` marker (``pytest -m cuda``) and skip cleanly without CUDA.
no_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none)")


def timed(section: dict) -> Experiment:
    """The experiment of the default config with this ``timing:`` section, on the CPU."""
    return resolve({"timing": section}, ["cpu"])


#: A small timing config: every code path, a fraction of a second per measurement.
SMALL = {
    "sizes": [3, 50],
    "runs": [1, 20],
    "engines": ["loop", "batched"],
    "epochs": 5,
    "repeats": 3,
    "optimizers": ["sgd"],
    "attempts": 1,  # the suite runs beside other work: no waits, no retakes (tested on their own below)
    "quiet_wait": 0,
}


@pytest.fixture(scope="module")
def small_table() -> pd.DataFrame:
    """The timing table of :data:`SMALL` on CPU with 1 thread (measured once per test run)."""
    return timing_table(measure_plan(timed({**SMALL, "min_run_time": 0.01}), "cpu"))


def test_plan_is_sizes_plus_grid_sizes_never_the_cross_product() -> None:
    """A user with sizes up to 1e6 and grids up to 1e4 runs must not get a 1e6 x 1e4 job
    (it would not fit in memory); each panel gets exactly the measurements it draws."""
    items = plan(
        timed(
            {
                "sizes": [3, 1000, 100000, 1000000],
                "runs": [1, 100, 10000],
                "engines": ["loop", "batched"],
                "optimizers": ["sgd"],
            }
        ).timing
    )
    loop = [(n, r) for e, n, r, _ in items if e == "loop"]
    batched = [(n, r) for e, n, r, _ in items if e == "batched"]
    assert loop == [(3, 1), (1000, 1), (100000, 1), (1000000, 1)]
    assert batched == [(3, 1), (1000, 1), (100000, 1), (1000000, 1), (3, 100), (3, 10000)]
    assert max(n * r for _, n, r, _ in items) == 1000000
    small = plan(timed({"sizes": [3], "runs": [5], "engines": ["batched"], "optimizers": ["sgd"]}).timing)
    assert small == [("batched", 3, 1, "sgd"), ("batched", 3, 5, "sgd")]


def test_plan_rejects_yaml_strings_with_a_hint() -> None:
    """YAML reads `1e6` as a string; the message must tell the user how to write it."""
    with pytest.raises(ValueError, match=r"YAML reads 1e6 as a string .*write 1000000$"):
        timed({"sizes": ["1e6"]})


def test_command_line_reads_its_config_through_the_schema(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """`gdbench timing --config FILE` checks the file as the workflow does: a bad timing value
    stops it with the config's one-line error, before anything is measured."""
    config = tmp_path / "config.yaml"
    config.write_text("timing: {sizes: [1e6]}\n")
    assert cli.main(["timing", "--config", str(config), "--out", str(tmp_path / "t.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and 'timing.sizes[0] = "1e6"' in err and "write 1000000" in err
    assert not (tmp_path / "t.csv").exists()


def test_python_dash_m_gdbench_timing_is_the_timing_command(tmp_path) -> None:
    """`python -m gdbench.timing` still works: it is `gdbench timing` (same errors, same exit)."""
    import subprocess
    import sys

    config = tmp_path / "config.yaml"
    config.write_text("timing: {sizes: [1e6]}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gdbench.timing", "--config", str(config)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and 'timing.sizes[0] = "1e6"' in proc.stderr
    assert proc.stderr.startswith("gdbench: error:") and proc.stdout == ""


def test_timed_data_at_n3_is_the_lessons_data() -> None:
    """The throughput panel claims to time the tutorial data; at n=3 the timed line is it."""
    ds = workloads.timing_dataset_spec(3).build()
    np.testing.assert_array_equal(ds.x, tutorial().x)
    np.testing.assert_array_equal(ds.y, tutorial().y)


def test_timed_batches_all_converge() -> None:
    """Diverged runs are dropped by the batched engine, which would make a grid look faster
    than it is: every timed learning rate must be below the critical one."""
    for n in (3, 1000):
        crit = analyse(workloads.timing_dataset_spec(n).build()).critical_lr
        lrs = workloads.timing_lrs(1000, crit)
        assert lrs.max() < crit and lrs.min() > 0 and len(np.unique(lrs)) == 1000


def test_timing_table_has_the_published_columns(small_table: pd.DataFrame) -> None:
    """timing.csv is read by the plot and by users: exactly the issue's columns, in order."""
    assert tuple(small_table.columns) == TIMING_COLUMNS
    assert len(small_table) == len(plan(timed(SMALL).timing)) == 5


def test_the_timing_csv_is_the_tables_to_csv_byte_for_byte(tmp_path) -> None:
    """The timing job writes its CSV without pandas (timing_csv); it must be exactly what
    timing_table(...).to_csv(index=False) writes: floats in their shortest round-trip form
    (1e-05, 1e+16, -0.0, inf, 0.30000000000000004), NaN as an empty field, integers without a
    point, text with a comma or a quote quoted, a failed measurement's row."""
    rows = [
        TimingResult("cpu", 'Xeon, "Gold" 6140', "loop", 3, 1, 20, 1, 1e-05, 0.1 + 0.2, 5, 1e16, cpu_share=0.99),
        TimingResult("cuda:1", "H200", "batched", 100000, 10000, 20, 2, -0.0, math.inf, 50, 123456789.0, attempts=3),
        harness.failed_result("cpu", "batched", 3, 10000, 20, 1, "RuntimeError: out of memory", "adam"),
    ]
    expected = timing_table(rows).to_csv(index=False)
    out = io.StringIO()
    timing_csv(rows, out)
    assert out.getvalue() == expected
    write_timing_csv(rows, tmp_path / "cpu.csv")
    assert (tmp_path / "cpu.csv").read_bytes() == expected.encode()
    back = pd.read_csv(tmp_path / "cpu.csv")
    assert back.median_s_per_epoch.isna().tolist() == [False, False, True]


def test_the_timing_job_imports_no_pandas() -> None:
    """The timing job runs first, on the workflow's critical path: its modules (the script's
    imports, the measuring and the CSV writer) leave pandas unimported (~0.3 s of CPU)."""
    code = (
        "import sys; import gdbench.io, gdbench.determinism, gdbench.experiment, gdbench.reads; "
        "from gdbench.timing import measure_plan; import gdbench.timing.harness; "
        "from gdbench.timing.results import write_timing_csv; print('pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_timing_table_values_are_sound(small_table: pd.DataFrame) -> None:
    """Positive medians, at least the configured repeats, the thread count and machine recorded."""
    assert (small_table.median_s_per_epoch > 0).all()
    assert (small_table.iqr_s_per_epoch >= 0).all()
    assert (small_table.repeats >= SMALL["repeats"]).all()
    assert (small_table.threads == 1).all()
    assert (small_table.device == "cpu").all()
    assert (small_table.device_name.str.len() > 0).all()
    assert (small_table.epochs == SMALL["epochs"]).all()
    measured = zip(small_table.engine, small_table.n, small_table.runs, small_table.optimizer, strict=True)
    assert set(measured) == set(plan(timed(SMALL).timing))


def test_threads_are_set_while_measuring_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timings quoted for 2 threads must have run with 2 threads, and measuring must not
    change the caller's setting."""
    seen: list[int] = []
    real = workloads.workload

    def spy(*args, **kwargs):
        call = real(*args, **kwargs)

        def wrapped():
            seen.append(torch.get_num_threads())
            return call()

        return wrapped

    monkeypatch.setattr(workloads, "workload", spy)
    before = torch.get_num_threads()
    result = measure("cpu", "batched", 3, runs=4, epochs=2, threads=2, repeats=3, min_run_time=0.005)
    assert result.threads == 2 and set(seen) == {2}
    assert torch.get_num_threads() == before


class ScriptedWork:
    """A workload and a clock for :func:`measure`: each call of the workload advances the
    clock by the next scripted number of seconds; nothing else moves it."""

    def __init__(self, seconds: list[float]) -> None:
        self.seconds = list(seconds)
        self.now = 0.0
        self.calls = 0

    def workload(self, *args: object) -> object:
        def call() -> None:
            self.now += self.seconds[self.calls]
            self.calls += 1

        return call

    def clock(self) -> float:
        return self.now


def test_statistics_of_a_scripted_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Seconds per epoch is the median (and IQR) of the measured calls divided by epochs + 1
    (the lesson's range(epochs + 1)), and too few measurements are topped up to `repeats`:
    worked by hand for calls of known length."""
    # call 1: the warm-up; call 2: the block-size search (1 call per block, as 3 s >=
    # min_run_time / 1000); call 3: the first measurement, which already fills min_run_time;
    # calls 4-7: four more blocks, to reach 5 repeats.
    work = ScriptedWork([100.0, 3.0, 3.0, 9.0, 6.0, 12.0, 15.0])
    monkeypatch.setattr(workloads, "workload", work.workload)
    monkeypatch.setattr(harness, "device_clock", lambda device: work.clock)
    result = measure("cpu", "batched", 3, runs=4, epochs=2, threads=1, repeats=5, min_run_time=1.0)
    assert work.calls == 7 and result.repeats == 5
    # measurements 3, 9, 6, 12, 15 s per call: median 9, quartiles 6 and 12; 3 epochs per call
    assert result.median_s_per_epoch == pytest.approx(9.0 / 3)
    assert result.iqr_s_per_epoch == pytest.approx(6.0 / 3)
    assert result.run_epochs_per_s == pytest.approx(4 / 3.0)


def test_enough_measurements_are_not_topped_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """When min_run_time already gives `repeats` measurements, no more are taken."""
    work = ScriptedWork([1.0, 0.4, 0.4, 0.5, 0.6, 99.0])
    monkeypatch.setattr(workloads, "workload", work.workload)
    monkeypatch.setattr(harness, "device_clock", lambda device: work.clock)
    result = measure("cpu", "loop", 3, runs=1, epochs=4, threads=1, repeats=3, min_run_time=1.0)
    assert work.calls == 5 and result.repeats == 3
    assert result.median_s_per_epoch == pytest.approx(0.5 / 5)
    assert result.iqr_s_per_epoch == pytest.approx((0.55 - 0.45) / 5)


def test_cpu_share_is_cpu_seconds_per_wall_second_and_thread() -> None:
    """The table's cpu_share says how disturbed a measurement was: a process that got half of
    the wall time on its one core has 0.5; worked by hand for scripted clocks."""
    wall = ScriptedWork([1.0, 0.5, 0.5, 0.5])
    cpu = iter([10.0, 10.75])  # read once before the measured blocks and once after

    blocks = harness.time_blocks(wall.workload(), wall.clock, 1.0, 1, cpu_clock=lambda: next(cpu))
    # warm-up 1 s, search 0.5 s, then blocks of 0.5 s until 1 s is spent: 2 blocks, 0.75 s CPU in 1 s
    assert blocks.per_call == (0.5, 0.5) and blocks.wall_seconds == 1.0
    assert blocks.cpu_share(threads=1) == pytest.approx(0.75)
    assert blocks.cpu_share(threads=2) == pytest.approx(0.375)


def _result(device: str, share: float, runs: int = 1) -> TimingResult:
    return TimingResult(
        device, "x", "batched", 3, runs, 5, 1, 1e-3 / share, 0.0, 3, runs * share / 1e-3, cpu_share=share
    )


def test_a_disturbed_cpu_measurement_is_taken_again_and_the_best_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """A measurement taken while other jobs held the cores (cpu share under min_cpu_share) is
    taken again after the others, up to `attempts` in all; the least disturbed is published,
    with how many were taken. An undisturbed one is taken once."""
    shares = {1: [0.3, 0.6, 0.5], 20: [0.95]}
    monkeypatch.setattr(
        harness, "measure", lambda device, engine, n, runs, *a: _result(device, shares[runs].pop(0), runs)
    )
    waits: list[int] = []
    monkeypatch.setattr(plans, "wait_for_quiet", lambda threads, timeout: waits.append(threads) or True)
    config = {**SMALL, "sizes": [3], "engines": ["batched"], "attempts": 3, "min_cpu_share": 0.9}
    table = timing_table(measure_plan(timed(config), "cpu"))
    one, twenty = table[table.runs == 1].iloc[0], table[table.runs == 20].iloc[0]
    assert (one.cpu_share, one.attempts) == (0.6, 3) and one.median_s_per_epoch == pytest.approx(1e-3 / 0.6)
    assert (twenty.cpu_share, twenty.attempts) == (0.95, 1)
    assert waits == [1, 1, 1] and shares == {1: [], 20: []}  # before the first pass and each retake


def test_retakes_stop_when_the_machine_stays_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retaking a measurement while the machine is still busy would only disturb it again: when
    no core came free within quiet_wait, the first measurement (its cpu_share shown) is kept."""
    calls: list[int] = []

    def scripted(device, engine, n, runs, *args):
        calls.append(runs)
        return _result(device, 0.4, runs)

    monkeypatch.setattr(harness, "measure", scripted)
    timeouts: list[float] = []
    monkeypatch.setattr(plans, "wait_for_quiet", lambda threads, timeout: timeouts.append(timeout) and False)
    config = {**SMALL, "sizes": [3], "engines": ["batched"], "attempts": 3, "quiet_wait": 1}
    table = timing_table(measure_plan(timed(config), "cpu"))
    assert calls == [1, 20] and list(table.attempts) == [1, 1] and list(table.cpu_share) == [0.4, 0.4]
    # one budget of quiet_wait for all the waits: a busy machine costs it once, not per round
    assert len(timeouts) == 2 and 0 <= timeouts[1] <= timeouts[0] <= 1


def test_cuda_measurements_are_not_retaken_for_their_cpu_share(monkeypatch: pytest.MonkeyPatch) -> None:
    """On CUDA the process waits for the device, so a low CPU share is no disturbance."""
    monkeypatch.setattr(harness, "check_device", lambda device: torch.device("cpu"))
    monkeypatch.setattr(engines, "check_device", lambda device: torch.device("cpu"))  # what plans checks with
    monkeypatch.setattr(harness, "measure", lambda device, engine, n, runs, *a: _result(device, 0.1, runs))
    results = measure_plan(timed({**SMALL, "engines": ["batched"], "sizes": [3], "attempts": 3}), "cuda")
    assert [r.attempts for r in results] == [1, 1]


def test_the_quiet_wait_returns_once_cores_are_free(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retakes wait for a free core: three readings in a row with no more runnable processes
    than cores left free (Linux's /proc/loadavg), and no longer than the timeout."""
    readings = iter([9, 9, 1, 9, 1, 1, 1, 9])
    monkeypatch.setattr(plans, "runnable_processes", lambda: next(readings))
    monkeypatch.setattr(plans.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(plans.time, "sleep", lambda s: None)
    assert plans.wait_for_quiet(threads=1, timeout=60)
    assert next(readings) == 9  # stopped after the third quiet reading in a row
    monkeypatch.setattr(plans, "runnable_processes", lambda: 9)
    clock = iter(range(1000))
    monkeypatch.setattr(plans.time, "monotonic", lambda: next(clock))
    assert not plans.wait_for_quiet(threads=1, timeout=5)  # busy throughout: gives up after the timeout


def test_a_failed_measurement_becomes_a_nan_row(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """One measurement running out of memory must not lose the whole table: its row is NaN
    and the reason is in the log."""
    real = harness.measure

    def flaky(device, engine, n, runs, *args):
        if runs == 20:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 TiB\nmore detail")
        return real(device, engine, n, runs, *args)

    monkeypatch.setattr(harness, "measure", flaky)
    with caplog.at_level(logging.WARNING, logger="gdbench.timing"):
        table = timing_table(measure_plan(timed({**SMALL, "engines": ["batched"], "min_run_time": 0.005}), "cpu"))
    assert len(table) == 3
    bad = table[table.runs == 20].iloc[0]
    assert math.isnan(bad.median_s_per_epoch) and math.isnan(bad.run_epochs_per_s) and bad.repeats == 0
    assert (table[table.runs != 20].median_s_per_epoch > 0).all()
    assert "OutOfMemoryError: CUDA out of memory. Tried to allocate 1 TiB" in caplog.text
    assert "more detail" not in caplog.text


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error seen without CUDA")
def test_cuda_without_cuda_is_one_clear_line() -> None:
    """Asking for cuda where torch sees none fails at once with one line that names the device
    and says what torch sees (not a traceback from deep inside torch, not NaN rows)."""
    with pytest.raises(DeviceError) as err:
        measure("cuda", "batched", 3, runs=10, epochs=2, repeats=3, min_run_time=0.01)
    message = str(err.value)
    assert "\n" not in message
    assert "'cuda'" in message and "torch.cuda.is_available() is False" in message
    with pytest.raises(DeviceError):
        measure_plan(timed(SMALL), "cuda")


def test_cuda_clock_synchronises_the_measured_device(monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernels are queued asynchronously: a CUDA clock that does not wait for them would time
    the launches, not the work."""
    calls: list[torch.device] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(device))
    clock = harness.device_clock(torch.device("cuda:1"))
    assert isinstance(clock(), float)
    assert calls == [torch.device("cuda:1")]
    harness.device_clock(torch.device("cpu"))()
    assert len(calls) == 1


def test_crossover_is_interpolated_between_sizes() -> None:
    """The plot marks where CUDA overtakes CPU; none without CUDA or when CUDA never wins."""

    def row(device, n, seconds):
        return TimingResult(device, "x", "loop", n, 1, 20, 1, seconds, 0.0, 5, 1 / seconds)

    rows = [row("cpu", 10, 1e-4), row("cpu", 1000, 1e-3), row("cuda", 10, 1e-3), row("cuda", 1000, 1e-4)]
    assert crossover_n(timing_table(rows)) == pytest.approx(100.0)
    assert crossover_n(timing_table(rows[:2])) is None
    assert crossover_n(timing_table([rows[0], rows[2]])) is None
    assert crossover_n(timing_table([rows[1], rows[3]])) == 1000.0


@pytest.mark.cuda
@no_cuda
@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_cuda_timing_smoke(engine: str) -> None:
    """Timing on CUDA gives a positive, synchronised median and records the card's name."""
    runs = 1 if engine == "loop" else 1000
    result = measure("cuda", engine, 1000, runs=runs, epochs=20, threads=1, repeats=3, min_run_time=0.05)
    assert result.ok and result.median_s_per_epoch > 0 and result.repeats >= 3
    assert result.device_name == torch.cuda.get_device_name()


def _converging(lr: float) -> bool:
    return lr < analyse(tutorial()).critical_lr


@pytest.mark.cuda
@no_cuda
def test_cpu_and_cuda_batched_engines_agree() -> None:
    """The same grid on CPU and CUDA must give the same answers: converging runs within 1e-5
    relative or 1e-7 absolute on final W, b and cost, the same diverged verdicts, diverged_at
    within one epoch. b converges to 0, where float32 resolution is set by |W| ~ 2 (2.4e-7):
    for b the relative tolerance is taken against max(|W|, |b|)."""
    lrs = [0.001, 0.01, 0.05, 0.1, 0.15, 0.17, 0.19, 0.25, 0.5, 1.0]
    datasets = {"tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]})}
    out = {}
    for device in ("cpu", "cuda"):
        runs = [run_spec("tutorial", lr, seed, 2000, device=device) for lr in lrs for seed in (1, 2)]
        out[device] = train(runs, datasets, train_options(record_every=0)).verdicts
    cpu, cuda = out["cpu"], out["cuda"]
    np.testing.assert_array_equal(cpu.diverged, cuda.diverged)
    div = cpu.diverged
    assert np.all(np.abs(cpu.diverged_at[div] - cuda.diverged_at[div]) <= 1)
    conv = np.array([_converging(lr) for lr in lrs for _ in (1, 2)])
    assert not cpu.diverged[conv].any()
    scale = np.maximum(np.abs(cpu.final_W), np.abs(cuda.final_W))
    for name, a, b, floor in (
        ("W", cpu.final_W, cuda.final_W, 0),
        ("b", cpu.final_b, cuda.final_b, scale),
        ("cost", cpu.final_cost, cuda.final_cost, 0),
    ):
        diff = np.abs(a - b)[conv]
        bound = np.maximum(1e-7, 1e-5 * np.maximum.reduce([np.abs(a), np.abs(b), np.broadcast_to(floor, a.shape)]))
        bad = diff > bound[conv]
        assert not bad.any(), f"{name}: CPU vs CUDA differ by {diff[bad]} at lr {np.repeat(lrs, 2)[conv][bad]}"


def test_timing_has_an_optimizer_axis_at_two_measurements_each(tmp_path) -> None:
    """timing.csv says what each optimizer costs in both engines, without re-timing every
    size per optimizer (the timing job runs on every default run), and the plot shows it."""
    from gdbench import plots, timing
    from gdbench.timing import results as timing_results

    config = {"sizes": [3, 50], "runs": [1, 20], "epochs": 3, "repeats": 3, "min_run_time": 0.005}
    config["optimizers"] = ["sgd", "heavy_ball", "adam"]
    items = timing.plan(resolve({"timing": config}).timing)
    extra = [i for i in items if i[3] != "sgd"]
    pairs = (("loop", 1), ("batched", 20))
    assert extra == [(engine, 3, runs, name) for name in ("heavy_ball", "adam") for engine, runs in pairs]
    defined = {name: OPTIMIZERS[name] for name in ("sgd", "heavy_ball", "adam")}
    table = timing_results.timing_table(timing.measure_plan(resolve({"optimizers": defined, "timing": config}), "cpu"))
    assert table["optimizer"].tolist() == [i[3] for i in items] and (table["median_s_per_epoch"] > 0).all()
    plots.timing(table, tmp_path / "t.png", tmp_path / "t.svg")
    svg = (tmp_path / "t.svg").read_text()
    assert "optimizers at n = 3" in svg and "heavy_ball" in svg and "cpu, batched, 20 runs" in svg


@pytest.mark.parametrize(
    ("cores", "cpus", "threads", "alone", "slots"),
    [
        (4, 2, 1, False, 3),  # the README's laptop run: one job beside the timing, on the other CPU
        (2, 2, 1, False, 1),  # --cores all on 2 CPUs: the same
        (16, 16, 1, False, 1),  # as many CPUs as slots: nothing more is held back
        (32, 16, 2, False, 18),  # twice the slots: the others get the 14 CPUs the timing leaves
        (3, 2, 4, False, 3),  # more threads than slots: all of them (Snakemake lowers threads)
        (1, 8, 1, False, 1),
        (4, 2, 1, True, 4),  # alone: every slot of --cores, whatever the machine has
        (3, 8, 1, True, 3),
    ],
)
def test_the_timing_job_reserves_what_keeps_the_others_off_its_cpus(cores, cpus, threads, alone, slots) -> None:
    """The slots it reserves leave the jobs beside it at most ``cpus - threads`` CPUs (one slot
    each at least), so the quiet criterion of :func:`wait_for_quiet` holds from its start."""
    got = reserved_slots(cores, cpus, threads, alone)
    assert got == slots
    assert threads <= got or got == cores
    if not alone and cores > got:
        assert cores - got <= max(0, cpus - threads)  # what the others may take leaves its CPUs free
