"""Datasets: where the (x, y) points of a regression come from.

Three kinds, as written in a config's ``datasets:`` mapping:

* inline points: ``{x: [1, 2, 3], y: [2, 4, 6]}`` (the lesson's data, :func:`gdbench.lesson.tutorial`);
* a CSV file: ``{csv: data/points.csv, x: hours, y: score}``;
* a seeded synthetic line: ``{synthetic: {n: 64, slope: 2.0, intercept: 0.5, noise: 0.5,
  x_min: 0.0, x_max: 3.0}}``. Its x values are evenly spaced (so the cost's curvature, and with
  it the critical learning rate, is the same for every seed); the run's seed draws the noise
  through a ``torch.Generator`` of its own.

Every problem with a dataset raises :class:`DatasetError`, whose message names the dataset.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gdbench.schema_defaults import schema_root

if TYPE_CHECKING:  # torch is imported where it is used: config checks stay fast
    import torch


#: The ``$defs`` of the config's schema: dataset names and the synthetic line's defaults are
#: written there alone.
_DEFS = schema_root()["$defs"]

#: Dataset names must be safe in file names, wildcards and shells (the schema's ``$defs/name``).
NAME_PATTERN = re.compile(_DEFS["name"]["pattern"])

#: The synthetic line's optional parameters and their defaults (the schema's).
SYNTHETIC_DEFAULTS: dict[str, float] = {
    key: float(sub["default"])
    for key, sub in _DEFS["synthetic_dataset"]["properties"]["synthetic"]["properties"].items()
    if "default" in sub
}


class DatasetError(ValueError):
    """A dataset cannot be built; the message names the dataset and the fix.

    When one key of the dataset's entry is at fault, ``key`` is its path inside the entry
    (``("synthetic", "x_max")``), ``value`` its value and ``problem`` what is wrong with it, so
    that :func:`gdbench.config.check_config` can name the config key.
    """

    def __init__(self, message: str, key: tuple[str, ...] = (), value: Any = None, problem: str = "") -> None:
        super().__init__(message)
        self.key, self.value, self.problem = key, value, problem


def _key_error(name: str, key: tuple[str, ...], value: Any, problem: str) -> DatasetError:
    return DatasetError(f"dataset {name!r}: {' '.join(key)} {problem}", key, value, problem)


@dataclass(frozen=True)
class Dataset:
    """Concrete points of one dataset (float64 numpy arrays of equal length >= 1)."""

    name: str
    x: np.ndarray
    y: np.ndarray

    @property
    def n(self) -> int:
        return int(self.x.shape[0])

    def tensors(
        self, dtype: torch.dtype | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The points as the lesson shapes them: two ``[n, 1]`` tensors (float32 default)."""
        import torch

        dtype = dtype or torch.float32
        x = torch.tensor(self.x, dtype=dtype, device=device).reshape(-1, 1)
        y = torch.tensor(self.y, dtype=dtype, device=device).reshape(-1, 1)
        return x, y


@dataclass(frozen=True)
class DatasetSpec:
    """How to build a dataset: ``kind`` is ``inline``, ``csv`` or ``synthetic``."""

    name: str
    kind: str
    params: tuple[tuple[str, Any], ...]

    @property
    def seed_dependent(self) -> bool:
        """Whether different seeds give different points (synthetic noise)."""
        return self.kind == "synthetic" and float(dict(self.params)["noise"]) != 0.0

    def n_points(self, base_dir: str | Path = ".") -> int:
        """Number of points, without drawing any noise."""
        if self.kind == "synthetic":
            return int(dict(self.params)["n"])
        return self.build(seed=0, base_dir=base_dir).n

    def build(self, seed: int = 0, base_dir: str | Path = ".") -> Dataset:
        """Materialise the points; ``seed`` draws synthetic noise."""
        p = dict(self.params)
        if self.kind == "inline":
            return _checked(self.name, p["x"], p["y"])
        if self.kind == "csv":
            return _read_csv(self.name, Path(base_dir) / p["csv"], p["x"], p["y"])
        return _synthetic(self.name, seed, p)


def parse_dataset(name: str, raw: Any) -> DatasetSpec:
    """Turn one entry of a config's ``datasets:`` mapping into a :class:`DatasetSpec`."""
    where = f"dataset {name!r}"
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise DatasetError(
            f"{where}: name must start with a letter and hold only letters, digits, '_' or '-' (at most 64 characters)"
        )
    if not isinstance(raw, Mapping):
        raise DatasetError(
            f"{where}: expected a mapping such as {{x: [1, 2], y: [2, 4]}}, "
            f"{{csv: FILE, x: COLUMN, y: COLUMN}} or {{synthetic: {{n: 64}}}}, got {raw!r}"
        )
    keys = set(raw)
    if "synthetic" in keys:
        _only(where, keys, {"synthetic"})
        syn = raw["synthetic"]
        if not isinstance(syn, Mapping):
            raise DatasetError(f"{where}: 'synthetic' must be a mapping with at least n")
        unknown = set(syn) - set(SYNTHETIC_DEFAULTS) - {"n"}
        if unknown:
            allowed = ", ".join(["n", *SYNTHETIC_DEFAULTS])
            raise DatasetError(f"{where}: unknown synthetic key(s) {sorted(unknown)}; allowed: {allowed}")
        if "n" not in syn:
            raise DatasetError(f"{where}: synthetic needs n, the number of points (n >= 1)")
        params = {**SYNTHETIC_DEFAULTS, **dict(syn)}
        n = params["n"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise DatasetError(f"{where}: synthetic n must be an integer >= 1, got {n!r}")
        for key in SYNTHETIC_DEFAULTS:
            params[key] = _number(where, f"synthetic {key}", params[key])
        if params["noise"] < 0:
            raise DatasetError(f"{where}: synthetic noise must be >= 0, got {params['noise']!r}")
        if params["x_max"] < params["x_min"]:
            x_min = syn.get("x_min", SYNTHETIC_DEFAULTS["x_min"])
            raise _key_error(name, ("synthetic", "x_max"), syn["x_max"], f"must be >= x_min ({x_min!r})")
        return DatasetSpec(name, "synthetic", tuple(sorted(params.items())))
    if "csv" in keys:
        _only(where, keys, {"csv", "x", "y"})
        for key in ("x", "y"):
            if not isinstance(raw.get(key), str) or not raw.get(key):
                raise DatasetError(f"{where}: csv datasets need '{key}: COLUMN', the name of the {key} column")
        if not isinstance(raw["csv"], str) or not raw["csv"]:
            raise DatasetError(f"{where}: 'csv' must be a file path")
        return DatasetSpec(name, "csv", (("csv", raw["csv"]), ("x", raw["x"]), ("y", raw["y"])))
    if keys >= {"x", "y"}:
        _only(where, keys, {"x", "y"})
        ds = _checked(name, raw["x"], raw["y"])
        return DatasetSpec(name, "inline", (("x", tuple(ds.x.tolist())), ("y", tuple(ds.y.tolist()))))
    raise DatasetError(
        f"{where}: give inline points {{x: [...], y: [...]}}, a CSV file {{csv: FILE, x: COLUMN, "
        f"y: COLUMN}} or {{synthetic: {{n: ...}}}}; got keys {sorted(keys)}"
    )


def load_dataset(name: str, raw: Any, seed: int = 0, base_dir: str | Path = ".") -> Dataset:
    """Parse and build in one step."""
    return parse_dataset(name, raw).build(seed=seed, base_dir=base_dir)


def _only(where: str, keys: set, allowed: set) -> None:
    extra = keys - allowed
    if extra:
        raise DatasetError(f"{where}: unexpected key(s) {sorted(extra)}; allowed here: {sorted(allowed)}")


def _number(where: str, what: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetError(f"{where}: {what} must be a finite number, got {value!r}")
    return float(value)


def _checked(name: str, xs: Any, ys: Any) -> Dataset:
    where = f"dataset {name!r}"
    for label, values in (("x", xs), ("y", ys)):
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            raise DatasetError(f"{where}: {label} must be a list of numbers, got {values!r}")
    if len(xs) == 0 or len(ys) == 0:
        raise DatasetError(f"{where}: x and y must not be empty")
    if len(xs) != len(ys):
        raise DatasetError(
            f"{where}: x has {len(xs)} values but y has {len(ys)}; they must pair up",
            ("y",),
            ys,
            f"has {len(ys)} values but x has {len(xs)}; x and y must pair up",
        )
    arrays = []
    for label, values in (("x", xs), ("y", ys)):
        out = np.empty(len(values), dtype=np.float64)
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
                raise DatasetError(f"{where}: {label}[{i}] = {v!r} is not a number")
            if not math.isfinite(float(v)):
                raise DatasetError(f"{where}: {label}[{i}] = {v!r} is not finite")
            out[i] = float(v)
        arrays.append(out)
    return Dataset(name, arrays[0], arrays[1])


def _read_csv(name: str, path: Path, xcol: str, ycol: str) -> Dataset:
    where = f"dataset {name!r}"
    if not path.is_file():
        raise DatasetError(f"{where}: CSV file {str(path)!r} not found; check the 'csv' path")
    with path.open(newline="", encoding="utf-8-sig") as fh:  # a BOM (spreadsheet exports) is not a name
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        for col in (xcol, ycol):
            if col not in columns:
                raise DatasetError(f"{where}: column {col!r} not in {str(path)!r} (columns: {', '.join(columns)})")
        xs: list[float] = []
        ys: list[float] = []
        for line, row in enumerate(reader, start=2):
            for col, dest in ((xcol, xs), (ycol, ys)):
                text = (row.get(col) or "").strip()
                try:
                    value = float(text)
                except ValueError:
                    raise DatasetError(
                        f"{where}: {str(path)!r} line {line}, column {col!r}: {text!r} is not a number"
                    ) from None
                if not math.isfinite(value):
                    raise DatasetError(f"{where}: {str(path)!r} line {line}, column {col!r}: {text!r} is not finite")
                dest.append(value)
    if not xs:
        raise DatasetError(f"{where}: {str(path)!r} has no data rows")
    return Dataset(name, np.array(xs), np.array(ys))


def _synthetic(name: str, seed: int, p: Mapping[str, Any]) -> Dataset:
    import torch

    n = int(p["n"])
    x = torch.linspace(float(p["x_min"]), float(p["x_max"]), n, dtype=torch.float64)
    generator = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(n, generator=generator, dtype=torch.float64) * float(p["noise"])
    y = float(p["slope"]) * x + float(p["intercept"]) + noise
    return Dataset(name, x.numpy().copy(), y.numpy().copy())
