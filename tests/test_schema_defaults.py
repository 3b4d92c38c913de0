"""The schema alone holds defaults: no dataclass of gdbench repeats a default of the schema
(a second copy drifts from the first, and a run would then silently train with another
value than the one the config documents)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Iterator
from typing import Any

import gdbench
from gdbench.schema_defaults import def_defaults, schema_root, section_defaults


def schema_defaults() -> dict[str, list[Any]]:
    """Every key of the schema that has a default, with its defaults (a key may appear in
    several places, e.g. ``weight_decay``)."""
    found: dict[str, list[Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "default" in sub:
                    found.setdefault(key, []).append(sub["default"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema_root())
    return found


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _same(a: Any, b: Any) -> bool:
    return type(_plain(a)) is type(_plain(b)) and _plain(a) == _plain(b)


def repeated_defaults(classes: list[type], defaults: dict[str, list[Any]]) -> list[str]:
    """``module.Class.field = value`` for each dataclass field whose default is one of the
    schema's defaults for a key of the same name."""
    out = []
    for cls in classes:
        for f in dataclasses.fields(cls):
            if f.default is dataclasses.MISSING or f.name not in defaults:
                continue
            if any(_same(f.default, d) for d in defaults[f.name]):
                out.append(f"{cls.__module__}.{cls.__qualname__}.{f.name} = {f.default!r}")
    return out


def gdbench_dataclasses() -> Iterator[type]:
    for info in pkgutil.walk_packages(gdbench.__path__, "gdbench."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if dataclasses.is_dataclass(obj) and obj.__module__ == info.name:
                yield obj


def test_no_dataclass_repeats_a_default_of_the_schema() -> None:
    classes = list(gdbench_dataclasses())
    names = {c.__qualname__ for c in classes}
    assert {"RunSpec", "TrainOptions", "Criteria", "HorizonProblem", "OptimizerSpec"} <= names
    assert repeated_defaults(classes, schema_defaults()) == []


def test_a_repeated_default_is_found() -> None:
    """The check itself: a settings class that writes the schema's 1.0e+6 again is caught,
    one with another value or no default is not."""

    @dataclasses.dataclass
    class Thresholds:
        diverged_factor: float = 1.0e6
        converged_below: float = 0.5
        dtype: str = dataclasses.field(default="float32")
        epochs: int = 3

    @dataclasses.dataclass
    class Bare:
        diverged_factor: float

    found = repeated_defaults([Thresholds, Bare], schema_defaults())
    assert [line.split("Thresholds.")[-1] for line in found] == ["diverged_factor = 1000000.0", "dtype = 'float32'"]


def test_the_defaults_read_are_the_schemas() -> None:
    """What the settings are built from: the schema's own values, fresh copies."""
    assert section_defaults("analysis") == {"converged_below": 1.0e-6, "diverged_factor": 1.0e6}
    assert def_defaults("sgd_arguments") == {"momentum": 0.0, "dampening": 0.0, "nesterov": False, "weight_decay": 0.0}
    section_defaults("grid")["lr"].append(99.0)
    assert 99.0 not in section_defaults("grid")["lr"]
