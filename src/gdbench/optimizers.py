"""Optimizers: the config's named optimizer definitions, as ``torch.optim`` takes them.

A config names optimizers the way it names datasets, one kind per definition, with the keys
of the torch.optim constructor (the learning rate comes from the grid)::

    optimizers:
      sgd: {sgd: {}}                                   # plain gradient descent (the lesson)
      heavy_ball: {sgd: {momentum: 0.9}}
      nesterov: {sgd: {momentum: 0.9, nesterov: true}}
      adam: {adam: {betas: [0.9, 0.999], eps: 1.0e-8}}

An :class:`OptimizerSpec` is one such definition, checked as torch checks it (and a little
more: no negative values). A run names its optimizer (``RunSpec.optimizer``); the engines look
the spec up by that name. A config without optimizers trains plain SGD: :data:`PLAIN_SGD`.
The arguments' defaults (torch's) are the schema's (``$defs/sgd_arguments``,
``$defs/adam_arguments``), written there alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gdbench.schema_defaults import def_defaults

#: Optimizer kinds: the torch.optim class each stands for.
KINDS = ("sgd", "adam")

#: The keys each kind takes (torch.optim's argument names), with torch's defaults (the schema's).
KEYS: dict[str, dict[str, Any]] = {kind: def_defaults(f"{kind}_arguments") for kind in KINDS}

#: Every argument of :class:`OptimizerSpec` with its default (the kind that does not take it
#: ignores it), as the spec holds it (``betas`` a tuple).
ARGUMENT_DEFAULTS: dict[str, Any] = {
    key: tuple(value) if isinstance(value, list) else value for kind in KINDS for key, value in KEYS[kind].items()
}

#: The optimizer a run names when it names none.
DEFAULT_NAME = "sgd"


class OptimizerError(ValueError):
    """An optimizer definition torch would refuse (or that makes no sense)."""


@dataclass(frozen=True)
class OptimizerSpec:
    """One optimizer: a kind (``sgd`` or ``adam``) and its torch.optim arguments.

    SGD uses ``momentum``, ``dampening``, ``nesterov`` and ``weight_decay``; Adam uses
    ``betas``, ``eps``, ``weight_decay`` and ``amsgrad``. The other kind's fields hold their
    defaults and are ignored. No field has a default here: :func:`parse_optimizer` fills the
    schema's (:data:`ARGUMENT_DEFAULTS`).
    """

    name: str
    kind: str
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float
    betas: tuple[float, float]
    eps: float
    amsgrad: bool

    def __post_init__(self) -> None:
        where = f"optimizer {self.name!r}"
        if self.kind not in KINDS:
            raise OptimizerError(f"{where}: kind must be one of {KINDS}, not {self.kind!r}")
        for key in ("momentum", "dampening", "weight_decay", "eps"):
            value = getattr(self, key)
            if not (math.isfinite(value) and value >= 0):
                raise OptimizerError(f"{where}: {key} must be a finite number >= 0, not {value!r}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise OptimizerError(f"{where}: nesterov needs momentum > 0 and dampening 0 (torch refuses it otherwise)")
        if len(self.betas) != 2 or not all(0 <= b < 1 for b in self.betas):
            raise OptimizerError(f"{where}: betas must be two numbers in [0, 1), not {list(self.betas)!r}")

    @property
    def is_plain(self) -> bool:
        """Plain gradient descent: SGD without momentum (its excess cost shrinks monotonically
        by ``(1 - lr lambda)^2`` per direction)."""
        return self.kind == "sgd" and self.momentum == 0

    def arguments(self) -> dict[str, Any]:
        """The keyword arguments of the torch.optim constructor (besides ``lr``)."""
        if self.kind == "sgd":
            return {
                "momentum": self.momentum,
                "dampening": self.dampening,
                "nesterov": self.nesterov,
                "weight_decay": self.weight_decay,
            }
        return {
            "betas": tuple(self.betas),
            "eps": self.eps,
            "weight_decay": self.weight_decay,
            "amsgrad": self.amsgrad,
        }

    def describe(self) -> str:
        """A short readable form, e.g. ``sgd(momentum=0.9, nesterov=True)``; defaults left out."""
        defaults = KEYS[self.kind]
        given = [
            f"{k}={list(v) if isinstance(v, tuple) else v}"
            for k, v in self.arguments().items()
            if (list(v) if isinstance(v, tuple) else v) != defaults[k]
        ]
        return f"{self.kind}({', '.join(given)})"


def parse_optimizer(name: str, raw: Mapping[str, Any]) -> OptimizerSpec:
    """An optimizer definition from the config: ``{sgd: {...}}`` or ``{adam: {...}}``."""
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise OptimizerError(f"optimizer {name!r}: must be a mapping with one key, sgd or adam")
    ((kind, args),) = raw.items()
    if kind not in KINDS:
        raise OptimizerError(f"optimizer {name!r}: unknown kind {kind!r} (use sgd or adam)")
    args = dict(args or {})
    unknown = sorted(set(args) - set(KEYS[kind]))
    if unknown:
        raise OptimizerError(f"optimizer {name!r}: {kind} takes {', '.join(KEYS[kind])}, not {', '.join(unknown)}")
    if "betas" in args:
        args["betas"] = tuple(float(b) for b in args["betas"])
    for key in ("momentum", "dampening", "weight_decay", "eps"):
        if key in args:
            args[key] = float(args[key])
    return OptimizerSpec(name=name, kind=kind, **{**ARGUMENT_DEFAULTS, **args})


#: Plain gradient descent, the lesson's ``optim.SGD(params, lr)``.
PLAIN_SGD = parse_optimizer(DEFAULT_NAME, {"sgd": {}})
