"""The bracketing search: for many searches at once, the smallest learning rate in a range at
which a verdict says "diverges", narrowed round by round with combs of probes.

:func:`bracket` knows nothing of engines or theory: it takes a function that answers, for a
batch of (search, learning rate) probes, whether each diverges. The edge search
(:mod:`gdbench.edge`) answers with the engines' verdicts, one tensor program per round; the
float64 horizon (:mod:`gdbench.horizon`) with its recurrence.

* Round 0 probes a log-spaced comb of ``per_round`` learning rates from ``lr_min`` to
  ``lr_max`` (both included) for every search; a search's bracket becomes [the probe below its
  first diverging probe, its first diverging probe];
* each later round probes a comb strictly inside every bracket still wider than
  ``rel_width`` (relative: ``(hi - lo) / lo``), narrowing it to the first diverging probe. A
  round shrinks a bracket's log-width ``per_round + 1`` fold (the last one probes only as many
  as it needs);
* a search with a ``guess`` first probes a comb over ``guess / (1 + GUESS_SPAN)`` ..
  ``guess x (1 + GUESS_SPAN)`` just fine enough for ``rel_width``: a bracket only if its first
  probe did not diverge and a later one did, else that search restarts with the full comb.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from gdbench.engines.run_setup import Progress

#: A search with a guess first probes this relative span around it.
GUESS_SPAN = 1.0e-3
#: A search stops after this many rounds whatever the widths (only a float-precision
#: rel_width could need more).
MAX_ROUNDS = 100

#: (search index of each probe [K], learning rates [K]) -> whether each probe's run diverges [K].
Diverges = Callable[[np.ndarray, np.ndarray], np.ndarray]


def bracket(
    diverges: Diverges,
    n: int,
    lr_min: float,
    lr_max: float,
    rel_width: float,
    per_round: int,
    progress: Progress | None = None,
    guess: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bracket, for each of ``n`` searches, the smallest learning rate in ``[lr_min, lr_max]``
    at which ``diverges`` says its run diverges (see the module docstring), with combs of
    ``per_round`` probes (fewer in a last round that needs fewer). Each round makes one call of
    ``diverges`` with every probe of every open search. Returns ``(lo, hi)`` arrays: ``lo`` did not diverge,
    ``hi`` did; ``hi`` is NaN when nothing diverged up to ``lr_max`` (then ``lo = lr_max``),
    ``lo`` is NaN when ``lr_min`` diverged already.

    ``guess`` (per search, NaN for none): where the edge should lie (the float64 horizon
    edge). Round 0 then probes, for that search, a comb spanning ``guess / (1 + GUESS_SPAN)``
    to ``guess x (1 + GUESS_SPAN)`` (both included) just fine enough to meet ``rel_width``; it
    is a bracket only if its first probe did not diverge and a later one did (both measured),
    else the search starts over with the full comb in the next round."""
    # One function on purpose (~80 lines): every round narrows all searches at once (one
    # tensor program per round), and the per-search bookkeeping (guess accepted or not, range
    # answers, final brackets) reads best next to the loop that updates it.
    if not (0 < lr_min < lr_max and math.isfinite(lr_max)):
        raise ValueError(f"edge search: need 0 < lr_min < lr_max, got {lr_min!r}, {lr_max!r}")
    if per_round < 2 or not rel_width > 0:
        raise ValueError("edge search: need lrs_per_round >= 2 and rel_width > 0")
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    step = math.log1p(rel_width)
    idx = np.arange(n)
    full = np.geomspace(lr_min, lr_max, per_round)
    full[0], full[-1] = lr_min, lr_max
    combs = [full] * n
    informed = np.zeros(n, dtype=bool)
    if guess is not None:
        for i in np.flatnonzero(np.isfinite(guess) & (guess > 0)):
            g = float(guess[i])
            a, b = max(lr_min, g / (1 + GUESS_SPAN)), min(lr_max, g * (1 + GUESS_SPAN))
            if not a < b:
                continue
            m = int(min(per_round, math.ceil(math.log(b / a) / step * (1 + 1e-9)) + 1))
            combs[i] = np.geomspace(a, b, max(m, 2))
            combs[i][0], combs[i][-1] = a, b
            informed[i] = True
    for round_no in range(MAX_ROUNDS):
        if idx.size == 0:
            break
        clock = time.perf_counter()
        owner = np.repeat(idx, [c.size for c in combs])
        d = np.asarray(diverges(owner, np.concatenate(combs)), dtype=bool)
        restart = []
        for i, comb, hits in zip(idx, combs, np.split(d, np.cumsum([c.size for c in combs])[:-1]), strict=True):
            if informed[i]:
                informed[i] = False
                if not hits.any() or hits[0]:  # the guess missed: no bracket measured, search it all
                    restart.append(i)
                    continue
            if hits.any():
                first = int(hits.argmax())
                hi[i] = comb[first]
                if first > 0:
                    lo[i] = comb[first - 1]
            else:
                lo[i] = comb[-1]
        open_ = np.isfinite(lo) & np.isfinite(hi) & (hi / lo - 1 > rel_width)
        if progress and restart:
            progress(f"edge search round {round_no}: the theory's guess missed for {len(restart)} searches")
        if progress:
            width = hi[idx] / lo[idx] - 1
            widest = float(np.nanmax(width)) if np.isfinite(width).any() else 0.0
            progress(
                f"edge search round {round_no}: {idx.size} searches, {owner.size} runs (one tensor program per "
                f"engine group) in {time.perf_counter() - clock:.2f} s; widest bracket now {widest:.3g} relative, "
                f"{int(open_.sum())} still wider than {rel_width:g}"
            )
        idx = np.flatnonzero(open_)
        combs = []
        for i in idx:
            log_width = math.log(hi[i] / lo[i])
            m = int(min(per_round, max(1, math.ceil(log_width / step * (1 + 1e-9)) - 1)))
            combs.append(lo[i] * np.exp(log_width * np.arange(1, m + 1) / (m + 1)))
        idx = np.concatenate([idx, np.asarray(restart, dtype=np.int64)])
        combs += [full] * len(restart)
    return lo, hi
