"""The figures drawn from the findings tables (time to target, the performance profile) and
the rate figure, on a real small grid and on the awkward inputs a grid can give: empty, every
run diverged, a single seed, NaN-heavy. Each draws a real image with warnings as errors, and
its legend lists only what it drew."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import convergence_axes, draw_figure, figure_tables

from gdbench import findings, plots

TOL = 1e-6


@pytest.fixture(scope="module")
def grid() -> dict[str, pd.DataFrame]:
    """Summary, theory and rate curve of the lesson's data: three optimizers x 6 lrs x 2 seeds."""
    return figure_tables(
        {
            "dataset": ["tutorial"],
            "optimizer": ["sgd", "heavy_ball", "nesterov"],
            "lr": [0.001, 0.01, 0.1, 0.17, 0.19, 0.5],
            "seed": [1, 2],
            "epochs": [400],
            "device": ["cpu"],
        }
    )


def all_diverged(s: pd.DataFrame) -> pd.DataFrame:
    return s.assign(diverged=True, converged_at=pd.array([pd.NA] * len(s), dtype="Int64"), rate=np.nan)


def nan_heavy(s: pd.DataFrame) -> pd.DataFrame:
    out = s.copy()
    every_other = np.arange(len(out)) % 2 == 0
    out.loc[every_other, "rate"] = np.nan
    out.loc[every_other, "predicted_rate"] = np.nan
    out.loc[np.arange(len(out)) % 3 == 0, "lr_ratio"] = np.nan
    out.loc[np.arange(len(out)) % 4 == 0, "converged_at"] = pd.NA
    return out


CASES = {
    "real": lambda s: s,
    "empty": lambda s: s.iloc[:0],
    "all_diverged": all_diverged,
    "single_seed": lambda s: s[s["seed"] == 1].reset_index(drop=True),
    "nan_heavy": nan_heavy,
}


draw = draw_figure


@pytest.mark.parametrize("case", list(CASES))
def test_time_to_target_draws_every_case(grid, tmp_path, case) -> None:
    s = CASES[case](grid["summary"])
    target = findings.time_to_target(s, TOL)
    found = findings.findings_table(s, None, grid["theory"], TOL)
    text = draw(plots.time_to_target, target, found, tmp_path=tmp_path, name=f"ttt-{case}")
    if case == "empty":
        assert "no runs to draw" in text
        return
    assert "learning rate" in text and "dataset = tutorial" in text
    converged = bool((target["converged"] > 0).any())
    assert ("sgd: measured" in text) == bool((target[target.optimizer == "sgd"]["converged"] > 0).any())
    assert ("best lr (findings.csv)" in text) == bool(found["best_lr"].notna().any())
    assert ("diverged (some seed)" in text) == bool((target["diverged"] > 0).any())
    if not converged:
        assert "no run converged" in text
    if case == "real":
        assert "sgd: theory" in text and "not converged within its epochs" in text


@pytest.mark.parametrize("case", list(CASES))
def test_performance_profile_draws_every_case(grid, tmp_path, case) -> None:
    s = CASES[case](grid["summary"])
    text = draw(plots.profile, findings.performance_profile(s), tmp_path=tmp_path, name=f"profile-{case}")
    if case == "empty":
        assert "no runs to compare" in text
    elif case == "all_diverged":
        assert text.count("did not converge at any lr") == 3  # one dataset: ranked bars
    else:
        assert "ranked by epochs" in text  # one dataset: one problem per seed


def test_performance_profile_of_two_datasets_is_a_curve_per_optimizer(grid, tmp_path) -> None:
    s = grid["summary"]
    two = pd.concat([s, s.assign(dataset="other", run_id=s["run_id"] + len(s))], ignore_index=True)
    text = draw(plots.profile, findings.performance_profile(two), tmp_path=tmp_path, name="profile-two")
    assert "performance profile" in text
    for name in ("sgd", "heavy_ball", "nesterov"):
        assert f"{name} (4 of 4 problems solved)" in text, name


@pytest.mark.parametrize("case", list(CASES))
def test_rate_draws_every_case(grid, tmp_path, case) -> None:
    s = CASES[case](grid["summary"])
    text = draw(plots.rate, s, grid["curve"], grid["theory"], tmp_path=tmp_path, name=f"rate-{case}")
    if case == "empty":
        assert "no runs to draw" in text
        return
    assert "epochs per decade" in text and "learning rate / critical learning rate" in text
    rate = pd.to_numeric(s["rate"], errors="coerce")
    has_rate = bool((rate < 1).any())
    assert ("measured rate &lt; 1" in text or "measured rate < 1" in text) == has_rate
    assert ("measured growth" in text) == bool((rate > 1).any())  # a diverged run's growth per epoch
    assert "predicted, max over λ &gt; 0" in text or "predicted, max over λ > 0" in text
    if not np.isfinite(rate).any():
        assert "no measured rate" in text


def test_rate_draws_measured_growth_of_diverged_runs(grid, tmp_path) -> None:
    """Where the summary gives a diverged run its growth per epoch (rate > 1), it is drawn as an
    open marker and named in the legend."""
    s = grid["summary"].copy()
    assert (s.loc[s["diverged"], "rate"].dropna() > 1).all()  # the analysis layer fills them
    grow = s["diverged"] & s["predicted_rate"].notna()
    s.loc[grow, "rate"] = s.loc[grow, "predicted_rate"]
    text = draw(plots.rate, s, grid["curve"], grid["theory"], tmp_path=tmp_path, name="rate-growth")
    assert "sgd: measured growth" in text


def test_epochs_per_decade_separates_rates_a_thousandth_apart() -> None:
    from gdbench.plots.rate_plot import epochs_per_decade

    y = epochs_per_decade(np.array([0.999, 0.998, 1.0, 1.227, np.nan, 0.0]))
    assert y[0] == pytest.approx(2301.4, abs=0.1) and y[1] == pytest.approx(1150.1, abs=0.1)
    assert np.isnan(y[2]) and y[3] == pytest.approx(np.log(10) / np.log(1.227)) and np.isnan(y[4:]).all()


def test_plot_modules_read_tables_only() -> None:
    """No figure module calls the theory or stability functions, and the plots job never
    reads the config: what a figure draws is in a table."""
    root = Path(__file__).resolve().parents[1]
    for path in (root / "src" / "gdbench" / "plots").glob("*.py"):
        text = path.read_text()
        for banned in ("gdbench.stability", "gdbench import stability", "gdbench.theory", "gdbench.optimizers"):
            assert banned not in text, f"{path.name} imports {banned}"
    assert "snakemake.config" not in (root / "workflow" / "scripts" / "plots.py").read_text()


EDGE_CASES = {
    "empty": [],
    "single_seed": [("sgd", 1, 0.18059, 0.18061, 0.180295, 0.180607)],
    "nan_heavy": [
        ("sgd", 1, 0.18059, 0.18061, 0.180295, np.nan),
        ("sgd", 2, np.nan, 1e-5, 0.180295, np.nan),  # diverged already at lr_min
        ("adam", 1, 100.0, np.nan, np.nan, np.nan),  # no divergence up to lr_max, no theory
    ],
}


@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_figure_draws_ratios_to_the_critical_lr(tmp_path, case) -> None:
    """The edge figure on an axis of lr / critical_lr around 1, the ratio written beside the
    located edge (the findings' edge_ratio), an optimizer without theory named on its tick."""
    from gdbench.edge import EDGE_COLUMNS

    rows = [
        ("tutorial", o, "full", "zeros", "float32", 2000, s, lo, hi, c, h, np.nan)
        for o, s, lo, hi, c, h in EDGE_CASES[case]
    ]
    table = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
    text = draw(plots.edge, table, tmp_path=tmp_path, name=f"edge-{case}")
    if case == "empty":
        assert "no edge searched" in text
        return
    assert "learning rate / critical_lr" in text and f"{0.18061 / 0.180295:.5g}" in text
    assert "located 0.18" not in text  # no stacked numbers of no table
    if case == "nan_heavy":
        assert "no critical lr: no divergence up to lr_max" in text and "diverges already at lr_min" in text
        assert "horizon_edge" not in text  # not drawn: not in the legend


def test_divergence_labels_never_overlap() -> None:
    """Learning rates diverging at neighbouring epochs share one label above the panel
    instead of printing over each other (as Nesterov's did: 0.15 ... 0.5 within 10 epochs)."""
    from gdbench.plots.convergence_plot import _divergence_labels

    fig, ax = convergence_axes()
    marks = [(e, (0, 0, 0, 1), lr) for e, lr in ((3, 0.5), (4, 0.25), (5, 0.19), (6, 0.18), (7, 0.17), (1500, 0.15))]
    _divergence_labels(ax, marks, 1e3)
    texts = [t.get_text() for t in ax.texts]
    assert texts[-1] == "0.15" and len(texts) < 6, texts
    fig.canvas.draw()
    boxes = [t.get_window_extent(renderer=fig.canvas.get_renderer()) for t in ax.texts]
    for a, b in itertools.pairwise(boxes):
        assert not a.overlaps(b), texts


@pytest.mark.parametrize("datasets", [["tutorial"], ["tutorial", "noisy"]])
def test_time_to_target_legend_fits_its_figure(grid, tmp_path, monkeypatch, datasets) -> None:
    """Every legend entry lies inside the figure, one facet wide or two: three columns of its
    labels overflow the 7.5-inch figure of one dataset and cut off both outer labels."""
    from gdbench.plots import style

    s = grid["summary"]
    s = pd.concat([s.assign(dataset=d) for d in datasets], ignore_index=True)
    target, found = findings.time_to_target(s, TOL), findings.findings_table(s, None, grid["theory"], TOL)
    drawn = []
    real_save = style.save
    monkeypatch.setattr(style, "save", lambda fig, *a: drawn.append(fig) or real_save(fig, *a))
    draw(plots.time_to_target, target, found, tmp_path=tmp_path, name="ttt-legend")
    (fig,) = drawn
    box, page = fig.legends[0].get_window_extent(), fig.bbox  # as last laid out, when saved
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0, (box, page)
