"""Configuration: loading a config file, checking it, filling its defaults, and its hash.

This module owns the config contract's enforcement. The contract itself is the JSON Schema
``gdbench/schemas/config.schema.yaml`` (types, bounds, defaults, no unknown keys); this module
adds what JSON Schema cannot say (the grid's datasets exist, parse and build; CSV files and
columns exist; x and y pair up; a minibatch size that is really a minibatch; a sane number
of jobs) and turns every problem into one :class:`ConfigError` whose message is a single
line naming the key, the bad value and what is allowed, e.g.::

    config error: grid.lr[2] = -0.1: must be a number > 0

:func:`check_config` is what the workflow (``workflow/rules/common.smk``) and the CLI call
before any job runs; it returns a deep copy with every default filled in. :func:`config_hash`
names a checked config in provenance records.
"""

from __future__ import annotations

import copy
import csv
import difflib
import enum
import hashlib
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError, best_match

from gdbench.data import DatasetError, parse_dataset
from gdbench.optimizers import KINDS as OPTIMIZER_KINDS
from gdbench.optimizers import OptimizerError, parse_optimizer
from gdbench.runs import as_list, batch_size_value, shard_count

__all__ = ["ConfigError", "check_config", "config_hash", "default_config", "load_config", "schema"]

#: Path segments of a key: mapping keys (str) and list indexes (int).
KeyPath = Sequence[str | int]

#: At most this many training jobs (all devices together); more means tiny jobs that each
#: pay ~1.5 s of start-up (``import torch``) for little work.
MAX_TRAINING_JOBS = 1000

#: Human words for the schema's string patterns (JSON Schema has no place for them).
PATTERN_WORDS = {
    "^[A-Za-z][A-Za-z0-9_-]{0,63}$": (
        "a name that starts with a letter and holds only letters, digits, '_' or '-' (at most 64 characters)"
    ),
    "^(cpu|cuda|cuda:(0|[1-9][0-9]{0,2}))$": '"cpu", "cuda" or "cuda:N"',
}


class _Missing(enum.Enum):
    """The absent value of a file-level ConfigError (an enum, so it survives pickling)."""

    VALUE = 0


_NO_VALUE = _Missing.VALUE
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
#: A number YAML 1.1 reads as a string: an exponent without a dot or without a sign (1e6, 1.0e6).
_YAML_STRING_NUMBER = re.compile(r"^([+-]?)(\d+)(?:\.(\d*))?[eE]([+-]?)(\d+)$")
_MAX_VALUE_CHARS = 80


class ConfigError(ValueError):
    """A configuration problem. ``str()`` is one line: ``config error: KEY = VALUE: PROBLEM``.

    ``path`` is the key path as segments (``("grid", "lr", 2)``), ``key`` its readable form
    (``grid.lr[2]``), ``value`` the offending value (absent for file-level problems),
    ``problem`` what is wrong and what is allowed.
    """

    def __init__(self, problem: str, path: KeyPath = (), value: Any = _NO_VALUE, where: str | None = None) -> None:
        self.problem = problem
        self.path = tuple(path)
        self.value = value
        self.where = where
        self.key = where if where is not None else format_path(self.path)
        head = self.key if value is _NO_VALUE else f"{self.key} = {format_value(value)}"
        super().__init__(_one_line(f"config error: {head}: {problem}"))

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields through pickling
        return (type(self), (self.problem, self.path, self.value, self.where))


# --------------------------------------------------------------------------------------------
# public API


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
            f"the file holds {_kind(data)} {format_value(data)}, not a mapping of sections (datasets:, grid:, ...)",
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
    checked = _plain(config)
    _coerce_text(checked, _schema(), _schema())
    grid = checked.get("grid")
    grid_dataset_given = isinstance(grid, Mapping) and "dataset" in grid
    grid_optimizer_given = isinstance(grid, Mapping) and "optimizer" in grid
    timing = checked.get("timing")
    timing_optimizers_given = isinstance(timing, Mapping) and "optimizers" in timing
    # Validate what the user wrote (so messages show their values), then again with the
    # defaults filled in (they are valid by construction; this keeps it so).
    for _ in ("as written", "with defaults"):
        error = best_match(_validator().iter_errors(checked))
        if error is not None:
            raise _schema_error(error)
        fill_defaults(checked)
    _check_datasets(checked, Path(base_dir), grid_dataset_given)
    _check_optimizers(checked, grid_optimizer_given, timing_optimizers_given)
    _check_batch_sizes(checked, Path(base_dir))
    _check_initial_costs(checked, Path(base_dir))
    _check_job_count(checked)
    _check_edge(checked)
    return checked


def config_hash(config: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the config's canonical JSON (sorted keys, no
    spaces). Pass a checked config, so that written-out defaults and omitted ones agree."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@cache
def _schema() -> dict[str, Any]:
    source = resources.files("gdbench") / "schemas" / "config.schema.yaml"
    return yaml.safe_load(source.read_text(encoding="utf-8"))


def schema() -> dict[str, Any]:
    """The config's JSON Schema (a fresh copy), from the package data."""
    return copy.deepcopy(_schema())


def default_config() -> dict[str, Any]:
    """The config an empty file stands for: every default of the schema."""
    config: dict[str, Any] = {}
    fill_defaults(config)
    return config


def fill_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the schema's defaults into ``config`` in place (and return it): a missing key
    gets a copy of its default, then mappings are filled recursively (sections, each
    dataset's synthetic parameters). Values of the wrong type are left for validation."""
    root = _schema()
    _fill(config, root, root)
    return config


# --------------------------------------------------------------------------------------------
# formatting


def format_path(path: KeyPath) -> str:
    """``("grid", "lr", 2)`` -> ``grid.lr[2]``; odd keys are quoted: ``datasets["a b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif not isinstance(part, str):
            out += f"[{_as_yaml(part)}]"
        elif _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out or "config"


def format_value(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """A value as the user would write it (JSON-like, floats as YAML reads them), shortened."""
    text = _as_yaml(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _as_yaml(value: Any) -> str:
    """A value as YAML text (``null``, ``true``, ``1.0e-6``, ``"text"``, ``[1, 2]``), unshortened."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        if "e" in text and "." not in text:  # 1e-06 would read back as a string
            text = text.replace("e", ".0e")
        return text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{_as_yaml(str(k))}: {_as_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_as_yaml(v) for v in value) + "]"
    return repr(value)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _kind(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


# --------------------------------------------------------------------------------------------
# schema validation


def _is_number(checker: Any, instance: Any) -> bool:
    """Numbers are finite ints or floats (not booleans, NaN or infinity)."""
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    return isinstance(instance, float) and math.isfinite(instance)


def _is_integer(checker: Any, instance: Any) -> bool:
    """Integers are ints (not 2.0, not booleans)."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _is_number, "integer": _is_integer}),
)


@cache
def _validator() -> Any:
    Draft202012Validator.check_schema(_schema())
    return _Validator(_schema())


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def _fill(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    schema = _resolve(schema, root)
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub = _resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            _fill(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill(value, extra, root)
    if "if" in schema:  # the dataset kinds: follow the branch whose `if` holds
        branch = "then" if _Validator(_resolve(schema["if"], root)).is_valid(instance) else "else"
        if branch in schema:
            _fill(instance, schema[branch], root)


def _coerce_text(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """Read numbers and booleans that arrive as text, in place; returns the (new) value.

    Snakemake hands nested values of ``--config`` and of a profile's ``config:`` over as
    strings (``--config sharding='{max_runs_per_job: 500}'`` gives ``"500"``). Where the
    schema wants a number or a boolean, a string that YAML would read as one when unquoted
    is taken as that value. Strings YAML reads as strings (``1e6``) stay, for the error.
    """
    schema = _resolve(schema, root)
    if isinstance(instance, str):
        return _text_value(instance, _admitted_types(schema, root))
    if isinstance(instance, list):
        items = schema.get("items")
        if items is None:
            for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
                items = _resolve(branch, root).get("items", items)
        if items is not None:
            instance[:] = [_coerce_text(v, items, root) for v in instance]
        return instance
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                instance[key] = _coerce_text(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in instance:
                if key not in schema.get("properties", {}):
                    instance[key] = _coerce_text(instance[key], extra, root)
        if "if" in schema:
            branch = "then" if _Validator(_resolve(schema["if"], root)).is_valid(instance) else "else"
            if branch in schema:
                _coerce_text(instance, schema[branch], root)
    return instance


def _admitted_types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    schema = _resolve(schema, root)
    kinds = schema.get("type", [])
    found = {kinds} if isinstance(kinds, str) else set(kinds)
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            found |= _admitted_types(branch, root)
    return found


def _text_value(text: str, kinds: set[str]) -> Any:
    if not kinds & {"number", "integer", "boolean"} or len(text) > 64 or "\n" in text:
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, bool):
        return value if "boolean" in kinds else text
    if isinstance(value, int):
        return value if kinds & {"integer", "number"} else text
    if isinstance(value, float):
        return value if "number" in kinds else text
    return text


def _schema_error(error: ValidationError) -> ConfigError:
    """One readable ConfigError for the schema's best-matching error."""
    path = list(error.absolute_path)
    root = _schema()
    if "propertyNames" in error.absolute_schema_path:
        name = error.instance
        return ConfigError(f"bad dataset name: must be {_describe(error.schema, root)}", [*path, name], name)
    if error.validator == "additionalProperties" and error.validator_value is False:
        allowed = list(error.schema.get("properties", {}))
        if len(path) == 2 and path[0] == "optimizers":  # the kinds, not only the branch's own
            allowed = list(OPTIMIZER_KINDS)
        extra = [k for k in error.instance if k not in allowed]
        key = extra[0]
        problem = _unknown_key_problem(key, path, allowed)
        if len(path) == 2 and path[0] == "datasets":
            problem += f"; a dataset is {_dataset_kinds(root)}"
        return ConfigError(problem, [*path, key], error.instance[key])
    if error.validator == "required":
        key = next(k for k in error.validator_value if k not in error.instance)
        meaning = _resolve(error.schema.get("properties", {}).get(key, {}), root).get("description", "")
        problem = f"missing key {key}" + (f" ({meaning.rstrip('.').lower()})" if meaning else "")
        if len(path) == 2 and path[0] == "datasets":
            problem += f"; a dataset is {_dataset_kinds(root)}"
        return ConfigError(problem, path, error.instance)
    if error.validator == "uniqueItems":
        i, j = _first_repeat(error.instance)
        return ConfigError(
            f"repeats {format_path([*path, j])}; each value may appear once", [*path, i], error.instance[i]
        )
    # Describe the widest schema that failed at this same key (an anyOf of a value or a list).
    shown = error
    while shown.parent is not None and list(shown.parent.absolute_path) == path:
        shown = shown.parent
    problem = f"must be {_describe(shown.schema, root)}"
    problem += _number_hint(error.instance, shown.schema, root)
    return ConfigError(problem, path, error.instance)


def _dataset_kinds(root: Mapping[str, Any]) -> str:
    return _describe(root["$defs"]["dataset"], root).removeprefix("a mapping: ")


def _unknown_key_problem(key: str, path: KeyPath, allowed: list[str]) -> str:
    hint = ""
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.7) or _abbreviated(str(key), allowed)
    if close:
        hint = f"; did you mean {format_path([*path, close[0]])}?"
    else:
        elsewhere = [p for p in _all_key_paths(_schema(), ()) if p[-1] == key and list(p[:-1]) != list(path)]
        if elsewhere:
            hint = f"; did you mean {format_path(elsewhere[0])}?"
    where = f"in {format_path(path)}" if path else "at the top level"
    return f"unknown key{hint} (allowed {where}: {', '.join(allowed)})"


def _abbreviated(key: str, allowed: list[str]) -> list[str]:
    """The allowed key that abbreviates ``key`` by its words' initials (``learning_rate`` or
    ``learning-rates`` -> ``lr``), as a one-item list, else an empty one."""
    words = [w for w in re.split(r"[_\-\s]+", key.lower()) if w]
    if len(words) < 2:
        return []
    initials = "".join(w[0] for w in words)
    return [k for k in allowed if k.lower() == initials][:1]


def _all_key_paths(schema: Mapping[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
    for key, sub in schema.get("properties", {}).items():
        yield (*prefix, key)
        yield from _all_key_paths(sub, (*prefix, key))


def _first_repeat(values: Sequence[Any]) -> tuple[int, int]:
    """(index of the first value that repeats an earlier one, index of that earlier one)."""
    for i, value in enumerate(values):
        for j in range(i):
            if _same(values[j], value):
                return i, j
    return 0, 0


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _describe(schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """What a schema allows, in words: ``a number > 0``, ``a non-empty list of ..., each ...``."""
    schema = _resolve(schema, root)
    if "title" in schema and schema is not root:
        return str(schema["title"])
    if "const" in schema:
        return _as_yaml(schema["const"])
    if "enum" in schema:
        return _or([_as_yaml(v) for v in schema["enum"]], prefix="one of " if len(schema["enum"]) > 2 else "")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [_resolve(s, root) for s in schema[key]]
            if len(branches) == 2 and branches[1].get("type") == "array":
                items = _resolve(branches[1].get("items", {}), root)
                if items is branches[0]:  # one value, or a list of such values
                    return f"{_describe(items, root)}, or a non-empty list of them"
            return _or([_describe(s, root) for s in branches])
    kind = schema.get("type")
    if kind == "array":
        words = "a non-empty list" if schema.get("minItems", 0) >= 1 else "a list"
        if schema.get("uniqueItems"):
            words += " of distinct values"
        if "items" in schema:
            words += f", each {_describe(schema['items'], root)}"
        return words
    if kind == "object":
        props = list(schema.get("properties", {}))
        if props and schema.get("additionalProperties") is False:
            return f"a mapping with keys among {', '.join(props)}"
        return "a mapping"
    if kind in ("integer", "number"):
        words = "an integer" if kind == "integer" else "a number"
        bounds = []
        if "minimum" in schema and "maximum" in schema:
            bounds.append(f"from {_as_yaml(schema['minimum'])} to {_as_yaml(schema['maximum'])}")
        else:
            if "minimum" in schema:
                bounds.append(f">= {_as_yaml(schema['minimum'])}")
            if "maximum" in schema:
                bounds.append(f"<= {_as_yaml(schema['maximum'])}")
        if "exclusiveMinimum" in schema:
            bounds.append(f"> {_as_yaml(schema['exclusiveMinimum'])}")
        if "exclusiveMaximum" in schema:
            bounds.append(f"< {_as_yaml(schema['exclusiveMaximum'])}")
        return " ".join([words, " and ".join(bounds)]).strip()
    if kind == "string":
        if "pattern" in schema:
            return PATTERN_WORDS.get(schema["pattern"], f"a string matching {schema['pattern']}")
        return "a non-empty string" if schema.get("minLength", 0) >= 1 else "a string"
    if kind == "boolean":
        return "true or false"
    return "valid"


def _or(items: list[str], prefix: str = "") -> str:
    if len(items) == 1:
        return items[0]
    return f"{prefix}{', '.join(items[:-1])} or {items[-1]}"


def _admits_number(
    schema: Mapping[str, Any], root: Mapping[str, Any], kinds: tuple[str, ...] = ("number", "integer")
) -> bool:
    schema = _resolve(schema, root)
    if schema.get("type") in kinds:
        return True
    if "items" in schema and _admits_number(schema["items"], root, kinds):
        return True
    return any(_admits_number(s, root, kinds) for key in ("anyOf", "oneOf") for s in schema.get(key, []))


def _number_hint(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """Why a value the user wrote as a number is not one (the one place gdbench says how YAML
    reads exponents: an integer key gets its digits, since 1.0e+6 would be a float)."""
    if isinstance(value, float) and not math.isfinite(value):
        return " (NaN and infinity are not allowed)"
    if not isinstance(value, str) or not _admits_number(schema, root):
        return ""
    match = _YAML_STRING_NUMBER.match(value.strip())
    if match:
        sign, whole, frac, exp_sign, exp = match.groups()
        fixed = f"{sign}{whole}.{frac or '0'}e{exp_sign or '+'}{exp}"
        if not _admits_number(schema, root, ("number",)) and float(fixed) == int(float(fixed)):
            fixed = str(int(float(fixed)))
        return (
            f"; YAML reads {value} as a string (a number with an exponent needs a dot and a signed "
            f"exponent): write {fixed}"
        )
    return ""


# --------------------------------------------------------------------------------------------
# checks beyond the schema


def _check_datasets(config: Mapping[str, Any], base_dir: Path, grid_dataset_given: bool) -> None:
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


def _check_optimizers(config: Mapping[str, Any], grid_optimizer_given: bool, timing_optimizers_given: bool) -> None:
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
    if not timing_optimizers_given:  # the default names that optimizers defines (else plain sgd)
        timing = config["timing"]
        timing["optimizers"] = [name for name in timing["optimizers"] if name in optimizers] or ["sgd"]
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
            hint = f"; did you mean {_as_yaml(close[0])}?" if close else ""
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
            hint = f"did you mean {_as_yaml(close[0])}? " if close else ""
            raise ConfigError(
                f"no such column in {raw['csv']}; {hint}(columns: {', '.join(columns) or 'none'})",
                ("datasets", name, axis),
                raw[axis],
            )


def _strip_dataset(exc: DatasetError, name: str) -> str:
    text = str(exc)
    prefix = f"dataset {name!r}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def _check_batch_sizes(config: Mapping[str, Any], base_dir: Path) -> None:
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


def _check_initial_costs(config: Mapping[str, Any], base_dir: Path) -> None:
    """A dataset whose initial cost (epoch 0, from the initial W and b) is not finite in a
    dtype of the grid cannot be trained: every run would be an overflow from its first epoch.
    Computed as the engines do, in that dtype: ``mean(((x * W0) + b0 - y)^2)``."""
    import numpy as np

    training, grid = config["training"], config["grid"]
    dtypes = as_list(training["dtype"])
    starts = []
    if "zeros" in as_list(training["init"]):
        starts.append((0.0, 0.0, "zeros"))
    if "normal" in as_list(training["init"]):
        from gdbench.engines.common import initial_params  # torch: only for normal init
        from gdbench.runs import RunSpec

        for dtype in dtypes:
            for seed in grid["seed"]:
                w0, b0 = initial_params(RunSpec("x", 1.0, seed, 0, init="normal", dtype=dtype))
                starts.append((w0, b0, f"normal init, seed {seed}"))
    for name in dict.fromkeys(grid["dataset"]):
        raw = config["datasets"][name]
        if "synthetic" in raw:
            continue
        data = parse_dataset(name, raw).build(seed=0, base_dir=base_dir)
        for dtype in dtypes:
            t = np.dtype(dtype).type
            x, y = data.x.astype(dtype), data.y.astype(dtype)
            with np.errstate(over="ignore", invalid="ignore"):
                for w0, b0, how in starts:
                    d = x * t(w0) + t(b0) - y
                    cost = np.mean(d * d, dtype=dtype)
                    if not np.isfinite(cost):
                        raise ConfigError(
                            f"its initial cost ({how}) is {cost} in {dtype}: the points overflow {dtype} when "
                            "squared; scale them down or use training.dtype float64",
                            ("datasets", name),
                        )


def _check_job_count(config: Mapping[str, Any]) -> None:
    grid, training, sharding = config["grid"], config["training"], config["sharding"]
    runs = math.prod(len(grid[k]) for k in ("dataset", "optimizer", "lr", "seed", "epochs"))
    runs *= math.prod(len(as_list(training[k])) for k in ("init", "batch_size", "dtype", "engine"))
    devices = 1 if grid["device"] == "auto" else len(grid["device"])
    jobs_per_device, max_runs = sharding["jobs_per_device"], sharding["max_runs_per_job"]
    jobs = devices * shard_count(runs, jobs_per_device, max_runs)
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


def _check_edge(config: Mapping[str, Any]) -> None:
    """The edge search needs a range: lr_min below lr_max."""
    edge = config["edge"]
    if edge["lr_min"] >= edge["lr_max"]:
        raise ConfigError(
            f"must be below edge.lr_max ({format_value(edge['lr_max'])}): the edge is searched in [lr_min, lr_max]",
            ("edge", "lr_min"),
            edge["lr_min"],
        )


def _plain(value: Any) -> Any:
    """A deep copy with plain dicts and lists (Snakemake may hand OrderedDicts)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)
