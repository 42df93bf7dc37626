r"""``MoleculeDataset``: labelled molecular configurations, concatenated, plus batching.

A data set is a list of configurations :math:`(Z, R, E, F)` (atomic numbers, positions in Å, energy in
eV, forces in eV/Å), stored as concatenated flat arrays with per-configuration atom counts. Each
configuration belongs to a *molecule* (``molecule_id``), so that train / validation / test splits can be
made by molecule: no molecule is seen in training and evaluated on.

Data-set size is counted the way the paper counts it (sec. 3.1): atoms are tokens, so
:math:`D` = :attr:`MoleculeDataset.n_atoms_total`. :meth:`MoleculeDataset.subset` draws the nested
fractions :math:`D_r = r \cdot D_{\max}` used to fit the data-scaling laws (paper eq. 5).

Example::

    ds = load_dataset("builtin", split="train")
    small = ds.subset(0.1, seed=0)            # contained in ds.subset(0.2, seed=0)
    for g in iter_batches(small, 32, shuffle=True, generator=torch.Generator().manual_seed(0)):
        ...                                   # g: AtomicGraph with energy [32] and forces [n_atoms, 3]
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from nnip_scaling.graph import MAX_ATOMIC_NUMBER, AtomicGraph

if TYPE_CHECKING:  # pragma: no cover
    from nnip_scaling.data.reference import Normaliser

__all__ = ["Configuration", "MoleculeDataset", "iter_batches", "SPLITS"]

#: Split names and the integer codes stored in ``molecule_split``.
SPLITS: Mapping[str, int] = {"train": 0, "val": 1, "test": 2}


def _readonly(a: np.ndarray) -> np.ndarray:
    """``a`` as a C-contiguous read-only array; writeable inputs are copied (the caller's array is untouched)."""
    if a.flags.writeable or not a.flags.c_contiguous:
        a = np.array(a, copy=True, order="C")
        a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class Configuration:
    """One labelled configuration.

    Attributes:
        atomic_numbers: int64 ``[n_atoms]``.
        positions: ``[n_atoms, 3]`` Å (float32 or float64, as stored).
        energy: total energy, eV.
        forces: ``[n_atoms, 3]`` eV/Å.
        molecule_id: index into the data set's molecule tables.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: float
    forces: np.ndarray
    molecule_id: int

    @property
    def n_atoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def as_tuple(self) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
        """``(Z, R, E, F)``, the form accepted by :meth:`AtomicGraph.from_molecules`."""
        return self.atomic_numbers, self.positions, self.energy, self.forces


@dataclass(frozen=True, eq=False)
class MoleculeDataset:
    r"""Labelled molecular configurations stored as concatenated arrays (immutable).

    Attributes (``C`` configurations, ``A`` atoms in all, ``M`` molecules):
        atomic_numbers: int64 ``[A]`` in 1..118.
        positions: float32 or float64 ``[A, 3]``, Å.
        energy: float64 ``[C]``, eV (total energies as labelled; see
            :class:`~nnip_scaling.data.Normaliser` for referencing).
        forces: float32 or float64 ``[A, 3]``, eV/Å.
        n_atoms: int64 ``[C]`` atoms per configuration (>= 1); ``sum(n_atoms) == A``.
        molecule_id: int64 ``[C]`` in ``[0, M)``.
        molecule_smiles: str ``[M]`` (empty strings when unknown).
        molecule_source: str ``[M]`` where each molecule came from (e.g. ``"nci:1234"``, ``"g2:CH4"``,
            ``"file.extxyz:7"``).
        molecule_split: int8 ``[M]`` split code per molecule (:data:`SPLITS`), or ``None`` when the data
            set carries no split.
        metadata: provenance read from the file (JSON-like mapping).
        skipped: one message per configuration dropped at load time with ``on_bad="skip"``.

    Indexing: ``ds[i]`` is a :class:`Configuration`; ``ds[slice]``, ``ds[int_array]`` and
    ``ds[bool_mask]`` are data sets (molecule tables kept, ids unchanged).

    Raises:
        ValueError: inconsistent shapes, atom counts or ids (naming the field).
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    n_atoms: np.ndarray
    molecule_id: np.ndarray
    molecule_smiles: np.ndarray
    molecule_source: np.ndarray
    molecule_split: np.ndarray | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    skipped: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        z = np.asarray(self.atomic_numbers)
        if z.ndim != 1 or not np.issubdtype(z.dtype, np.integer):
            raise ValueError(f"atomic_numbers must be a 1-d integer array, got {z.dtype} {z.shape}")
        a = z.shape[0]
        pos = np.asarray(self.positions)
        frc = np.asarray(self.forces)
        for name, arr in (("positions", pos), ("forces", frc)):
            if arr.shape != (a, 3):
                raise ValueError(f"{name} must have shape [n_atoms_total, 3] = [{a}, 3], got {list(arr.shape)}")
            if arr.dtype not in (np.float32, np.float64):
                raise ValueError(f"{name} must be float32 or float64, got {arr.dtype}")
        counts = np.asarray(self.n_atoms)
        if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
            raise ValueError(f"n_atoms must be a 1-d integer array, got {counts.dtype} {counts.shape}")
        c = counts.shape[0]
        if c and counts.min() < 1:
            raise ValueError("n_atoms: every configuration needs at least one atom")
        if int(counts.sum()) != a:
            raise ValueError(f"n_atoms sums to {int(counts.sum())} but there are {a} atoms")
        energy = np.asarray(self.energy)
        if energy.shape != (c,) or not np.issubdtype(energy.dtype, np.floating):
            raise ValueError(f"energy must be a float array of shape [n_configurations] = [{c}], got {energy.dtype} {list(energy.shape)}")
        bad_atoms = ~(np.isfinite(pos).all(axis=1) & np.isfinite(frc).all(axis=1))
        bad = ~np.isfinite(energy)
        if bad_atoms.any():
            bad |= np.bincount(np.repeat(np.arange(c), counts)[bad_atoms], minlength=c) > 0
        if bad.any():
            raise ValueError(f"configuration {int(np.flatnonzero(bad)[0])} has non-finite positions, energy or forces")
        mid = np.asarray(self.molecule_id)
        if mid.shape != (c,) or (c and not np.issubdtype(mid.dtype, np.integer)):
            raise ValueError(f"molecule_id must be an integer array of shape [{c}], got {mid.dtype} {mid.shape}")
        smiles = np.asarray(self.molecule_smiles)
        source = np.asarray(self.molecule_source)
        m = smiles.shape[0] if smiles.ndim == 1 else -1
        if smiles.ndim != 1 or source.shape != (m,):
            raise ValueError(
                f"molecule_smiles and molecule_source must be 1-d of equal length, got {smiles.shape} and {source.shape}"
            )
        if c and (mid.min() < 0 or mid.max() >= m):
            raise ValueError(f"molecule_id values must lie in [0, n_molecules) = [0, {m})")
        split = None
        if self.molecule_split is not None:
            split = np.asarray(self.molecule_split)
            if split.shape != (m,) or not np.issubdtype(split.dtype, np.integer):
                raise ValueError(f"molecule_split must be an integer array of shape [{m}], got {split.shape}")
            if m and not np.isin(split, list(SPLITS.values())).all():
                raise ValueError(f"molecule_split values must be in {sorted(SPLITS.values())}")
            split = _readonly(split.astype(np.int8, copy=False))
        if a and (z.min() < 1 or z.max() > MAX_ATOMIC_NUMBER):
            raise ValueError(f"atomic_numbers must lie in 1..{MAX_ATOMIC_NUMBER}")
        set_ = functools.partial(object.__setattr__, self)
        set_("atomic_numbers", _readonly(z.astype(np.int64, copy=False)))
        set_("positions", _readonly(pos))
        set_("forces", _readonly(frc))
        set_("energy", _readonly(energy.astype(np.float64, copy=False)))
        set_("n_atoms", _readonly(counts.astype(np.int64, copy=False)))
        set_("molecule_id", _readonly(mid.astype(np.int64, copy=False)))
        set_("molecule_smiles", _readonly(smiles.astype(str, copy=False)))
        set_("molecule_source", _readonly(source.astype(str, copy=False)))
        set_("molecule_split", split)
        set_("metadata", dict(self.metadata))
        set_("skipped", tuple(self.skipped))

    # ------------------------------------------------------------------ sizes
    def __len__(self) -> int:
        return int(self.n_atoms.shape[0])

    @functools.cached_property
    def offsets(self) -> np.ndarray:
        """int64 ``[C + 1]``: atoms of configuration ``i`` are ``offsets[i]:offsets[i+1]``."""
        out = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.n_atoms, out=out[1:])
        out.setflags(write=False)
        return out

    @property
    def n_atoms_total(self) -> int:
        """Total number of atoms :math:`D` (tokens, paper sec. 3.1)."""
        return int(self.atomic_numbers.shape[0])

    @property
    def n_molecules(self) -> int:
        """Number of distinct molecules among this data set's configurations."""
        return int(np.unique(self.molecule_id).shape[0])

    def __repr__(self) -> str:
        return (
            f"MoleculeDataset(n_configurations={len(self)}, n_atoms_total={self.n_atoms_total}, "
            f"n_molecules={self.n_molecules}, positions={self.positions.dtype})"
        )

    # ------------------------------------------------------------------ access
    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, (int, np.integer)) and not isinstance(index, (bool, np.bool_)):
            n = len(self)
            i = int(index)
            if i < -n or i >= n:
                raise IndexError(f"index {i} out of range for a data set of {n} configurations")
            i %= n
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            return Configuration(
                atomic_numbers=self.atomic_numbers[lo:hi],
                positions=self.positions[lo:hi],
                energy=float(self.energy[i]),
                forces=self.forces[lo:hi],
                molecule_id=int(self.molecule_id[i]),
            )
        if isinstance(index, slice):
            return self.select(np.arange(len(self))[index])
        idx = np.asarray(index)
        if idx.dtype == np.bool_:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean mask must have shape [{len(self)}], got {list(idx.shape)}")
            return self.select(np.flatnonzero(idx))
        if idx.ndim == 1 and (np.issubdtype(idx.dtype, np.integer) or idx.size == 0):
            return self.select(idx.astype(np.int64))
        raise TypeError(f"index must be an int, slice, integer array or boolean mask, got {type(index).__name__}")

    def __iter__(self) -> Iterator[Configuration]:
        for i in range(len(self)):
            yield self[i]

    def select(self, indices: Sequence[int] | np.ndarray) -> MoleculeDataset:
        """The configurations at ``indices`` (int64 ``[k]``, any order, negatives allowed), as a data set.

        Molecule tables are kept whole, so ``molecule_id`` keeps its meaning.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"indices out of range for a data set of {n} configurations")
        idx = idx % n if n else idx
        atom_idx = _atom_indices(self.offsets, self.n_atoms, idx)
        return MoleculeDataset(
            atomic_numbers=self.atomic_numbers[atom_idx],
            positions=self.positions[atom_idx],
            energy=self.energy[idx],
            forces=self.forces[atom_idx],
            n_atoms=self.n_atoms[idx],
            molecule_id=self.molecule_id[idx],
            molecule_smiles=self.molecule_smiles,
            molecule_source=self.molecule_source,
            molecule_split=self.molecule_split,
            metadata=self.metadata,
            skipped=self.skipped,
        )

    def subset(self, fraction: float, seed: int = 0) -> MoleculeDataset:
        r"""A random fraction of the configurations, nested across fractions for one seed.

        The configurations are ranked once by a random permutation drawn from ``seed``; the subset
        keeps the first :math:`\max(1, \mathrm{round}(r \cdot C))` of that ranking, so for a fixed seed
        ``subset(r1) ⊆ subset(r2)`` whenever ``r1 <= r2`` (the paper's :math:`D_r = r \cdot D_{\max}`,
        counted in configurations; the atom count :attr:`n_atoms_total` is the :math:`D` to report).
        The kept configurations stay in their original order.

        Args:
            fraction: :math:`r \in (0, 1]`.
            seed: seed of the ranking (a non-negative int).

        Raises:
            ValueError: ``fraction`` outside ``(0, 1]`` or a bad ``seed``.
        """
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        n = len(self)
        if n == 0:
            return self
        k = max(1, int(round(fraction * n)))
        ranking = np.random.default_rng(int(seed)).permutation(n)
        return self.select(np.sort(ranking[:k]))

    def split(self, name: str) -> MoleculeDataset:
        """The configurations of split ``name`` (``"train"``, ``"val"`` or ``"test"``), chosen by molecule.

        Raises:
            ValueError: unknown name, or the data set carries no split.
        """
        if name not in SPLITS:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {name!r}")
        if self.molecule_split is None:
            raise ValueError("this data set has no molecule_split; make one with split_by_molecule()")
        return self.select(np.flatnonzero(self.molecule_split[self.molecule_id] == SPLITS[name]))

    def split_by_molecule(
        self, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1), *, seed: int = 0
    ) -> MoleculeDataset:
        """The same data set with a new ``molecule_split``: molecules shuffled by ``seed`` and cut in the
        given train / val / test ``fractions`` (of the molecules present; absent molecules go to train).

        Raises:
            ValueError: fractions not three non-negative numbers summing to 1.
        """
        codes = split_codes(self.molecule_smiles.shape[0], np.unique(self.molecule_id), fractions, seed=seed)
        return dataclasses.replace(self, molecule_split=codes)

    def element_counts(self) -> np.ndarray:
        """int64 ``[C, 119]``: how many atoms of each atomic number each configuration has."""
        config = np.repeat(np.arange(len(self)), self.n_atoms)
        counts = np.zeros((len(self), MAX_ATOMIC_NUMBER + 1), dtype=np.int64)
        np.add.at(counts, (config, self.atomic_numbers), 1)
        return counts


def split_codes(
    n_molecules: int, present: np.ndarray, fractions: tuple[float, float, float], *, seed: int
) -> np.ndarray:
    """int8 ``[n_molecules]`` split codes: the ``present`` molecule ids, shuffled by ``seed``, cut into
    train / val / test by ``fractions`` (val and test sizes rounded, train takes the rest)."""
    f = tuple(float(x) for x in fractions)
    if len(f) != 3 or min(f) < 0 or not math.isclose(sum(f), 1.0, abs_tol=1e-9):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions!r}")
    present = np.asarray(present, dtype=np.int64)
    order = present[np.random.default_rng(int(seed)).permutation(present.shape[0])]
    n = present.shape[0]
    n_val = int(round(f[1] * n))
    n_test = int(round(f[2] * n))
    codes = np.zeros(n_molecules, dtype=np.int8)
    codes[order[n - n_val - n_test : n - n_test]] = SPLITS["val"]
    codes[order[n - n_test :]] = SPLITS["test"]
    return codes


def _atom_indices(offsets: np.ndarray, counts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Flat atom indices of configurations ``idx`` (in that order)."""
    c = counts[idx]
    total = int(c.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(offsets[idx], c)
    within = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(c) - c, c)
    return starts + within


def iter_batches(
    dataset: MoleculeDataset,
    batch_size: int,
    *,
    shuffle: bool = False,
    generator: torch.Generator | np.random.Generator | None = None,
    drop_last: bool = False,
    normaliser: Normaliser | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> Iterator[AtomicGraph]:
    r"""Yield the data set as :class:`~nnip_scaling.AtomicGraph` batches with energy and forces.

    Each batch holds ``batch_size`` configurations (the last may hold fewer unless ``drop_last``).
    Labels are in eV and eV/Å, or, with a ``normaliser``, the normalised targets of paper app. D,
    :math:`e' = (e - \sum_i \varepsilon_{Z_i} - \mu)/\sigma` and :math:`f' = f/\sigma`, computed in float64
    before the cast to ``dtype``. Graphs come without edges (call ``g.with_edges(...)``).

    Shapes:
        yields graphs with ``positions [n_atoms, 3]``, ``atomic_numbers [n_atoms]``,
        ``energy [n_graphs]``, ``forces [n_atoms, 3]``, ``n_graphs <= batch_size``.

    Args:
        dataset: the configurations.
        batch_size: configurations per batch (>= 1).
        shuffle: visit configurations in a random order drawn from ``generator`` (required then).
        generator: ``torch.Generator`` or ``numpy.random.Generator`` for the shuffle.
        drop_last: drop a final batch smaller than ``batch_size``.
        normaliser: convert labels to normalised units.
        dtype: floating dtype of the graphs (default ``torch.get_default_dtype()``, i.e. float32;
            float32 positions and forces of the built-in set round-trip exactly in either dtype).
        device: device of the graphs.

    Raises:
        ValueError / TypeError: bad ``batch_size``, ``shuffle`` without ``generator``, wrong types.
    """
    if not isinstance(dataset, MoleculeDataset):
        raise TypeError(f"dataset must be a MoleculeDataset, got {type(dataset).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n = len(dataset)
    if shuffle:
        if isinstance(generator, torch.Generator):
            order = torch.randperm(n, generator=generator).numpy()
        elif isinstance(generator, np.random.Generator):
            order = generator.permutation(n)
        else:
            raise ValueError("shuffle=True needs a generator (torch.Generator or numpy.random.Generator)")
    else:
        if generator is not None and not isinstance(generator, (torch.Generator, np.random.Generator)):
            raise TypeError(f"generator must be a torch.Generator or numpy.random.Generator, got {type(generator)}")
        order = np.arange(n)
    dtype = dtype if dtype is not None else torch.get_default_dtype()
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        atom_idx = _atom_indices(dataset.offsets, dataset.n_atoms, idx)
        counts = dataset.n_atoms[idx]
        z = dataset.atomic_numbers[atom_idx]
        energy = dataset.energy[idx]
        forces = dataset.forces[atom_idx]
        if normaliser is not None:
            energy, forces = normaliser.normalise_arrays(energy, forces, z, counts)
        batch = np.repeat(np.arange(idx.shape[0], dtype=np.int64), counts)
        yield AtomicGraph.from_arrays(
            torch.from_numpy(np.ascontiguousarray(dataset.positions[atom_idx])).to(dtype),
            torch.from_numpy(z),
            torch.from_numpy(batch),
            n_graphs=int(idx.shape[0]),
            energy=torch.from_numpy(np.ascontiguousarray(energy)).to(dtype),
            forces=torch.from_numpy(np.ascontiguousarray(forces)).to(dtype),
            dtype=dtype,
            device=device,
        )
