"""The timing figure: seconds per epoch vs data size, batched throughput vs grid size, and
the optimizers compared, from the timing table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gdbench.plots import style
from gdbench.timing.results import crossover

__all__ = ["timing"]

_DEVICE_COLOURS = {"cpu": "#1f77b4", "cuda": "#2ca02c"}
_ENGINE_STYLE = {"loop": ("o", "-"), "batched": ("s", "--")}


def _fmt_int(x: float) -> str:
    return f"{x:,.0f}" if x >= 1 else f"{x:.2g}"


def _fmt_sig(x: float) -> str:
    """Two significant digits with thousands separators (215179 -> 220,000)."""
    if not np.isfinite(x) or x <= 0:
        return str(x)
    return _fmt_int(float(f"{x:.2g}"))


def timing(timing_df: pd.DataFrame, out_png: style.PathLike, out_svg: style.PathLike | None) -> None:
    """Two panels from the timing table (one row per measurement).

    Left: median seconds per epoch vs data size n on log-log axes, colour by device, marker and
    line style by engine, IQR error bars; batched rows use the smallest grid size measured
    (``runs``). Where both cpu and cuda were measured for an engine, the n where CUDA overtakes
    CPU (log-log interpolation) is marked with a vertical line and labelled. Right: batched
    throughput, run-epochs per second vs grid size, one line per device (and n). Rows with
    missing or non-positive medians (failed measurements) are skipped. The title names the
    machine (``device_name``) and CPU threads.

    With an ``optimizer`` column, these two panels show the first optimizer of the table
    (timed at every size) and a third panel compares the optimizers at n = 3: run-epochs per
    second of each (device, engine, grid size) measured for more than one optimizer.
    """
    df = timing_df.copy()
    for col in ("n", "runs", "threads", "median_s_per_epoch", "iqr_s_per_epoch", "run_epochs_per_s"):
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    for col in ("device", "engine"):
        df[col] = df[col].astype(str) if col in df.columns else "?"
    if "runs" not in df.columns:
        df["runs"] = 1.0
    ok = np.isfinite(df["median_s_per_epoch"]) & (df["median_s_per_epoch"] > 0) & np.isfinite(df["n"]) & (df["n"] > 0)
    devices = _device_order(df["device"])
    everything = df
    optimizers: list[str] = []
    if "optimizer" in df.columns:
        df["optimizer"] = df["optimizer"].astype(str)
        optimizers = list(dict.fromkeys(df["optimizer"]))
        first = df["optimizer"] == optimizers[0] if optimizers else np.ones(len(df), dtype=bool)
        df, ok = df[first], ok[first]
    good = df[ok]
    compare = len(optimizers) > 1
    with style.theme():
        fig = Figure(figsize=(18.0 if compare else 12.5, 5.0), layout="constrained")
        panels = fig.subplots(1, 3 if compare else 2)
        _timing_left(panels[0], good, devices)
        _timing_right(panels[1], df, devices)
        if compare:
            _timing_optimizers(panels[2], everything, devices, optimizers)
        title = _machine_title(everything, devices)
        if compare:
            title += f" — left and middle: optimizer {optimizers[0]}"
        fig.suptitle(title)
        style.save(fig, out_png, out_svg)


def _device_order(col: pd.Series) -> list[str]:
    seen = list(dict.fromkeys(col.astype(str)))
    return sorted(seen, key=lambda d: (not d.startswith("cpu"), d))


def _device_colour(device: str, devices: list[str]) -> str:
    base = device.split(":")[0]
    if base in _DEVICE_COLOURS and sum(d.split(":")[0] == base for d in devices) == 1:
        return _DEVICE_COLOURS[base]
    palette = sns.color_palette("colorblind", max(len(devices), 3)).as_hex()
    return palette[devices.index(device) % len(palette)]


def _timing_left(ax: Axes, good: pd.DataFrame, devices: list[str]) -> None:
    ax.set(xscale="log", yscale="log", xlabel="data points n", ylabel="seconds per epoch (median)")
    ax.set_title("time per epoch vs data size (batched: smallest grid)")
    if good.empty:
        style.empty_note(ax, "no successful measurements")
        return
    # Batched rows: the smallest grid size measured for each device/engine.
    smallest = good.groupby(["device", "engine"])["runs"].transform("min")
    rows = good[(good["runs"] == smallest) | good["runs"].isna()]
    curves: dict[tuple[str, str], pd.DataFrame] = {}
    for (device, engine), g in rows.groupby(["device", "engine"], sort=False):
        g = g.groupby("n", sort=True).agg(med=("median_s_per_epoch", "median"), iqr=("iqr_s_per_epoch", "median"))
        curves[(device, engine)] = g
        n, med = g.index.to_numpy(dtype=float), g["med"].to_numpy()
        iqr = g["iqr"].fillna(0).clip(lower=0).to_numpy()
        yerr = np.vstack([np.minimum(iqr / 2, med * 0.9), iqr / 2])
        marker, ls = _ENGINE_STYLE.get(engine, ("D", ":"))
        runs = rows[(rows["device"] == device) & (rows["engine"] == engine)]["runs"]
        label = f"{device}, {engine}" + (f" (runs={runs.min():.0f})" if engine != "loop" and runs.notna().any() else "")
        colour = _device_colour(device, devices)
        ax.errorbar(n, med, yerr=yerr, marker=marker, ls=ls, color=colour, ms=6, capsize=3, lw=1.6, label=label)
    # Crossovers: where the fastest CUDA curve first drops below CPU, per engine.
    cpu = [d for d in devices if d.startswith("cpu")]
    gpu = [d for d in devices if d.startswith("cuda")]
    notes = []
    for engine in dict.fromkeys(e for _, e in curves):
        if not cpu or not gpu or (cpu[0], engine) not in curves or (gpu[0], engine) not in curves:
            continue
        a, b = curves[(cpu[0], engine)]["med"], curves[(gpu[0], engine)]["med"]
        n_star, text = _crossover(a, b)
        if n_star is None:
            notes.append(f"crossover ({engine}): {text}")
            continue
        ls = _ENGINE_STYLE.get(engine, ("D", ":"))[1]
        ax.axvline(n_star, color="0.3", ls=ls, lw=1.1)
        ax.text(
            n_star, 0.97, f" crossover ({engine}): {text} ", rotation=90, transform=ax.get_xaxis_transform(),
            ha="right", va="top", fontsize="x-small", color="0.2",
            bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8},
        )  # fmt: skip
    if notes:
        ax.text(
            0.02,
            0.98,
            "\n".join(notes),
            transform=ax.transAxes,
            va="top",
            ha="left",
            fontsize="x-small",
            bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.8", "alpha": 0.9},
        )
    ax.legend(loc="lower right", fontsize="small")


def _crossover(cpu: pd.Series, gpu: pd.Series) -> tuple[float | None, str]:
    """Where ``gpu`` seconds (indexed by n) drop below ``cpu`` and stay below (see
    :func:`gdbench.timing.results.crossover`), or ``None``, and the words for the plot."""
    both = pd.concat({"cpu": cpu, "gpu": gpu}, axis=1).dropna()
    n = both.index.to_numpy(dtype=float)
    at, status = crossover(n, both["cpu"].to_numpy(), both["gpu"].to_numpy())
    if status == "unmeasured":
        return None, "no size n measured on both devices"
    if status == "never":
        return None, f"CUDA not faster up to n = {_fmt_int(n[-1])}"
    if status == "always":
        return None, f"CUDA faster already at n = {_fmt_int(n[0])}"
    assert at is not None  # status "crosses" comes with the crossing's n
    return at, f"CUDA faster from n ≈ {_fmt_sig(at)}"


def _timing_right(ax: Axes, df: pd.DataFrame, devices: list[str]) -> None:
    ax.set(xscale="log", yscale="log", xlabel="grid size (runs trained together)", ylabel="run-epochs per second")
    ax.set_title("batched throughput vs grid size")
    if "run_epochs_per_s" not in df.columns:
        style.empty_note(ax, "no throughput measured")
        return
    rows = df[(df["engine"] == "batched") & np.isfinite(df["run_epochs_per_s"]) & (df["run_epochs_per_s"] > 0)]
    rows = rows[np.isfinite(rows["runs"]) & (rows["runs"] > 0)]
    if rows.empty:
        style.empty_note(ax, "no batched throughput measured")
        return
    sizes = sorted(rows["n"].dropna().unique())
    styles = ["-", "--", ":", "-."]
    markers = ["s", "o", "^", "D", "v"]
    for device in devices:
        for j, n in enumerate(sizes):
            g = rows[(rows["device"] == device) & (rows["n"] == n)]
            if g.empty:
                continue
            g = g.groupby("runs", sort=True)["run_epochs_per_s"].median()
            ax.plot(
                g.index.to_numpy(dtype=float),
                g.to_numpy(),
                color=_device_colour(device, devices),
                ls=styles[j % len(styles)],
                marker=markers[j % len(markers)],
                ms=6,
                lw=1.6,
                label=f"{device}, n = {_fmt_int(n)}",
            )
    ax.legend(loc="best", fontsize="small", ncols=2 if len(sizes) * len(devices) > 6 else 1)


def _timing_optimizers(ax: Axes, df: pd.DataFrame, devices: list[str], optimizers: list[str]) -> None:
    """Run-epochs per second by optimizer at n = 3: one line per (device, engine, grid size)
    measured with more than one optimizer."""
    ax.set(yscale="log", xlabel="optimizer", ylabel="run-epochs per second (median)")
    ax.set_title("optimizers at n = 3 (the lesson's data)")
    rows = df[(df["n"] == 3) & np.isfinite(df["run_epochs_per_s"]) & (df["run_epochs_per_s"] > 0)]
    x = {name: i for i, name in enumerate(optimizers)}
    series = rows.groupby(["device", "engine", "runs"], sort=False)
    drawn = 0
    for (device, engine, runs), g in series:
        g = g.groupby("optimizer", sort=False)["run_epochs_per_s"].median()
        if len(g) < 2:
            continue
        order = sorted(g.index, key=lambda name: x.get(name, len(x)))
        marker, ls = _ENGINE_STYLE.get(engine, ("D", ":"))
        big = runs > 1
        ax.plot(
            [x[name] for name in order], g[order].to_numpy(), marker=marker, ls=ls, ms=7 if big else 6,
            mfc=_device_colour(device, devices) if big else "white", color=_device_colour(device, devices), lw=1.6,
            label=f"{device}, {engine}, {_fmt_int(runs)} run{'s' if runs != 1 else ''}",
        )  # fmt: skip
        drawn += 1
    ax.set_xticks(range(len(optimizers)), optimizers)
    ax.set_xlim(-0.5, len(optimizers) - 0.5)
    if drawn:
        ax.legend(loc="best", fontsize="small")
    else:
        style.empty_note(ax, "no optimizer measured twice at n = 3")


def _machine_title(df: pd.DataFrame, devices: list[str]) -> str:
    parts = []
    for device in devices:
        g = df[df["device"] == device]
        names = [str(v) for v in g.get("device_name", pd.Series(dtype=object)).dropna().unique() if str(v)]
        threads = g["threads"].dropna().unique() if "threads" in g.columns else []
        desc = ", ".join(names) or device
        if device.startswith("cpu") and len(threads):
            desc += f" ({'/'.join(f'{t:.0f}' for t in sorted(threads))} thread{'s' if max(threads) != 1 else ''})"
        share = pd.to_numeric(g.get("cpu_share", pd.Series(dtype=float)), errors="coerce").dropna()
        if device.startswith("cpu") and len(share):  # 1.00: nothing else took turns on the cores
            spread = f"-{share.max():.2f}" if share.max() > share.min() else ""
            desc += f", cpu share {share.min():.2f}{spread} of 1.00 undisturbed"
        parts.append(f"{device}: {desc}")
    return "Timing on " + ("; ".join(parts) if parts else "an unknown machine")
