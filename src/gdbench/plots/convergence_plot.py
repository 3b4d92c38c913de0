"""The convergence figure: excess cost vs epoch, one line per learning rate, a facet per
dataset (and device, engine, ...); the lines come from :func:`gdbench.plots.reduction.aggregate_lines`."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdbench.plots import style
from gdbench.plots.reduction import Lines, aggregate_lines

__all__ = ["TOP_FACTOR", "convergence"]

#: The convergence plot's y axis ends at this many times the largest initial cost.
TOP_FACTOR = 3.0
#: Above this many epochs the epoch axis is logarithmic beyond epoch 10 (fast runs, and every
#: diverging one, change within the first tens of epochs).
_SYMLOG_ABOVE = 100
#: At most this many lr labels at the right end of a facet's lines (more: the colour bar only).
_MAX_END_LABELS = 12


def convergence(
    trajectories: pd.DataFrame,
    summary: pd.DataFrame,
    out_png: style.PathLike,
    out_svg: style.PathLike | None,
    *,
    max_lines: int = 40,
    upper_envelope: bool = True,
) -> None:
    """Excess cost vs epoch on a log axis, one line per learning rate, a facet per dataset
    (and device). The excess is each run's cost minus its optimal cost (the summary's
    ``optimal_cost``; the cost itself when the summary has none), so noisy data, whose best
    line keeps a cost above 0, read like noise-free data; values within the float floor of a
    positive optimum are drawn at that floor (noted).

    Each line is the median over seeds, with a band from the smallest to the largest seed, of
    each run's upper envelope of the excess (``upper_envelope``, the default; see
    :func:`gdbench.plots.reduction.envelope`): the largest excess from that epoch on, or for a run
    that diverged the largest so far, so that a momentum run's oscillations read as the decay
    of their peaks instead of a tangle; ``upper_envelope=False`` draws the excess itself.
    Learning rate is the line's colour, on the scale of :class:`gdbench.plots.style.LrScale`
    (a labelled block per lr, or a log colour bar for many). The y axis is clipped to
    ``TOP_FACTOR`` x the largest initial excess of the facet's dataset, so diverging runs leave
    at the top; lines whose every seed diverged are dashed, and every divergence is marked
    with an ``x`` on the top edge at its epoch. Excesses of exactly 0 are drawn at a floor
    (noted under the plot). Large tables are thinned to at most ``MAX_POINTS`` epochs per line
    and ``max_lines`` learning rates per facet before anything is drawn.
    """
    agg = aggregate_lines(trajectories, summary, max_lines, upper_envelope=upper_envelope)
    lines = agg.lines
    with style.theme():
        if lines.empty:
            fig = Figure(figsize=(6, 4), layout="constrained")
            ax = fig.subplots()
            ax.set(xlabel="epoch", ylabel=_EXCESS_LABEL, yscale="log", title="Convergence")
            style.empty_note(ax, "no trajectories to draw")
            style.save(fig, out_png, out_svg)
            return
        facets = style.make_facets(lines)
        line_keys = style.facet_of(lines, facets)
        fig, by_key = style.grid(facets, 5.2, 3.7, extra_width=0.9)
        scale = style.lr_scale(lines["lr"].to_numpy(dtype=float))
        ranges = _cost_ranges(agg, line_keys)
        tops, ends = _draw_lines(by_key, agg, line_keys, ranges, scale)
        max_epoch = int(agg.epoch.max(initial=0))
        for key, ax in by_key.items():
            ax.set_title(facets.title(key), pad=34 if tops.get(key) else 10)  # room for the × labels
            labels = ends.get(key, []) if scale.stepped else []  # many lrs: the colour bar alone
            _finish_facet(ax, ranges.get(key[0], (1e-3, 1.0, False)), max_epoch, tops.get(key, []), labels)
        xlabel = "epoch (log scale beyond 10)" if max_epoch > _SYMLOG_ABOVE else "epoch"
        style.label_outer(facets, by_key, xlabel, _EXCESS_LABEL)
        scale.colorbar(fig, list(by_key.values()))
        handles = _legend_handles(agg, any(tops.values()), any(r[2] for r in ranges.values()), upper_envelope)
        wide = fig.get_figwidth() >= 10
        fig.legend(handles=handles, loc="outside lower center", ncols=2 if wide else 1, fontsize="small")
        fig.suptitle("Convergence: excess cost (cost − optimal cost) vs epoch, one line per learning rate")
        style.save(fig, out_png, out_svg)


#: A divergence mark (epoch, colour, lr) and a line's right end (lr, last excess, colour).
_Mark = tuple[int, tuple, float]
_End = tuple[float, float, tuple]


def _draw_lines(
    by_key: dict,
    agg: Lines,
    line_keys: list[tuple[str, tuple]],
    ranges: dict[str, tuple[float, float, bool]],
    scale: style.LrScale,
) -> tuple[dict[tuple, list[_Mark]], dict[tuple, list[_End]]]:
    """Each line (median, and its min–max band) in its facet; returns per facet the divergence
    marks to draw on the top edge and the right ends of the lines to label."""
    tops: dict[tuple, list[_Mark]] = {}
    ends: dict[tuple, list[_End]] = {}
    for i, row in enumerate(agg.lines.itertuples(index=False)):
        key = line_keys[i]
        ax = by_key[key]
        sl = slice(agg.start[i], agg.start[i + 1])
        x = agg.epoch[sl]
        if x.size == 0:
            continue
        top = ranges[key[0]][1]
        med, lo, hi = (np.minimum(v[sl], top * 10) for v in (agg.median, agg.lo, agg.hi))
        colour = scale.colour(float(row.lr))
        rank = scale.position(float(row.lr))
        all_diverged = row.n_diverged == row.n_runs
        look = {"color": colour, "lw": 1.2 if all_diverged else 1.6, "ls": (0, (4, 2)) if all_diverged else "-"}
        if x.size == 1:
            look.update(marker="o", ms=4)
        if row.n_runs > 1 and np.any(hi > lo):
            ax.fill_between(x, lo, hi, color=colour, alpha=0.15, lw=0, zorder=1)
        ax.plot(x, med, zorder=2 + rank, **look)
        tops.setdefault(key, []).extend((e, colour, float(row.lr)) for e in row.diverged_epochs)
        if not all_diverged and np.isfinite(med[-1]) and med[-1] < top:
            ends.setdefault(key, []).append((float(row.lr), float(med[-1]), colour))
    return tops, ends


def _finish_facet(
    ax: Axes, y_range: tuple[float, float, bool], max_epoch: int, marks: list[_Mark], ends: list[_End]
) -> None:
    """A facet's axes (log cost, symlog epochs when long), divergence marks and lr labels."""
    bottom, top, _ = y_range
    ax.set_yscale("log")
    ax.set_ylim(bottom, top)
    if max_epoch > _SYMLOG_ABOVE:
        ax.set_xscale("symlog", linthresh=10, linscale=0.6)
    ax.set_xlim(0, max(max_epoch, 1))
    for e, colour, _lr in marks:
        ax.plot([e], [top], marker="x", ms=8, mew=2, color=colour, clip_on=False, zorder=10, ls="none")
    _divergence_labels(ax, marks, top)
    _end_labels(ax, ends, bottom, top)
    if not ax.has_data():
        style.empty_note(ax, "no runs")


def _legend_handles(agg: Lines, any_diverged: bool, any_clipped: bool, upper_envelope: bool) -> list[Line2D]:
    """The figure legend: what a line is, the divergence mark, the clipped axis and the notes."""
    what = (
        "upper envelope of the excess (its largest value from that epoch on;\na diverged run's: so far)"
        if upper_envelope
        else "excess"
    )
    handles = [Line2D([], [], color="0.3", lw=1.6, label=f"{what}: median over seeds, band: min–max")]
    if any_diverged:
        handles.append(
            Line2D(
                [],
                [],
                color="0.3",
                lw=1.2,
                ls=(0, (4, 2)),
                marker="x",
                ms=7,
                mew=2,
                markevery=[-1],
                label="diverged (× on the top edge at its divergence epoch, labelled with its lr)",
            )
        )
    if any_clipped:
        handles.append(
            Line2D(
                [],
                [],
                ls="none",
                label=f"y axis ends at {TOP_FACTOR:g}× the initial excess: diverging runs leave the top",
            )
        )
    if agg.had_zero:
        handles.append(Line2D([], [], ls="none", label=f"excess exactly 0 drawn at {agg.floor:.0e} (log axis)"))
    handles += [Line2D([], [], ls="none", label=n) for n in dict.fromkeys(agg.notes)]
    return handles


_EXCESS_LABEL = "excess cost (MSE − optimal MSE)"


def _cost_ranges(agg: Lines, line_keys: list[tuple[str, tuple]]) -> dict[str, tuple[float, float, bool]]:
    """One y range per dataset, ``(bottom, top, clipped)``.

    The top is ``TOP_FACTOR`` x the dataset's largest initial (first drawn) cost, so that
    diverging runs leave through it (``clipped``) and do not flatten the rest; when every run of
    the dataset diverged there is nothing to flatten and the top takes in their whole rise. The
    bottom is below the smallest drawn cost, at least 3 decades under the top."""
    datasets = np.array([k[0] for k in line_keys])
    counts = np.diff(agg.start)
    all_diverged = (agg.lines["n_diverged"] == agg.lines["n_runs"]).to_numpy() if len(agg.lines) else np.zeros(0, bool)
    ranges = {}
    for ds in dict.fromkeys(datasets):
        idx = np.flatnonzero((datasets == ds) & (counts > 0))
        init = agg.hi[agg.start[idx]]
        init = init[np.isfinite(init) & (init > 0)]
        pts = np.concatenate([agg.lo[agg.start[i] : agg.start[i + 1]] for i in idx]) if idx.size else np.empty(0)
        pts = pts[np.isfinite(pts) & (pts > 0)]
        highs = np.concatenate([agg.hi[agg.start[i] : agg.start[i + 1]] for i in idx]) if idx.size else np.empty(0)
        highs = highs[np.isfinite(highs) & (highs > 0)]
        if idx.size and all_diverged[idx].all() and highs.size:
            top, clipped = TOP_FACTOR * float(highs.max()), False
        elif init.size:
            top = TOP_FACTOR * float(init.max())
            clipped = bool(highs.size and highs.max() > top) or bool(np.any(~np.isfinite(agg.hi[agg.start[idx]])))
        else:
            top, clipped = (TOP_FACTOR * float(pts.max()) if pts.size else 1.0), False
        bottom = float(pts.min()) / 3 if pts.size else top
        ranges[ds] = (
            min(bottom, top * 1e-3),
            top,
            clipped or bool(all_diverged[idx].any() and not all_diverged[idx].all()),
        )
    return ranges


def _end_labels(ax: Axes, ends: list[tuple[float, float, tuple]], bottom: float, top: float) -> None:
    """Label the right end of each line with its learning rate: lines ending at the same
    height share one label, and labels are spread apart (with leader lines) so none overlap."""
    if not ends:
        return
    span = np.log10(top) - np.log10(bottom)
    pts = sorted(
        (float(np.clip((np.log10(max(y, bottom)) - np.log10(bottom)) / span, 0, 1)), lr, c) for lr, y, c in ends
    )
    groups: list[list[tuple[float, float, tuple]]] = [[pts[0]]]
    for p in pts[1:]:
        if p[0] - groups[-1][-1][0] < 0.015:
            groups[-1].append(p)
        else:
            groups.append([p])
    if len(groups) > _MAX_END_LABELS:
        return
    gap = 0.075
    want = [float(np.mean([p[0] for p in g])) for g in groups]
    pos = list(want)
    for i in range(1, len(pos)):
        pos[i] = max(pos[i], pos[i - 1] + gap)
    pos[-1] = min(pos[-1], 1.0)
    for i in range(len(pos) - 2, -1, -1):
        pos[i] = min(pos[i], pos[i + 1] - gap)
    for g, y0, y1 in zip(groups, want, pos, strict=True):
        lrs = sorted(p[1] for p in g)
        text = ", ".join(f"{v:g}" for v in lrs) if len(lrs) <= 3 else f"{lrs[0]:g} … {lrs[-1]:g} ({len(lrs)} lrs)"
        colour = sorted(g, key=lambda p: p[1])[len(g) // 2][2]
        ax.annotate(
            text,
            xy=(1.0, y0),
            xycoords="axes fraction",
            xytext=(1.04, y1),
            textcoords="axes fraction",
            va="center",
            ha="left",
            fontsize="x-small",
            color=colour,
            annotation_clip=False,
            arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.7, "shrinkA": 0, "shrinkB": 1},
        )


#: Space kept between two divergence labels, in points.
_LABEL_SPACE_PT = 4.0


def _label_text(lrs: list[float]) -> str:
    lrs = sorted(lrs)
    return ", ".join(f"{v:g}" for v in lrs) if len(lrs) <= 2 else f"{lrs[0]:g} … {lrs[-1]:g}"


def _divergence_labels(ax: Axes, marks: list[tuple[int, tuple, float]], top: float) -> None:
    """Label the divergence markers of each learning rate with the lr, above its first marker;
    learning rates whose labels would touch share one ("0.15 … 0.5"), so labels never overlap."""
    first: dict[float, tuple[int, tuple]] = {}
    for e, colour, lr in sorted(marks, key=lambda m: m[0]):
        first.setdefault(lr, (e, colour))
    points_per_px = 72.0 / ax.figure.dpi
    at = sorted(
        (float(ax.transData.transform((e, top))[0]) * points_per_px, e, colour, lr) for lr, (e, colour) in first.items()
    )
    groups: list[list[tuple[float, int, tuple, float]]] = []
    for item in at:
        if groups:
            start = groups[-1][0][0]
            width = style.text_width_pt(_label_text([g[3] for g in groups[-1]]))
            if item[0] < start + width + _LABEL_SPACE_PT:
                groups[-1].append(item)
                continue
        groups.append([item])
    for group in groups:
        _, e, colour, _ = group[0]
        ax.annotate(_label_text([g[3] for g in group]), xy=(e, top), xytext=(-3, 7), textcoords="offset points",
                    ha="left", va="bottom", fontsize="x-small", color=colour, annotation_clip=False)  # fmt: skip
