"""The measured rate: fitting the linear recurrence the theory predicts to a run's recorded
parameters.

Full batch, on a quadratic cost, the error ``e_t = p_t - p*`` of the parameters ``p = (W, b)``
follows a linear recurrence whose form the theory gives (:mod:`gdbench.stability`) but whose
coefficients the fit measures:

* plain gradient descent: ``e_{t+1} = M e_t`` (``M = I - lr H``: order 1, 2x2 ``M``);
* heavy ball and Nesterov: ``e_{t+1} = A e_t + B e_{t-1}`` (order 2; ``A``, ``B`` polynomials
  in ``H``; torch's first buffer, the first gradient, is this recurrence with ``e_{-1} = e_0``).

:func:`direction_rates` works in the Hessian's eigenbasis, where the directions decouple:
along each eigenvector the error follows the same recurrence with scalar coefficients, which
:func:`recurrence_rate` fits by least squares on records ``lag`` apart (each equation weighted
by ``1 / |u_t|``, so that every epoch counts by its relative error, not its size). The rate is
the squared spectral radius of the fitted recurrence (its companion matrix) per epoch: the
factor by which the excess ``(1/2) lambda u^2`` changes asymptotically (below 1 it contracts,
above 1 it grows); the run's is the largest over its directions. A slowly beating pair of
complex roots, a fast run and two directions at close rates are all the same fit: no window
within the curve has to be dominated by one direction.

**Guards** (else NaN): at least ``MIN_EQUATIONS_PER_UNKNOWN`` equations per unknown; evenly
spaced records; the fitted recurrence reproduces the window within ``MAX_RESIDUAL`` (relative,
root mean square); per direction, only errors above its rounding and stall bottoms
(:func:`direction_bottoms`), and every direction above rounding fitted.
"""

from __future__ import annotations

import numpy as np

#: The window stays above this multiple of the float floor ...
ABOVE_FLOOR = 1.0e2
#: ... and above the square of this many ulps of the largest |y| (the residuals' own rounding).
RESIDUAL_ULPS = 1.0e3
#: The recurrence is fitted between records ``lag = T // (LAG_DIVISOR x (order + 1))`` apart
#: (at least 1) for a window of ``T`` records: over a long slow window the error changes by
#: ``lr lambda`` per epoch, close to its rounding in float32, but by much more over ``lag``.
LAG_DIVISOR = 2
#: The errors fitted stay above this multiple of the error at which updates stall.
STALL_MARGIN = 1.0e3
#: ... and above this many ulps of the parameters (their rounding stays under 1e-4 relative).
RESOLUTION_ULPS = 1.0e4
#: Equations per fitted unknown, at least.
MIN_EQUATIONS_PER_UNKNOWN = 2
#: The fitted recurrence reproduces the window within this relative RMS residual, or no rate.
MAX_RESIDUAL = 1.0e-2


def window_bottom(floor: float, y_scale: float, dtype: str) -> float:
    """The smallest excess the fit uses: ``ABOVE_FLOOR x floor + (RESIDUAL_ULPS x
    spacing(y_scale))^2`` in the run's dtype."""
    ulp_y = float(np.spacing(np.dtype(dtype).type(abs(y_scale))))
    return ABOVE_FLOOR * floor + (RESIDUAL_ULPS * ulp_y) ** 2


def direction_bottoms(
    lr: float, lam: np.ndarray, floor: float, y_scale: float, p_scale: float, dtype: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per eigen-direction ``lambda`` (> 0): the smallest ``|error|`` along it the fit uses, and
    the smallest that is resolved at all.

    Resolved: above the error whose excess ``lambda u^2 / 2`` is the window's bottom
    (:func:`window_bottom`) and above ``RESOLUTION_ULPS x spacing(p_scale)`` (``p_scale`` the
    largest ``|W*|``, ``|b*|``: the parameters' own rounding). Used: resolved, and above
    ``STALL_MARGIN x spacing(p_scale) / (lr lambda)``: below about ``spacing / (lr lambda)``
    an update along that direction rounds to nothing in the run's dtype and the error stalls
    at an offset the recurrence does not describe (float32 with small steps)."""
    lam = np.asarray(lam, dtype=np.float64)
    ulp_p = float(np.spacing(np.dtype(dtype).type(abs(p_scale))))
    resolved = np.maximum(np.sqrt(2.0 * window_bottom(floor, y_scale, dtype) / lam), RESOLUTION_ULPS * ulp_p)
    stall = STALL_MARGIN * ulp_p / (lr * lam) if lr > 0 else np.full(lam.shape, np.inf)
    return np.maximum(resolved, stall), resolved


def fit_window(
    excess: np.ndarray,
    bottom: float,
    stop: int | None = None,
    error_norm: np.ndarray | None = None,
    error_bottom: float = 0.0,
) -> np.ndarray:
    """The recorded entries a rate is fitted on: from the first to the last whose *envelope*
    (the largest value from that entry on) of the excess is above ``bottom`` and of
    ``error_norm`` (when given) above ``error_bottom``, before entry ``stop`` (the divergence
    epoch's) when given, and before the first non-finite excess; a dip of an oscillation ends
    nothing."""
    x = np.asarray(excess, dtype=np.float64)[:stop]
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x)
        end = int(np.argmin(finite)) if not finite.all() else x.size  # up to the first non-finite
        keep = _envelope(x[:end]) > bottom
        if error_norm is not None:
            keep &= _envelope(np.asarray(error_norm, dtype=np.float64)[:end]) > error_bottom
    last = np.flatnonzero(keep)
    return np.arange(last[-1] + 1) if last.size else np.zeros(0, dtype=np.int64)


def window_lengths(excess: np.ndarray, bottom: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """:func:`fit_window` of many runs at once, as lengths: ``excess`` ``[G, T]`` (each run's
    recorded excess), ``bottom`` and ``stop`` ``[G]`` (``stop``: the entries that count, the
    run's recorded ones or fewer); the window of run ``g`` is its first ``length[g]`` entries.
    The last entry above the bottom before the first non-finite one ends it: an envelope
    above the bottom ends where the last value above it is."""
    x = np.asarray(excess, dtype=np.float64)
    index = np.arange(x.shape[1])
    counted = index < np.asarray(stop)[:, None]
    bad = counted & ~np.isfinite(x)
    end = np.where(bad.any(axis=1), bad.argmax(axis=1), stop)  # up to the first non-finite
    with np.errstate(invalid="ignore"):
        keep = (index < end[:, None]) & (x > np.asarray(bottom)[:, None])
    return np.where(keep.any(axis=1), x.shape[1] - keep[:, ::-1].argmax(axis=1), 0)


def _envelope(x: np.ndarray) -> np.ndarray:
    """The largest finite value from each entry on."""
    return np.maximum.accumulate(np.where(np.isfinite(x), x, 0.0)[::-1])[::-1]


def direction_rates(
    epochs: np.ndarray, components: np.ndarray, bottoms: np.ndarray, resolved: np.ndarray, order: int
) -> float:
    """The rate of a run from the error along each eigen-direction (column of ``components``
    ``[T, k]``, ``p - p*`` along the Hessian's eigenvectors at the recorded ``epochs``): per
    direction, the squared spectral radius of its fitted recurrence (:func:`recurrence_rate`)
    on the entries up to the last whose envelope of ``|component|`` is above that direction's
    ``bottoms`` entry, and the largest of them. A direction without a fitted rate (never above
    its bottom, or above it for too few epochs) is ignored only if it is never resolved (above
    its ``resolved`` entry): it is rounding. Else it carried excess the fit did not measure and
    may be the slowest (a float32 update stalling along it), so the rate is NaN, as it is when
    no direction is fitted. :class:`DirectionFits` does the same for many runs at once."""
    fits = DirectionFits(order)
    fits.add(epochs, components, bottoms, resolved)
    return float(fits.rates()[0])


class DirectionFits:
    """:func:`direction_rates` of many runs, their recurrences fitted together: per block of
    runs added at once, the directions' series of one length as one batch of least squares and
    eigenvalues (:func:`series_rates`)."""

    def __init__(self, order: int) -> None:
        if order not in (1, 2):
            raise ValueError(f"recurrence order must be 1 or 2, not {order}")
        self.order = order
        self.fitted: list[np.ndarray] = []  # per block of runs, each run's rate

    def add(self, epochs: np.ndarray, components: np.ndarray, bottoms: np.ndarray, resolved: np.ndarray) -> None:
        """One run's recorded epochs and error components (:func:`direction_rates`)."""
        u = np.asarray(components, dtype=np.float64)
        self.add_many(epochs, u[None], np.array([u.shape[0]]), np.asarray(bottoms)[None], np.asarray(resolved)[None])

    def add_many(
        self, epochs: np.ndarray, components: np.ndarray, lengths: np.ndarray, bottoms: np.ndarray, resolved: np.ndarray
    ) -> None:
        """G runs of the same recorded ``epochs`` ``[T]``: ``components`` ``[G, T, k]``, of
        which run ``g`` uses its first ``lengths[g]`` entries (its window); ``bottoms``,
        ``resolved`` ``[G, k]`` (:func:`direction_rates`). Per direction, its series ends at
        the last entry of the window above its bottom (where an envelope above the bottom ends;
        a non-finite entry is never above it)."""
        values = np.asarray(components, dtype=np.float64)
        u = np.abs(values)
        G, T, k = u.shape
        window = np.arange(T)[None, :, None] < np.asarray(lengths)[:, None, None]
        with np.errstate(invalid="ignore"):
            keep = window & np.isfinite(u) & (u > np.asarray(bottoms)[:, None, :])
            # the largest |u| in the window (NaN if one is NaN): above the direction's resolution?
            peak = np.max(np.where(window, u, -np.inf), axis=1, initial=-np.inf)
            above = (np.asarray(lengths)[:, None] > 0) & (peak > resolved)
        fitted = keep.any(axis=1)
        ends = T - keep[:, ::-1, :].argmax(axis=1)  # [G, k]: one past the last entry kept
        rates = np.full((G, k), np.nan)
        for end in np.unique(ends[fitted]):
            g, j = np.nonzero(fitted & (ends == end))
            t = np.broadcast_to(np.asarray(epochs[:end], dtype=np.float64), (g.size, end))
            rates[g, j] = series_rates(t, values[g[:, None], np.arange(end)[None, :], j[:, None]], self.order)
        finite = np.isfinite(rates)
        # a direction above its resolution without a rate carried excess the fit did not measure
        best = np.max(np.where(finite, rates, -np.inf), axis=1, initial=-np.inf)
        self.fitted.append(np.where((~finite & above).any(axis=1) | ~finite.any(axis=1), np.nan, best))

    def rates(self) -> np.ndarray:
        """Each added run's rate, in order."""
        return np.concatenate(self.fitted) if self.fitted else np.zeros(0)


def recurrence_rates(series: list[tuple[np.ndarray, np.ndarray]], order: int) -> np.ndarray:
    """:func:`recurrence_rate` of many scalar series ``(epochs [T], errors [T])`` at once: the
    series of one length as one :func:`series_rates` call."""
    if order not in (1, 2):
        raise ValueError(f"recurrence order must be 1 or 2, not {order}")
    out = np.full(len(series), np.nan)
    by_length: dict[int, list[int]] = {}
    for i, (t, _) in enumerate(series):
        by_length.setdefault(len(t), []).append(i)
    for members in by_length.values():
        t = np.array([series[i][0] for i in members], dtype=np.float64)  # [G, T]
        e = np.array([series[i][1] for i in members], dtype=np.float64)
        out[members] = series_rates(t, e, order)
    return out


def series_rates(t: np.ndarray, e: np.ndarray, order: int) -> np.ndarray:
    """:func:`recurrence_rate` of G scalar series of one length, epochs ``t`` and errors ``e``
    ``[G, T]``: they share their lag and regressors' shape, so their weighted least squares
    (through the SVD, as ``numpy.linalg.lstsq``: the same solution to rounding) and companion
    eigenvalues are each one batched call. The same guards; NaN where one fails. Each series'
    rate is its own: it does not depend on the others."""
    G, T = e.shape
    out = np.full(G, np.nan)
    lag = max(1, T // (LAG_DIVISOR * (order + 1)))
    rows = T - order * lag
    if order + 2 > T or rows < 2 or rows < MIN_EQUATIONS_PER_UNKNOWN * order:
        return out
    step = np.diff(t, axis=1)
    ok = np.isfinite(e).all(axis=1) & (step == step[:, :1]).all(axis=1) & (step[:, 0] > 0)
    if not ok.any():
        return out
    idx, e, step = np.flatnonzero(ok), e[ok], step[ok, 0]
    X = np.stack([e[:, (order - 1 - j) * lag : (order - 1 - j) * lag + rows] for j in range(order)], axis=2)
    Y = e[:, order * lag :, None]  # [G, rows, 1]
    weight = 1.0 / np.maximum(np.abs(X[:, :, 0]), np.finfo(float).tiny)
    X, Y = X * weight[:, :, None], Y * weight[:, :, None]
    finite = np.isfinite(X).all(axis=(1, 2)) & np.isfinite(Y).all(axis=(1, 2))  # else lstsq fails too
    if finite.any():
        rho = _fit_radii(X[finite], Y[finite], order)
        out[idx[finite]] = rho ** (2.0 / (step[finite] * lag))
    return out


def _fit_radii(X: np.ndarray, Y: np.ndarray, order: int) -> np.ndarray:
    """:func:`_fit_radius` of a batch ``X`` ``[G, rows, order]``, ``Y`` ``[G, rows, 1]``: the
    minimum-norm least squares through the SVD with lstsq's cut-off (singular values below
    ``eps x max(rows, order)`` of the largest count as zero)."""
    U, sv, Vt = np.linalg.svd(X, full_matrices=False)
    cut = np.finfo(float).eps * max(X.shape[1], X.shape[2]) * sv[:, :1]
    inv = np.divide(1.0, sv, out=np.zeros_like(sv), where=sv > cut)
    C = np.swapaxes(Vt, 1, 2) @ (inv[:, :, None] * (np.swapaxes(U, 1, 2) @ Y))  # [G, order, 1]
    residual = np.sqrt(np.mean((Y - X @ C) ** 2, axis=(1, 2)) / np.mean(Y**2, axis=(1, 2)))
    companion = np.zeros((X.shape[0], order, order))
    companion[:, 0, :] = C[:, :, 0]
    if order == 2:
        companion[:, 1, 0] = 1.0
    with np.errstate(invalid="ignore"):
        radius = np.max(np.abs(np.linalg.eigvals(companion)), axis=1)
        return np.where(residual <= MAX_RESIDUAL, radius, np.nan)


def recurrence_rate(epochs: np.ndarray, errors: np.ndarray, order: int) -> float:
    """The squared spectral radius per epoch of the order-``order`` (1 or 2) linear recurrence
    fitted to ``errors`` ``[T, d]`` (at the recorded ``epochs`` ``[T]``, a window of consecutive
    records, evenly spaced); NaN where the guards fail (module docstring). One series, any
    ``d``: the reference that :func:`recurrence_rates` (the analysis's batched fit of scalar
    series) is tested against."""
    t = np.asarray(epochs, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    if order not in (1, 2):
        raise ValueError(f"recurrence order must be 1 or 2, not {order}")
    if t.size < order + 2 or not np.isfinite(e).all():
        return float("nan")
    step = np.diff(t)
    if not np.all(step == step[0]) or step[0] <= 0:
        return float("nan")
    lag = max(1, t.size // (LAG_DIVISOR * (order + 1)))
    X, Y = _regressors(e, order, lag)
    if X.shape[0] < 2:
        return float("nan")
    d = e.shape[1]
    weight = 1.0 / np.maximum(np.linalg.norm(X[:, :d], axis=1), np.finfo(float).tiny)
    rho = _fit_radius(X * weight[:, None], Y * weight[:, None], order)
    return float(rho ** (2.0 / (step[0] * lag)))


def _regressors(e: np.ndarray, order: int, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """``X`` rows ``[e_t, e_{t-k}, ...]`` (``order`` terms ``k = lag`` records apart) and ``Y``
    rows ``e_{t+k}``."""
    T, d = e.shape[0], e.shape[1]
    rows = T - order * lag
    if rows <= 0:
        return np.zeros((0, order * d)), np.zeros((0, d))
    X = np.concatenate([e[(order - 1 - j) * lag : (order - 1 - j) * lag + rows] for j in range(order)], axis=1)
    return X, e[order * lag :]


def _fit_radius(X: np.ndarray, Y: np.ndarray, order: int) -> float:
    """Least squares ``Y ~ X C`` and the spectral radius of the recurrence's companion matrix;
    NaN when there are too few equations or the residual is too large."""
    d = Y.shape[1]
    unknowns = X.shape[1] * d
    if Y.size < MIN_EQUATIONS_PER_UNKNOWN * unknowns:
        return float("nan")
    C, *_ = np.linalg.lstsq(X, Y, rcond=None)
    residual = np.sqrt(np.mean((Y - X @ C) ** 2) / np.mean(Y**2))
    if not residual <= MAX_RESIDUAL:
        return float("nan")
    companion = np.zeros((order * d, order * d))
    companion[:d, :] = C.T
    if order == 2:
        companion[d:, :d] = np.eye(d)
    return float(np.max(np.abs(np.linalg.eigvals(companion))))
