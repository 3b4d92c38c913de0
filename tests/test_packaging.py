"""The project's own files agree with each other: dependencies, schema, docs."""

from __future__ import annotations

import re

import tomllib
import yaml
from conftest import REPO

#: conda-forge names of PyPI packages that differ.
CONDA_NAMES = {"torch": "pytorch"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].strip().lower()


def test_environment_yml_matches_pyproject() -> None:
    """Users of conda and of pip get the same runtime and test dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = {
        CONDA_NAMES.get(_name(r), _name(r)) for r in project["dependencies"] + extras["workflow"] + extras["test"]
    }
    wanted.discard("gdbench")
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    have = {_name(d) for d in env["dependencies"] if isinstance(d, str)} - {"python", "pip"}
    assert have == wanted, f"only in environment.yml: {have - wanted}; only in pyproject: {wanted - have}"
    rule_env = yaml.safe_load((REPO / "workflow" / "envs" / "gdbench.yaml").read_text())
    runtime = {CONDA_NAMES.get(_name(r), _name(r)) for r in project["dependencies"]}
    assert {_name(d) for d in rule_env["dependencies"]} - {"python"} == runtime


def test_workflow_schema_is_the_package_schema() -> None:
    """The workflow validates with the very schema the package checks configs with."""
    a = (REPO / "workflow" / "schemas" / "config.schema.yaml").read_text()
    b = (REPO / "src" / "gdbench" / "schemas" / "config.schema.yaml").read_text()
    assert a == b


def test_config_readme_documents_every_key() -> None:
    """config/README.md names every key of the default config."""
    readme = (REPO / "config" / "README.md").read_text()
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for section, values in config.items():
        assert section in readme, section
        if section != "datasets":
            for key in values:
                assert key in readme, f"{section}.{key}"
