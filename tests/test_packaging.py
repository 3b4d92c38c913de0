"""The project's own files agree with each other: dependencies, schema, docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
import yaml
from helpers import REPO

from gdbench.config import ConfigError, check_config, schema

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


def _readme_config_block() -> str:
    readme = (REPO / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    return block


def test_readme_config_block_loads_and_names_every_top_level_key(tmp_path: Path) -> None:
    """If this fails, the README's config example no longer loads, or leaves out a section a
    newcomer would look for (e.g. optimizers, grid.optimizer, name)."""
    raw = yaml.safe_load(_readme_config_block())
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "points.csv").write_text("hours,score\n1,2\n2,4.5\n3,5\n")
    checked = check_config(raw, base_dir=tmp_path)
    top = schema()["properties"]
    assert sorted(raw) == sorted(top), f"README's config block lacks {sorted(set(top) - set(raw))}"
    assert "optimizer" in raw["grid"] and checked["grid"]["optimizer"] == ["sgd", "heavy_ball", "nesterov"]


def test_config_readme_error_examples_are_the_errors_users_get() -> None:
    """If this fails, config/README.md shows an error message the code no longer prints (e.g. the
    grid keys it lists as allowed)."""
    readme = (REPO / "config" / "README.md").read_text()
    for bad in ({"grid": {"lrs": [0.1]}}, {"grid": {"lr": [0.01, 0.1, -0.1]}}):
        with pytest.raises(ConfigError) as info:
            check_config(bad)
        assert str(info.value) in readme, str(info.value)
