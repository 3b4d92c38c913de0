"""What the config's JSON Schema cannot say, checked on a config with its defaults filled in:
the grid's datasets and optimizers are defined, parse and build (CSV files and columns exist),
torch would accept each optimizer, integer batch sizes are minibatches, every dataset's initial
cost is finite, the grid makes a sane number of jobs, the edge search has a range.
"""

from __future__ import annotations

import csv
import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdbench.config.messages import ConfigError, as_yaml, format_path, format_value
from gdbench.data import DatasetError, parse_dataset
from gdbench.optimizers import OptimizerError, parse_optimizer
from gdbench.runs import as_list, batch_size_value, shard_count

__all__ = ["MAX_TRAINING_JOBS", "check_semantics"]

#: At most this many training jobs (all devices together); more means tiny jobs that each
#: pay ~1.5 s of start-up (``import torch``) for little work.
MAX_TRAINING_JOBS = 1000


def check_semantics(
    config: Mapping[str, Any],
    base_dir: Path,
    *,
    grid_dataset_given: bool,
    grid_optimizer_given: bool,
    timing_optimizers_given: bool,
) -> None:
    """Every check beyond the schema, in order; the first problem raises :class:`ConfigError`.
    The ``*_given`` flags say whether the user wrote the list (else its default is named)."""
    check_datasets(config, base_dir, grid_dataset_given)
    check_optimizers(config, grid_optimizer_given, timing_optimizers_given)
    check_batch_sizes(config, base_dir)
    check_initial_costs(config, base_dir)
    check_job_count(config)
    check_edge(config)


def check_datasets(config: Mapping[str, Any], base_dir: Path, grid_dataset_given: bool) -> None:
    datasets = config["datasets"]
    # The schema checked each dataset's shape; gdbench.data checks what relates its values
    # (x and y pair up, x_min <= x_max), for configs and for datasets built in code alike.
    for name, raw in datasets.items():
        try:
            parse_dataset(name, raw)
        except DatasetError as exc:
            if exc.key:
                raise ConfigError(exc.problem, ("datasets", name, *exc.key), exc.value) from None
            raise ConfigError(_strip_dataset(exc, name), ("datasets", name), raw) from None
    _check_names(config, ("grid", "dataset"), "datasets", grid_dataset_given)
    for name in config["grid"]["dataset"]:
        raw = datasets[name]
        if "csv" in raw:
            _check_csv(name, raw, base_dir)
        if "synthetic" in raw:
            continue  # parsing checked it; building only draws numbers
        try:
            parse_dataset(name, raw).build(seed=0, base_dir=base_dir)
        except DatasetError as exc:
            if "csv" in raw:  # a problem inside the file: name the file, not the whole mapping
                problem = _strip_dataset(exc, name).removeprefix(f"{str(base_dir / raw['csv'])!r} ")
                raise ConfigError(problem, ("datasets", name, "csv"), raw["csv"]) from None
            raise ConfigError(_strip_dataset(exc, name), ("datasets", name), raw) from None


def check_optimizers(config: Mapping[str, Any], grid_optimizer_given: bool, timing_optimizers_given: bool) -> None:
    optimizers = config["optimizers"]
    for name, raw in optimizers.items():
        ((kind, args),) = raw.items()
        if kind == "sgd" and args.get("nesterov") and (args["momentum"] <= 0 or args["dampening"] != 0):
            why, fix = ("momentum > 0", "momentum: 0.9") if args["momentum"] <= 0 else ("dampening 0", "dampening: 0")
            raise ConfigError(
                f"nesterov needs {why} (torch.optim.SGD refuses it otherwise); set {fix}, or nesterov: false",
                ("optimizers", name, kind, "nesterov"),
                True,
            )
        try:
            parse_optimizer(name, raw)
        except OptimizerError as exc:
            raise ConfigError(str(exc).removeprefix(f"optimizer {name!r}: "), ("optimizers", name), raw) from None
    _check_names(config, ("grid", "optimizer"), "optimizers", grid_optimizer_given)
    if not timing_optimizers_given:  # the default names that optimizers defines (else the grid's first)
        timing = config["timing"]
        timing["optimizers"] = [name for name in timing["optimizers"] if name in optimizers] or [
            config["grid"]["optimizer"][0]
        ]
    elif config["timing"]["enabled"]:
        _check_names(config, ("timing", "optimizers"), "optimizers", True)


def _check_names(config: Mapping[str, Any], key: tuple[str, str], section: str, given: bool) -> None:
    """Every name in the list at ``key`` (e.g. ``grid.dataset``) is defined in ``<section>``;
    else one line with "did you mean"."""
    defined = config[section]
    what = section.removesuffix("s")
    for i, name in enumerate(config[key[0]][key[1]]):
        if name not in defined:
            close = difflib.get_close_matches(name, list(defined), n=1, cutoff=0.7)
            hint = f"; did you mean {as_yaml(close[0])}?" if close else ""
            problem = f"no such {what}{hint} (defined in {section}: {', '.join(defined) or 'none'})"
            if not given:
                problem += f"; {format_path(key)} was not given and defaults to the default {section}: set it"
            raise ConfigError(problem, (*key, i), name)


def _check_csv(name: str, raw: Mapping[str, Any], base_dir: Path) -> None:
    path = base_dir / raw["csv"]
    if not path.is_file():
        raise ConfigError(
            f"file not found (looked for {path.resolve()}; csv paths are relative to the working directory)",
            ("datasets", name, "csv"),
            raw["csv"],
        )
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            header = fh.readline()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the file ({exc})", ("datasets", name, "csv"), raw["csv"]) from None
    columns = next(csv.reader([header]), [])
    for axis in ("x", "y"):
        if raw[axis] not in columns:
            close = difflib.get_close_matches(raw[axis], columns, n=1, cutoff=0.7)
            hint = f"did you mean {as_yaml(close[0])}? " if close else ""
            raise ConfigError(
                f"no such column in {raw['csv']}; {hint}(columns: {', '.join(columns) or 'none'})",
                ("datasets", name, axis),
                raw[axis],
            )


def _strip_dataset(exc: DatasetError, name: str) -> str:
    text = str(exc)
    prefix = f"dataset {name!r}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def check_batch_sizes(config: Mapping[str, Any], base_dir: Path) -> None:
    """An integer batch size must be smaller than some dataset of the grid; else every run
    with it is full-batch gradient descent under another name."""
    sizes = as_list(config["training"]["batch_size"])
    if all(batch_size_value(v) is None for v in sizes):
        return
    datasets = config["datasets"]
    largest = max(parse_dataset(n, datasets[n]).n_points(base_dir) for n in config["grid"]["dataset"])
    is_list = isinstance(config["training"]["batch_size"], list)
    for i, value in enumerate(sizes):
        bs = batch_size_value(value)
        if bs is not None and bs >= largest:
            path: list[str | int] = ["training", "batch_size", *([i] if is_list else [])]
            raise ConfigError(
                f"not smaller than any dataset of the grid (the largest has {largest} points), so every "
                f"run would be full batch; use an integer < {largest} or full",
                path,
                value,
            )


def check_initial_costs(config: Mapping[str, Any], base_dir: Path) -> None:
    """A dataset whose cost at W = b = 0 (the zeros init's epoch 0: ``mean(y^2)``) is not finite
    in a dtype of the grid cannot be trained: its points overflow when squared. Computed as the
    engines do, in that dtype. (A start drawn by the normal init is torch's to draw: the
    training job checks each run's own initial cost, with the same one-line error.)"""
    import numpy as np

    dtypes = as_list(config["training"]["dtype"])
    for name in dict.fromkeys(config["grid"]["dataset"]):
        raw = config["datasets"][name]
        if "synthetic" in raw:
            continue
        data = parse_dataset(name, raw).build(seed=0, base_dir=base_dir)
        for dtype in dtypes:
            x, y = data.x.astype(dtype), data.y.astype(dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                d = x * x.dtype.type(0) - y
                cost = np.mean(d * d, dtype=dtype)
            if not np.isfinite(cost):
                raise ConfigError(
                    f"its initial cost (zeros init) is {cost} in {dtype}: the points overflow {dtype} when "
                    "squared; scale them down or use training.dtype float64",
                    ("datasets", name),
                )


def check_job_count(config: Mapping[str, Any]) -> None:
    grid, training, sharding = config["grid"], config["training"], config["sharding"]
    runs = math.prod(len(grid[k]) for k in ("dataset", "optimizer", "lr", "seed", "epochs"))
    runs *= math.prod(len(as_list(training[k])) for k in ("init", "batch_size", "dtype", "engine"))
    devices = 1 if grid["device"] == "auto" else len(grid["device"])
    jobs_per_device, max_runs = sharding["jobs_per_device"], sharding["max_runs_per_job"]
    jobs = devices * shard_count(runs, jobs_per_device, max_runs, sharding["min_runs_per_job"])
    if jobs > MAX_TRAINING_JOBS:
        if jobs_per_device >= math.ceil(runs / max_runs):
            key, value = "jobs_per_device", jobs_per_device
        else:
            key, value = "max_runs_per_job", max_runs
        raise ConfigError(
            f"makes {jobs} training jobs for {runs} runs per device (at most {MAX_TRAINING_JOBS}; each job "
            f"pays ~1.5 s of start-up); raise max_runs_per_job or lower jobs_per_device",
            ("sharding", key),
            value,
        )


def check_edge(config: Mapping[str, Any]) -> None:
    """The edge search needs a range: lr_min below lr_max."""
    edge = config["edge"]
    if edge["lr_min"] >= edge["lr_max"]:
        raise ConfigError(
            f"must be below edge.lr_max ({format_value(edge['lr_max'])}): the edge is searched in [lr_min, lr_max]",
            ("edge", "lr_min"),
            edge["lr_min"],
        )
