"""Provenance: what produced a set of results (versions, machine, config, commit, times)."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from gdbench.config import config_hash
from gdbench.reads import Reads

#: What the provenance job reads: the whole config (its record holds every key and the
#: config's hash), so any change reruns it, its rerun line naming the keys that changed.
PROVENANCE_READS = Reads(("*",))

PACKAGES = ("gdbench", "torch", "numpy", "pandas", "pyarrow", "seaborn", "matplotlib", "snakemake")

#: Environment variables that change numerics or threading, recorded when set.
ENV_KEYS = ("CUBLAS_WORKSPACE_CONFIG", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "PYTHONHASHSEED")


def now() -> str:
    """The current UTC time in ISO 8601."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's model name: from ``/proc/cpuinfo`` where there is one (``model name`` on x86,
    ``Model`` or ``Hardware`` on ARM), else :mod:`platform`'s idea of it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    import torch

    out["cuda"] = torch.version.cuda
    return out


def git_commit(path: str | os.PathLike[str] = ".") -> dict[str, Any] | None:
    """The commit (and whether the tree had changes) of the repository holding ``path``."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def devices() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu": {"model": cpu_model(), "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads()},
        "cuda_available": torch.cuda.is_available(),
        "cuda": [],
    }
    if torch.cuda.is_available():
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def deterministic_settings() -> dict[str, Any]:
    import torch

    return {
        "torch.are_deterministic_algorithms_enabled": torch.are_deterministic_algorithms_enabled(),
        "cudnn.deterministic": torch.backends.cudnn.deterministic,
        "cudnn.benchmark": torch.backends.cudnn.benchmark,
        "env": {k: os.environ[k] for k in ENV_KEYS if k in os.environ},
    }


def collect(
    config: Mapping[str, Any],
    started: str | None = None,
    finished: str | None = None,
    repo: str | os.PathLike[str] = ".",
    extra: Mapping[str, Any] | None = None,
    recorded: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything needed to say what produced a set of results.

    ``recorded`` holds ``versions``, ``devices`` and ``deterministic`` as a training job
    recorded them with :func:`runtime`; without it they are read in this process."""
    return {
        **(dict(recorded) if recorded is not None else runtime()),
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python_executable": sys.executable,
        "config": dict(config),
        "config_hash": config_hash(config),
        "git": git_commit(repo),
        "started": started,
        "finished": finished or now(),
        **(dict(extra) if extra else {}),
    }


def runtime() -> dict[str, Any]:
    """Versions, devices and deterministic settings of this process (imports torch)."""
    return {"versions": versions(), "devices": devices(), "deterministic": deterministic_settings()}


def flatten(record: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", "1")]``: a provenance record as key/value rows."""
    rows: list[tuple[str, str]] = []
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows += flatten(value, name + ".")
        else:
            rows.append((name, value if isinstance(value, str) else json.dumps(value, default=str)))
    return rows


def write_provenance(
    config: Mapping[str, Any],
    meta_paths: Sequence[str | os.PathLike[str]],
    json_path: str | os.PathLike[str],
    html_path: str | os.PathLike[str],
    log_path: str | os.PathLike[str],
    repo: str | os.PathLike[str],
    devices: Sequence[str],
) -> None:
    """What produced the results of a checked ``config``, as JSON and as an HTML table for the
    report. The versions are those the first training job recorded (its ``meta.json``, one of
    ``meta_paths``), so this imports no torch."""
    import pandas as pd

    from gdbench import io

    jobs = [json.loads(Path(p).read_text()) for p in meta_paths]
    keys = ("started", "finished", "seconds", "threads", "runs")
    record = collect(
        config,
        started=min(job["started"] for job in jobs),
        repo=repo,
        recorded=jobs[0]["runtime"],
        extra={
            "grid_devices": list(devices),
            "training_jobs": [
                {**{k: job[k] for k in keys}, "cuda_devices": job["runtime"]["devices"]["cuda"]} for job in jobs
            ],
        },
    )
    io.write_json(record, json_path)
    table = pd.DataFrame(flatten(record), columns=["key", "value"])
    io.write_html_table(table, html_path, "Provenance", "What produced these results.")
    io.write_text(f"provenance of {len(jobs)} training jobs recorded\n", log_path)
