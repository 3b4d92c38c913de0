"""The config contract: the schema, defaults, and one readable line for every bad config.

A user who mistypes a key, writes ``1e6`` in YAML or points at a missing CSV must get one
line naming the key, the bad value and what is allowed, before any job runs. If these tests
fail, such a user sees a traceback, a wall of jsonschema output, or worse: a typo that
silently does nothing.
"""

from __future__ import annotations

import json
import pickle
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml
from config_errors import BAD_CONFIGS, BadConfig
from helpers import REPO
from jsonschema import Draft202012Validator

from gdbench.config import (
    ConfigError,
    check_config,
    config_hash,
    default_config,
    load_config,
    schema,
)
from gdbench.schema_defaults import schema_root

DEFAULT_CONFIG = REPO / "config" / "config.yaml"
POINTS_CSV = "hours,score\n1,2.1\n2,3.9\n3,6.2\n4,7.8\n"


@pytest.fixture
def csv_dir(tmp_path: Path) -> Path:
    """A working directory holding data/points.csv (columns hours, score)."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "points.csv").write_text(POINTS_CSV)
    (tmp_path / "data" / "bad.csv").write_text("hours,score\n1,2\n2,lots\n")
    return tmp_path


def _csv_dataset(csv: str = "data/points.csv", x: str = "hours", y: str = "score") -> str:
    return f"datasets: {{mine: {{csv: {csv}, x: {x}, y: {y}}}}}\ngrid: {{dataset: [mine]}}\n"


def _message(text: str, base_dir: Path) -> str:
    with pytest.raises(ConfigError) as info:
        check_config(yaml.safe_load(text), base_dir=base_dir)
    return str(info.value)


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=[case.id for case in BAD_CONFIGS])
def test_bad_config_gets_one_line_naming_key_and_value(case: BadConfig, csv_dir: Path) -> None:
    """Without this, the user sees a traceback or a multi-line schema dump instead of
    ``config error: KEY = VALUE: what is allowed``."""
    message = _message(case.text, csv_dir)
    assert "\n" not in message, message
    assert message.startswith(f"config error: {case.head}"), message
    for word in case.words:
        assert word in message, message


def test_there_are_many_distinct_bad_configs() -> None:
    """The issue asks for at least 15 (the lead for 20) distinct bad configs."""
    ids = [case.id for case in BAD_CONFIGS]
    assert len(set(ids)) == len(ids) >= 20


@pytest.mark.parametrize(
    "config",
    [
        pytest.param([{"grid": {"lr": [0.1]}}], id="a-list"),
        pytest.param("grid: {lr: [0.1]}", id="a-string"),
        pytest.param(None, id="null"),
        pytest.param(42, id="a-number"),
    ],
)
def test_config_that_is_not_a_mapping(config: Any) -> None:
    """A config file holding a list or a string gets one line, not an AttributeError."""
    with pytest.raises(ConfigError) as info:
        check_config(config)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("config error: config = ")
    assert "must be a mapping" in message


def test_messages_name_values_the_user_wrote_not_defaults() -> None:
    """The value shown is what the user wrote, not the same mapping padded with defaults."""
    message = _message("datasets: {mine: {synthetic: {slope: 3}}}", Path("."))
    assert message == ('config error: datasets.mine.synthetic = {"slope": 3}: missing key n (number of points)'), (
        message
    )


# --------------------------------------------------------------------------------------------
# configs that pass


def test_default_config_passes_and_equals_the_schema_defaults() -> None:
    """config/config.yaml and the schema's defaults must agree; else `snakemake` with and
    without `--configfile config/config.yaml` would train different grids. One deliberate
    exception: grid.optimizer, whose absence means the lesson's plain SGD (so configs written
    before optimizers were an axis train what they did), while the default grid shows
    momentum beside it."""
    checked = check_config(load_config(DEFAULT_CONFIG))
    assert checked["grid"].pop("optimizer") == ["sgd", "heavy_ball", "nesterov"]
    defaults = default_config()
    assert defaults["grid"].pop("optimizer") == ["sgd"]
    assert checked == defaults
    assert checked["training"]["chunk_epochs"] == 64  # not in the file: filled in
    assert checked["analysis"] == {"converged_below": 1.0e-6, "diverged_factor": 1.0e6}
    assert isinstance(checked["analysis"]["diverged_factor"], float)


def test_minimal_config_gets_every_default() -> None:
    """An empty config means the default grid; every key of the schema gets its value (but
    `name`, which the workflow takes from the --configfile's file name when it is left out)."""
    checked = check_config({})
    assert checked == default_config() and "name" not in checked

    def walk(node: dict[str, Any], instance: dict[str, Any], where: str) -> None:
        for key, sub in node.get("properties", {}).items():
            if f"{where}{key}" == "name":
                continue
            assert key in instance, f"{where}{key} has no default filled in"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, instance[key], f"{where}{key}.")

    walk(schema(), checked, "")
    assert checked["grid"]["device"] == "auto"
    assert checked["training"]["batch_size"] == "full"


def test_partial_sections_get_nested_defaults() -> None:
    """Overriding one key of a section keeps the others at their defaults."""
    checked = check_config(
        {"training": {"engine": "loop"}, "datasets": {"line": {"synthetic": {"n": 8}}}, "grid": {"dataset": ["line"]}}
    )
    assert checked["training"]["engine"] == "loop"
    assert checked["training"]["dtype"] == "float32"
    assert checked["datasets"]["line"]["synthetic"] == {
        "n": 8,
        "slope": 2.0,
        "intercept": 0.0,
        "noise": 0.0,
        "x_min": 0.0,
        "x_max": 1.0,
    }
    assert "noisy" not in checked["datasets"]  # a given mapping replaces the default one


def test_check_config_does_not_modify_its_input() -> None:
    """The workflow's `config` object must stay what the user wrote."""
    raw = {"grid": {"lr": [0.1]}}
    check_config(raw)
    assert raw == {"grid": {"lr": [0.1]}}


def test_csv_dataset_passes(csv_dir: Path) -> None:
    """A CSV dataset with the right file and columns is accepted, read relative to base_dir."""
    text = _csv_dataset() + "training: {batch_size: [full, 2]}\n"
    checked = check_config(yaml.safe_load(text), base_dir=csv_dir)
    assert checked["datasets"]["mine"] == {"csv": "data/points.csv", "x": "hours", "y": "score"}
    assert checked["training"]["batch_size"] == ["full", 2]


def test_unused_csv_dataset_is_not_read(tmp_path: Path) -> None:
    """A dataset defined but not in the grid (e.g. kept for later) may point at a missing file."""
    datasets = {"tutorial": {"x": [1, 2, 3], "y": [2, 4, 6]}, "later": {"csv": "nope.csv", "x": "a", "y": "b"}}
    checked = check_config({"datasets": datasets, "grid": {"dataset": ["tutorial"]}}, base_dir=tmp_path)
    assert "later" in checked["datasets"]


def test_own_datasets_with_the_default_grid() -> None:
    """Defining datasets but not grid.dataset leaves the default [tutorial, noisy]: say so."""
    message = _message("datasets: {mine: {x: [1, 2], y: [2, 4]}}", Path("."))
    assert message.startswith('config error: grid.dataset[0] = "tutorial": no such dataset (defined in datasets: mine)')
    assert "grid.dataset was not given" in message


def test_numbers_given_as_text_by_snakemake_are_read() -> None:
    """Snakemake passes nested values of `--config` and of a profile's `config:` as text
    (profiles/slurm sets `sharding: {max_runs_per_job: 500}`, which arrives as "500").
    Without this, every cluster run would stop with a config error."""
    from_profile = yaml.load("{max_runs_per_job: 500}", Loader=yaml.BaseLoader)
    assert from_profile == {"max_runs_per_job": "500"}  # what Snakemake hands over
    checked = check_config(
        {
            "sharding": from_profile,
            "grid": {"lr": ["0.1", "1.0e-3"], "seed": ["7"]},
            "training": {"batch_size": ["full", "2"], "dtype": "float64"},
            "timing": {"enabled": "false", "min_run_time": "0.5"},
            "datasets": {"tutorial": {"x": ["1", "2", "3"], "y": ["2", "4", "6"]}, "noisy": {"synthetic": {"n": "8"}}},
        }
    )
    assert checked["sharding"]["max_runs_per_job"] == 500
    assert checked["grid"]["lr"] == [0.1, 1.0e-3] and checked["grid"]["seed"] == [7]
    assert checked["training"]["batch_size"] == ["full", 2]
    assert checked["timing"] == {**checked["timing"], "enabled": False, "min_run_time": 0.5}
    assert checked["datasets"]["tutorial"]["x"] == [1, 2, 3]
    assert checked["datasets"]["noisy"]["synthetic"]["n"] == 8


@pytest.mark.parametrize(
    ("config", "line"),
    [
        pytest.param(
            {"analysis": {"diverged_factor": "1e6"}},
            'config error: analysis.diverged_factor = "1e6": must be a number > 1; YAML reads 1e6 as a string',
            id="1e6-still-refused",
        ),
        pytest.param(
            {"grid": {"epochs": ["2.0"]}}, 'config error: grid.epochs[0] = "2.0": must be an integer', id="2.0-epochs"
        ),
        pytest.param(
            {"datasets": {"mine": {"csv": "p.csv", "x": 2020, "y": "b"}}},
            "config error: datasets.mine.x = 2020: must be a non-empty string",
            id="column-name-number",
        ),
    ],
)
def test_text_is_read_only_where_yaml_would_read_a_number(config: dict[str, Any], line: str) -> None:
    """Reading text as numbers must not hide YAML's 1e6 pitfall or turn text into numbers where
    text is wanted."""
    with pytest.raises(ConfigError) as info:
        check_config(config)
    assert str(info.value).startswith(line), str(info.value)


def test_integral_lr_and_cuda_index_pass() -> None:
    """lr 1 (an int) and devices such as cuda:1 are valid."""
    checked = check_config({"grid": {"lr": [1, 0.5], "device": ["cpu", "cuda:1"]}})
    assert checked["grid"]["lr"] == [1, 0.5]


# --------------------------------------------------------------------------------------------
# the schema itself


def _properties(node: dict[str, Any], where: str = "") -> list[tuple[str, dict[str, Any], bool]]:
    out = []
    required = set(node.get("required", []))
    for key, sub in node.get("properties", {}).items():
        out.append((f"{where}{key}", sub, key in required))
        out.extend(_properties(sub, f"{where}{key}."))
    return out


def _all_properties() -> list[tuple[str, dict[str, Any], bool]]:
    root = schema()
    out = _properties(root)
    for name, sub in root["$defs"].items():
        out.extend(_properties(sub, f"$defs.{name}."))
    return out


def test_schema_is_valid_draft_2020_12_from_package_data() -> None:
    """The schema ships inside the package (so `pip install` users get it) and is valid, and the
    schema every job loads (by libyaml's loader) is exactly what PyYAML's own safe loader reads."""
    source = resources.files("gdbench") / "schemas" / "config.schema.yaml"
    loaded = yaml.safe_load(source.read_text())
    assert loaded["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(loaded)
    assert schema_root() == loaded


def test_every_key_has_description_and_default() -> None:
    """Every key is documented; every optional key has a default (required ones cannot; `name`
    has none: the workflow takes the --configfile's file name)."""
    props = _all_properties()
    assert len(props) > 40
    for where, sub, required in props:
        assert sub.get("description"), f"{where} has no description"
        if not required and where != "name":
            assert "default" in sub, f"{where} has no default"


def test_every_mapping_rejects_unknown_keys() -> None:
    """A typo anywhere must be an error, not a key that silently does nothing."""
    root = schema()
    nodes = [("config", root)] + [(w, s) for w, s, _ in _all_properties()] + list(root["$defs"].items())
    for where, sub in nodes:
        if sub.get("type") == "object" and "properties" in sub:
            assert sub.get("additionalProperties") is False, f"{where} accepts unknown keys"


def test_defaults_are_valid() -> None:
    """The defaults must pass the schema they come from."""
    Draft202012Validator(schema()).validate(default_config())
    json.dumps(default_config(), allow_nan=False)


def test_workflow_schema_is_the_package_schema() -> None:
    """workflow/schemas/config.schema.yaml is a link to the package's copy, not a fork."""
    link = REPO / "workflow" / "schemas" / "config.schema.yaml"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "src" / "gdbench" / "schemas" / "config.schema.yaml").resolve()


def test_snakemake_validate_fills_the_same_defaults() -> None:
    """snakemake.utils.validate accepts the schema and fills nested defaults exactly as
    check_config does (the workflow calls check_config alone, which validates against this same
    file; the schema stays one a Snakemake workflow may validate() with)."""
    validate = pytest.importorskip("snakemake.utils").validate
    raw = {"training": {"engine": "loop"}, "datasets": {"line": {"synthetic": {"n": 8}}}, "grid": {"dataset": ["line"]}}
    ours = check_config(raw)
    theirs = json.loads(json.dumps(raw))
    validate(theirs, schema=str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    assert theirs == ours


# --------------------------------------------------------------------------------------------
# loading files, hashing, the error object


@pytest.mark.parametrize(
    ("content", "words"),
    [
        pytest.param("- 1\n- 2\n", ["holds a list", "not a mapping"], id="a-list"),
        pytest.param("just some text\n", ["holds a string"], id="a-string"),
        pytest.param("grid: {lr: [0.1\n", ["not valid YAML", "line"], id="yaml-syntax-error"),
    ],
)
def test_load_config_names_the_file(tmp_path: Path, content: str, words: list[str]) -> None:
    """A config file that is not a mapping gets one line naming the file."""
    path = tmp_path / "mine.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"config error: {path}: ")
    for word in words:
        assert word in message


def test_load_config_missing_file(tmp_path: Path) -> None:
    """A mistyped --configfile path names the path."""
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.yaml")


def test_load_config_json_and_empty(tmp_path: Path) -> None:
    """JSON configs load; an empty file is the default config."""
    (tmp_path / "c.json").write_text('{"grid": {"lr": [0.1]}}')
    assert load_config(tmp_path / "c.json") == {"grid": {"lr": [0.1]}}
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    assert check_config(load_config(tmp_path / "empty.yaml")) == default_config()


def test_yaml_numbers_as_facts_say() -> None:
    """PyYAML reads 1e6 and 1.0e6 as strings and 1.0e+6 as a number: the hint depends on it."""
    assert yaml.safe_load("[1e6, 1.0e6, 1.0e+6, 1.0e-6]") == ["1e6", "1.0e6", 1.0e6, 1.0e-6]


def test_config_hash_is_stable_and_ignores_written_out_defaults() -> None:
    """Provenance names a config by hash: the same grid gets the same hash whether defaults
    are written out or not; a changed lr gets another."""
    digest = config_hash(check_config({"grid": {"optimizer": ["sgd", "heavy_ball", "nesterov"]}}))
    assert len(digest) == 16 and int(digest, 16) >= 0
    assert digest == config_hash(check_config(load_config(DEFAULT_CONFIG)))
    assert digest != config_hash(check_config({"grid": {"lr": [0.1]}}))


def test_config_error_fields_and_pickling() -> None:
    """The error carries the key path and value (for programs) and survives pickling (for
    Snakemake, which may move exceptions between processes)."""
    with pytest.raises(ConfigError) as info:
        check_config({"grid": {"lr": [0.1, -0.5]}})
    err = info.value
    assert err.path == ("grid", "lr", 1)
    assert err.key == "grid.lr[1]"
    assert err.value == -0.5
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.path == err.path


def test_float_values_are_shown_as_yaml_reads_them() -> None:
    """A shown value can be pasted back into YAML: 1e-06 would be a string there."""
    with pytest.raises(ConfigError) as info:
        check_config({"grid": {"lr": [1e-6, -1e-6]}})
    assert "grid.lr[1] = -1.0e-06:" in str(info.value)
    assert yaml.safe_load("-1.0e-06") == -1.0e-06


def test_readme_documents_every_key() -> None:
    """config/README.md is where people look a key up: every key of the schema is there."""
    readme = (REPO / "config" / "README.md").read_text()
    missing = [where for where, _, _ in _all_properties() if f"`{where.rsplit('.', 1)[-1]}`" not in readme]
    assert not missing, f"config/README.md does not mention {missing}"
