"""The config's messages: :class:`ConfigError` (one line naming the key, the value and what is
allowed), key paths and values as the user writes them, what a schema allows in words, the
"did you mean" hints and the one place that says how YAML reads exponents.
"""

from __future__ import annotations

import difflib
import enum
import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema.exceptions import ValidationError

from gdbench.config.schema import resolve, schema_root
from gdbench.optimizers import KINDS as OPTIMIZER_KINDS

__all__ = ["ConfigError", "KeyPath", "as_yaml", "describe", "format_path", "format_value", "schema_error"]

#: Path segments of a key: mapping keys (str) and list indexes (int).
KeyPath = Sequence[str | int]

#: Human words for the schema's string patterns (JSON Schema has no place for them).
PATTERN_WORDS = {
    "^[A-Za-z][A-Za-z0-9_-]{0,63}$": (
        "a name that starts with a letter and holds only letters, digits, '_' or '-' (at most 64 characters)"
    ),
    "^(cpu|cuda|cuda:(0|[1-9][0-9]{0,2}))$": '"cpu", "cuda" or "cuda:N"',
}


class Missing(enum.Enum):
    """The absent value of a file-level ConfigError (an enum, so it survives pickling)."""

    VALUE = 0


NO_VALUE = Missing.VALUE
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

    def __init__(self, problem: str, path: KeyPath = (), value: Any = NO_VALUE, where: str | None = None) -> None:
        self.problem = problem
        self.path = tuple(path)
        self.value = value
        self.where = where
        self.key = where if where is not None else format_path(self.path)
        head = self.key if value is NO_VALUE else f"{self.key} = {format_value(value)}"
        super().__init__(one_line(f"config error: {head}: {problem}"))

    def __reduce__(self) -> tuple[Any, ...]:  # keep the fields through pickling
        return (type(self), (self.problem, self.path, self.value, self.where))


def format_path(path: KeyPath) -> str:
    """``("grid", "lr", 2)`` -> ``grid.lr[2]``; odd keys are quoted: ``datasets["a b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif not isinstance(part, str):
            out += f"[{as_yaml(part)}]"
        elif _SIMPLE_KEY.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out or "config"


def format_value(value: Any, limit: int = _MAX_VALUE_CHARS) -> str:
    """A value as the user would write it (JSON-like, floats as YAML reads them), shortened."""
    text = as_yaml(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_yaml(value: Any) -> str:
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
        return "{" + ", ".join(f"{as_yaml(str(k))}: {as_yaml(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(as_yaml(v) for v in value) + "]"
    return repr(value)


def one_line(text: str) -> str:
    return " ".join(text.split())


def kind_of(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return f"a {type(value).__name__}"


def schema_error(error: ValidationError) -> ConfigError:
    """One readable ConfigError for the schema's best-matching error."""
    path = list(error.absolute_path)
    root = schema_root()
    if "propertyNames" in error.absolute_schema_path:
        name = error.instance
        return ConfigError(f"bad dataset name: must be {describe(error.schema, root)}", [*path, name], name)
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
        meaning = resolve(error.schema.get("properties", {}).get(key, {}), root).get("description", "")
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
    problem = f"must be {describe(shown.schema, root)}"
    problem += number_hint(error.instance, shown.schema, root)
    return ConfigError(problem, path, error.instance)


def _dataset_kinds(root: Mapping[str, Any]) -> str:
    return describe(root["$defs"]["dataset"], root).removeprefix("a mapping: ")


def _unknown_key_problem(key: str, path: KeyPath, allowed: list[str]) -> str:
    hint = ""
    close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.7) or _abbreviated(str(key), allowed)
    if close:
        hint = f"; did you mean {format_path([*path, close[0]])}?"
    else:
        elsewhere = [p for p in _all_key_paths(schema_root(), ()) if p[-1] == key and list(p[:-1]) != list(path)]
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


def describe(schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """What a schema allows, in words: ``a number > 0``, ``a non-empty list of ..., each ...``."""
    schema = resolve(schema, root)
    if "title" in schema and schema is not root:
        return str(schema["title"])
    if "const" in schema:
        return as_yaml(schema["const"])
    if "enum" in schema:
        return _or([as_yaml(v) for v in schema["enum"]], prefix="one of " if len(schema["enum"]) > 2 else "")
    for key in ("anyOf", "oneOf"):
        if key in schema:
            branches = [resolve(s, root) for s in schema[key]]
            if len(branches) == 2 and branches[1].get("type") == "array":
                items = resolve(branches[1].get("items", {}), root)
                if items is branches[0]:  # one value, or a list of such values
                    return f"{describe(items, root)}, or a non-empty list of them"
            return _or([describe(s, root) for s in branches])
    kind = schema.get("type")
    if kind == "array":
        words = "a non-empty list" if schema.get("minItems", 0) >= 1 else "a list"
        if schema.get("uniqueItems"):
            words += " of distinct values"
        if "items" in schema:
            words += f", each {describe(schema['items'], root)}"
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
            bounds.append(f"from {as_yaml(schema['minimum'])} to {as_yaml(schema['maximum'])}")
        else:
            if "minimum" in schema:
                bounds.append(f">= {as_yaml(schema['minimum'])}")
            if "maximum" in schema:
                bounds.append(f"<= {as_yaml(schema['maximum'])}")
        if "exclusiveMinimum" in schema:
            bounds.append(f"> {as_yaml(schema['exclusiveMinimum'])}")
        if "exclusiveMaximum" in schema:
            bounds.append(f"< {as_yaml(schema['exclusiveMaximum'])}")
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
    schema = resolve(schema, root)
    if schema.get("type") in kinds:
        return True
    if "items" in schema and _admits_number(schema["items"], root, kinds):
        return True
    return any(_admits_number(s, root, kinds) for key in ("anyOf", "oneOf") for s in schema.get(key, []))


def number_hint(value: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> str:
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
