r"""Adapters: count models of other packages with :func:`~nnip_scaling.flops.estimate_kappa`.

An adapter turns our probe graphs (:class:`~nnip_scaling.graph.AtomicGraph`, edges built at the
model's own cutoff *before* counting) into the input a model of another package expects, and runs
its forward pass, which is what is counted. One module per family, each imported lazily (the
package it adapts is imported only when a model of it is counted):

=============  ====================================================  ==========================
name           models                                                 input built
=============  ====================================================  ==========================
``mace``       mace-torch ``MACE``, ``ScaleShiftMACE``                its calculator's dict
``fairchem``   fairchem-core 2.x backbones (eSEN / UMA) and heads     ``AtomicData`` batch
``schnetpack`` SchNetPack ``NeuralNetworkPotential`` (SchNet, PaiNN,  dict of properties with
               SO3net)                                                ``idx_i``/``idx_j``
``pyg``        PyTorch Geometric ``SchNet``, ``ViSNet``               ``(z, pos, batch)``
=============  ====================================================  ==========================

:func:`find_adapter` picks the adapter from the model's package when that is unambiguous (the
model's class is defined in ``mace``, ``fairchem``, ``schnetpack`` or ``torch_geometric``); pass
``adapter=`` otherwise (a container such as ``nn.ModuleDict`` holding a fairchem backbone and
heads). Any other model: :class:`CallableAdapter` with a function ``graph -> model inputs``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from torch import nn

__all__ = ["ADAPTERS", "Adapter", "CallableAdapter", "find_adapter", "get_adapter"]


class Adapter:
    """How to feed our graphs to a model of another package (base class).

    Subclasses implement :meth:`cutoff`, :meth:`inputs` and :meth:`forward`; :meth:`max_neighbors`
    and :meth:`energy` have defaults.
    """

    #: short name (``"mace"``, ...), used in messages and tables.
    name: str = "adapter"

    def cutoff(self, model: nn.Module) -> float | None:
        """The model's own cutoff (Å) at which probe edges are built; ``None`` when the model
        builds its own edges."""
        raise NotImplementedError

    def max_neighbors(self, model: nn.Module) -> int | None:
        """The model's neighbour cap, ``None`` for none."""
        return None

    def inputs(self, model: nn.Module, graph: Any) -> Any:
        """The model's input for ``graph`` (built outside the count; ``graph`` carries edges
        when :meth:`cutoff` is not ``None``)."""
        raise NotImplementedError

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        """The counted call: the model's forward pass on ``inputs``."""
        return model(inputs)

    def energy(self, output: Any) -> Any:
        """Total energy per graph from the forward output (``[n_graphs]``)."""
        return output["energy"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


class CallableAdapter(Adapter):
    """An adapter from functions, for any model.

    Args:
        to_inputs: ``graph -> inputs`` (the graph carries edges when ``cutoff`` is given). The
            model is called as ``model(*inputs)`` when ``inputs`` is a tuple, else
            ``model(inputs)``.
        cutoff: radius (Å) of the probe edges; ``None``: the graphs carry no edges (the model
            builds its own, and that is counted).
        max_neighbors: neighbour cap of the probe edges (``None``: none).
        forward: ``(model, inputs) -> output``, replacing the default call.
        energy: ``output -> energy per graph`` (default: ``output`` itself).

    Example:
        >>> adapter = CallableAdapter(lambda g: (g.atomic_numbers, g.positions, g.batch), cutoff=5.0)
    """

    name = "callable"

    def __init__(
        self,
        to_inputs: Callable[[Any], Any],
        *,
        cutoff: float | None = None,
        max_neighbors: int | None = None,
        forward: Callable[[nn.Module, Any], Any] | None = None,
        energy: Callable[[Any], Any] | None = None,
    ) -> None:
        if not callable(to_inputs):
            raise TypeError(f"to_inputs must be callable (graph -> model inputs), got {type(to_inputs).__name__}")
        if cutoff is not None and (isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)) or not cutoff > 0):
            raise ValueError(f"cutoff must be a positive number or None, got {cutoff!r}")
        if max_neighbors is not None and (isinstance(max_neighbors, bool) or not isinstance(max_neighbors, int)
                                          or max_neighbors < 1):
            raise ValueError(f"max_neighbors must be an int >= 1 or None, got {max_neighbors!r}")
        for label, fn in (("forward", forward), ("energy", energy)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{label} must be callable, got {type(fn).__name__}")
        self._to_inputs, self._cutoff, self._max_neighbors = to_inputs, cutoff, max_neighbors
        self._forward, self._energy = forward, energy

    def cutoff(self, model: nn.Module) -> float | None:
        return None if self._cutoff is None else float(self._cutoff)

    def max_neighbors(self, model: nn.Module) -> int | None:
        return self._max_neighbors

    def inputs(self, model: nn.Module, graph: Any) -> Any:
        return self._to_inputs(graph)

    def forward(self, model: nn.Module, inputs: Any) -> Any:
        if self._forward is not None:
            return self._forward(model, inputs)
        return model(*inputs) if isinstance(inputs, tuple) else model(inputs)

    def energy(self, output: Any) -> Any:
        return output if self._energy is None else self._energy(output)


#: adapter name -> (module, class, the package it needs, the pip requirement to install).
ADAPTERS: dict[str, tuple[str, str, str, str]] = {
    "mace": ("nnip_scaling.flops.adapters.mace", "MaceAdapter", "mace", "mace-torch"),
    "fairchem": ("nnip_scaling.flops.adapters.fairchem", "FairchemAdapter", "fairchem.core", "fairchem-core"),
    "schnetpack": ("nnip_scaling.flops.adapters.schnetpack", "SchnetpackAdapter", "schnetpack", "schnetpack"),
    "pyg": ("nnip_scaling.flops.adapters.pyg", "PygAdapter", "torch_geometric", "torch-geometric"),
}

# top-level package of a model's class -> adapter name
_PACKAGES = {"mace": "mace", "fairchem": "fairchem", "schnetpack": "schnetpack", "torch_geometric": "pyg"}


def get_adapter(name: str, **options: Any) -> Adapter:
    """The adapter called ``name`` (a key of :data:`ADAPTERS`), built with ``options``.

    Raises:
        ValueError: unknown name.
        ImportError: the package the adapter needs is not installed (the message names it).
    """
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r}; known: {sorted(ADAPTERS)}, or pass a CallableAdapter")
    module, cls, package, requirement = ADAPTERS[name]
    try:
        importlib.import_module(package)
    except ImportError as err:
        raise ImportError(f"the {name!r} adapter needs the package {requirement!r}: "
                          f"pip install {requirement} ({err})") from err
    return getattr(importlib.import_module(module), cls)(**options)


def find_adapter(model: nn.Module) -> Adapter | None:
    """The adapter for ``model`` when its class comes from a package we adapt, else ``None``
    (our own models, which take an ``AtomicGraph``, need none)."""
    package = type(model).__module__.split(".")[0]
    name = _PACKAGES.get(package)
    return None if name is None else get_adapter(name)
