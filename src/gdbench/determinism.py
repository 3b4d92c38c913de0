"""Deterministic settings: call :func:`set_deterministic` before training.

Seeds travel in the run specs (each random stream has its own ``torch.Generator``); what is
left is telling torch to use deterministic kernels, which on CUDA also needs cuBLAS's
workspace configuration set before the first cuBLAS call.
"""

from __future__ import annotations

import os

import torch


def set_deterministic(threads: int | None = None) -> None:
    """Deterministic algorithms everywhere, fixed thread count when ``threads`` is given."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
