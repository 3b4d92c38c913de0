"""The config's schema (``gdbench/schemas/config.schema.yaml``, the package data) as loaded
once, and the defaults it holds: the only place a default value of a setting is written.

Settings objects (:class:`gdbench.verdicts.Criteria`, :class:`gdbench.engines.TrainOptions`,
:class:`gdbench.horizon.HorizonProblem`, :class:`gdbench.runs.RunSpec`,
:class:`gdbench.optimizers.OptimizerSpec`) carry no defaults of their own: they are built from
a resolved experiment (whose checked config has every default filled in from here), or, for an
optimizer's arguments and a synthetic line's parameters, from :func:`def_defaults`. This module
imports nothing of gdbench, so every layer may read it.
"""

from __future__ import annotations

import copy
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = ["def_defaults", "schema_root", "section_defaults"]


@cache
def schema_root() -> dict[str, Any]:
    """The schema as loaded once (shared: do not modify it; copy what you change). Every job
    process loads it, so with libyaml's loader where PyYAML has it (the same safe constructor,
    ~10x faster: 5 ms against 47 ms)."""
    source = resources.files("gdbench") / "schemas" / "config.schema.yaml"
    return yaml.load(source.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _defaults(node: dict[str, Any]) -> dict[str, Any]:
    return {key: copy.deepcopy(sub["default"]) for key, sub in node.get("properties", {}).items() if "default" in sub}


def section_defaults(section: str) -> dict[str, Any]:
    """The defaults of the keys of one config section, e.g. ``analysis``: ``{"converged_below":
    1e-06, "diverged_factor": 1000000.0}`` (a fresh copy)."""
    return _defaults(schema_root()["properties"][section])


def def_defaults(name: str) -> dict[str, Any]:
    """The defaults of the keys of one of the schema's ``$defs``, e.g. ``sgd_arguments`` (a
    fresh copy)."""
    return _defaults(schema_root()["$defs"][name])
