"""The figures read at a glance: one learning-rate colour scale whose neighbours differ, the
convergence lines as upper envelopes (momentum's oscillations readable), the divergence
figure against lr / critical lr with the grid's lrs on top, labels that never overlap, and
every figure drawn on empty, all-diverged, single-seed and NaN-heavy tables.

The grid is the lesson's data and a noisy line with plain SGD, heavy ball, Nesterov and Adam
(no closed-form theory), 7 lrs x 2 seeds, 300 epochs. Every figure is drawn with warnings as
errors."""

from __future__ import annotations

import itertools
import re

import matplotlib.colors
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from helpers import convergence_axes, draw_figure, figure_tables
from matplotlib.figure import Figure

from gdbench import findings, plots
from gdbench.edge import EDGE_COLUMNS
from gdbench.plots import convergence_plot, divergence_plot, reduction, style

TOL = 1e-6
OPTIMIZERS = ["sgd", "heavy_ball", "nesterov", "adam"]


@pytest.fixture(scope="module")
def grid() -> dict[str, pd.DataFrame]:
    datasets = {
        "tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]},
        "noisy": {"synthetic": {"n": 16, "slope": 2.0, "intercept": 0.5, "noise": 0.5}},
    }
    return figure_tables(
        {
            "dataset": ["tutorial", "noisy"],
            "optimizer": OPTIMIZERS,
            "lr": [0.001, 0.01, 0.1, 0.17, 0.18, 0.19, 0.5],
            "seed": [1, 2],
            "epochs": [300],
            "device": ["cpu"],
        },
        datasets,
    )


draw = draw_figure


def svg_texts(svg: str) -> list[str]:
    """The text of every <text> element of an SVG (text stays text: svg.fonttype none)."""
    return [re.sub(r"<[^>]+>", "", t).strip() for t in re.findall(r"<text[^>]*>(.*?)</text>", svg, flags=re.S)]


# --------------------------------------------------------------------------------------------
# every figure on awkward inputs


def all_diverged(s: pd.DataFrame) -> pd.DataFrame:
    return s.assign(diverged=True, converged_at=pd.array([pd.NA] * len(s), dtype="Int64"))


def nan_heavy(s: pd.DataFrame) -> pd.DataFrame:
    out = s.copy()
    i = np.arange(len(out))
    out.loc[i % 2 == 0, ["rate", "predicted_rate", "final_cost"]] = np.nan
    out.loc[i % 3 == 0, ["lr_ratio", "optimal_cost"]] = np.nan
    out.loc[i % 4 == 0, "converged_at"] = pd.NA
    return out


CASES = {
    "empty": lambda s: s.iloc[:0],
    "all_diverged": all_diverged,
    "single_seed": lambda s: s[s["seed"] == 1].reset_index(drop=True),
    "nan_heavy": nan_heavy,
}


def _trajectories_of(grid: dict, summary: pd.DataFrame, case: str) -> pd.DataFrame:
    traj = grid["trajectories"]
    traj = traj[traj["run_id"].isin(summary["run_id"])].reset_index(drop=True)
    if case == "nan_heavy":
        traj = traj.copy()
        traj.loc[traj.index % 7 == 0, "cost"] = np.nan
        traj.loc[traj.index % 11 == 0, "cost"] = np.inf
    return traj


FIGURES = ["convergence", "divergence", "rate", "time_to_target", "profile"]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("figure", FIGURES)
def test_every_figure_draws_every_awkward_table(grid, tmp_path, figure, case) -> None:
    """An empty grid (a failed shard), a grid where every run diverged, a single seed, or a
    table full of NaN must give each figure, never a traceback at the end of a long run."""
    s = CASES[case](grid["summary"])
    args = {
        "convergence": lambda: (_trajectories_of(grid, s, case), s),
        "divergence": lambda: (s, grid["theory"]),
        "rate": lambda: (s, grid["curve"], grid["theory"]),
        "time_to_target": lambda: (
            findings.time_to_target(s, TOL),
            findings.findings_table(s, None, grid["theory"], TOL),
        ),
        "profile": lambda: (findings.performance_profile(s),),
    }[figure]()
    text = draw(getattr(plots, figure), *args, tmp_path=tmp_path, name=f"{figure}-{case}")
    if case == "empty":
        assert re.search(r"no (trajectories|runs)", text), "an empty figure says it is empty"


@pytest.mark.parametrize("case", ["empty", "all_diverged", "single_seed", "nan_heavy"])
def test_edge_and_timing_figures_draw_every_awkward_table(tmp_path, case) -> None:
    rows = {
        "empty": [],
        "all_diverged": [("sgd", s, np.nan, 1e-5, 0.180295, 0.180607) for s in (1, 2)],
        "single_seed": [("sgd", 1, 0.18059, 0.18061, 0.180295, 0.180607)],
        "nan_heavy": [("sgd", 1, np.nan, np.nan, np.nan, np.nan), ("nesterov", 1, 0.1224, 0.1225, np.nan, np.nan)],
    }[case]
    table = pd.DataFrame(
        [("tutorial", o, "full", "zeros", "float32", 2000, s, lo, hi, c, h, np.nan) for o, s, lo, hi, c, h in rows],
        columns=list(EDGE_COLUMNS),
    )
    text = draw(plots.edge, table, tmp_path=tmp_path, name=f"edge-{case}")
    if case == "all_diverged":
        assert "diverges already at lr_min" in text
    timing = pd.DataFrame(
        {
            "device": "cpu", "device_name": "Test CPU", "engine": "batched", "n": [3, 1000], "runs": 100,
            "epochs": 20, "threads": 1, "median_s_per_epoch": [1e-4, np.nan], "iqr_s_per_epoch": np.nan,
            "repeats": 5, "run_epochs_per_s": [1e6, np.nan],
        }
    )  # fmt: skip
    timing = {"empty": timing.iloc[:0], "all_diverged": timing, "single_seed": timing.iloc[:1]}.get(case, timing)
    draw(plots.timing, timing, tmp_path=tmp_path, name=f"timing-{case}")


# --------------------------------------------------------------------------------------------
# the learning-rate colour scale


def _distance(a, b) -> float:
    """Colour difference: the Euclidean distance of the sRGB components (0..1)."""
    return float(np.linalg.norm(np.subtract(a[:3], b[:3])))


def test_neighbouring_learning_rates_get_distinct_colours() -> None:
    """On the default grid's 11 lrs, 0.17, 0.18 and 0.19 (neighbours, a few percent apart) must
    differ as much as any other neighbours; with a log scale they would share one shade."""
    lrs = [0.0001, 0.001, 0.01, 0.05, 0.1, 0.15, 0.17, 0.18, 0.19, 0.25, 0.5]
    scale = style.lr_scale(lrs * 3)  # repeats (seeds) do not add steps
    assert scale.stepped and scale.lrs.size == 11
    colours = [scale.colour(lr) for lr in lrs]
    steps = [_distance(a, b) for a, b in itertools.pairwise(colours)]
    assert min(steps) > 0.12, steps
    log_scale = matplotlib.colors.LogNorm(1e-4, 0.5)
    assert abs(log_scale(0.19) - log_scale(0.17)) < 0.02  # what a log scale would have given them
    # Every colour reads on white (no pale yellow): relative luminance at most 0.66.
    assert max(0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2] for c in colours) <= 0.66


def test_many_learning_rates_get_a_continuous_log_colour_bar() -> None:
    """100 lrs: a colour bar of 100 labelled blocks is unreadable; the scale turns continuous
    in log(lr), and the colour bar becomes a log axis."""
    lrs = np.geomspace(1e-4, 0.5, 100)
    scale = style.lr_scale(lrs)
    assert not scale.stepped
    assert scale.position(float(np.sqrt(1e-4 * 0.5))) == pytest.approx(0.5)
    fig = Figure()
    ax = fig.subplots()
    bar = scale.colorbar(fig, [ax])
    assert isinstance(bar.norm, matplotlib.colors.LogNorm) and bar.ax.get_ylabel() == "learning rate"
    few = style.lr_scale(lrs[:11]).colorbar(fig, [ax])
    assert [t.get_text() for t in few.ax.get_yticklabels()] == [f"{v:g}" for v in lrs[:11]]


def test_convergence_and_divergence_colour_an_lr_alike(grid, tmp_path, monkeypatch) -> None:
    """The learning rate 0.18 is the same colour in the convergence lines and in the
    divergence figure's lr labels: both take it from style.lr_scale."""
    seen: list[style.LrScale] = []
    original = style.lr_scale

    def spy(values):
        seen.append(original(values))
        return seen[-1]

    monkeypatch.setattr(style, "lr_scale", spy)
    s = grid["summary"]
    draw(plots.convergence, grid["trajectories"], s, tmp_path=tmp_path, name="conv")
    draw(plots.divergence, s, grid["theory"], tmp_path=tmp_path, name="div")
    assert len(seen) == 2 and np.array_equal(seen[0].lrs, seen[1].lrs)


# --------------------------------------------------------------------------------------------
# convergence: the envelope


def test_envelope_is_the_largest_excess_from_each_epoch_on() -> None:
    """An oscillating run's line is the decay of its peaks (monotone); a diverging run's is its
    growth so far; NaN stays NaN; runs do not mix, whatever the row order."""
    code = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])
    epoch = np.array([0, 1, 2, 3, 4, 0, 1, 2, 3])
    cost = np.array([4.0, 1.0, 3.0, 0.5, 0.7, 1.0, 0.5, np.nan, 9.0])
    shuffle = np.array([8, 3, 0, 6, 1, 5, 2, 7, 4])
    got = reduction.envelope(code[shuffle], epoch[shuffle], cost[shuffle], np.array([False, True]))
    back = np.empty_like(got)
    back[shuffle] = got
    np.testing.assert_array_equal(back, [4.0, 3.0, 3.0, 0.7, 0.7, 1.0, 1.0, np.nan, 9.0])


def test_heavy_ball_lines_are_monotone_envelopes(grid) -> None:
    """Heavy ball's excess oscillates (it rises again after falling); the figure's lines do not:
    each converging line never rises, so lines no longer cross each other at every epoch."""
    s, traj = grid["summary"], grid["trajectories"]
    hb = s[(s["optimizer"] == "heavy_ball") & ~s["diverged"]]
    raw = reduction.aggregate_lines(traj[traj["run_id"].isin(hb["run_id"])], hb, 40)
    env = reduction.aggregate_lines(traj[traj["run_id"].isin(hb["run_id"])], hb, 40, upper_envelope=True)
    rises = [np.diff(agg.median[agg.start[i] : agg.start[i + 1]]).max() for agg in (raw, env) for i in range(3)]
    assert max(rises[:3]) > 0, "the heavy-ball excess oscillates"
    for i in range(len(env.lines)):
        assert (np.diff(env.median[env.start[i] : env.start[i + 1]]) <= 0).all()
        assert (env.median[env.start[i] : env.start[i + 1]] >= raw.median[raw.start[i] : raw.start[i + 1]]).all()


def test_convergence_legend_says_the_line_is_an_envelope(grid, tmp_path) -> None:
    text = draw(plots.convergence, grid["trajectories"], grid["summary"], tmp_path=tmp_path, name="env")
    assert "upper envelope of the excess" in text
    text = draw(
        lambda *a: plots.convergence(*a, upper_envelope=False), grid["trajectories"], grid["summary"],
        tmp_path=tmp_path, name="raw",
    )  # fmt: skip
    assert "upper envelope" not in text


def test_divergence_labels_measure_their_text() -> None:
    """Long labels ("0.2512 … 0.5") take more room than short ones: a label measured as drawn
    keeps the next one from printing over it."""
    with style.theme():
        fig, ax = convergence_axes()
        marks = [(e, (0, 0, 0, 1), lr) for e, lr in ((3, 0.5), (4, 0.3863), (5, 0.2512), (12, 0.2305), (25, 0.2115))]
        convergence_plot._divergence_labels(ax, marks, 1e3)
        fig.canvas.draw()
        boxes = [t.get_window_extent(renderer=fig.canvas.get_renderer()) for t in ax.texts]
    assert len(boxes) >= 2
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b), [t.get_text() for t in ax.texts]


# --------------------------------------------------------------------------------------------
# divergence around the edge


def test_divergence_is_drawn_against_lr_over_critical_lr(grid, tmp_path, monkeypatch) -> None:
    """Full-batch SGD-family panels put the critical lr at x = 1 on an axis stretched around it,
    so 0.17, 0.18 and 0.19 (ratios 0.94, 1.00, 1.05 on the lesson's data) lie far apart and the
    critical (0.180) and fastest (0.176) lines do not overlap; Adam, without a critical lr, gets
    its own panels against lr and says so."""
    axes: dict[str, object] = {}
    original = divergence_plot._divergence_facet

    def spy(ax, part, y_range, theory, scale):
        out = original(ax, part, y_range, theory, scale)
        axes[f"{part['dataset'].iloc[0]}/{part['optimizer'].iloc[0]}"] = (ax, theory)
        return out

    monkeypatch.setattr(divergence_plot, "_divergence_facet", spy)
    text = draw(plots.divergence, grid["summary"], grid["theory"], tmp_path=tmp_path, name="div")
    assert "learning rate / critical lr (axis stretched around 1)" in text
    assert "learning rate (no critical lr)" in text and "drawn against lr" in text
    ax, theory = axes["tutorial/sgd"]
    assert ax.get_xscale() == "function"
    to_px = ax.transData.transform
    crit, fast = theory.critical, theory.fastest
    px = {lr: to_px((lr / crit, 1.0))[0] for lr in (0.17, 0.18, 0.19)}
    assert px[0.18] - px[0.17] > 15 and px[0.19] - px[0.18] > 15, px  # 150 dpi pixels
    assert to_px((1.0, 1.0))[0] - to_px((fast / crit, 1.0))[0] > 8, "critical and fastest lines overlap"
    adam, _ = axes["tutorial/adam"]
    assert adam.get_xscale() == "log"


def test_divergence_top_axis_labels_are_grid_lrs_that_do_not_overlap(grid, tmp_path) -> None:
    """The top axis names real learning rates, each one of the summary's, and no two labels
    touch; numbers printed on the figure are numbers of a table."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    s = grid["summary"]
    many = pd.concat(
        [s.assign(lr=s["lr"] * f, run_id=s["run_id"] + k * len(s)) for k, f in enumerate(np.geomspace(0.8, 1.25, 15))],
        ignore_index=True,
    )  # 105 learning rates, many of them crowding the edge
    for name, table in (("default", s), ("many", many)):
        text = draw(plots.divergence, table, grid["theory"], tmp_path=tmp_path, name=f"top-{name}")
        grid_lrs = {f"{v:g}" for v in table["lr"]}
        numbers = [t for t in svg_texts(text) if re.fullmatch(r"\d+(\.\d+)?(e-\d+)?", t)]
        assert numbers, "no lr on the top axis"
        assert any(t in grid_lrs for t in numbers)
    # Overlap, measured on a drawn panel.
    with style.theme():
        fig = Figure(figsize=(5.2, 4.1), dpi=150, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.subplots()
        part = many[(many["dataset"] == "tutorial") & (many["optimizer"] == "sgd")].copy()
        part["plot_cost"] = pd.to_numeric(part["final_cost"]).astype(float) + 1e-12
        theory = divergence_plot._TheoryLines(0.18029485097507342, 0.17647058823529413)
        divergence_plot._divergence_facet(ax, part, (1e-16, 1e9), theory, style.lr_scale(part["lr"]))
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        for axis in fig.axes:
            labels = [t for t in axis.get_xticklabels() if t.get_text()]
            boxes = sorted((t.get_window_extent(renderer) for t in labels), key=lambda b: b.x0)
            assert len(boxes) >= 3
            for a, b in itertools.pairwise(boxes):
                assert a.x1 <= b.x0, [t.get_text() for t in labels]
        top_labels = {t.get_text() for t in fig.axes[-1].get_xticklabels()}
        assert top_labels <= {f"{v:g}" for v in part["lr"]}


def test_stretched_axis_is_its_own_inverse() -> None:
    r = np.array([1e-5, 0.01, 0.5, 0.9, 0.99, 1.0, 1.01, 1.1, 2.0, 100.0])
    np.testing.assert_allclose(divergence_plot._unstretch(divergence_plot._stretch(r)), r, rtol=1e-12)
    u = divergence_plot._stretch(r)
    assert (np.diff(u) > 0).all() and u[5] == 0


def test_minibatch_panels_are_drawn_against_lr(grid, tmp_path) -> None:
    """Minibatch runs are not bounded by the full-batch critical lr: their panel draws no
    critical line, is drawn against lr and says so, next to the full-batch panel at x = 1."""
    s = grid["summary"]
    s = s[s["optimizer"] == "sgd"]
    both = pd.concat(
        [s.assign(batch_size="full"), s.assign(batch_size="2", run_id=s["run_id"] + len(grid["summary"]))],
        ignore_index=True,
    )
    text = draw(plots.divergence, both, grid["theory"], tmp_path=tmp_path, name="minibatch")
    assert "minibatch: the full-batch bound does not apply; drawn against lr" in text
    assert "mean-square bound ms_critical_lr" not in text  # the summary gives these rows none
    assert "learning rate / critical lr" in text and "over the theory's critical learning rate" in text
    only = draw(plots.divergence, both[both["batch_size"] == "2"], grid["theory"], tmp_path=tmp_path, name="mb")
    assert "critical lr 2/λmax" not in only and "over the theory's critical" not in only


def test_minibatch_panel_draws_the_mean_square_bound(grid, tmp_path) -> None:
    """A minibatch panel with the summary's ms_critical_lr draws it as a line named with its
    value (three digits of the table's number); without one it draws and names none."""
    s = grid["summary"]
    mini = s[(s["optimizer"] == "sgd") & (s["dataset"] == "tutorial")].assign(batch_size="2", ms_critical_lr=0.0971234)
    text = draw(plots.divergence, mini, grid["theory"], tmp_path=tmp_path, name="ms")
    assert "mean-square bound ms_critical_lr = 0.0971" in text
    far = draw(plots.divergence, mini.assign(ms_critical_lr=5e-6), grid["theory"], tmp_path=tmp_path, name="far")
    assert "mean-square bound ms_critical_lr = 5.00e-06" in far  # outside the grid's lrs: the axis widens
