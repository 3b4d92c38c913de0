"""Configuration: loading a config file, checking it, filling its defaults, and its hash.

This package owns the config contract's enforcement. The contract itself is the JSON Schema
``gdbench/schemas/config.schema.yaml`` (types, bounds, defaults, no unknown keys); this package
adds what JSON Schema cannot say (the grid's datasets exist, parse and build; CSV files and
columns exist; x and y pair up; a minibatch size that is really a minibatch; a sane number
of jobs) and turns every problem into one :class:`ConfigError` whose message is a single
line naming the key, the bad value and what is allowed, e.g.::

    config error: grid.lr[2] = -0.1: must be a number > 0

:func:`check_config` is what the workflow (``workflow/rules/common.smk``) and the CLI call
before any job runs; it returns a deep copy with every default filled in. :func:`config_hash`
names a checked config in provenance records.

Modules: :mod:`~gdbench.config.load` (loading, checking in steps, hashing),
:mod:`~gdbench.config.schema` (the schema, its validator, defaults, text read as numbers),
:mod:`~gdbench.config.messages` (the one-line errors, did-you-mean, values as YAML) and
:mod:`~gdbench.config.checks` (what the schema cannot express).
"""

from gdbench.config.checks import MAX_TRAINING_JOBS
from gdbench.config.load import check_config, config_hash, load_config
from gdbench.config.messages import ConfigError, KeyPath, format_path, format_value
from gdbench.config.schema import default_config, fill_defaults, schema

__all__ = [
    "MAX_TRAINING_JOBS",
    "ConfigError",
    "KeyPath",
    "check_config",
    "config_hash",
    "default_config",
    "fill_defaults",
    "format_path",
    "format_value",
    "load_config",
    "schema",
]
