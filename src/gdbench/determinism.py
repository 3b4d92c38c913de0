"""Deterministic settings: call :func:`set_deterministic` before training.

Seeds travel in the run specs (each random stream has its own ``torch.Generator``); what is
left is telling torch to use deterministic kernels, which on CUDA also needs cuBLAS's
workspace configuration set before the first cuBLAS call.

``torch.use_deterministic_algorithms(True)`` sets two things: ATen's deterministic flag and
the deterministic mode of torch's compiler (``torch._inductor.config.deterministic``), which
it imports to do so; that import costs ~1 s per process, and gdbench never compiles. So
:func:`set_deterministic` sets the ATen flag itself, and the compiler's mode through
``TORCHINDUCTOR_DETERMINISTIC=1``, which the compiler's config reads when it is first
imported (or directly, where it was imported already): the same state, without the import.
"""

from __future__ import annotations

import os
import sys

import torch


def set_deterministic(threads: int | None = None) -> None:
    """Deterministic algorithms everywhere, fixed thread count when ``threads`` is given."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    os.environ["TORCHINDUCTOR_DETERMINISTIC"] = "1"
    inductor = sys.modules.get("torch._inductor.config")
    if inductor is not None:
        setattr(inductor, "deterministic", True)  # noqa: B010 (a module attribute)
    torch._C._set_deterministic_algorithms(True, warn_only=False)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
