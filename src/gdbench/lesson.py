"""The lesson gdbench is built on: its data, its run, its printed log (written and read
back), and its two side lessons.

``REFERENCE_LOG`` is the lesson's printed output for epochs 0..2000 every 100 epochs (the
document prints through 1900; running its code also prints epoch 2000). A faithful
reproduction prints exactly these lines.

The lesson's training loop itself is the loop engine's core,
:func:`gdbench.engines.loop.lesson_run`; it stays there so that this module needs no torch.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from gdbench.data import Dataset
from gdbench.runs import RunSpec

if TYPE_CHECKING:
    import pandas as pd

    from gdbench.trajectory import TrajectoryBatch

#: The lesson's training data.
TUTORIAL_X = (1.0, 2.0, 3.0)
TUTORIAL_Y = (2.0, 4.0, 6.0)

#: The lesson's learning rate (also that of a single timed run, see :mod:`gdbench.timing`).
LESSON_LR = 0.01
LESSON_EPOCHS = 2000
LESSON_SEED = 1
LOG_EVERY = 100

#: The lesson's dataset, as a config entry.
#: The lesson's run besides its data, lr, seed and epochs: zeros, full batch, float32, plain SGD
#: (what the lesson does, not the config's defaults).
LESSON_SETTINGS: dict[str, Any] = {"init": "zeros", "batch_size": None, "dtype": "float32", "optimizer": "sgd"}
TUTORIAL_DATASET = {"x": list(TUTORIAL_X), "y": list(TUTORIAL_Y)}

REFERENCE_LOG = """\
Epoch    0/2000 W: 0.187, b: 0.080 Cost: 18.666666
Epoch  100/2000 W: 1.746, b: 0.578 Cost: 0.048171
Epoch  200/2000 W: 1.800, b: 0.454 Cost: 0.029767
Epoch  300/2000 W: 1.843, b: 0.357 Cost: 0.018394
Epoch  400/2000 W: 1.876, b: 0.281 Cost: 0.011366
Epoch  500/2000 W: 1.903, b: 0.221 Cost: 0.007024
Epoch  600/2000 W: 1.924, b: 0.174 Cost: 0.004340
Epoch  700/2000 W: 1.940, b: 0.136 Cost: 0.002682
Epoch  800/2000 W: 1.953, b: 0.107 Cost: 0.001657
Epoch  900/2000 W: 1.963, b: 0.084 Cost: 0.001024
Epoch 1000/2000 W: 1.971, b: 0.066 Cost: 0.000633
Epoch 1100/2000 W: 1.977, b: 0.052 Cost: 0.000391
Epoch 1200/2000 W: 1.982, b: 0.041 Cost: 0.000242
Epoch 1300/2000 W: 1.986, b: 0.032 Cost: 0.000149
Epoch 1400/2000 W: 1.989, b: 0.025 Cost: 0.000092
Epoch 1500/2000 W: 1.991, b: 0.020 Cost: 0.000057
Epoch 1600/2000 W: 1.993, b: 0.016 Cost: 0.000035
Epoch 1700/2000 W: 1.995, b: 0.012 Cost: 0.000022
Epoch 1800/2000 W: 1.996, b: 0.010 Cost: 0.000013
Epoch 1900/2000 W: 1.997, b: 0.008 Cost: 0.000008
Epoch 2000/2000 W: 1.997, b: 0.006 Cost: 0.000005
"""


def lesson_spec(engine: str = "batched", device: str = "cpu") -> RunSpec:
    """The lesson's run: tutorial data, lr 0.01, 2000 epochs, zeros, full batch, float32."""
    return RunSpec("tutorial", LESSON_LR, LESSON_SEED, LESSON_EPOCHS, device=device, engine=engine, **LESSON_SETTINGS)


def tutorial() -> Dataset:
    """The lesson's three points."""
    return Dataset("tutorial", np.array(TUTORIAL_X), np.array(TUTORIAL_Y))


def format_line(epoch: int, epochs: int, W: float, b: float, cost: float) -> str:
    """One line of the lesson's log, in its exact format."""
    return f"Epoch {epoch:4d}/{epochs} W: {W:.3f}, b: {b:.3f} Cost: {cost:.6f}"


def lesson_lines(batch: TrajectoryBatch, every: int = 100, i: int = 0) -> Iterator[str]:
    """Run ``i``'s recorded epochs that are multiples of ``every``, in the lesson's format."""
    run = batch.runs[i]
    epochs, W, b, cost = batch.run_trajectory(i)
    for e, w, bb, c in zip(epochs, W, b, cost, strict=True):
        if every > 0 and e % every == 0:
            yield format_line(int(e), run.epochs, float(w), float(bb), float(c))


_LINE = re.compile(r"Epoch\s+(\d+)/\d+ W: (\S+), b: (\S+) Cost: (\S+)")


def parse_log(text: str) -> pd.DataFrame:
    """Lesson-style log lines as a table (epoch, W, b, cost as printed)."""
    import pandas as pd

    rows = [m.groups() for m in map(_LINE.match, text.splitlines()) if m]
    return pd.DataFrame(rows, columns=["epoch", "W", "b", "cost"]).astype({"epoch": int})


def zero_grad_lesson(epochs: int = 20, zero_grad: bool = False) -> list[float]:
    """``z = 2w; z.backward()`` repeated: the gradients seen with and without zeroing."""
    import torch

    w = torch.tensor(2.0, requires_grad=True)
    grads = []
    for _ in range(epochs + 1):
        if zero_grad and w.grad is not None:
            w.grad.zero_()
        z = 2 * w
        z.backward()
        assert w.grad is not None  # backward() filled it
        grads.append(float(w.grad))
    return grads


def manual_seed_lesson(seed: int, draws: int = 2) -> list[float]:
    """``torch.manual_seed(seed)`` then ``torch.rand(1)`` ``draws`` times."""
    import torch

    torch.manual_seed(seed)
    return [float(torch.rand(1)) for _ in range(draws)]
