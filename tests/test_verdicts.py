"""The verdicts at the float limits: VerdictTracker fed hand-built float32 and float64 costs
(NaN, inf under a threshold that overflows the dtype, the threshold +- one ulp, an initial cost
of 0, divergence on a chunk boundary), and both engines giving the same divergence epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import criteria, run_spec, train_options

from gdbench.data import parse_dataset
from gdbench.engines import train
from gdbench.engines.tracker import VerdictTracker
from gdbench.verdicts import float_floor

DTYPES = [torch.float32, torch.float64]


DEFAULT = criteria()


def verdicts(costs, dtype, criteria=DEFAULT, optimal=0.0, floor=0.0, chunk=None, final=False):
    """Feed one run's per-epoch costs (epoch 0 first) through a tracker, ``chunk`` epochs at a
    time as the batched engine does (all at once by default), stopping when it says done;
    ``final``: its divergence is judged at its end (Adam)."""
    cost = torch.tensor(costs, dtype=dtype)[:, None]
    tracker = VerdictTracker(1, criteria, "cpu", np.array([optimal]), np.array([floor]), np.array([final]))
    end = torch.tensor([len(costs) - 1])
    chunk = chunk or len(costs)
    for start in range(0, len(costs), chunk):
        part = cost[start : start + chunk]
        done = tracker.update(torch.tensor([0]), start, part, part, part, end)
        if bool(done[0]):
            break
    return tracker.result()


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_cost_is_divergence(dtype):
    """A NaN cost fails every comparison: it must still count as divergence, not as a run
    that neither converged nor diverged."""
    v = verdicts([4.0, 2.0, float("nan"), 1.0], dtype)
    assert v.diverged[0] and v.diverged_at[0] == 2 and v.last_epoch[0] == 2
    assert v.min_cost[0] == 2.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_inf_cost_is_divergence_even_when_the_threshold_overflows(dtype):
    """initial cost x diverged_factor beyond the dtype's range: an inf cost is still divergence
    (float32 used to compare inf <= inf and train on)."""
    big = float(torch.finfo(dtype).max) / 10
    v = verdicts([big, big / 2, float("inf"), big], dtype, criteria(diverged_factor=1.0e6))
    assert v.diverged[0] and v.diverged_at[0] == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_threshold_plus_and_minus_one_ulp(dtype):
    """Diverged means strictly above diverged_factor x the initial cost, compared in float64:
    one ulp below or at the threshold is not divergence, one ulp above is."""
    thresholds = criteria(diverged_factor=4.0)
    at = 4.0  # initial cost 1 -> threshold exactly 4 in every dtype
    up = float(np.nextafter(np.array(at, dtype=str(dtype)[6:]), np.inf))
    down = float(np.nextafter(np.array(at, dtype=str(dtype)[6:]), 0))
    assert not verdicts([1.0, down], dtype, thresholds).diverged[0]
    assert not verdicts([1.0, at], dtype, thresholds).diverged[0]
    assert verdicts([1.0, up], dtype, thresholds).diverged_at[0] == 1


def test_threshold_is_not_rounded_to_float32():
    """A threshold between two float32 numbers is compared in float64: the float32 number just
    above it is divergence (rounding the threshold up to float32 hid it)."""
    factor = 1 + 2.0**-23 - 2.0**-30  # threshold 1 + 2^-23 - 2^-30, rounds up to 1 + 2^-23 in float32
    just_above = 1 + 2.0**-23  # a float32 number
    v = verdicts([1.0, 1.0, just_above], torch.float32, criteria(diverged_factor=factor))
    assert v.diverged_at[0] == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_initial_cost_zero(dtype):
    """An initial cost of 0 (the start is the optimum): converged at epoch 0; the divergence
    threshold is diverged_factor x 1."""
    v = verdicts([0.0, 0.0, 0.0], dtype, criteria(diverged_factor=10.0))
    assert v.converged_at[0] == 0 and not v.diverged[0]
    v = verdicts([0.0, 5.0, 11.0], dtype, criteria(diverged_factor=10.0))
    assert v.reached_at[0] == 0 and v.converged_at[0] == -1 and v.diverged_at[0] == 2


@pytest.mark.parametrize("chunk", [None, 1, 2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_converged_at_is_where_the_excess_stays_within_the_tolerance(dtype, chunk):
    """A dip below the tolerance that climbs back out (momentum) is not convergence:
    ``converged_at`` is the epoch from which the excess stays within it to the run's end,
    ``reached_at`` the first dip; a run that ends outside never converged."""
    thresholds = criteria(converged_below=1.0e-2)  # tolerance 0.1 x E0 = 0.1
    costs = [10.5, 0.55, 0.45, 2.0, 0.7, 0.52, 0.55, 0.5]  # optimum 0.5: out, in, out (+ below), ...
    v = verdicts(costs, dtype, thresholds, optimal=0.5, chunk=chunk)
    assert v.reached_at[0] == 1 and v.converged_at[0] == 5 and not v.diverged[0]
    v = verdicts(costs[:5], dtype, thresholds, optimal=0.5, chunk=chunk)
    assert v.reached_at[0] == 1 and v.converged_at[0] == -1
    # below the optimum by more than the tolerance (a weight-decay run crossing the
    # least-squares optimum) is outside too
    v = verdicts([10.5, 0.55, 0.3, 0.55], dtype, thresholds, optimal=0.5, chunk=chunk)
    assert v.converged_at[0] == 3


@pytest.mark.parametrize("chunk", [None, 1, 2])
@pytest.mark.parametrize("dtype", DTYPES)
def test_final_divergence_is_judged_at_the_run_end(dtype, chunk):
    """Adam's overshoot above the threshold that comes back is not divergence; a run that ends
    above it diverged from the epoch it stays above; a non-finite cost still stops it."""
    thresholds = criteria(diverged_factor=10.0)
    v = verdicts([1.0, 50.0, 20.0, 0.5, 0.1], dtype, thresholds, chunk=chunk, final=True)
    assert not v.diverged[0] and v.last_epoch[0] == 4 and v.final_cost[0] == pytest.approx(0.1)
    v = verdicts([1.0, 50.0, 5.0, 20.0, 30.0], dtype, thresholds, chunk=chunk, final=True)
    assert v.diverged[0] and v.diverged_at[0] == 3 and v.last_epoch[0] == 4
    v = verdicts([1.0, 50.0, float("inf"), 1.0], dtype, thresholds, chunk=chunk, final=True)
    assert v.diverged[0] and v.diverged_at[0] == 1 and v.last_epoch[0] == 2
    # the same costs without the final rule stop at the first epoch above
    v = verdicts([1.0, 50.0, 20.0, 0.5, 0.1], dtype, thresholds, chunk=chunk)
    assert v.diverged_at[0] == 1 and v.last_epoch[0] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_convergence_is_relative_to_the_optimum(dtype):
    """converged_at: first epoch with cost - optimum <= converged_below x (epoch 0's cost -
    optimum), in float64; a threshold below the float floor is never met through rounding."""
    costs = [10.5, 5.5, 0.5 + 2.0**-10, 0.5 + 2.0**-12, 0.5]  # exact in float32
    v = verdicts(costs, dtype, criteria(converged_below=5e-5), optimal=0.5)
    assert v.converged_at[0] == 3  # 2^-12 <= 5e-5 x 10 (epoch 2's 2^-10 is not)
    assert v.initial_cost[0] == 10.5 and v.optimal_cost[0] == 0.5
    # The same run with a floor above its threshold (5e-4): an excess that small is rounding.
    v = verdicts(costs, dtype, criteria(converged_below=5e-5), optimal=0.5, floor=1e-2)
    assert v.converged_at[0] == -1


@pytest.mark.parametrize("chunk", [3, 4, 5])
@pytest.mark.parametrize("dtype", DTYPES)
def test_divergence_on_a_chunk_boundary(dtype, chunk):
    """Divergence on the last epoch of a chunk, the first of the next, or mid-chunk is found
    at the same epoch, and the run is reported finished there."""
    costs = [1.0, 2.0, 3.0, 1.0e9, 1.0, 1.0]
    v = verdicts(costs, dtype, criteria(diverged_factor=1.0e6), chunk=chunk)
    assert v.diverged_at[0] == 3 and v.last_epoch[0] == 3 and v.final_cost[0] == 1.0e9


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("chunk_epochs", [1, 5, 6, 64])
def test_loop_and_batched_diverge_at_the_same_epoch(dtype, chunk_epochs):
    """The two engines are one verdict: the same divergence epoch exactly, whatever the
    batched engine's chunk length (tutorial lr 0.5 diverges at epoch 5 in float32)."""
    data = {"tutorial": parse_dataset("tutorial", {"x": [1, 2, 3], "y": [2, 4, 6]})}
    lrs = (0.19, 0.25, 0.5, 1.0, 3.0)
    options = train_options(chunk_epochs=chunk_epochs, record_every=0)
    out = {
        engine: train([run_spec("tutorial", lr, 1, 400, dtype=dtype, engine=engine) for lr in lrs], data, options)
        for engine in ("loop", "batched")
    }
    np.testing.assert_array_equal(out["loop"].verdicts.diverged_at, out["batched"].verdicts.diverged_at)
    assert out["loop"].verdicts.diverged.all()


@pytest.mark.parametrize("engine", ["loop", "batched"])
def test_overflowing_cost_diverges_at_the_first_inf_in_both_engines(engine):
    """y ~ 2e16 in float32: initial cost x 1e6 overflows float32; the run diverges where its
    cost first becomes inf (epoch 4 at lr 0.5), in both engines, with no inf kept after."""
    data = {"big": parse_dataset("big", {"x": [1, 2, 3], "y": [2e16, 4e16, 6e16]})}
    batch = train([run_spec("big", 0.5, 1, 2000, engine=engine)], data, train_options())
    v = batch.verdicts
    assert v.diverged_at[0] == 4
    epochs, _, _, cost = batch.run_trajectory(0)
    assert epochs[-1] == 4 and np.isinf(cost[-1]) and np.isfinite(cost[:-1]).all()


def test_float_floor_is_a_few_ulps_of_the_optimum():
    """The floor the docs state: 4 x (ulp of the optimal cost + the residuals' rounding,
    linear 2 sqrt(C*) u and squared u, u the ulp of the largest |y| or |b*|), in the run's dtype."""
    u = 2.0**-21  # ulp of 7 in float32
    assert float_floor(0.3, 7.0, "float32") == pytest.approx(4 * (2.0**-25 + 2 * np.sqrt(0.3) * u + u * u))
    assert float_floor(0.0, 0.0, "float64") > 0
    # the review's large-|y| data: C* ~ 625, |b| ~ 4e4; the float64 floor covers the +-1e-11
    # scatter of its excess (the linear term: 2 x 25 x ulp(4e4) = 3.6e-10)
    assert float_floor(625.0, 4.0e4, "float64") > 1.0e-10
