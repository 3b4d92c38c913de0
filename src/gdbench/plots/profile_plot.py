"""The optimizers compared: a performance profile (Dolan–Moré, as AlgoPerf ranks optimizers)
from the findings job's ``profile.csv``. A problem is one dataset x seed x the other non-lr
axes; an optimizer's time on it is its best lr's epochs to converge; the curve at ``tau`` is
the fraction of problems it solved within ``tau`` x the fewest epochs any optimizer needed
(never converged: never counted). With one problem per seed of a single dataset (and axes)
the figure is a ranked bar chart instead: each optimizer's epochs at its best lr, median over
seeds with their range."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from gdbench.findings import PROBLEM, solved_fraction
from gdbench.plots import style

__all__ = ["profile"]

#: The profile's tau axis ends at least here (AlgoPerf and Dolan–Moré read up to ~10).
TAU_MAX = 10.0


def profile(table: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike | None) -> None:
    """The performance profile (several problem groups) or ranked bars (one), see the module."""
    table = table.copy()
    for col in ("ratio", "epochs_to_target", "best_lr"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float) if col in table else np.nan
    table["optimizer"] = table["optimizer"].astype(str) if "optimizer" in table else "sgd"
    with style.theme():
        fig = Figure(figsize=(7.8, 4.8), layout="constrained")
        ax = fig.subplots()
        groups = [c for c in PROBLEM if c != "seed" and c in table]
        if table.empty:
            ax.set(xlabel="τ (epochs / the best optimizer's epochs)", ylabel="fraction of problems solved")
            style.empty_note(ax, "no runs to compare")
            ax.set_title("Optimizers compared")
        elif table[groups].astype(str).drop_duplicates().shape[0] == 1:
            _bars(ax, table)
        else:
            _curves(ax, table)
        style.save(fig, out_png, out_svg)


def _curves(ax, table: pd.DataFrame) -> None:
    names = list(dict.fromkeys(table["optimizer"]))
    styles = style.optimizer_styles(names)
    finite = table["ratio"][np.isfinite(table["ratio"])]
    tau_max = max(TAU_MAX, float(finite.max()) * 1.2) if len(finite) else TAU_MAX
    taus = np.unique(np.concatenate([[1.0, tau_max], finite.to_numpy()]))
    curve = solved_fraction(table, taus)
    handles = []
    for name in names:
        c = curve[curve["optimizer"] == name]
        s = styles[name]
        ax.step(c["tau"], c["fraction"], where="post", color=s.colour, lw=1.8, dashes=s.dashes, zorder=3)
        solved = int(c["solved"].iloc[-1])
        label = f"{name} ({solved} of {int(c['problems'].iloc[0])} problems solved)"
        handles.append(Line2D([], [], color=s.colour, dashes=s.dashes, lw=1.8, label=label))
    ax.set_xlim(1.0, tau_max)  # linear: tau < 1 means nothing, and AlgoPerf reads 1..4 linearly
    ax.set_ylim(-0.03, 1.05)
    ax.set(
        xlabel="τ (epochs / the best optimizer's epochs on the problem)", ylabel="fraction of problems solved within τ"
    )
    ax.set_title(
        "Optimizers compared: performance profile over the grid's problems (higher and further left is better)"
    )
    ax.legend(handles=handles, loc="lower right", fontsize="small")


def _bars(ax, table: pd.DataFrame) -> None:
    """One problem group: each optimizer's best-lr epochs, median over seeds (bars: range)."""
    stats = table.groupby("optimizer", sort=False)["epochs_to_target"].agg(["median", "min", "max", "count", "size"])
    stats = stats.sort_values("median", na_position="last", kind="stable")
    styles = style.optimizer_styles(list(dict.fromkeys(table["optimizer"])))
    y = np.arange(len(stats))
    for i, (name, row) in enumerate(stats.iterrows()):
        s = styles[str(name)]
        if np.isfinite(row["median"]):
            err = [[row["median"] - row["min"]], [row["max"] - row["median"]]]
            ax.barh(i, row["median"], color=s.colour, alpha=0.85, xerr=err, capsize=4, zorder=3)
        else:
            ax.text(
                0.01, i, "  did not converge at any lr", transform=ax.get_yaxis_transform(), va="center", color="0.3"
            )
    ax.set_yticks(y, [str(n) for n in stats.index])
    ax.invert_yaxis()
    ax.set(xlabel="epochs to converge at the optimizer's best lr (median over seeds; bars: range)", ylabel="optimizer")
    seeds = int(stats["size"].max()) if len(stats) else 0
    ax.set_title(f"Optimizers compared: one problem ({seeds} seed{'s' if seeds != 1 else ''}), ranked by epochs")
