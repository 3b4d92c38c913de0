"""What a job reads: declared config paths, their values, and the one-line rerun param.

Each job's code declares, next to itself, the config paths it reads (a :class:`Reads`; e.g.
:data:`gdbench.edge.EDGE_READS`). The workflow turns a declaration into the job's rerun param
with :func:`param_line`: one short line ending in a digest of the declared values, so a job
reruns exactly when a value it reads changes, and a new key it starts reading reruns it
without anyone editing the workflow.

Paths are dotted (``grid.seed``, ``edge``: a whole section; ``*``: the whole config, for a job
that records all of it); ``datasets.*`` and ``optimizers.*`` stand for the definitions of the
datasets and optimizers the job uses (so editing one it does not use reruns nothing). Values
are flattened to their leaves (``datasets.noisy.synthetic.noise``), so a change is named by the
leaf that changed.

The line says what changed: the workflow keeps, per digest, the values it saw
(:func:`param_line` writes ``<digest>.json`` in the job's record folder) and, per job, the line
it last ran with (the job writes it on success: :func:`record_done`). When the values equal
those of the last run the param is that run's line (no rerun); when they differ it is, e.g.,
``grid.lr: 0.05 -> 0.03 [digest]``; with no record yet, a summary of what is read.

This module imports nothing of gdbench (the workflow reads it at parse time).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A rerun line is at most this long (a long change list ends in "and N more").
MAX_LINE = 160
#: A value is shown whole up to this many characters, else summarised.
MAX_VALUE = 40
#: Values whose key ends so are digests of other values (a job's run specs): named in a change
#: only when nothing else changed.
DIGEST_SUFFIX = ".specs"
#: Paths standing for the definitions a job uses.
USED = ("datasets", "optimizers")


@dataclass(frozen=True)
class Reads:
    """The config paths a job reads (see the module docstring)."""

    paths: tuple[str, ...]

    def values(self, config: Mapping[str, Any], used: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any]:
        """The declared values of a checked config, flattened to their leaves; ``used`` names
        the definitions behind ``datasets.*`` and ``optimizers.*``."""
        out: dict[str, Any] = {}
        for path in self.paths:
            if path == "*":
                for section, content in config.items():
                    _flatten(section, content, out)
                continue
            head, _, rest = path.partition(".")
            if head in USED and rest == "*":
                for name in dict.fromkeys((used or {}).get(head, ())):
                    _flatten(f"{head}.{name}", config[head][name], out)
                continue
            value: Any = config
            for key in path.split("."):
                value = value[key]
            _flatten(path, value, out)
        return out


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _flatten(f"{prefix}.{key}", sub, out)
    else:
        out[prefix] = list(value) if isinstance(value, tuple) else value


def digest(values: Mapping[str, Any]) -> str:
    """12 hex digits of the sha256 of the values' canonical JSON."""
    text = json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def show(value: Any) -> str:
    """A value as a short text: whole when short, else its count and ends."""
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    if len(text) <= MAX_VALUE:
        return text
    if isinstance(value, list) and value:
        return f"{len(value)} values {show(value[0])}..{show(value[-1])}"
    return text[: MAX_VALUE - 3] + "..."


def change(key: str, old: Any, new: Any) -> str:
    """One change, e.g. ``grid.lr: 0.05 -> 0.03`` (for lists: the values removed and added)."""
    if old is _MISSING:
        return f"{key}: added {show(new)}"
    if new is _MISSING:
        return f"{key}: removed"
    if isinstance(old, list) and isinstance(new, list):
        removed = [v for v in old if v not in new]
        added = [v for v in new if v not in old]
        if len(removed) == len(added) == 1:  # one value replaced: grid.lr: 0.05 -> 0.03
            return f"{key}: {show(removed[0])} -> {show(added[0])}"
        if len(show(old)) + len(show(new)) > 2 * MAX_VALUE - 8:
            if not (removed or added):
                return f"{key}: reordered"
            parts = ([f"removed {show(removed)}"] if removed else []) + ([f"added {show(added)}"] if added else [])
            return f"{key}: {', '.join(parts)}"
    return f"{key}: {show(old)} -> {show(new)}"


_MISSING = object()


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    """What changed from ``old`` to ``new``, in one short line (empty when nothing did). A
    digest (a key ending in ``.specs``) is named only when nothing else changed."""
    keys = [k for k in dict.fromkeys([*old, *new]) if old.get(k, _MISSING) != new.get(k, _MISSING)]
    named = [k for k in keys if not k.endswith(DIGEST_SUFFIX)]
    keys = named or keys
    parts: list[str] = []
    for i, key in enumerate(keys):
        part = change(key, old.get(key, _MISSING), new.get(key, _MISSING))
        more = f"; and {len(keys) - i} more" if i else ""
        if parts and len("; ".join([*parts, part])) > MAX_LINE:
            parts.append(more.removeprefix("; "))
            break
        parts.append(part)
    return "; ".join(parts)


def summary(values: Mapping[str, Any]) -> str:
    """What a job reads, for people: the datasets and optimizers by name, the other keys by
    section (``reads datasets.tutorial, optimizers.sgd, grid, training, edge``)."""
    groups = list(dict.fromkeys(".".join(k.split(".")[: 2 if k.split(".")[0] in USED else 1]) for k in values))
    text = ", ".join(groups)
    if len(text) > MAX_LINE:
        text = text[: MAX_LINE - 3] + "..."
    return f"reads {text}" if groups else "reads no config"


_DIGEST = re.compile(r"\[([0-9a-f]{12})\]$")


def param_line(values: Mapping[str, Any], folder: str | Path) -> str:
    """The job's rerun param: the last run's line when the values are unchanged, else what
    changed (or, with no record, :func:`summary`), ending in ``[digest]``. Stores the values
    under their digest in ``folder`` (for the next change's description)."""
    folder = Path(folder)
    now = digest(values)
    _write(folder / f"{now}.json", json.dumps(values, sort_keys=True, default=str))
    last = _read(folder / "last")
    match = _DIGEST.search(last or "")
    if last and match and match.group(1) == now:
        return last
    before = _read(folder / f"{match.group(1)}.json") if match else None
    if before is not None:
        text = describe_changes(json.loads(before), json.loads(json.dumps(values, default=str)))
        if text:
            return f"{text} [{now}]"
    return f"{summary(values)} [{now}]"


def record_done(line: str, folder: str | Path) -> None:
    """Record, after a job succeeded, the param line it ran with (its values are stored under
    the line's digest already)."""
    _write(Path(folder) / "last", line)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _write(path: Path, text: str) -> None:
    if _read(path) == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
