"""Loading a config file, checking it (:func:`check_config`: text read as numbers, the JSON
Schema, defaults filled, then :mod:`gdbench.config.checks`) and naming it (:func:`config_hash`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema.exceptions import best_match

from gdbench.config.checks import check_semantics
from gdbench.config.messages import ConfigError, format_value, kind_of, schema_error
from gdbench.config.schema import coerce_text, fill_defaults, schema_root, validator

__all__ = ["check_config", "config_hash", "load_config"]


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML (or JSON) config file as a dict, unchecked; an empty file is ``{}``.

    Raises :class:`ConfigError` naming the file when it cannot be read, is not valid YAML or
    JSON, or does not hold a mapping of sections.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", where=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read it ({exc})", where=str(path)) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"not valid JSON: {exc}", where=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}{at}", where=str(path)) from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"the file holds {kind_of(data)} {format_value(data)}, not a mapping of sections (datasets:, grid:, ...)",
            where=str(path),
        )
    return dict(data)


def check_config(config: Mapping[str, Any], base_dir: str | Path = ".") -> dict[str, Any]:
    """Check a config and return a deep copy with every default filled in.

    Text that Snakemake hands over for numbers and booleans (nested ``--config`` values, a
    profile's ``config:``) is read as YAML would read it unquoted, where the schema wants a
    number or boolean (``"500"`` -> 500; ``"1e6"`` stays text and is refused). Then the JSON
    Schema (types, bounds, unknown keys, empty or repeated list values), then what the schema
    cannot express: every ``grid.dataset`` is defined in ``datasets``; every dataset parses;
    each one the grid uses builds (CSV files are read relative to ``base_dir``, their columns
    must exist, x and y must pair up); every ``grid.optimizer`` is defined in ``optimizers``
    and torch would accept it (nesterov needs momentum and no dampening); integer batch
    sizes are smaller than some dataset the grid uses; the grid does not make more than
    ``MAX_TRAINING_JOBS`` training jobs. Raises :class:`ConfigError` on the first problem.
    """
    if not isinstance(config, Mapping):
        raise ConfigError(
            "must be a mapping of sections such as datasets:, grid:, training:", path=(), value=config, where="config"
        )
    checked = plain(config)
    coerce_text(checked, schema_root(), schema_root())
    grid = checked.get("grid")
    grid_dataset_given = isinstance(grid, Mapping) and "dataset" in grid
    grid_optimizer_given = isinstance(grid, Mapping) and "optimizer" in grid
    timing = checked.get("timing")
    timing_optimizers_given = isinstance(timing, Mapping) and "optimizers" in timing
    # Validate what the user wrote (so messages show their values), then again with the
    # defaults filled in (they are valid by construction; this keeps it so).
    for _ in ("as written", "with defaults"):
        error = best_match(validator().iter_errors(checked))
        if error is not None:
            raise schema_error(error)
        fill_defaults(checked)
    check_semantics(
        checked,
        Path(base_dir),
        grid_dataset_given=grid_dataset_given,
        grid_optimizer_given=grid_optimizer_given,
        timing_optimizers_given=timing_optimizers_given,
    )
    return checked


def config_hash(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the config's canonical JSON (sorted keys, no
    spaces). Pass a checked config, so that written-out defaults and omitted ones agree."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plain(value: Any) -> Any:
    """A deep copy with plain dicts and lists (Snakemake may hand OrderedDicts)."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return copy.deepcopy(value)
