"""The config's JSON Schema (``gdbench/schemas/config.schema.yaml``, loaded by
:mod:`gdbench.schema_defaults`) and its machinery: the validator (numbers are finite, integers
are not 2.0), ``$ref`` resolution, filling defaults, and reading numbers and booleans that
arrive as text.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft202012Validator, validators

from gdbench.schema_defaults import schema_root

__all__ = ["coerce_text", "default_config", "fill_defaults", "resolve", "schema", "schema_root", "validator"]


def schema() -> dict[str, Any]:
    """The config's JSON Schema (a fresh copy), from the package data."""
    return copy.deepcopy(schema_root())


def default_config() -> dict[str, Any]:
    """The config an empty file stands for: every default of the schema."""
    config: dict[str, Any] = {}
    fill_defaults(config)
    return config


def fill_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the schema's defaults into ``config`` in place (and return it): a missing key
    gets a copy of its default, then mappings are filled recursively (sections, each
    dataset's synthetic parameters). Values of the wrong type are left for validation."""
    root = schema_root()
    fill(config, root, root)
    return config


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


Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _is_number, "integer": _is_integer}),
)


@cache
def validator() -> Any:
    """The schema's validator, built once. (That the schema itself is valid JSON Schema is
    checked by the tests, not by every job process that validates a config.)"""
    return Validator(schema_root())


def resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in schema:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = root
        for part in ref[2:].split("/"):
            node = node[part]
        schema = node
    return schema


def fill(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> None:
    schema = resolve(schema, root)
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        sub = resolve(sub, root)
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance:
            fill(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, Mapping):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                fill(value, extra, root)
    if "if" in schema:  # the dataset kinds: follow the branch whose `if` holds
        branch = "then" if Validator(resolve(schema["if"], root)).is_valid(instance) else "else"
        if branch in schema:
            fill(instance, schema[branch], root)


def coerce_text(instance: Any, schema: Mapping[str, Any], root: Mapping[str, Any]) -> Any:
    """Read numbers and booleans that arrive as text, in place; returns the (new) value.

    Snakemake hands nested values of ``--config`` and of a profile's ``config:`` over as
    strings (``--config sharding='{max_runs_per_job: 500}'`` gives ``"500"``). Where the
    schema wants a number or a boolean, a string that YAML would read as one when unquoted
    is taken as that value. Strings YAML reads as strings (``1e6``) stay, for the error.
    """
    schema = resolve(schema, root)
    if isinstance(instance, str):
        return _text_value(instance, _admitted_types(schema, root))
    if isinstance(instance, list):
        items = schema.get("items")
        if items is None:
            for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
                items = resolve(branch, root).get("items", items)
        if items is not None:
            instance[:] = [coerce_text(v, items, root) for v in instance]
        return instance
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key in instance:
                instance[key] = coerce_text(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key in instance:
                if key not in schema.get("properties", {}):
                    instance[key] = coerce_text(instance[key], extra, root)
        if "if" in schema:
            branch = "then" if Validator(resolve(schema["if"], root)).is_valid(instance) else "else"
            if branch in schema:
                coerce_text(instance, schema[branch], root)
    return instance


def _admitted_types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str]:
    schema = resolve(schema, root)
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
