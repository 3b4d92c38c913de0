"""The torch line: modules that read tables, check configs or draw never import torch, so
the config check, the tables and the plots start without paying for it. Each module is
imported alone in a fresh interpreter (what was imported before cannot hide an import)."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Modules on the torch-free side of the line (the engines, timing and the pipeline's
#: training use torch; :mod:`gdbench.engines.tracker` holds the engines' torch bookkeeping).
TORCH_FREE = [
    "gdbench.agreement",
    "gdbench.config",
    "gdbench.edge",
    "gdbench.experiment",
    "gdbench.horizon",
    "gdbench.lesson",
    "gdbench.minibatch",
    "gdbench.plots",
    "gdbench.pipeline",
    "gdbench.plots.reduction",
    "gdbench.search",
    "gdbench.stability",
    "gdbench.tables",
    "gdbench.theory",
    "gdbench.timing",
    "gdbench.timing.plans",
    "gdbench.timing.results",
    "gdbench.trajectory",
    "gdbench.verdicts",
]


@pytest.mark.parametrize("module", TORCH_FREE)
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch')[:3])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"{module} imports torch: {out.strip()}"
