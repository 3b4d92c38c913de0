"""The two engines: agreement, divergence handling, reproducibility, and every optimizer's
arithmetic (the batched engine equals the loop engine, which is torch.optim itself)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from helpers import LESSON_AND_NOISY, OPTIMIZERS, run_spec, train_options

from gdbench.data import parse_dataset
from gdbench.engines import DataSource, train
from gdbench.optimizers import parse_optimizer
from gdbench.runs import RunSpec

DATASETS = LESSON_AND_NOISY
LRS = [0.001, 0.01, 0.05, 0.1, 0.17, 0.18, 0.19, 0.5, 1.0]


def grid(
    engine: str, dataset: str, batch_size: int | None = None, epochs: int = 2000, init: str = "zeros", seeds=(1, 2)
) -> list[RunSpec]:
    return [
        run_spec(dataset, lr, seed, epochs, engine=engine, batch_size=batch_size, init=init)
        for lr in LRS
        for seed in seeds
    ]


def assert_agree(a, b) -> None:
    """Converging runs: every recorded W, b, cost within 1e-5 relative or 1e-7 absolute;
    all runs: the same verdict and exactly the same divergence epoch."""
    va, vb = a.verdicts, b.verdicts
    np.testing.assert_array_equal(va.diverged, vb.diverged)
    np.testing.assert_array_equal(va.diverged_at, vb.diverged_at)
    mask = a.recorded_mask() & b.recorded_mask()
    for i in np.nonzero(~va.diverged)[0]:
        for key in ("W", "b", "cost"):
            x, y = getattr(a, key)[i, mask[i]], getattr(b, key)[i, mask[i]]
            np.testing.assert_allclose(y, x, rtol=1e-5, atol=1e-7, err_msg=f"{a.runs[i].label()} {key}")


@pytest.mark.parametrize(
    ("dataset", "batch_size"),
    [("tutorial", None), ("tutorial", 2), ("noisy", None), ("noisy", 8)],
    ids=["tutorial-full", "tutorial-batch2", "noisy-full", "noisy-batch8"],
)
def test_batched_agrees_with_loop(dataset: str, batch_size: int | None) -> None:
    """If the batched engine drifted from the lesson's loop, every table and plot built on it
    would be wrong; converging, borderline (0.17, 0.18) and diverging lrs are all checked."""
    # Minibatch epochs cost n/batch_size steps in the loop: fewer epochs keep the test short.
    kw = {"epochs": 2000, "seeds": (1,)} if batch_size is None else {"epochs": 150, "seeds": (1, 2)}
    if dataset == "noisy":
        kw["seeds"] = (1, 2)
    loop = train(grid("loop", dataset, batch_size, **kw), DATASETS, train_options())
    batched = train(grid("batched", dataset, batch_size, **kw), DATASETS, train_options())
    assert_agree(loop, batched)
    assert batched.verdicts.diverged.any() and (~batched.verdicts.diverged).any()


@pytest.mark.parametrize(("dataset", "batch_size"), [("tutorial", None), ("noisy", None), ("noisy", 8)])
def test_cpu_trajectories_are_bit_identical_to_the_loop(dataset: str, batch_size: int | None) -> None:
    """The batched engine repeats autograd's and SGD's float operations in their order: on the
    CPU, trajectories are bit for bit the loop's (a stronger promise than the tolerance)."""
    epochs = 400 if batch_size is None else 60
    loop = train(grid("loop", dataset, batch_size, epochs=epochs, seeds=(1, 2)), DATASETS, train_options())
    batched = train(grid("batched", dataset, batch_size, epochs=epochs, seeds=(1, 2)), DATASETS, train_options())
    for key in ("W", "b", "cost"):
        np.testing.assert_array_equal(getattr(loop, key), getattr(batched, key))


@pytest.mark.parametrize("batch_size", [None, 8])
def test_a_run_alone_equals_the_same_run_in_a_batch(batch_size: int | None) -> None:
    """Re-training a sample of runs (`snakemake verify`) must reproduce their stored
    trajectories: a run's numbers may not depend on which runs shared its batch."""
    runs = grid("batched", "noisy", batch_size, epochs=100, seeds=(1, 2, 3))
    together = train(runs, DATASETS, train_options())
    for i in (0, 4, len(runs) - 1):
        alone = train([runs[i]], DATASETS, train_options())
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)


def test_an_interleaved_grid_comes_back_in_run_order_bit_for_bit() -> None:
    """One train() call over runs whose engines, batch sizes, dtypes, epochs and datasets
    alternate from one run to the next: the engine trains them in groups, and the results must
    come back in the order given, each run's rows bit for bit those of the run trained alone
    (a mix-up would give a run another run's numbers in every table)."""
    import itertools

    axes = itertools.product(("loop", "batched"), (None, 2), ("float32", "float64"), (20, 33), ("tutorial", "noisy"))
    runs = [
        run_spec(ds, lr, 1, ep, engine=en, batch_size=bs, dtype=dt)
        for (en, bs, dt, ep, ds), lr in zip(axes, itertools.cycle((0.01, 0.1, 0.5)))
    ]
    order = np.random.default_rng(0).permutation(len(runs))  # neighbours belong to other groups
    runs = [runs[i] for i in order]
    together = train(runs, DATASETS, train_options())
    assert together.runs == runs
    for i, run in enumerate(runs):
        alone = train([run], DATASETS, train_options())
        assert alone.W.dtype == (np.float64 if run.dtype == "float64" else np.float32)
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=f"run {i}: {run}")
        for key in ("diverged", "diverged_at", "final_W", "final_cost"):
            assert getattr(alone.verdicts, key)[0] == getattr(together.verdicts, key)[i], (i, key)


def test_normal_init_agrees_and_depends_on_seed() -> None:
    """Seeded normal init: both engines start from the same (W, b); seeds differ."""
    loop = train(grid("loop", "tutorial", init="normal", epochs=300), DATASETS, train_options())
    batched = train(grid("batched", "tutorial", init="normal", epochs=300), DATASETS, train_options())
    assert_agree(loop, batched)
    assert batched.W[0, 0] != batched.W[1, 0]


def test_mixed_epochs_and_datasets_in_one_batch() -> None:
    """Runs with different epochs and different datasets of equal size train together and
    each stops at its own last epoch."""
    other = parse_dataset("other", {"x": [0, 1, 2], "y": [1, 3, 5]})
    data = {**DATASETS, "other": other}
    runs = [run_spec("tutorial", 0.05, 1, 100), run_spec("other", 0.05, 1, 250), run_spec("tutorial", 0.01, 2, 7)]
    batched = train(runs, data, train_options())
    loop = train([RunSpec(**{**r.to_dict(), "engine": "loop"}) for r in runs], data, train_options())
    assert_agree(loop, batched)
    np.testing.assert_array_equal(batched.verdicts.last_epoch, [100, 250, 7])
    for i, run in enumerate(runs):
        epochs, *_ = batched.run_trajectory(i)
        assert epochs[-1] == run.epochs and epochs[0] == 0


def test_diverged_runs_stop_without_warnings() -> None:
    """Diverging runs must not flood users with overflow warnings or NaN rows, and keep their
    verdict; their trajectory ends at the divergence epoch."""
    runs = [run_spec("tutorial", lr, 1, 2000) for lr in (0.01, 0.5, 1.0, 10.0)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = train(runs, DATASETS, train_options(chunk_epochs=16))
    v = batch.verdicts
    assert v.diverged.tolist() == [False, True, True, True]
    for i in (1, 2, 3):
        epochs, _, _, cost = batch.run_trajectory(i)
        assert epochs[-1] == v.diverged_at[i]
        assert np.isfinite(cost[:-1]).all()
    assert v.diverged_at[3] <= v.diverged_at[2] <= v.diverged_at[1]


def test_same_spec_twice_is_bit_identical() -> None:
    """Reruns must be bit-identical (reproducibility), minibatch shuffling included."""
    for engine in ("batched", "loop"):
        runs = grid(engine, "noisy", 8, epochs=40)
        a, b = train(runs, DATASETS, train_options()), train(runs, DATASETS, train_options())
        for key in ("W", "b", "cost"):
            np.testing.assert_array_equal(getattr(a, key), getattr(b, key))


def test_record_every_keeps_verdicts_and_last_epoch() -> None:
    """Recording fewer epochs must not change verdicts; the last epoch is always kept."""
    runs = grid("batched", "tutorial", epochs=555)
    full = train(runs, DATASETS, train_options(record_every=1))
    thin = train(runs, DATASETS, train_options(record_every=50))
    np.testing.assert_array_equal(full.verdicts.converged_at, thin.verdicts.converged_at)
    np.testing.assert_array_equal(full.verdicts.final_W, thin.verdicts.final_W)
    assert list(thin.epochs[:3]) == [0, 50, 100] and thin.epochs[-1] == 555


def test_verdict_definitions() -> None:
    """converged_at is the first epoch whose excess over the least-squares cost (float64) is
    <= 1e-6 x epoch 0's excess; final values are the last epoch's."""
    batch = train([run_spec("noisy", 0.1, 1, 2000)], DATASETS, train_options())
    epochs, W, b, cost = batch.run_trajectory(0)
    data = DATASETS["noisy"].build(seed=1)
    slope, intercept = np.polyfit(data.x, data.y, 1)
    best = np.mean((slope * data.x + intercept - data.y) ** 2)
    excess = cost.astype(np.float64) - best
    v = batch.verdicts
    assert v.converged_at[0] == epochs[np.argmax(excess <= 1e-6 * excess[0])]
    assert (v.final_W[0], v.final_b[0], v.final_cost[0]) == (W[-1], b[-1], cost[-1])
    assert v.min_cost[0] == cost.min()


@pytest.mark.parametrize("engine", ["batched", "loop"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_diverged_at_is_the_first_epoch_above_a_million_times_the_initial_cost(engine: str, dtype: str) -> None:
    """diverged_at is the first epoch whose cost exceeds diverged_factor (1e6) x the initial
    cost, read off the run's own recorded costs; a threshold set 10x too high or too low moves
    it. Slow (0.19, 0.2) and fast (0.5, 1.0) divergence."""
    runs = [run_spec("tutorial", lr, 1, 2000, engine=engine, dtype=dtype) for lr in (0.19, 0.2, 0.5, 1.0)]
    batch = train(runs, DATASETS, train_options())
    for i in range(len(runs)):
        epochs, _, _, cost = batch.run_trajectory(i)
        at = batch.verdicts.diverged_at[i]
        assert batch.verdicts.diverged[i] and epochs[-1] == at
        assert not cost[-1] <= 1e6 * cost[0] and (cost[:-1] <= 1e6 * cost[0]).all(), runs[i]


def test_data_source_caches_seeded_datasets() -> None:
    """Synthetic noise depends on the seed; inline data does not."""
    data = DataSource(DATASETS)
    a, b = data.get(run_spec("noisy", 0.1, 1, 1)), data.get(run_spec("noisy", 0.1, 2, 1))
    assert not np.array_equal(a.y, b.y) and np.array_equal(a.x, b.x)
    assert data.key(run_spec("tutorial", 0.1, 7, 1)) == ("tutorial", 0)


def test_point_major_tree_sums_do_not_depend_on_the_batch() -> None:
    """The CUDA code path (point-major data, fixed pairwise sums) gives a run the same numbers
    alone and inside a batch of any size; checked here on the CPU, where it runs too."""
    from gdbench.engines.batched import _Stepper

    data = DATASETS["noisy"].build(seed=1)
    X = torch.tensor(data.x, dtype=torch.float32)[:, None]
    Y = torch.tensor(data.y, dtype=torch.float32)[:, None]
    lrs = torch.linspace(0.001, 0.2, 37)
    P0 = torch.zeros(2, 37)
    results = []
    for idx in (torch.arange(37), torch.tensor([5]), torch.tensor([5, 6, 7])):
        step = _Stepper(X, Y, -lrs[idx], run_major=False)
        P, out, cost = P0[:, idx].clone(), torch.empty(2, len(idx)), torch.empty(len(idx))
        for _ in range(50):
            step(P, out, cost)
            P = out.clone()
        results.append((P[:, list(idx).index(5)], cost[list(idx).index(5)]))
    for P, cost in results[1:]:
        assert torch.equal(P, results[0][0]) and torch.equal(cost, results[0][1])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize(("dataset", "batch_size"), [("tutorial", None), ("noisy", None), ("noisy", 8)])
def test_cuda_run_alone_equals_the_same_run_in_a_batch(dataset: str, batch_size: int | None) -> None:
    """On CUDA too, `snakemake verify` must reproduce stored runs bit for bit."""
    runs = [
        run_spec(dataset, lr, s, 150, device="cuda", batch_size=batch_size) for lr in (0.01, 0.1, 0.5) for s in (1, 2)
    ]
    together = train(runs, DATASETS, train_options())
    for i in (0, 3, len(runs) - 1):
        alone = train([runs[i]], DATASETS, train_options())
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)


OPTIONS = train_options(optimizers={name: parse_optimizer(name, raw) for name, raw in OPTIMIZERS.items()})
#: Converging, borderline and diverging for some optimizer (8 runs with two seeds: the
#: [2, R] update has a vectorised body and a scalar tail on the CPU).
OPTIMIZER_LRS = [0.01, 0.1, 0.17, 0.3, 0.6]


def runs_of(optimizer: str, engine: str, dataset: str, **kw) -> list[RunSpec]:
    epochs = kw.pop("epochs", 200)
    seeds = kw.pop("seeds", (1, 2))
    return [
        run_spec(dataset, lr, s, epochs, engine=engine, optimizer=optimizer, **kw)
        for lr in OPTIMIZER_LRS
        for s in seeds
    ]


def assert_bit_identical(a, b) -> None:
    for key in ("W", "b", "cost"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key), err_msg=key)
    np.testing.assert_array_equal(a.verdicts.diverged_at, b.verdicts.diverged_at)


@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
@pytest.mark.parametrize(
    ("dataset", "kw"),
    [
        ("tutorial", {}),
        ("noisy", {"batch_size": 8, "epochs": 25}),
        ("noisy", {"dtype": "float64", "init": "normal", "epochs": 120}),
    ],
    ids=["tutorial-full", "noisy-batch8", "noisy-float64-normal"],
)
def test_batched_equals_loop_bit_for_bit(optimizer: str, dataset: str, kw: dict) -> None:
    """The batched engine repeats torch.optim's single-tensor arithmetic for all runs at once:
    on the CPU every W, b and cost equals the loop engine's (the real torch.optim object)."""
    loop = train(runs_of(optimizer, "loop", dataset, **kw), DATASETS, OPTIONS)
    batched = train(runs_of(optimizer, "batched", dataset, **kw), DATASETS, OPTIONS)
    assert_bit_identical(loop, batched)


@pytest.mark.parametrize("optimizer", ["heavy_ball", "nesterov", "damped", "amsgrad"])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_an_optimizers_run_alone_equals_the_same_run_in_a_batch(optimizer: str, batch_size: int | None) -> None:
    """Optimizer state is per run: `snakemake verify` re-trains a run alone and must get its
    stored trajectory back, whichever runs shared its batch (and dropped out of it)."""
    runs = runs_of(optimizer, "batched", "noisy", batch_size=batch_size, epochs=90, seeds=(1, 2, 3))
    together = train(runs, DATASETS, train_options(chunk_epochs=16, optimizers=OPTIONS.optimizers))
    assert together.verdicts.diverged.any() or optimizer == "amsgrad"
    for i in (0, 7, len(runs) - 1):
        alone = train([runs[i]], DATASETS, OPTIONS)
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)


def test_optimizers_in_one_call_train_apart_and_keep_their_order() -> None:
    """A grid mixing optimizers: each run gets its own optimizer and its place in the output."""
    mixed = [run_spec("tutorial", 0.1, 1, 300, optimizer=name) for name in ("heavy_ball", "sgd", "adam", "heavy_ball")]
    batch = train(mixed, DATASETS, OPTIONS)
    assert [r.optimizer for r in batch.runs] == ["heavy_ball", "sgd", "adam", "heavy_ball"]
    for i, run in enumerate(mixed):
        alone = train([run], DATASETS, OPTIONS)
        np.testing.assert_array_equal(alone.cost[0], batch.cost[i][: alone.cost.shape[1]])
    assert batch.cost[0, 50] != batch.cost[1, 50] != batch.cost[2, 50]


def test_loop_engine_is_torch_optim_itself() -> None:
    """The loop engine is the reference: it must be torch.optim's own step, with the
    config's arguments passed through (a forgotten momentum would pass the other tests if
    the batched engine forgot it too)."""
    x = torch.tensor([1.0, 2.0, 3.0])
    y = torch.tensor([2.0, 4.0, 6.0])
    for name, make in (
        ("nesterov", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.6, nesterov=True)),
        ("amsgrad", lambda p: torch.optim.Adam(p, 0.1, (0.8, 0.99), 1e-6, weight_decay=0.05, amsgrad=True)),
    ):
        W = torch.zeros(1, requires_grad=True)
        b = torch.zeros(1, requires_grad=True)
        opt = make([W, b])
        Ws = []
        for _ in range(51):
            cost = torch.mean((x * W + b - y) ** 2)
            opt.zero_grad()
            cost.backward()
            opt.step()
            Ws.append(W.item())
        batch = train([run_spec("tutorial", 0.1, 1, 50, engine="loop", optimizer=name)], DATASETS, OPTIONS)
        np.testing.assert_array_equal(batch.W[0], np.array(Ws, dtype=np.float32))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("optimizer", ["heavy_ball", "nesterov", "damped", "adam", "amsgrad"])
@pytest.mark.parametrize("batch_size", [None, 8])
def test_cuda_optimizers_alone_equal_batch_and_agree_with_cpu(optimizer: str, batch_size: int | None) -> None:
    """On CUDA too a run alone equals the same run in a batch (`snakemake verify`), and the
    batched engine on CUDA agrees with the loop engine on the CPU within float32 tolerance
    (verdicts equal; converging runs' trajectories within 1e-5 relative)."""
    runs = runs_of(optimizer, "batched", "noisy", batch_size=batch_size, epochs=150, device="cuda")
    together = train(runs, DATASETS, OPTIONS)
    for i in (0, 5, len(runs) - 1):
        alone = train([runs[i]], DATASETS, OPTIONS)
        for a, b in zip(alone.run_trajectory(0), together.run_trajectory(i), strict=True):
            np.testing.assert_array_equal(a, b)
    cpu = train(runs_of(optimizer, "loop", "noisy", batch_size=batch_size, epochs=150), DATASETS, OPTIONS)
    np.testing.assert_array_equal(cpu.verdicts.diverged, together.verdicts.diverged)
    for i in np.nonzero(~cpu.verdicts.diverged)[0]:
        np.testing.assert_allclose(together.cost[i], cpu.cost[i], rtol=1e-5, atol=1e-7, equal_nan=True)


@pytest.mark.parametrize("name", ["sgd", "damped"])
def test_one_call_over_seeds_judges_each_run_by_its_own_points(name):
    """The noisy line's points depend on the seed, so each seed has its own optimum and
    float floor: one batched call over three seeds gives every run the verdicts (and the
    references) it gets trained alone. Guards the per-set-of-points references of a call."""
    optimizers = {name: parse_optimizer(name, OPTIMIZERS[name])}
    options = train_options(optimizers=optimizers, record_every=0)
    seeds = (1, 2, 3)
    lrs = (0.01, 0.1, 0.19, 0.5, 2.0)

    def runs(seeds):
        return [run_spec("noisy", lr, s, 600, engine="batched", optimizer=name) for s in seeds for lr in lrs]

    together = train(runs(seeds), DATASETS, options).verdicts
    alone = [train(runs([s]), DATASETS, options).verdicts for s in seeds]
    assert len(set(together.optimal_cost.tolist())) == len(seeds)  # the seeds' optima differ
    assert together.converged_at.max() > 0 and together.diverged.any()
    for field in together.__dataclass_fields__:
        each = np.concatenate([getattr(v, field) for v in alone])
        np.testing.assert_array_equal(getattr(together, field), each, field)
