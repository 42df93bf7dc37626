r"""Per-parameter learning rates across widths: μP for Adam (Tensor Programs V) or the paper's global rule.

A model family is tuned once at a *base width* :math:`w_0` (learning rate :math:`\eta^*`) and trained at
other widths :math:`w` with learning rates transferred by a rule (``lr_rule``):

``"mup"`` (default): μP for Adam-type optimisers (Yang et al. 2021, "Tensor Programs V", table 3; the
    ``mup`` package's ``MuAdam`` with a table-3 readout). Every parameter gets its own rate from how its
    *fan-in* grows with the width:

    .. math:: \eta_p = \eta^*\,\frac{\text{fan\_in}_p(w_0)}{\text{fan\_in}_p(w)}\quad\text{if the fan-in
              of } p \text{ grows with } w,\qquad \eta_p = \eta^* \text{ otherwise.}

    This gives, per role (:func:`classify_parameters`):

    ==========  ============================================================  ========================
    role        which parameters                                              learning rate
    ==========  ============================================================  ========================
    ``hidden``  fan-in and fan-out grow with the width (matrix-like)          η*·fan_in(w0)/fan_in(w)
    ``output``  only the fan-in grows (readouts, width → fixed bottlenecks)   η*·fan_in(w0)/fan_in(w)
    ``input``   only the fan-out grows: embeddings, input layers, biases,     η*
                norm gains (vector-like)
    ``fixed``   no dimension grows (radial/angular bases, fixed bottlenecks)  η*
    ==========  ============================================================  ========================

    The initialisation μP needs is built into the layers (``nnip_scaling.nn.mlp``): hidden and input
    weights :math:`\mathcal N(0, 1/\text{fan\_in})`, readouts :math:`\mathcal N(0, 1/\text{fan\_in}^2)`,
    biases 0, gains 1 (table 3's init column), so no extra multiplier is applied here.
    :func:`check_init` verifies that the initial scale of every parameter follows its role.

``"global"``: the paper's rule (section 3.3), :math:`\eta(w) = \eta^* w_0 / w` for **every** parameter.
    Embeddings, biases, gains and the width-independent parts then learn :math:`w/w_0` times slower in a
    wider model (docs/training.md, "μP", measures what this does).

How the fan-in is found (no per-family names): the model is rebuilt on the ``meta`` device (no memory)
at the base width and at :math:`4 w_0`; the dimensions of a parameter whose size changes with the width
are its *width dimensions* (as the ``mup`` package's base shapes). Which dimensions are the fan-in is a
property of the layer: ``nn.Linear`` (``weight [out, in]``: dim 1; bias: none), ``nn.Embedding``,
``nn.LayerNorm`` and ``nn.RMSNorm`` (none) are known; any other layer with width-dependent parameters
declares it with a class attribute

.. code-block:: python

    class SO3Linear(nn.Module):
        mup_fan_in = {"weight": (1,), "bias": ()}     # parameter name (fnmatch pattern) -> fan-in dims

Parameters with no width dimension need no declaration. A width-dependent parameter whose layer declares
nothing raises :class:`MuPClassificationError` naming it: a guessed rate would silently break transfer.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = [
    "LR_RULES",
    "ROLES",
    "MuPClassificationError",
    "ParamRule",
    "classify_parameters",
    "learning_rates",
    "parameter_groups",
    "format_rules",
    "check_init",
]

#: Learning-rate transfer rules of :func:`parameter_groups` (``TrainConfig.lr_rule``).
LR_RULES = ("mup", "global")
#: Parameter roles of :func:`classify_parameters`, in table order.
ROLES = ("hidden", "output", "input", "fixed")

_KNOWN_FAN_IN: dict[type, Mapping[str, tuple[int, ...]]] = {
    nn.Linear: {"weight": (1,), "bias": ()},
    nn.Embedding: {"weight": ()},
    nn.LayerNorm: {"weight": (), "bias": ()},
    nn.RMSNorm: {"weight": ()},
}
_PROBE_FACTOR = 4  # second width of the shape comparison: 4 * base (so that floor(sqrt(w)) changes too)


class MuPClassificationError(ValueError):
    """A parameter grows with the width but its layer does not say which of its dimensions are the fan-in."""


@dataclass(frozen=True)
class ParamRule:
    """How one parameter's learning rate follows the width.

    Attributes:
        name: the parameter's name in ``model.named_parameters()``.
        role: ``"hidden"``, ``"output"``, ``"input"`` or ``"fixed"`` (module docstring).
        shape: its shape in the model.
        base_shape: its shape at the base width.
        width_dims: dimensions whose size depends on the width.
        fan_in_dims: dimensions contracted with the layer's input (``None``: not needed, ``role="fixed"``).
        fan_in, base_fan_in: product of the fan-in dimensions at the model's and the base width.
        mup_scale: the μP multiplier of :math:`\\eta^*`: ``base_fan_in / fan_in`` for ``hidden`` and
            ``output``, 1 otherwise.
    """

    name: str
    role: str
    shape: tuple[int, ...]
    base_shape: tuple[int, ...]
    width_dims: tuple[int, ...]
    fan_in_dims: tuple[int, ...] | None
    fan_in: int
    base_fan_in: int
    mup_scale: float

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


# ----------------------------------------------------------------------------------------------------------
# classification


def _rebuild(model: nn.Module, width: int) -> nn.Module:
    """``model``'s architecture at ``width``, on the meta device (shapes only, no memory)."""
    config = getattr(model, "config", None)
    if config is None or not dataclasses.is_dataclass(config) or not hasattr(config, "width"):
        raise TypeError("classify_parameters needs a model built by nnip_scaling.models.build_model (with a "
                        f"dataclass .config holding 'width'), got {type(model).__name__}; pass base_model= "
                        "and probe_model= for other modules")
    from nnip_scaling.models.build import build_model

    options = {**dataclasses.asdict(config), "width": int(width)}
    for f in dataclasses.fields(config):  # width-derived defaults (None -> a function of the width) follow it
        if f.default is None and f.init and getattr(config, f.name) is not None:
            if getattr(dataclasses.replace(config, **{f.name: None}), f.name) == getattr(config, f.name):
                options[f.name] = None
    with torch.device("meta"):
        return build_model(**options)


def _owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module that holds parameter ``name`` and the parameter's name inside it."""
    module_path, _, local = name.rpartition(".")
    return (model.get_submodule(module_path) if module_path else model), local


def _declared_fan_in(model: nn.Module, name: str) -> tuple[int, ...] | None:
    """Fan-in dims of ``name`` from the nearest enclosing layer that declares it, or ``None``.

    The owning module is asked first (``lin.weight`` -> ``nn.Linear``), then its ancestors with the longer
    local name (``weights_m.0`` of a ``ParameterList`` -> the layer holding the list)."""
    parts = name.split(".")
    for cut in range(len(parts) - 1, -1, -1):
        module = model.get_submodule(".".join(parts[:cut])) if cut else model
        table = getattr(type(module), "mup_fan_in", None) or _KNOWN_FAN_IN.get(type(module))
        if not table:
            continue
        local = ".".join(parts[cut:])
        for pattern, dims in table.items():
            if fnmatch.fnmatchcase(local, pattern):
                return tuple(int(d) for d in dims)
    return None


def _classify_one(name: str, shape: tuple[int, ...], base: tuple[int, ...], probe: tuple[int, ...],
                  fan_in_dims: tuple[int, ...] | None, owner: str) -> ParamRule:
    if not (len(shape) == len(base) == len(probe)):
        raise MuPClassificationError(f"parameter {name!r} changes rank with the width ({base} at the base width, "
                                     f"{shape} here): μP needs the same dimensions at every width")
    width_dims = tuple(i for i in range(len(base)) if base[i] != probe[i] or base[i] != shape[i])
    if not width_dims:
        return ParamRule(name, "fixed", shape, base, (), None, 1, 1, 1.0)
    if fan_in_dims is None:
        raise MuPClassificationError(
            f"parameter {name!r} of {owner} has width-dependent dims {list(width_dims)} (shape {list(base)} at "
            f"the base width, {list(probe)} at {_PROBE_FACTOR}x) but its layer does not declare its fan-in: add "
            f"a class attribute mup_fan_in = {{'<param name pattern>': (<fan-in dims>,)}} to {owner} "
            "(see nnip_scaling.train.mup)")
    if any(not 0 <= d < len(shape) for d in fan_in_dims):
        raise MuPClassificationError(f"{owner}.mup_fan_in gives dims {fan_in_dims} for {name!r} of rank {len(shape)}")
    fan_in = math.prod(shape[d] for d in fan_in_dims)
    base_fan_in = math.prod(base[d] for d in fan_in_dims)
    grows_in = any(d in width_dims for d in fan_in_dims)
    grows_out = any(d not in fan_in_dims for d in width_dims)
    if not grows_in:
        return ParamRule(name, "input", shape, base, width_dims, fan_in_dims, fan_in, base_fan_in, 1.0)
    role = "hidden" if grows_out else "output"
    return ParamRule(name, role, shape, base, width_dims, fan_in_dims, fan_in, base_fan_in, base_fan_in / fan_in)


def classify_parameters(model: nn.Module, base_width: int | None = None, *, base_model: nn.Module | None = None,
                        probe_model: nn.Module | None = None) -> list[ParamRule]:
    r"""Classify every trainable parameter of ``model`` for μP (module docstring).

    Args:
        model: a model from :func:`~nnip_scaling.models.build_model` (any width).
        base_width: the width at which :math:`\eta^*` was tuned (default: the model's own width).
        base_model, probe_model: for modules without a ``config``: the same architecture at the base width
            and at another width (meta-device modules are fine); default: rebuilt from ``model.config`` at
            ``base_width`` and ``4 * base_width``.

    Returns:
        one :class:`ParamRule` per trainable parameter, in ``named_parameters()`` order.

    Raises:
        MuPClassificationError: a width-dependent parameter whose layer does not declare its fan-in, or a
            parameter that changes rank with the width.
    """
    if base_model is None or probe_model is None:
        width = int(model.config.width) if base_width is None and hasattr(model, "config") else base_width
        if width is None:
            raise TypeError("classify_parameters needs base_width or both base_model and probe_model")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ValueError(f"base_width must be an int >= 1, got {base_width!r}")
        base_model = _rebuild(model, width) if base_model is None else base_model
        probe_model = _rebuild(model, _PROBE_FACTOR * width) if probe_model is None else probe_model
    base_shapes = {n: tuple(p.shape) for n, p in base_model.named_parameters()}
    probe_shapes = {n: tuple(p.shape) for n, p in probe_model.named_parameters()}
    rules = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name not in base_shapes or name not in probe_shapes:
            raise MuPClassificationError(f"parameter {name!r} does not exist at every width (the architecture's "
                                         "parameter names must not depend on the width)")
        owner, _ = _owner(model, name)
        rules.append(_classify_one(name, tuple(p.shape), base_shapes[name], probe_shapes[name],
                                   _declared_fan_in(model, name), type(owner).__name__))
    return rules


# ----------------------------------------------------------------------------------------------------------
# learning rates and optimiser groups


def _check_rule(lr_rule: str) -> None:
    if lr_rule not in LR_RULES:
        raise ValueError(f"lr_rule must be one of {list(LR_RULES)}, got {lr_rule!r}")


def learning_rates(rules: Sequence[ParamRule], lr: float, *, lr_rule: str = "mup", width: int | None = None,
                   base_width: int | None = None) -> list[float]:
    r"""The learning rate of each classified parameter.

    ``"mup"``: :math:`\eta^*` times each rule's ``mup_scale``. ``"global"``: :math:`\eta^* w_0/w` for every
    parameter (``width`` and ``base_width`` required).
    """
    _check_rule(lr_rule)
    if lr_rule == "global":
        if width is None or base_width is None:
            raise ValueError("lr_rule='global' needs width and base_width")
        return [float(lr) * base_width / width for _ in rules]
    return [float(lr) * r.mup_scale for r in rules]


def parameter_groups(model: nn.Module, lr: float, *, lr_rule: str = "mup", base_width: int | None = None,
                     rules: Sequence[ParamRule] | None = None) -> list[dict[str, Any]]:
    r"""Optimiser parameter groups: one per distinct (role, learning rate), in a fixed order.

    Args:
        model: the model to train (from :func:`~nnip_scaling.models.build_model`).
        lr: :math:`\eta^*`, the learning rate tuned at ``base_width``.
        lr_rule: ``"mup"`` or ``"global"`` (module docstring).
        base_width: :math:`w_0`; ``None``: no transfer, one group with ``lr`` (no classification needed).
        rules: a precomputed :func:`classify_parameters` result (``"mup"`` only).

    Returns:
        a list of ``{"params": [...], "lr": float, "role": str}`` for ``torch.optim``-style optimisers (the
        extra key ``role`` is kept by torch and ignored by the update). Under ``"global"`` or without
        ``base_width`` there is one group, ``role="all"``.
    """
    _check_rule(lr_rule)
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if base_width is None or lr_rule == "global":
        width = int(model.config.width)
        rate = float(lr) if base_width is None else float(lr) * int(base_width) / width
        return [{"params": [p for _, p in trainable], "lr": rate, "role": "all"}]
    if rules is None:
        rules = classify_parameters(model, int(base_width))
    params = dict(trainable)
    groups: dict[tuple[str, float], dict[str, Any]] = {}
    for rule, rate in zip(rules, learning_rates(rules, lr)):
        g = groups.setdefault((rule.role, rate), {"params": [], "lr": rate, "role": rule.role})
        g["params"].append(params[rule.name])
    order = {r: i for i, r in enumerate(ROLES)}
    return sorted(groups.values(), key=lambda g: (order[g["role"]], -g["lr"]))


def format_rules(rules: Sequence[ParamRule], lr: float | None = None, *, lr_rule: str = "mup",
                 width: int | None = None, base_width: int | None = None) -> str:
    """A table of every parameter's role, shapes, fan-in and learning rate (multiplier of η* without ``lr``)."""
    rates = learning_rates(rules, 1.0 if lr is None else lr, lr_rule=lr_rule, width=width, base_width=base_width)
    head = f"{'parameter':<58} {'role':<7} {'shape':>16} {'base':>16} {'fan_in':>9} {'lr' if lr else 'lr/η*':>10}"
    lines = [head, "-" * len(head)]
    for r, rate in zip(rules, rates):
        fan = f"{r.base_fan_in}->{r.fan_in}" if r.fan_in_dims else "-"
        lines.append(f"{r.name:<58} {r.role:<7} {str(list(r.shape)):>16} {str(list(r.base_shape)):>16} "
                     f"{fan:>9} {rate:>10.4g}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# initialisation check


def check_init(model: nn.Module, rules: Iterable[ParamRule] | None = None, *, tolerance: float = 2.0) -> list[str]:
    r"""Parameters whose initial RMS does not follow μP's table-3 initialisation (empty list: all follow).

    Expected RMS at init: ``hidden`` :math:`\propto \text{fan\_in}^{-1/2}`, ``output`` between
    :math:`\text{fan\_in}^{-1}` and :math:`\text{fan\_in}^{-1/2}` (readouts :math:`\mathcal N(0,
    1/\text{fan\_in}^2)`; width → fixed bottlenecks inside the network keep the hidden init so that their
    output is :math:`\Theta(1)`), ``input``: width independent (embeddings :math:`\mathcal N(0,1)`,
    biases 0, gains 1). A parameter is reported when its RMS is off the expected band by more than
    ``tolerance``x. All-zero parameters (biases), constant ones (gains) and parameters with fewer than 32
    entries (whose sample RMS is too noisy to judge) always pass.
    """
    rules = classify_parameters(model) if rules is None else list(rules)
    params = dict(model.named_parameters())
    bad = []
    for r in rules:
        p = params[r.name].detach()
        if p.numel() < 32 or float(p.abs().max()) == 0.0 or bool((p == p.flatten()[0]).all()):
            continue
        rms = float(p.double().pow(2).mean().sqrt())
        if r.role == "hidden":
            lo, hi = r.fan_in ** -0.5 / 4, r.fan_in ** -0.5 * 2
        elif r.role == "output":
            lo, hi = 1.0 / r.fan_in, r.fan_in ** -0.5
        else:
            continue
        if not lo / tolerance <= rms <= hi * tolerance:
            bad.append(f"{r.name}: RMS {rms:.3g} outside [{lo:.3g}, {hi:.3g}] ({r.role}, fan_in {r.fan_in})")
    return bad
