r"""The μP coordinate check: how much each block's output moves in a few optimiser steps, across widths.

Under μP (Yang et al. 2021, "Tensor Programs V", section 5 / figure 5) every activation coordinate
changes by :math:`\Theta(1)` during training at every width: the RMS of
:math:`\Delta h = h_t - h_0` (a block's output after :math:`t` steps minus at initialisation, on the same
input) is flat in the width. A rule that makes it shrink with the width (a wider model learning more
slowly) or grow (blowing up) does not transfer learning rates.

.. code-block:: python

    from nnip_scaling.train.coordcheck import coordinate_check
    result = coordinate_check(lambda w: build_model("cartesian", w, 2, dtype="float64"), widths=(8, 32),
                              graph=batch, base_width=8, lr=0.01, lr_rule="mup")
    print(result.table())
    result.ratio("representation.blocks.0")   # RMS(Δh) at w=32 over w=8

The optimiser is plain Adam (the optimiser of table 3) with the groups of
:func:`~nnip_scaling.train.mup.parameter_groups`; the loss is eq. (1) (:func:`~nnip_scaling.train.loss_terms`)
on one fixed batch, so the check is deterministic for given seeds. Use a small ``lr`` (the default
test uses :math:`10^{-4}`): the changes are then first order in the step, :math:`\Delta h \approx J\,
\Delta\theta`, which is what μP's width scaling is about; with large steps a few-step trajectory is
dominated by Adam's sign-like first updates overshooting, which varies wildly between seeds at small
widths.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["CoordinateCheck", "coordinate_check", "watched_modules"]


@dataclass(frozen=True)
class CoordinateCheck:
    """Result of :func:`coordinate_check`.

    Attributes:
        widths: the widths checked.
        modules: names of the watched modules (outputs with several tensors get ``[i]`` suffixes).
        delta_rms: ``delta_rms[name][k]``: RMS of the output change of ``name`` at ``widths[k]``.
        init_rms: ``init_rms[name][k]``: RMS of the output at initialisation.
        lr_rule: the rule used.
    """

    widths: tuple[int, ...]
    modules: tuple[str, ...]
    delta_rms: dict[str, tuple[float, ...]]
    init_rms: dict[str, tuple[float, ...]]
    lr_rule: str

    def ratio(self, name: str) -> float:
        """RMS of the change at the largest width over that at the smallest."""
        d = self.delta_rms[name]
        return d[-1] / d[0]

    def ratios(self) -> dict[str, float]:
        return {n: self.ratio(n) for n in self.modules}

    def table(self) -> str:
        head = f"{'module':<40} " + " ".join(f"{'w=' + str(w):>10}" for w in self.widths) + f" {'ratio':>8}"
        lines = [f"RMS of the output change after the steps, lr_rule={self.lr_rule!r}", head]
        for n in self.modules:
            lines.append(f"{n:<40} " + " ".join(f"{v:>10.3g}" for v in self.delta_rms[n]) + f" {self.ratio(n):>8.3g}")
        return "\n".join(lines)


def watched_modules(model: nn.Module) -> list[str]:
    """The blocks a coordinate check watches: the embedding, every entry of each ``ModuleList`` directly
    under ``representation`` (the message-passing blocks), the representation's output and the heads."""
    names = ["embedding"]
    rep = getattr(model, "representation", None)
    if rep is not None:
        for child_name, child in rep.named_children():
            if isinstance(child, nn.ModuleList):
                names += [f"representation.{child_name}.{i}" for i in range(len(child))]
        names.append("representation")
    names += [n for n in ("energy_head", "force_head") if getattr(model, n, None) is not None]
    return names


def _tensors(out: object) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for t in out if isinstance(t, Tensor)]
    return [getattr(out, f) for f in getattr(out, "_fields", ()) if isinstance(getattr(out, f), Tensor)]


def _record(model: nn.Module, names: Sequence[str], graph: object) -> dict[str, Tensor]:
    """Outputs of the watched modules on ``graph`` (eval mode, no grad)."""
    outputs: dict[str, Tensor] = {}
    hooks = []
    for name in names:
        def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
            ts = [t for t in _tensors(out) if t.is_floating_point()]
            for i, t in enumerate(ts):
                outputs[name if len(ts) == 1 else f"{name}[{i}]"] = t.detach().clone()
        hooks.append(model.get_submodule(name).register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(graph)
    finally:
        for h in hooks:
            h.remove()
    return outputs


def _rms(t: Tensor) -> float:
    return float(t.double().pow(2).mean().sqrt()) if t.numel() else 0.0


def coordinate_check(build: Callable[[int], nn.Module], widths: Sequence[int], graph: object, *,
                     base_width: int, lr: float, lr_rule: str = "mup", steps: int = 2,
                     seeds: Sequence[int] = (0, 1, 2, 3), energy_weight: float = 1.0,
                     force_weight: float = 1.0) -> CoordinateCheck:
    r"""Train a model at each width for ``steps`` Adam steps on ``graph`` and measure each block's output change.

    Args:
        build: ``width -> model`` (the same architecture at every width; built under ``torch.manual_seed(seed)``).
        widths: widths to compare (the ratio is last over first).
        graph: one batch (an :class:`~nnip_scaling.graph.AtomicGraph` with ``energy`` and ``forces``
            labels, in the models' dtype).
        base_width: :math:`w_0` of the learning-rate rule.
        lr: :math:`\eta^*`.
        lr_rule: ``"mup"`` or ``"global"``.
        steps: Adam steps.
        seeds: model seeds; the RMS is pooled over them (root of the mean square over seeds and
            coordinates), as the width-independence is a statement about the distribution over
            initialisations: one small model's change fluctuates by a factor of a few between seeds.
        energy_weight, force_weight: eq. (1) weights.

    Returns:
        :class:`CoordinateCheck`.
    """
    from nnip_scaling.train.loss import loss_terms
    from nnip_scaling.train.mup import parameter_groups

    delta: dict[str, list[float]] = {}
    init: dict[str, list[float]] = {}
    for w in widths:
        sq_delta: dict[str, float] = {}
        sq_init: dict[str, float] = {}
        for seed in seeds:
            torch.manual_seed(seed)
            model = build(int(w))
            names = watched_modules(model)
            before = _record(model, names, graph)
            opt = torch.optim.Adam(parameter_groups(model, lr, lr_rule=lr_rule, base_width=base_width), lr=lr)
            model.train()
            for _ in range(steps):
                out = model(graph)
                loss = loss_terms(out.energy, out.forces, graph, energy_weight=energy_weight,
                                  force_weight=force_weight).total.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            after = _record(model, names, graph)
            for name, t0 in before.items():
                sq_delta[name] = sq_delta.get(name, 0.0) + _rms(after[name] - t0) ** 2 / len(seeds)
                sq_init[name] = sq_init.get(name, 0.0) + _rms(t0) ** 2 / len(seeds)
        for name in sq_delta:
            delta.setdefault(name, []).append(sq_delta[name] ** 0.5)
            init.setdefault(name, []).append(sq_init[name] ** 0.5)
    modules = tuple(n for n, d in delta.items() if any(d))  # outputs that no parameter moves (geometry) dropped
    return CoordinateCheck(tuple(int(w) for w in widths), modules, {k: tuple(v) for k, v in delta.items()},
                           {k: tuple(v) for k, v in init.items()}, lr_rule)
