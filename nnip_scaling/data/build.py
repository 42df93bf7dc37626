r"""Generate a labelled molecule data set with GFN2-xTB (the recipe of the built-in set).

Pipeline (one molecule at a time, process-parallel, one OpenMP thread per worker):

1. **Molecules.** RDKit's shipped NCI SMILES file ``rdkit/Data/NCI/first_5K.smi``, keeping single-
   fragment, net-neutral, closed-shell molecules made only of H, C, N, O, F, S, Cl with at most 30 atoms
   (hydrogens included), deduplicated by canonical SMILES; plus the closed-shell molecules of ASE's g2
   collection with the same elements that are not already among them (:func:`candidate_molecules`).
2. **Conformers.** NCI molecules: RDKit ETKDGv3 embedding (seeded) followed by MMFF94 relaxation
   (:math:`\le 2000` iterations). g2 molecules: ASE's stored geometry.
3. **Off-equilibrium configurations.** For each of ``K`` configurations,
   :math:`\sigma \sim U(0.005, 0.05)` Å and :math:`x = x_0 + \sigma \xi`, :math:`\xi \sim N(0, I_{3n})`;
   positions are rounded to float32 *before* labelling, so stored positions are exactly the ones
   labelled. A draw whose largest atomic force exceeds 50 eV/Å (a rare Gaussian tail that squeezes a
   bond, e.g. C≡N to 0.84 Å) is rejected and redrawn; the number of rejections is recorded.
4. **Labels.** GFN2-xTB through tblite (charge 0, closed shell, electronic temperature 300 K,
   accuracy 1.0, fresh SCF per configuration): energy in eV (float64) and forces
   :math:`F = -\partial E / \partial x` in eV/Å (stored float32), with CODATA-2018
   :math:`E_h = 27.211386245988` eV and :math:`a_0 = 0.529177210903` Å.

These labels are semi-empirical tight binding, **not DFT**: good for studying how models scale and for
testing code, not a substitute for the paper's OMol25 (ωB97M-V) labels.

Determinism: all randomness of a molecule comes from ``numpy.random.SeedSequence(seed,
spawn_key=(1, *key_bytes))`` of its source key (e.g. ``"nci:1234"``), the molecule order from
``spawn_key=(0,)`` and the split from ``spawn_key=(2,)``; workers return results in submission order.
So the output file is byte-identical for a seed whatever ``workers`` is.

Needs the ``data`` extra (``pip install 'nnip_scaling[data]'``: rdkit, tblite, ase).
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from nnip_scaling.data.dataset import SPLITS, MoleculeDataset, split_codes
from nnip_scaling.data.io import save_npz

__all__ = [
    "ELEMENTS",
    "MAX_ATOMS",
    "SIGMA_RANGE",
    "HARTREE_EV",
    "BOHR_ANGSTROM",
    "SourceMolecule",
    "LabelledMolecule",
    "BuildFailure",
    "BuildError",
    "BuildResult",
    "candidate_molecules",
    "source_from_key",
    "gfn2_energy_forces",
    "label_molecule",
    "generate",
    "build_dataset",
]

#: Allowed elements (H, C, N, O, F, S, Cl).
ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9, 16, 17)
#: Maximum atoms per molecule, hydrogens included.
MAX_ATOMS = 30
#: Range of the displacement scale σ, Å.
SIGMA_RANGE: tuple[float, float] = (0.005, 0.05)
#: Hartree in eV (CODATA 2018).
HARTREE_EV = 27.211386245988
#: Bohr radius in Å (CODATA 2018).
BOHR_ANGSTROM = 0.529177210903
#: Draws with a larger atomic force norm (eV/Å) are rejected and redrawn.
MAX_FORCE = 50.0
#: Draws per configuration before the molecule is given up.
MAX_DRAWS = 20
#: Electronic temperature of the labels, K (tblite's default for GFN2-xTB).
ELECTRONIC_TEMPERATURE_K = 300.0
_KELVIN_TO_HARTREE = 3.166808578545117e-6
_NCI_PATH = ("Data", "NCI", "first_5K.smi")
_MMFF_MAX_ITERS = 2000
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _need(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"the data generator needs {module.split('.')[0]}: pip install 'nnip_scaling[data]'"
        ) from err


class BuildError(RuntimeError):
    """A molecule could not be embedded or labelled (the generator skips it and reports why)."""


@dataclass(frozen=True)
class SourceMolecule:
    """A molecule to generate configurations for.

    Attributes:
        key: stable identifier, ``"nci:<NCI id>"`` or ``"g2:<ASE g2 name>"``; it seeds the molecule.
        smiles: canonical isomeric SMILES (RDKit). NCI molecules are embedded from it.
        atomic_numbers: g2 only: the atoms of ``positions``; ``None`` for NCI molecules.
        positions: g2 only: equilibrium geometry ``[n][3]`` in Å; ``None`` for NCI molecules.
    """

    key: str
    smiles: str
    atomic_numbers: tuple[int, ...] | None = None
    positions: tuple[tuple[float, float, float], ...] | None = None


@dataclass(frozen=True, eq=False)
class LabelledMolecule:
    """``K`` labelled configurations of one molecule.

    Attributes:
        key, smiles: as in :class:`SourceMolecule`.
        atomic_numbers: int64 ``[n]``.
        positions: float32 ``[K, n, 3]`` Å (exactly the positions that were labelled).
        energy: float64 ``[K]`` eV.
        forces: float32 ``[K, n, 3]`` eV/Å.
        sigma: float64 ``[K]`` displacement scales, Å.
        rejected: draws rejected for a force above ``max_force``.
    """

    key: str
    smiles: str
    atomic_numbers: np.ndarray
    positions: np.ndarray
    energy: np.ndarray
    forces: np.ndarray
    sigma: np.ndarray
    rejected: int = 0


@dataclass(frozen=True)
class BuildFailure:
    """A molecule that was skipped, and why."""

    key: str
    reason: str


@dataclass(frozen=True, eq=False)
class BuildResult:
    """What :func:`build_dataset` made.

    Attributes:
        dataset: the configurations (with ``molecule_split`` and provenance ``metadata``).
        sigma: float64 ``[C]`` displacement scale of each configuration, Å.
        failures: molecules skipped on the way (embedding or SCF failures).
        seconds: wall time of the generation.
    """

    dataset: MoleculeDataset
    sigma: np.ndarray
    failures: tuple[BuildFailure, ...]
    seconds: float

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the data set (and ``sigma``) with :func:`~nnip_scaling.data.save_npz`."""
        save_npz(self.dataset, path, extra={"sigma": self.sigma})


# ---------------------------------------------------------------------------------------------- sources
def _nci_path() -> str:
    rdkit = _need("rdkit")
    return os.path.join(os.path.dirname(rdkit.__file__), *_NCI_PATH)


def _keep_rdkit_mol(mol: Any) -> bool:
    """Single fragment, net neutral, closed shell, allowed elements, 2..MAX_ATOMS atoms with H."""
    chem = _need("rdkit.Chem")
    descriptors = _need("rdkit.Chem.Descriptors")
    if mol is None or len(chem.GetMolFrags(mol)) != 1 or chem.GetFormalCharge(mol) != 0:
        return False
    if descriptors.NumRadicalElectrons(mol) != 0:
        return False
    withh = chem.AddHs(mol)
    if not 2 <= withh.GetNumAtoms() <= MAX_ATOMS:
        return False
    return {a.GetAtomicNum() for a in withh.GetAtoms()} <= set(ELEMENTS)


def _g2_smiles(numbers: Sequence[int], positions: np.ndarray) -> str:
    """SMILES of a g2 geometry by RDKit's bond perception (connectivity only if bond orders fail)."""
    chem = _need("rdkit.Chem")
    determine = _need("rdkit.Chem.rdDetermineBonds")
    table = chem.GetPeriodicTable()
    lines = [f"{table.GetElementSymbol(int(z))} {x:.8f} {y:.8f} {w:.8f}" for z, (x, y, w) in zip(numbers, positions)]
    mol = chem.MolFromXYZBlock(f"{len(lines)}\n\n" + "\n".join(lines) + "\n")
    try:
        determine.DetermineBonds(mol, charge=0)
    except (ValueError, RuntimeError):
        mol = chem.MolFromXYZBlock(f"{len(lines)}\n\n" + "\n".join(lines) + "\n")
        determine.DetermineConnectivity(mol)
    return chem.MolToSmiles(chem.RemoveHs(mol, sanitize=False))


def _g2_usable(atoms: Any) -> bool:
    z = atoms.numbers
    return (
        len(z) >= 2
        and set(z.tolist()) <= set(ELEMENTS)
        and int(z.sum()) % 2 == 0
        and not np.any(atoms.get_initial_magnetic_moments() != 0)
    )


def source_from_key(key: str, smiles: str = "") -> SourceMolecule:
    """Rebuild a :class:`SourceMolecule` from its key (and, for NCI molecules, its stored SMILES).

    Raises:
        ValueError: unknown key prefix, missing SMILES for an NCI key, unknown g2 name.
    """
    prefix, _, name = key.partition(":")
    if prefix == "nci":
        if not smiles:
            raise ValueError(f"key {key!r}: NCI molecules need their SMILES")
        return SourceMolecule(key, smiles)
    if prefix == "g2":
        g2 = _need("ase.collections").g2
        if name not in g2.names:
            raise ValueError(f"key {key!r}: no molecule {name!r} in ASE's g2 collection")
        atoms = g2[name]
        pos = tuple(tuple(float(v) for v in row) for row in atoms.positions)
        return SourceMolecule(key, smiles or _g2_smiles(atoms.numbers, atoms.positions), tuple(int(z) for z in atoms.numbers), pos)
    raise ValueError(f"key must start with 'nci:' or 'g2:', got {key!r}")


@functools.lru_cache(maxsize=1)
def candidate_molecules() -> tuple[SourceMolecule, ...]:
    """All usable source molecules, in a fixed order: NCI (file order), then g2 (sorted by name).

    NCI: RDKit's ``first_5K.smi``, filtered as described in the module docstring, deduplicated by
    canonical SMILES. g2: closed-shell (even electron count, zero initial magnetic moments) molecules of
    allowed elements whose non-isomeric canonical SMILES is not already among the NCI molecules.
    """
    chem = _need("rdkit.Chem")
    rdlogger = _need("rdkit.RDLogger")
    rdlogger.DisableLog("rdApp.*")
    try:
        out: list[SourceMolecule] = []
        seen: set[str] = set()
        with open(_nci_path(), encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 2:
                    continue
                mol = chem.MolFromSmiles(parts[0])
                if not _keep_rdkit_mol(mol):
                    continue
                flat = chem.MolToSmiles(mol, isomericSmiles=False)
                if flat in seen:
                    continue
                seen.add(flat)
                out.append(SourceMolecule(f"nci:{parts[1]}", chem.MolToSmiles(mol)))
        g2 = _need("ase.collections").g2
        for name in sorted(g2.names):
            atoms = g2[name]
            if not _g2_usable(atoms):
                continue
            smiles = _g2_smiles(atoms.numbers, atoms.positions)
            check = chem.MolFromSmiles(smiles)
            flat = chem.MolToSmiles(check, isomericSmiles=False) if check is not None else smiles
            if flat in seen:
                continue
            seen.add(flat)
            pos = tuple(tuple(float(v) for v in row) for row in atoms.positions)
            out.append(SourceMolecule(f"g2:{name}", smiles, tuple(int(z) for z in atoms.numbers), pos))
    finally:
        rdlogger.EnableLog("rdApp.error")
    return tuple(out)


# ---------------------------------------------------------------------------------------------- labels
def gfn2_energy_forces(
    atomic_numbers: np.ndarray, positions: np.ndarray, *, accuracy: float = 1.0
) -> tuple[float, np.ndarray]:
    """GFN2-xTB energy and forces of a neutral closed-shell molecule (tblite, fresh SCF).

    Shapes:
        atomic_numbers ``[n]``, positions ``[n, 3]`` Å -> (energy eV, forces float64 ``[n, 3]`` eV/Å).

    Raises:
        BuildError: the SCF did not converge (or tblite rejected the input).
    """
    interface = _need("tblite.interface")
    z = np.asarray(atomic_numbers, dtype=np.int64)
    r = np.asarray(positions, dtype=np.float64)
    try:
        calc = interface.Calculator("GFN2-xTB", z, r / BOHR_ANGSTROM, charge=0.0, uhf=0)
        calc.set("verbosity", 0)
        calc.set("accuracy", float(accuracy))
        calc.set("temperature", ELECTRONIC_TEMPERATURE_K * _KELVIN_TO_HARTREE)
        res = calc.singlepoint()
        energy = float(res.get("energy")) * HARTREE_EV
        forces = -np.asarray(res.get("gradient"), dtype=np.float64) * (HARTREE_EV / BOHR_ANGSTROM)
    except (interface.TBLiteRuntimeError, interface.TBLiteValueError) as err:
        raise BuildError(f"GFN2-xTB failed: {str(err).strip()}") from err
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise BuildError("GFN2-xTB returned non-finite energy or forces")
    return energy, forces


def _molecule_rng(seed: int, key: str) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(1, *key.encode("utf-8"))))


def _conformer(source: SourceMolecule, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(Z [n], x0 [n, 3] Å)``: g2 geometry, or ETKDGv3 + MMFF94 for NCI molecules."""
    if source.positions is not None and source.atomic_numbers is not None:
        return np.asarray(source.atomic_numbers, dtype=np.int64), np.asarray(source.positions, dtype=np.float64)
    chem = _need("rdkit.Chem")
    allchem = _need("rdkit.Chem.AllChem")
    mol = chem.MolFromSmiles(source.smiles)
    if mol is None:
        raise BuildError(f"RDKit cannot parse SMILES {source.smiles!r}")
    mol = chem.AddHs(mol)
    params = allchem.ETKDGv3()
    params.randomSeed = int(rng.integers(0, 2**31 - 1))
    params.numThreads = 1
    if allchem.EmbedMolecule(mol, params) != 0:
        raise BuildError("ETKDG embedding failed")
    if not allchem.MMFFHasAllMoleculeParams(mol):
        raise BuildError("MMFF94 has no parameters for this molecule")
    if allchem.MMFFOptimizeMolecule(mol, maxIters=_MMFF_MAX_ITERS) < 0:
        raise BuildError("MMFF94 setup failed")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    return z, np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)


def label_molecule(
    source: SourceMolecule,
    *,
    seed: int,
    n_configs: int,
    sigma_range: tuple[float, float] = SIGMA_RANGE,
    accuracy: float = 1.0,
    max_force: float = MAX_FORCE,
) -> LabelledMolecule:
    r"""Conformer, ``n_configs`` displaced configurations and their GFN2-xTB labels for one molecule.

    Each configuration draws :math:`\sigma \sim U(\text{sigma_range})` and :math:`x = x_0 + \sigma\xi`;
    a draw whose largest atomic force norm exceeds ``max_force`` (eV/Å) is rejected and redrawn (at
    most ``MAX_DRAWS`` times). A pure function of its arguments (bitwise, with one OpenMP thread); the
    first ``k`` configurations do not depend on ``n_configs >= k``.

    Raises:
        BuildError: embedding or SCF failure, or ``MAX_DRAWS`` rejected draws in a row.
    """
    rng = _molecule_rng(seed, source.key)
    z, x0 = _conformer(source, rng)
    n = z.shape[0]
    lo, hi = sigma_range
    pos = np.empty((n_configs, n, 3), dtype=np.float32)
    frc = np.empty((n_configs, n, 3), dtype=np.float32)
    energy = np.empty(n_configs, dtype=np.float64)
    sigma = np.empty(n_configs, dtype=np.float64)
    rejected = 0
    for k in range(n_configs):
        for _ in range(MAX_DRAWS):
            sigma[k] = rng.uniform(lo, hi)
            pos[k] = (x0 + sigma[k] * rng.standard_normal((n, 3))).astype(np.float32)
            try:
                energy[k], f = gfn2_energy_forces(z, pos[k].astype(np.float64), accuracy=accuracy)
            except BuildError as err:
                raise BuildError(f"configuration {k}: {err}") from err
            if float(np.sqrt((f * f).sum(axis=1)).max()) <= max_force:
                break
            rejected += 1
        else:
            raise BuildError(f"configuration {k}: {MAX_DRAWS} draws in a row had a force above {max_force} eV/Å")
        frc[k] = f.astype(np.float32)
    return LabelledMolecule(source.key, source.smiles, z, pos, energy, frc, sigma, rejected)


# ---------------------------------------------------------------------------------------------- parallel
def _init_worker() -> None:
    for var in _THREAD_VARS:
        os.environ[var] = "1"


def _work(task: tuple[SourceMolecule, int, int, tuple[float, float], float]) -> LabelledMolecule | BuildFailure:
    source, seed, n_configs, sigma_range, accuracy = task
    try:
        return label_molecule(source, seed=seed, n_configs=n_configs, sigma_range=sigma_range, accuracy=accuracy)
    except Exception as err:  # any failure of a molecule is reported, never fatal to the build
        reason = str(err) if isinstance(err, BuildError) else f"{type(err).__name__}: {err}"
        return BuildFailure(source.key, reason)


@contextlib.contextmanager
def _single_thread_env() -> Iterator[None]:
    """Set the thread-count variables to 1 while worker processes are spawned (they inherit them)."""
    saved = {v: os.environ.get(v) for v in _THREAD_VARS}
    try:
        for v in _THREAD_VARS:
            os.environ[v] = "1"
        yield
    finally:
        for v, old in saved.items():
            if old is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = old


@contextlib.contextmanager
def generate(
    sources: Sequence[SourceMolecule],
    *,
    seed: int,
    n_configs: int,
    workers: int = 1,
    sigma_range: tuple[float, float] = SIGMA_RANGE,
    accuracy: float = 1.0,
) -> Iterator[Iterator[LabelledMolecule | BuildFailure]]:
    """Label ``sources`` in ``workers`` spawned processes (one thread each); results in input order.

    A context manager yielding an iterator, so a caller may stop early and the pool is shut down::

        with generate(sources, seed=0, n_configs=4, workers=2) as results:
            for r in results: ...

    Even ``workers=1`` runs in a child process, so the thread count (and hence every bit of the
    labels) is the same whatever ``workers`` is. Workers are started with the ``spawn`` method: a
    script that calls this must guard its entry point with ``if __name__ == "__main__":`` (and cannot
    be fed on stdin); otherwise the workers fail to start and ``BrokenProcessPool`` is raised.

    Raises:
        ValueError: ``workers`` or ``n_configs`` not a positive int.
    """
    for name, value in (("workers", workers), ("n_configs", n_configs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    tasks = [(s, int(seed), n_configs, (float(sigma_range[0]), float(sigma_range[1])), float(accuracy)) for s in sources]
    ctx = multiprocessing.get_context("spawn")
    with _single_thread_env():  # workers are spawned on submission and inherit the environment
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker)
        futures = [pool.submit(_work, t) for t in tasks]
    try:
        yield (f.result() for f in futures)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("rdkit", "tblite", "ase", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:  # pragma: no cover
            out[pkg] = "unknown"
    return out


def build_dataset(
    n: int,
    *,
    seed: int = 0,
    workers: int = 1,
    per_molecule: int = 4,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    sigma_range: tuple[float, float] = SIGMA_RANGE,
    accuracy: float = 1.0,
    progress: Callable[[str], None] | None = None,
) -> BuildResult:
    r"""Generate ``n`` labelled configurations (see the module docstring for the recipe).

    Molecules are visited in a random order drawn from ``seed``; each contributes ``per_molecule``
    configurations (the last one possibly fewer) until ``n`` are collected, so ``n / per_molecule``
    molecules are used. Molecules that fail are skipped and listed in ``failures`` and in the
    metadata. The molecules used are split train / val / test by ``fractions``.

    Args:
        n: number of configurations (>= 1, at most ``per_molecule`` × the number of candidates).
        seed: the one seed of everything random (non-negative int).
        workers: processes (each single-threaded); the result does not depend on it.
        per_molecule: configurations per molecule.
        fractions: train / val / test fractions of molecules.
        sigma_range: displacement scale range, Å.
        accuracy: tblite's numerical accuracy setting.
        progress: called with a one-line status now and then (e.g. ``print``).

    Workers are spawned processes: call this under ``if __name__ == "__main__":`` in scripts (the CLI
    does).

    Raises:
        ValueError: bad arguments, or ``n`` larger than the candidates allow.
        ImportError: rdkit / tblite / ase missing.
    """
    for name, value in (("n", n), ("workers", workers), ("per_molecule", per_molecule)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    lo, hi = sigma_range
    if not 0 <= lo <= hi:
        raise ValueError(f"sigma_range must satisfy 0 <= low <= high, got {sigma_range!r}")
    _need("tblite.interface")
    start = time.perf_counter()
    say = progress if progress is not None else (lambda msg: None)
    sources = candidate_molecules()
    if n > per_molecule * len(sources):
        raise ValueError(
            f"n = {n} needs more than the {len(sources)} candidate molecules × per_molecule = {per_molecule}; "
            "raise per_molecule"
        )
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,))).permutation(len(sources))
    ordered = [sources[i] for i in order]
    say(f"{len(sources)} candidate molecules; generating {n} configurations, {per_molecule} per molecule, {workers} worker(s)")
    results: list[LabelledMolecule] = []
    failures: list[BuildFailure] = []
    collected = 0
    visited = 0
    with generate(ordered, seed=seed, n_configs=per_molecule, workers=workers, sigma_range=sigma_range, accuracy=accuracy) as it:
        for res in it:
            visited += 1
            if isinstance(res, BuildFailure):
                failures.append(res)
            else:
                take = min(per_molecule, n - collected)
                results.append(res)
                collected += take
            if visited % 100 == 0 or collected >= n:
                el = time.perf_counter() - start
                say(f"  molecules {visited}, configurations {collected}/{n}, failures {len(failures)}, {el:.0f} s")
            if collected >= n:
                break
    if collected < n:  # pragma: no cover - only when failures exhaust the candidates
        raise RuntimeError(f"only {collected} of {n} configurations could be made ({len(failures)} molecules failed)")
    seconds = time.perf_counter() - start

    # assemble: molecule i = results[i]; the last molecule may contribute fewer configurations
    takes = [per_molecule] * len(results)
    takes[-1] = n - per_molecule * (len(results) - 1)
    zs, ps, fs, es, sig, cnt, mid = [], [], [], [], [], [], []
    for i, (res, k) in enumerate(zip(results, takes)):
        n_at = res.atomic_numbers.shape[0]
        zs.append(np.tile(res.atomic_numbers, k))
        ps.append(res.positions[:k].reshape(-1, 3))
        fs.append(res.forces[:k].reshape(-1, 3))
        es.append(res.energy[:k])
        sig.append(res.sigma[:k])
        cnt.append(np.full(k, n_at, dtype=np.int64))
        mid.append(np.full(k, i, dtype=np.int64))
    m = len(results)
    split_seed = int(np.random.SeedSequence(seed, spawn_key=(2,)).generate_state(1)[0])
    codes = split_codes(m, np.arange(m), fractions, seed=split_seed)
    counts = np.concatenate(cnt)
    molecule_id = np.concatenate(mid)
    per_split = {
        s: {
            "molecules": int((codes == c).sum()),
            "configurations": int((codes[molecule_id] == c).sum()),
            "atoms": int(counts[codes[molecule_id] == c].sum()),
        }
        for s, c in SPLITS.items()
    }
    versions = _versions()
    metadata = {
        "format": "nnip_scaling.molecules",
        "format_version": 1,
        "description": (
            "Small organic molecules (H, C, N, O, F, S, Cl; <= 30 atoms) from RDKit's NCI sample and ASE's g2 "
            "set; off-equilibrium configurations labelled with GFN2-xTB (semi-empirical tight binding, NOT DFT)."
        ),
        "units": {"positions": "angstrom", "energy": "eV", "forces": "eV/angstrom"},
        "labels": {
            "method": "GFN2-xTB",
            "program": "tblite (Python API)",
            "tblite_version": versions["tblite"],
            "charge": 0,
            "unpaired_electrons": 0,
            "electronic_temperature_K": ELECTRONIC_TEMPERATURE_K,
            "accuracy": accuracy,
            "scf_guess": "fresh SAD guess per configuration",
            "forces": "minus the analytic gradient",
            "hartree_eV": HARTREE_EV,
            "bohr_angstrom": BOHR_ANGSTROM,
            "dtypes": {"positions": "float32 (labels computed at exactly these)", "energy": "float64", "forces": "float32"},
        },
        "sources": {
            "nci": {
                "file": "rdkit/Data/NCI/first_5K.smi (shipped with the RDKit wheel; NCI open database sample)",
                "rdkit_version": versions["rdkit"],
                "filter": "single fragment, net charge 0, no radical electrons, elements H C N O F S Cl, 2..30 atoms "
                "with hydrogens, unique canonical SMILES",
                "conformer": f"RDKit ETKDGv3 (seeded, 1 thread) + MMFF94 (maxIters {_MMFF_MAX_ITERS})",
            },
            "g2": {
                "collection": "ase.collections.g2",
                "ase_version": versions["ase"],
                "filter": "even electron count, zero initial magnetic moments, same elements, not already in NCI",
                "conformer": "geometry as stored in ASE (G2 reference geometry)",
                "smiles": "RDKit rdDetermineBonds on the geometry",
            },
        },
        "configurations": {
            "per_molecule": per_molecule,
            "displacement": f"sigma ~ U({sigma_range[0]}, {sigma_range[1]}) angstrom; x = x0 + sigma * N(0, I)",
            "max_force_eV_per_angstrom": MAX_FORCE,
            "rejected_draws": int(sum(r.rejected for r in results)),
            "rejection": "a draw whose largest atomic force norm exceeds max_force is redrawn (same molecule)",
            "md": "none",
        },
        "generator": {
            "seed": seed,
            "n_requested": n,
            "command": f"nnip-scaling dataset build --n {n} --seed {seed} --per-molecule {per_molecule} --out PATH",
            "note": "--workers and --out do not change the file's bytes",
            "numpy_version": versions["numpy"],
            "candidate_molecules": len(sources),
            "molecules_visited": visited,
        },
        "split": {"by": "molecule", "fractions": list(fractions), "codes": dict(SPLITS), **per_split},
        "counts": {"configurations": int(counts.shape[0]), "molecules": m, "atoms": int(counts.sum())},
        "skipped_molecules": [{"key": f.key, "reason": f.reason} for f in failures],
    }
    dataset = MoleculeDataset(
        atomic_numbers=np.concatenate(zs),
        positions=np.concatenate(ps),
        energy=np.concatenate(es),
        forces=np.concatenate(fs),
        n_atoms=counts,
        molecule_id=molecule_id,
        molecule_smiles=np.array([r.smiles for r in results], dtype=str),
        molecule_source=np.array([r.key for r in results], dtype=str),
        molecule_split=codes,
        metadata=metadata,
    )
    say(f"done: {n} configurations of {m} molecules, {len(failures)} molecule(s) skipped, {seconds:.0f} s")
    return BuildResult(dataset, np.concatenate(sig), tuple(failures), seconds)
