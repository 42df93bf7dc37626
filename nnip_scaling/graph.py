r"""``AtomicGraph``: a batch of molecules as one disconnected graph.

An :class:`AtomicGraph` holds atoms of one or more molecules (graphs) concatenated along dim 0, with a
sorted ``batch`` vector telling which graph each atom belongs to, optional labels, and optional edges.
It is an immutable value (a frozen dataclass): methods return new graphs and share unchanged tensors.

Edges are built once, outside the model, by :meth:`AtomicGraph.with_edges` (models build them on the
fly only when a graph has none). Conventions (docs/conventions.md): ``edge_index[0]`` is the source
:math:`u`, ``edge_index[1]`` the target :math:`v`, and ``edge_vec = x_u - x_v`` (:math:`r_{uv}`, paper
eq. 9). Units: Å, eV, eV/Å.

Example::

    g = AtomicGraph.from_molecules([(Z0, R0), (Z1, R1)]).with_edges(cutoff=6.0, max_neighbors=30)
    g.edge_index.shape  # [2, E]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from nnip_scaling.neighbors import COINCIDENT_TOLERANCE, radius_graph

__all__ = ["AtomicGraph", "collate", "MAX_ATOMIC_NUMBER"]

MAX_ATOMIC_NUMBER = 118


def _as_tensor(value: Any, *, name: str, dtype: torch.dtype | None, floating: bool) -> Tensor:
    """Convert lists / numpy arrays / tensors to a tensor, with a clear error naming the field."""
    try:
        if isinstance(value, Tensor):
            t = value
        else:
            arr = np.asarray(value)
            if arr.dtype == object:
                raise ValueError("ragged or non-numeric data")
            t = torch.from_numpy(np.array(arr, copy=True))
    except (ValueError, TypeError) as err:
        raise ValueError(f"{name}: cannot convert to a numeric array ({err})") from err
    if floating:
        if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in _INT_DTYPES):
            raise TypeError(f"{name} must be real numbers, got dtype {t.dtype}")
        if dtype is None:
            # floating tensors keep their dtype; numpy arrays and lists get torch's default (float32)
            keep = isinstance(value, Tensor) and t.is_floating_point()
            dtype = t.dtype if keep else torch.get_default_dtype()
        return t.to(dtype)
    if t.is_floating_point():
        if not bool((t == t.round()).all()):
            raise ValueError(f"{name} must be integers, got non-integral floating values")
    elif t.dtype not in _INT_DTYPES:
        raise TypeError(f"{name} must be integers, got dtype {t.dtype}")
    return t.to(torch.int64)


_INT_DTYPES = (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
_FLOAT_NAMES = {"float16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16,
                "float32": torch.float32, "float": torch.float32, "float64": torch.float64,
                "double": torch.float64}


def _as_float_dtype(dtype: Any) -> torch.dtype | None:
    """``None``, a floating ``torch.dtype`` or its name (``"float64"``) -> ``torch.dtype`` or ``None``."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = dtype.removeprefix("torch.")
        if name not in _FLOAT_NAMES:
            raise TypeError(f"dtype must be a floating torch.dtype or one of {sorted(_FLOAT_NAMES)}, "
                            f"got {dtype!r}")
        return _FLOAT_NAMES[name]
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype (e.g. torch.float64) or its name, got {dtype!r}")
    return dtype


def _check_given_edge_vec(given: Any, derived: Tensor, positions: Tensor) -> None:
    """A caller-supplied ``edge_vec`` must equal ``positions[u] - positions[v]`` to rounding."""
    if not isinstance(given, Tensor) or not given.is_floating_point() or given.shape != derived.shape:
        raise ValueError(f"edge_vec must be a floating tensor of shape [E, 3] = {list(derived.shape)}, "
                         f"got {getattr(given, 'shape', type(given).__name__)}")
    if not derived.numel():
        return
    # Rounding of either precision is fine (e.g. vectors computed in float32 for a float64 graph).
    eps = max(torch.finfo(derived.dtype).eps, torch.finfo(given.dtype).eps)
    tol = 64 * eps * _scale(positions)
    err = (given.detach().to(device=derived.device, dtype=derived.dtype) - derived.detach()).abs().max()
    if not bool(err <= tol):
        raise ValueError(
            f"edge_vec disagrees with the positions (largest difference {float(err):.3g} Å): it must be "
            "positions[edge_index[0]] - positions[edge_index[1]]. Leave edge_vec out, it is computed "
            "from positions; after moving atoms use replace(positions=...) (rebuilds the edges) or "
            "with_positions(...) (keeps the edge set)"
        )


@dataclass(frozen=True, eq=False, init=False)
class AtomicGraph:
    r"""A batch of molecules as one graph (immutable).

    Attributes:
        positions: ``[n_atoms, 3]`` floating, Å.
        atomic_numbers: ``[n_atoms]`` int64 in 1..118.
        batch: ``[n_atoms]`` int64 graph index of each atom, sorted (non-decreasing), in ``[0, n_graphs)``.
        n_graphs: number of graphs; graphs with no atoms are legal.
        energy: ``[n_graphs]`` floating (eV) or ``None``.
        forces: ``[n_atoms, 3]`` floating (eV/Å) or ``None``.
        edge_index: ``[2, E]`` int64 or ``None``; row 0 source :math:`u`, row 1 target :math:`v`; both
            ends in the same graph, never the same atom (no self-loops), never two coincident atoms.
        edge_vec: ``[E, 3]``, always ``positions[u] - positions[v]`` (``None`` without edges). It is
            *derived*: computed from ``positions`` and ``edge_index`` whenever a graph is made, so it
            can never disagree with the positions. The constructor still accepts an ``edge_vec``
            argument, which must equal the derived value (to rounding); leave it out.
        cutoff: the radius (Å) the edges were built with, or ``None`` if unknown / no edges.
        max_neighbors: the neighbour cap the edges were built with, or ``None``.

    Validation happens at construction; violations raise ``ValueError`` (``TypeError`` for wrong
    types) naming the field. Use :meth:`from_molecules` or :meth:`from_arrays` rather than the raw
    constructor when starting from numpy arrays or lists.

    Moving atoms: :meth:`replace` with new ``positions`` rebuilds the edges (with the recorded
    ``cutoff`` and ``max_neighbors``; hand-made edges are kept and their vectors recomputed);
    :meth:`with_positions` keeps the edge set and recomputes ``edge_vec``, which is what a
    conservative model (positions that require grad) and a rigid motion (rotation, translation) need.
    """

    positions: Tensor
    atomic_numbers: Tensor
    batch: Tensor
    n_graphs: int
    energy: Tensor | None = None
    forces: Tensor | None = None
    edge_index: Tensor | None = None
    edge_vec: Tensor | None = field(default=None, init=False)  # derived, see __init__
    cutoff: float | None = None
    max_neighbors: int | None = None

    def __init__(
        self,
        positions: Tensor,
        atomic_numbers: Tensor,
        batch: Tensor,
        n_graphs: int,
        energy: Tensor | None = None,
        forces: Tensor | None = None,
        edge_index: Tensor | None = None,
        edge_vec: Tensor | None = None,
        cutoff: float | None = None,
        max_neighbors: int | None = None,
    ) -> None:
        # Written by hand so that ``edge_vec`` is an argument (checked, then replaced by the value
        # derived from the positions) but not an init field: ``dataclasses.replace`` never copies a
        # stale one across a change of positions.
        for name, value in (("positions", positions), ("atomic_numbers", atomic_numbers), ("batch", batch),
                            ("n_graphs", n_graphs), ("energy", energy), ("forces", forces),
                            ("edge_index", edge_index), ("cutoff", cutoff), ("max_neighbors", max_neighbors)):
            object.__setattr__(self, name, value)
        self._validate(edge_vec)

    # ------------------------------------------------------------------ validation
    def _validate(self, edge_vec: Tensor | None) -> None:
        pos, z, b = self.positions, self.atomic_numbers, self.batch
        for name in ("positions", "atomic_numbers", "batch"):
            if not isinstance(getattr(self, name), Tensor):
                raise TypeError(f"{name} must be a torch.Tensor, got {type(getattr(self, name)).__name__}")
        if pos.dim() != 2 or pos.shape[1] != 3:
            raise ValueError(f"positions must have shape [n_atoms, 3], got {tuple(pos.shape)}")
        if not pos.is_floating_point():
            raise TypeError(f"positions must be floating point, got {pos.dtype}")
        n = pos.shape[0]
        if z.dtype != torch.int64:
            raise TypeError(f"atomic_numbers must be int64, got {z.dtype}")
        if z.shape != (n,):
            raise ValueError(f"atomic_numbers must have shape [n_atoms] = [{n}], got {tuple(z.shape)}")
        if b.dtype != torch.int64:
            raise TypeError(f"batch must be int64, got {b.dtype}")
        if b.shape != (n,):
            raise ValueError(f"batch must have shape [n_atoms] = [{n}], got {tuple(b.shape)}")
        if isinstance(self.n_graphs, bool) or not isinstance(self.n_graphs, int) or self.n_graphs < 0:
            raise ValueError(f"n_graphs must be a non-negative int, got {self.n_graphs!r}")
        for name in ("atomic_numbers", "batch"):
            if getattr(self, name).device != pos.device:
                raise ValueError(f"{name} is on {getattr(self, name).device}, positions on {pos.device}")
        if n:
            if not bool(torch.isfinite(pos).all()):
                raise ValueError("positions contain non-finite values (NaN or inf)")
            if bool(((z < 1) | (z > MAX_ATOMIC_NUMBER)).any()):
                bad = int(z[(z < 1) | (z > MAX_ATOMIC_NUMBER)][0])
                raise ValueError(f"atomic_numbers must lie in 1..{MAX_ATOMIC_NUMBER}, found {bad}")
            if bool((b[1:] < b[:-1]).any()):
                raise ValueError("batch must be sorted in non-decreasing order")
            if int(b[0]) < 0 or int(b[-1]) >= self.n_graphs:
                raise ValueError(
                    f"batch values must lie in [0, n_graphs) = [0, {self.n_graphs}), "
                    f"found range [{int(b[0])}, {int(b[-1])}]"
                )
        self._check_labels(n)
        self._check_edges(n, edge_vec)

    def _check_labels(self, n: int) -> None:
        for name, shape in (("energy", (self.n_graphs,)), ("forces", (n, 3))):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, Tensor) or not value.is_floating_point():
                raise TypeError(f"{name} must be a floating-point torch.Tensor or None")
            if tuple(value.shape) != shape:
                raise ValueError(f"{name} must have shape {list(shape)}, got {list(value.shape)}")
            if value.device != self.positions.device:
                raise ValueError(f"{name} is on {value.device}, positions on {self.positions.device}")
            if value.numel() and not bool(torch.isfinite(value).all()):
                raise ValueError(f"{name} contains non-finite values (NaN or inf)")

    def _check_edges(self, n: int, given_vec: Tensor | None) -> None:
        """Validate ``edge_index`` and set the derived ``edge_vec`` (checking a given one against it)."""
        ei = self.edge_index
        if ei is None:
            if given_vec is not None:
                raise ValueError("edge_vec was given without edge_index; edge_vec is derived from "
                                 "positions and edge_index, so give edge_index (or neither)")
            object.__setattr__(self, "edge_vec", None)
            return
        if not isinstance(ei, Tensor) or ei.dtype != torch.int64 or ei.dim() != 2 or ei.shape[0] != 2:
            raise ValueError(f"edge_index must be an int64 tensor of shape [2, E], got {getattr(ei, 'shape', ei)}")
        if ei.device != self.positions.device:
            raise ValueError(f"edge_index is on {ei.device}, positions on {self.positions.device}")
        e = ei.shape[1]
        if e:
            if int(ei.min()) < 0 or int(ei.max()) >= n:
                raise ValueError(f"edge_index values must lie in [0, n_atoms) = [0, {n})")
            loops = ei[0] == ei[1]
            if bool(loops.any()):
                k = int(torch.nonzero(loops)[0, 0])
                raise ValueError(
                    f"edge_index has {int(loops.sum())} self-loop(s), e.g. edge {k}: atom {int(ei[0, k])} -> "
                    "itself; an atom is not its own neighbour (its edge vector is zero and its direction "
                    "undefined). Remove them, or build edges with with_edges()"
                )
            if bool((self.batch[ei[0]] != self.batch[ei[1]]).any()):
                raise ValueError("edge_index connects atoms of different graphs")
        vec = self.positions[ei[0]] - self.positions[ei[1]]
        if given_vec is not None:
            _check_given_edge_vec(given_vec, vec, self.positions)
        if e:
            short = torch.linalg.vector_norm(vec.detach(), dim=-1) < COINCIDENT_TOLERANCE
            if bool(short.any()):
                k = int(torch.nonzero(short)[0, 0])
                raise ValueError(
                    f"edge {k} joins atoms {int(ei[0, k])} and {int(ei[1, k])}, which are coincident "
                    f"(distance < {COINCIDENT_TOLERANCE} Å): fix the positions"
                )
        object.__setattr__(self, "edge_vec", vec)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        positions: Any,
        atomic_numbers: Any,
        batch: Any = None,
        *,
        n_graphs: int | None = None,
        energy: Any = None,
        forces: Any = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> AtomicGraph:
        """Build a graph from flat arrays (numpy, lists or tensors).

        Args:
            positions: ``[n_atoms, 3]`` Å.
            atomic_numbers: ``[n_atoms]`` integers in 1..118.
            batch: ``[n_atoms]`` sorted graph indices; ``None`` means one graph.
            n_graphs: number of graphs (default ``batch.max() + 1``, or 1 when ``batch`` is ``None``).
            energy: ``[n_graphs]`` eV, optional.
            forces: ``[n_atoms, 3]`` eV/Å, optional.
            dtype: floating dtype or its name (``torch.float64`` or ``"float64"``; default: the
                tensor's own dtype for floating tensors, else ``torch.get_default_dtype()``, i.e. float32).
            device: where to put the tensors (default: where ``positions`` is, or CPU).
        """
        dtype = _as_float_dtype(dtype)
        pos = _as_tensor(positions, name="positions", dtype=dtype, floating=True)
        if pos.dim() == 1 and pos.numel() == 0:
            pos = pos.reshape(0, 3)
        dtype = pos.dtype
        device = torch.device(device) if device is not None else pos.device
        pos = pos.to(device)
        z = _as_tensor(atomic_numbers, name="atomic_numbers", dtype=None, floating=False).to(device)
        if batch is None:
            b = torch.zeros(pos.shape[0], dtype=torch.int64, device=device)
            default_graphs = 1
        else:
            b = _as_tensor(batch, name="batch", dtype=None, floating=False).to(device)
            default_graphs = int(b.max()) + 1 if b.numel() else 0
        if n_graphs is None:
            n_graphs = default_graphs
        e = None if energy is None else _as_tensor(energy, name="energy", dtype=dtype, floating=True).to(device)
        if e is not None and e.dim() == 0:
            e = e.reshape(1)
        f = None if forces is None else _as_tensor(forces, name="forces", dtype=dtype, floating=True).to(device)
        return cls(positions=pos, atomic_numbers=z, batch=b, n_graphs=n_graphs, energy=e, forces=f)

    @classmethod
    def from_molecules(
        cls,
        molecules: Sequence[Sequence[Any]],
        *,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> AtomicGraph:
        """Batch molecules given as ``(Z, R)`` or ``(Z, R, E, F)`` tuples.

        Args:
            molecules: each item is ``(atomic_numbers [n_i], positions [n_i, 3])`` or
                ``(atomic_numbers, positions, energy (scalar), forces [n_i, 3])``; numpy arrays, lists
                or tensors. Either all items carry labels or none does.
            dtype: floating dtype or its name (``torch.float64`` or ``"float64"``; default
                ``torch.get_default_dtype()``).
            device: target device.

        Raises:
            ValueError: a malformed item, with its index.
        """
        if isinstance(molecules, (Tensor, np.ndarray)) or not isinstance(molecules, Sequence):
            raise TypeError("molecules must be a list of (Z, R) or (Z, R, E, F) tuples")
        lengths = {len(m) if isinstance(m, Sequence) else -1 for m in molecules}
        if lengths - {2, 4}:
            raise ValueError("molecules: each item must be a (Z, R) or (Z, R, E, F) tuple")
        if len(lengths) > 1:
            raise ValueError("molecules: either every item carries (E, F) labels or none does")
        dtype = _as_float_dtype(dtype) or torch.get_default_dtype()
        zs, rs, es, fs, counts = [], [], [], [], []
        for i, mol in enumerate(molecules):
            try:
                z = _as_tensor(mol[0], name="atomic_numbers", dtype=None, floating=False).reshape(-1)
                r = _as_tensor(mol[1], name="positions", dtype=dtype, floating=True)
                if r.numel() == 0:
                    r = r.reshape(0, 3)
                if r.dim() != 2 or r.shape[1] != 3 or r.shape[0] != z.shape[0]:
                    raise ValueError(
                        f"positions must have shape [n_atoms, 3] = [{z.shape[0]}, 3], got {list(r.shape)}"
                    )
                zs.append(z)
                rs.append(r)
                counts.append(z.shape[0])
                if len(mol) == 4:
                    e = _as_tensor(mol[2], name="energy", dtype=dtype, floating=True).reshape(-1)
                    if e.numel() != 1:
                        raise ValueError(f"energy must be a scalar, got {e.numel()} values")
                    f = _as_tensor(mol[3], name="forces", dtype=dtype, floating=True)
                    if tuple(f.shape) != (z.shape[0], 3):
                        raise ValueError(f"forces must have shape [{z.shape[0]}, 3], got {list(f.shape)}")
                    es.append(e)
                    fs.append(f)
            except (ValueError, TypeError) as err:
                raise type(err)(f"molecules[{i}]: {err}") from err
        n_graphs = len(zs)
        batch = torch.repeat_interleave(torch.arange(n_graphs), torch.tensor(counts, dtype=torch.int64))
        cat = lambda xs, shape: torch.cat(xs) if xs else torch.empty(shape)  # noqa: E731
        g = cls(
            positions=cat(rs, (0, 3)).to(dtype),
            atomic_numbers=cat(zs, (0,)).to(torch.int64),
            batch=batch,
            n_graphs=n_graphs,
            energy=torch.cat(es) if es else None,
            forces=torch.cat(fs) if fs else None,
        )
        return g.to(device) if device is not None else g

    # ------------------------------------------------------------------ properties
    @property
    def n_atoms(self) -> int:
        """Number of atoms in the batch."""
        return self.positions.shape[0]

    @property
    def n_edges(self) -> int:
        """Number of directed edges (0 when there are none)."""
        return 0 if self.edge_index is None else self.edge_index.shape[1]

    @property
    def has_edges(self) -> bool:
        """Whether ``edge_index`` / ``edge_vec`` are present."""
        return self.edge_index is not None

    @property
    def n_atoms_per_graph(self) -> Tensor:
        """``[n_graphs]`` int64 atom count of each graph."""
        return torch.bincount(self.batch, minlength=self.n_graphs)

    @property
    def ptr(self) -> Tensor:
        """``[n_graphs + 1]`` int64 offsets: atoms of graph ``i`` are ``ptr[i]:ptr[i+1]``."""
        counts = self.n_atoms_per_graph
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])

    @property
    def device(self) -> torch.device:
        return self.positions.device

    @property
    def dtype(self) -> torch.dtype:
        return self.positions.dtype

    def __len__(self) -> int:
        return self.n_graphs

    def __repr__(self) -> str:
        parts = [f"n_graphs={self.n_graphs}", f"n_atoms={self.n_atoms}"]
        if self.has_edges:
            parts.append(f"n_edges={self.n_edges}, cutoff={self.cutoff}, max_neighbors={self.max_neighbors}")
        if self.energy is not None:
            parts.append("energy")
        if self.forces is not None:
            parts.append("forces")
        parts.append(f"dtype={self.dtype}, device={self.device}")
        return f"AtomicGraph({', '.join(parts)})"

    # ------------------------------------------------------------------ transformations
    def replace(self, **changes: Any) -> AtomicGraph:
        """A copy with fields replaced (validated again).

        New ``positions`` mean a new geometry: unless ``edge_index`` is replaced too, edges built by
        :meth:`with_edges` are rebuilt with the same ``cutoff`` and ``max_neighbors`` (the old edge
        set may miss pairs that came within the cutoff), and hand-made edges (``cutoff is None``) are
        kept with their vectors recomputed. ``edge_vec`` is always derived from the positions. For a
        rigid motion, or positions that require grad, :meth:`with_positions` keeps the edge set.
        """
        given_vec = changes.pop("edge_vec", None)
        new = dataclasses.replace(self, **changes)
        if given_vec is not None:
            new = AtomicGraph(**{f.name: getattr(new, f.name) for f in dataclasses.fields(new) if f.init},
                              edge_vec=given_vec)
        moved = "positions" in changes and "edge_index" not in changes and self.cutoff is not None
        if moved and self.has_edges and not torch.equal(new.positions.detach(), self.positions.detach()):
            new = new.with_edges(self.cutoff, self.max_neighbors)
        return new

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> AtomicGraph:
        """Move to ``device`` and/or cast floating fields to ``dtype`` (integer fields stay int64).

        ``dtype`` may be a floating ``torch.dtype`` or its name (``"float64"``).
        """
        dtype = _as_float_dtype(dtype)

        def conv(t: Tensor | None, floating: bool) -> Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if floating else None)

        return dataclasses.replace(
            self,
            positions=conv(self.positions, True),
            atomic_numbers=conv(self.atomic_numbers, False),
            batch=conv(self.batch, False),
            energy=conv(self.energy, True),
            forces=conv(self.forces, True),
            edge_index=conv(self.edge_index, False),
        )

    def with_edges(
        self, cutoff: float, max_neighbors: int | None = None, *, backend: str = "torch"
    ) -> AtomicGraph:
        """Return a graph with ``edge_index`` / ``edge_vec`` from :func:`~nnip_scaling.radius_graph`.

        Args:
            cutoff: radius in Å (inclusive).
            max_neighbors: keep the nearest ``max_neighbors`` sources of each target, plus every
                source tied with the last (see :func:`~nnip_scaling.radius_graph`).
            backend: see :func:`~nnip_scaling.radius_graph`.
        """
        edge_index = radius_graph(self.positions, self.batch, cutoff, max_neighbors, backend=backend)
        return dataclasses.replace(self, edge_index=edge_index, cutoff=float(cutoff), max_neighbors=max_neighbors)

    def without_edges(self) -> AtomicGraph:
        """Return the same graph with edges removed."""
        return dataclasses.replace(self, edge_index=None, cutoff=None, max_neighbors=None)

    def with_positions(self, positions: Tensor) -> AtomicGraph:
        """Replace positions and recompute ``edge_vec`` from them, keeping the edge set ``edge_index``.

        This is how conservative-force models connect the graph to a ``positions`` tensor that requires
        grad: ``g2 = g.with_positions(g.positions.detach().requires_grad_())``; every geometric quantity
        a model derives from ``g2.edge_vec`` then differentiates back to those positions. It is also
        right for a rigid motion (rotation, translation), which keeps the neighbour set. For any other
        new geometry use :meth:`replace` (``replace(positions=...)``), which rebuilds the edges.

        Raises:
            ValueError: an edge would become longer than the graph's ``cutoff`` (the atoms moved too
                far for this edge set to describe them; use ``replace(positions=...)``).
        """
        new = dataclasses.replace(self, positions=positions)
        if new.cutoff is not None and new.n_edges:
            longest = float(torch.linalg.vector_norm(new.edge_vec.detach(), dim=-1).max())
            if longest > new.cutoff * (1 + 1e-6) + 64 * torch.finfo(new.dtype).eps * _scale(new.positions):
                raise ValueError(
                    f"positions: an edge would be {longest:.6g} Å long, beyond the graph's cutoff "
                    f"{new.cutoff:g} Å. with_positions keeps the edge set, which is only right for the "
                    "same geometry or a rigid motion; use replace(positions=...) to rebuild the edges"
                )
        return new

    def unbatch(self) -> list[AtomicGraph]:
        """Split into one graph per molecule (edges and labels kept, indices renumbered)."""
        ptr = self.ptr.tolist()
        out = []
        for i in range(self.n_graphs):
            lo, hi = ptr[i], ptr[i + 1]
            fields: dict[str, Any] = dict(
                positions=self.positions[lo:hi],
                atomic_numbers=self.atomic_numbers[lo:hi],
                batch=torch.zeros(hi - lo, dtype=torch.int64, device=self.device),
                n_graphs=1,
                energy=None if self.energy is None else self.energy[i : i + 1],
                forces=None if self.forces is None else self.forces[lo:hi],
                cutoff=self.cutoff,
                max_neighbors=self.max_neighbors,
            )
            if self.edge_index is not None:
                mask = (self.edge_index[1] >= lo) & (self.edge_index[1] < hi)
                fields["edge_index"] = self.edge_index[:, mask] - lo
            out.append(AtomicGraph(**fields))
        return out


def _scale(positions: Tensor) -> float:
    """Largest absolute coordinate (at least 1 Å): the scale of rounding errors in differences."""
    return max(1.0, float(positions.detach().abs().max())) if positions.numel() else 1.0


def collate(graphs: Sequence[AtomicGraph]) -> AtomicGraph:
    """Concatenate graphs into one batch.

    Graph indices and edge indices are offset. Energies/forces are kept only if every input has them;
    edges are kept only if every input has edges built with the same ``cutoff`` and ``max_neighbors``
    (otherwise the result has no edges; call :meth:`AtomicGraph.with_edges` on it).

    Raises:
        ValueError: empty list, or inputs on different devices / dtypes.
    """
    graphs = list(graphs)
    if not graphs:
        raise ValueError("graphs: cannot collate an empty list")
    if not all(isinstance(g, AtomicGraph) for g in graphs):
        raise TypeError("graphs: every item must be an AtomicGraph")
    first = graphs[0]
    if any(g.device != first.device or g.dtype != first.dtype for g in graphs):
        raise ValueError("graphs: all graphs must share one device and dtype (use .to())")
    atom_offsets = [0]
    graph_offsets = [0]
    for g in graphs:
        atom_offsets.append(atom_offsets[-1] + g.n_atoms)
        graph_offsets.append(graph_offsets[-1] + g.n_graphs)
    fields: dict[str, Any] = dict(
        positions=torch.cat([g.positions for g in graphs]),
        atomic_numbers=torch.cat([g.atomic_numbers for g in graphs]),
        batch=torch.cat([g.batch + off for g, off in zip(graphs, graph_offsets)]),
        n_graphs=graph_offsets[-1],
    )
    if all(g.energy is not None for g in graphs):
        fields["energy"] = torch.cat([g.energy for g in graphs])  # type: ignore[misc]
    if all(g.forces is not None for g in graphs):
        fields["forces"] = torch.cat([g.forces for g in graphs])  # type: ignore[misc]
    same_edges = all(
        g.has_edges and g.cutoff == first.cutoff and g.max_neighbors == first.max_neighbors for g in graphs
    )
    if same_edges:
        fields["edge_index"] = torch.cat([g.edge_index + off for g, off in zip(graphs, atom_offsets)], dim=1)  # type: ignore[operator]
        fields["cutoff"] = first.cutoff
        fields["max_neighbors"] = first.max_neighbors
    return AtomicGraph(**fields)


AtomicGraph.collate = staticmethod(collate)  # type: ignore[attr-defined]
