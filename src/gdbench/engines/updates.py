"""The optimizers' parameter updates for many runs at once (the batched engine's half of
``optimizer.step()``).

Parameters, gradients and optimizer state are ``[2, R]`` tensors (row 0 W, row 1 b; one
column per run). Every update repeats, elementwise and in the same order, the operations of
torch's single-tensor implementations (``torch.optim.sgd._single_tensor_sgd``,
``torch.optim.adam._single_tensor_adam``; the loop engine pins them with ``foreach=False,
fused=False``), with the optimizer's hyperparameters as the same Python scalars. Only the
learning rate differs between runs, so only where torch uses ``lr`` does a per-run tensor
stand in for a Python scalar, rounded as torch rounds the scalar:

* SGD (any momentum, dampening, nesterov, weight decay): ``param.add_(step, alpha=-lr)``
  becomes ``torch.addcmul(param, neg_lr, step)`` with ``neg_lr = -lr`` rounded to the dtype
  (as the kernel casts ``alpha``);
* Adam: ``param.addcdiv_(exp_avg, denom, value=-step_size)`` computes
  ``param + (value * exp_avg) / denom``; here ``value = -(lr / bias_correction1)`` is computed
  in float64 per run (Python's float arithmetic), rounded to the dtype, and the product,
  quotient and sum are done as three elementwise operations in the kernel's order.

Every operation is elementwise, so a run's numbers never depend on which runs share its
batch. On the CPU the trajectories are bit-identical to the loop engine's: proven by
``tests/test_optimizers.py`` (every optimizer kind, full batch and minibatch, float32 and
float64, alone and in batches of several sizes), not by this argument alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from gdbench.optimizers import OptimizerSpec


class SGDUpdate:
    """``torch.optim.SGD``'s step: weight decay, momentum buffer (a clone of the first
    gradient, then ``buf * momentum + (1 - dampening) * grad``), nesterov, then the step."""

    def __init__(self, spec: OptimizerSpec, neg_lr: torch.Tensor) -> None:
        self.spec = spec
        self.neg_lr = neg_lr
        self.buf: torch.Tensor | None = None

    @property
    def stateless(self) -> bool:
        """Whether every step is the same computation (so a CUDA graph may replay it)."""
        return self.spec.momentum == 0

    def __call__(self, P: torch.Tensor, grad: torch.Tensor, out: torch.Tensor) -> None:
        """``out`` = the parameters after one step from ``P`` with gradient ``grad``."""
        spec = self.spec
        if spec.weight_decay != 0:
            grad = grad.add(P, alpha=spec.weight_decay)
        if spec.momentum != 0:
            if self.buf is None:
                self.buf = grad.detach().clone()
            else:
                self.buf.mul_(spec.momentum).add_(grad, alpha=1 - spec.dampening)
            grad = grad.add(self.buf, alpha=spec.momentum) if spec.nesterov else self.buf
        torch.addcmul(P, self.neg_lr, grad, out=out)  # param.add_(grad, alpha=-lr)

    def keep(self, mask: torch.Tensor) -> None:
        """Keep the state of the runs where ``mask`` (over the current runs) is true."""
        self.neg_lr = self.neg_lr[mask]
        if self.buf is not None:
            self.buf = self.buf[:, mask]


class AdamUpdate:
    """``torch.optim.Adam``'s step (``decoupled_weight_decay`` off, as in Adam proper)."""

    def __init__(self, spec: OptimizerSpec, lr: torch.Tensor, dtype: torch.dtype) -> None:
        self.spec = spec
        self.lr = lr.to(torch.float64)  # Python floats: step_size = lr / bias_correction1
        self.dtype = dtype
        self.step = 0
        R = lr.shape[0]
        self.exp_avg = torch.zeros((2, R), dtype=dtype, device=lr.device)
        self.exp_avg_sq = torch.zeros((2, R), dtype=dtype, device=lr.device)
        self.max_exp_avg_sq = torch.zeros((2, R), dtype=dtype, device=lr.device) if spec.amsgrad else None

    stateless = False

    def __call__(self, P: torch.Tensor, grad: torch.Tensor, out: torch.Tensor) -> None:
        spec = self.spec
        beta1, beta2 = spec.betas
        self.step += 1
        if spec.weight_decay != 0:
            grad = grad.add(P, alpha=spec.weight_decay)
        self.exp_avg.lerp_(grad, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = float(self.step)  # torch reads its float step count with .item()
        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        neg_step_size = (-(self.lr / bias_correction1)).to(self.dtype)  # value=-step_size, as the kernel casts it
        bias_correction2_sqrt = bias_correction2**0.5
        second = self.exp_avg_sq
        if self.max_exp_avg_sq is not None:
            torch.maximum(self.max_exp_avg_sq, self.exp_avg_sq, out=self.max_exp_avg_sq)
            second = self.max_exp_avg_sq
        denom = (second.sqrt() / bias_correction2_sqrt).add_(spec.eps)
        # param.addcdiv_(exp_avg, denom, value=v) is param + (v * exp_avg) / denom
        torch.mul(neg_step_size, self.exp_avg, out=out)
        out.div_(denom).add_(P)

    def keep(self, mask: torch.Tensor) -> None:
        self.lr = self.lr[mask]
        self.exp_avg = self.exp_avg[:, mask]
        self.exp_avg_sq = self.exp_avg_sq[:, mask]
        if self.max_exp_avg_sq is not None:
            self.max_exp_avg_sq = self.max_exp_avg_sq[:, mask]


Update = SGDUpdate | AdamUpdate


def make_update(
    spec: OptimizerSpec, lrs: Sequence[float] | np.ndarray, dtype: torch.dtype, device: torch.device
) -> Update:
    """The update of ``spec`` for runs with learning rates ``lrs`` (fresh optimizer state)."""
    lr64 = torch.tensor(np.asarray(lrs, dtype=np.float64))  # a copy of the config's floats, as they are
    if spec.kind == "adam":
        return AdamUpdate(spec, lr64.to(device), dtype)
    return SGDUpdate(spec, -lr64.to(device=device, dtype=dtype))
