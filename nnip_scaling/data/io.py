"""Reading and writing labelled molecule data sets.

* :func:`load_dataset` -- named data sets shipped with the package (``"builtin"``).
* :func:`load_npz` / :func:`save_npz` -- the package's own ``.npz`` format (below), read with
  ``allow_pickle=False``; :func:`save_npz` is byte-deterministic (fixed zip timestamps and member order).
* :func:`read_ase` -- extended XYZ, ASE trajectories and ASE databases (needs ``ase``).

The ``.npz`` format (``C`` configurations, ``A`` atoms, ``M`` molecules):

==================  ==========  ========  ==================================================
key                 dtype       shape     meaning
==================  ==========  ========  ==================================================
atomic_numbers      integer     [A]       Z of every atom, configurations concatenated
positions           float32/64  [A, 3]    Å
forces              float32/64  [A, 3]    eV/Å
energy              float64     [C]       eV
n_atoms             integer     [C]       atoms per configuration
molecule_id         integer     [C]       index into the molecule tables (optional)
molecule_smiles     str         [M]       SMILES per molecule (optional)
molecule_source     str         [M]       origin per molecule (optional)
molecule_split      int8        [M]       0 train, 1 val, 2 test (optional)
sigma               float64     [C]       displacement scale of generated data (optional)
metadata            str         []        JSON provenance (optional)
==================  ==========  ========  ==================================================

Every problem is a ``ValueError`` naming the file, and the configuration index where one is to blame.
With ``on_bad="skip"`` bad configurations are dropped instead; a warning says how many, and the
dataset's ``skipped`` attribute lists why.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import warnings
import zipfile
from collections.abc import Mapping
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from nnip_scaling.data._checks import coincident_atoms
from nnip_scaling.data.dataset import SPLITS, MoleculeDataset
from nnip_scaling.graph import MAX_ATOMIC_NUMBER
from nnip_scaling.neighbors import COINCIDENT_TOLERANCE

__all__ = ["load_dataset", "load_npz", "save_npz", "read_ase", "BUILTIN_FILE"]

#: File name of the shipped data set inside the ``nnip_scaling.data`` package.
BUILTIN_FILE = "builtin_gfn2.npz"

_REQUIRED = ("atomic_numbers", "positions", "forces", "energy", "n_atoms")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)


def _check_on_bad(on_bad: str) -> None:
    if on_bad not in ("raise", "skip"):
        raise ValueError(f"on_bad must be 'raise' or 'skip', got {on_bad!r}")


# ---------------------------------------------------------------------------------------------- npz
def save_npz(dataset: MoleculeDataset, path: str | os.PathLike[str], *, extra: Mapping[str, np.ndarray] | None = None) -> None:
    """Write ``dataset`` in the package's ``.npz`` format (deflate-compressed, byte-deterministic).

    The same data set always gives the same bytes: members are written in a fixed order with fixed
    zip timestamps, and ``metadata`` is serialised with sorted keys. The file is written to a temporary
    name and renamed, so a crash never leaves a truncated file under ``path``.

    Args:
        dataset: what to write (its ``metadata`` goes in as JSON).
        path: destination (``.npz`` appended by nobody: the name is used as given).
        extra: more per-configuration or per-molecule arrays (e.g. ``sigma``); no object dtypes.

    Raises:
        ValueError: an ``extra`` key clashes with a format key or has an object dtype.
    """
    members: dict[str, np.ndarray] = {
        "atomic_numbers": dataset.atomic_numbers.astype(np.uint8 if dataset.atomic_numbers.max(initial=0) < 256 else np.int64),
        "positions": dataset.positions,
        "forces": dataset.forces,
        "energy": dataset.energy,
        "n_atoms": dataset.n_atoms.astype(np.int32),
        "molecule_id": dataset.molecule_id.astype(np.int32),
        "molecule_smiles": dataset.molecule_smiles,
        "molecule_source": dataset.molecule_source,
    }
    if dataset.molecule_split is not None:
        members["molecule_split"] = dataset.molecule_split
    for key, value in (extra or {}).items():
        if key in members or key == "metadata":
            raise ValueError(f"extra: key {key!r} clashes with a format key")
        arr = np.asarray(value)
        if arr.dtype == object:
            raise ValueError(f"extra: {key!r} has object dtype (not loadable with allow_pickle=False)")
        members[key] = arr
    members["metadata"] = np.array(json.dumps(dict(dataset.metadata), sort_keys=True, indent=1))
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for key, arr in members.items():
            buf = io.BytesIO()
            arr = np.asarray(arr)
            if not arr.flags.c_contiguous:
                arr = arr.copy(order="C")
            np.lib.format.write_array(buf, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=6)
    os.replace(tmp, path)


def load_npz(path: str | os.PathLike[str], *, on_bad: str = "raise") -> MoleculeDataset:
    """Load a data set written by :func:`save_npz` (or by hand in the same format), with ``allow_pickle=False``.

    Args:
        path: the ``.npz`` file.
        on_bad: ``"raise"`` (default) or ``"skip"`` configurations with non-finite positions / labels,
            atomic numbers outside 1..118, or coincident atoms (closer than 1e-6 Å). Structural problems (missing keys, arrays whose lengths
            disagree, an unreadable file) always raise.

    Raises:
        ValueError: naming the file, and the configuration index for per-configuration problems.
    """
    _check_on_bad(on_bad)
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            keys = set(f.files)
            missing = [k for k in _REQUIRED if k not in keys]
            if missing:
                raise ValueError(f"{name}: missing key(s) {missing} (found {sorted(keys)})")
            arrays = {k: f[k] for k in keys}
    except ValueError as err:
        if str(err).startswith(name):
            raise
        raise ValueError(f"{name}: cannot read as .npz with allow_pickle=False ({err})") from err
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as err:
        raise ValueError(f"{name}: corrupt or truncated .npz file ({type(err).__name__}: {err})") from err
    return _from_arrays(arrays, name=name, on_bad=on_bad)


def _from_arrays(arrays: dict[str, np.ndarray], *, name: str, on_bad: str) -> MoleculeDataset:
    z = arrays["atomic_numbers"]
    pos = arrays["positions"]
    frc = arrays["forces"]
    energy = arrays["energy"]
    counts = arrays["n_atoms"]
    if not np.issubdtype(z.dtype, np.integer) or z.ndim != 1:
        raise ValueError(f"{name}: atomic_numbers must be a 1-d integer array, got {z.dtype} {list(z.shape)}")
    if not np.issubdtype(counts.dtype, np.integer) or counts.ndim != 1:
        raise ValueError(f"{name}: n_atoms must be a 1-d integer array, got {counts.dtype} {list(counts.shape)}")
    c, a = counts.shape[0], z.shape[0]
    if c and counts.min() < 1:
        raise ValueError(f"{name}: configuration {int(np.argmin(counts))} has n_atoms = {int(counts.min())}")
    if int(counts.sum()) != a:
        raise ValueError(f"{name}: n_atoms sums to {int(counts.sum())} but atomic_numbers has {a} entries")
    for key, arr in (("positions", pos), ("forces", frc)):
        if arr.shape != (a, 3) or arr.dtype not in (np.float32, np.float64):
            raise ValueError(f"{name}: {key} must be float32/float64 of shape [{a}, 3], got {arr.dtype} {list(arr.shape)}")
    if energy.shape != (c,) or not np.issubdtype(energy.dtype, np.floating):
        raise ValueError(f"{name}: energy must be a float array of shape [{c}], got {energy.dtype} {list(energy.shape)}")
    mid = arrays.get("molecule_id")
    smiles = arrays.get("molecule_smiles")
    source = arrays.get("molecule_source")
    split = arrays.get("molecule_split")
    if mid is None:
        mid = np.arange(c, dtype=np.int64)
        m = c
    else:
        if mid.shape != (c,) or not np.issubdtype(mid.dtype, np.integer):
            raise ValueError(f"{name}: molecule_id must be an integer array of shape [{c}], got {list(mid.shape)}")
        m = int(mid.max()) + 1 if c else 0
        for arr in (smiles, source, split):
            if arr is not None:
                m = max(m, arr.shape[0]) if arr.ndim == 1 else m
    tables = {}
    for key, arr, default in (("molecule_smiles", smiles, ""), ("molecule_source", source, None)):
        if arr is None:
            arr = np.array([f"{os.path.basename(name)}:{i}" if default is None else default for i in range(m)])
        if arr.ndim != 1 or arr.shape[0] != m or arr.dtype.kind != "U":
            raise ValueError(f"{name}: {key} must be a str array of shape [{m}], got {arr.dtype} {list(arr.shape)}")
        tables[key] = arr
    if split is not None and (split.shape != (m,) or not np.isin(split, list(SPLITS.values())).all()):
        raise ValueError(f"{name}: molecule_split must have shape [{m}] with values in {sorted(SPLITS.values())}")
    if c and mid.min() < 0:
        raise ValueError(f"{name}: configuration {int(np.argmin(mid))} has a negative molecule_id")
    metadata: dict[str, Any] = {}
    if "metadata" in arrays:
        try:
            raw = arrays["metadata"]
            if raw.size != 1 or raw.dtype.kind != "U":
                raise ValueError(f"{name}: metadata must be a single JSON string, got {raw.dtype} {list(raw.shape)}")
            metadata = json.loads(str(raw.reshape(())))
        except json.JSONDecodeError as err:
            raise ValueError(f"{name}: metadata is not valid JSON ({err})") from err
        if not isinstance(metadata, dict):
            raise ValueError(f"{name}: metadata must be a JSON object")

    # per-configuration checks
    config_of_atom = np.repeat(np.arange(c), counts)
    reasons: dict[int, str] = {}
    atom_bad = {
        "atomic number outside 1..118": (z < 1) | (z > MAX_ATOMIC_NUMBER),
        "non-finite positions": ~np.isfinite(pos).all(axis=1),
        "non-finite forces": ~np.isfinite(frc).all(axis=1),
    }
    for why, mask in atom_bad.items():
        for i in np.unique(config_of_atom[mask]):
            reasons.setdefault(int(i), why)
    for i in np.flatnonzero(~np.isfinite(energy)):
        reasons.setdefault(int(i), "non-finite energy")
    for i, why in _coincident_reasons(pos, counts).items():
        reasons.setdefault(i, why)
    keep = np.ones(c, dtype=bool)
    skipped: list[str] = []
    if reasons:
        first = min(reasons)
        if on_bad == "raise":
            raise ValueError(
                f"{name}: configuration {first}: {reasons[first]} ({len(reasons)} bad configuration(s); "
                "on_bad='skip' drops them)"
            )
        for i in sorted(reasons):
            keep[i] = False
            skipped.append(f"{name}: configuration {i}: {reasons[i]}")
        warnings.warn(f"{name}: skipped {len(skipped)} of {c} configurations (first: {skipped[0]})", stacklevel=3)
    atom_keep = np.repeat(keep, counts)
    return MoleculeDataset(
        atomic_numbers=z[atom_keep],
        positions=pos[atom_keep],
        energy=energy[keep],
        forces=frc[atom_keep],
        n_atoms=counts[keep],
        molecule_id=mid[keep],
        molecule_smiles=tables["molecule_smiles"],
        molecule_source=tables["molecule_source"],
        molecule_split=split,
        metadata=metadata,
        skipped=tuple(skipped),
    )


def _coincident_reasons(positions: np.ndarray, counts: np.ndarray) -> dict[int, str]:
    """``{configuration: reason}`` for configurations with two atoms closer than 1e-6 Å."""
    return {c: f"atoms {i} and {j} are coincident (closer than {COINCIDENT_TOLERANCE} Å)"
            for c, (i, j) in coincident_atoms(positions, counts).items()}


def load_dataset(name: str = "builtin", *, split: str | None = None, on_bad: str = "raise") -> MoleculeDataset:
    """Load a data set shipped with the package.

    ``"builtin"``: about 10,000 configurations of ~2,700 small organic molecules (H, C, N, O, F, S, Cl,
    at most 30 atoms) with GFN2-xTB energies and forces (semi-empirical, *not* DFT), split 80/10/10 by
    molecule. See ``docs/data.md`` for provenance and ``metadata`` for the exact recipe.

    Args:
        name: ``"builtin"``.
        split: ``None`` for everything, or ``"train"``, ``"val"``, ``"test"``.
        on_bad: see :func:`load_npz`.

    Raises:
        ValueError: unknown name or split.
    """
    if name != "builtin":
        raise ValueError(f"name must be 'builtin' (use load_npz or read_ase for files), got {name!r}")
    if split is not None and split not in SPLITS:
        raise ValueError(f"split must be None or one of {list(SPLITS)}, got {split!r}")
    with resources.as_file(resources.files("nnip_scaling.data").joinpath(BUILTIN_FILE)) as p:
        if not p.exists():
            raise FileNotFoundError(f"the built-in data set {BUILTIN_FILE} is missing from the installation at {p}")
        ds = load_npz(p, on_bad=on_bad)
    return ds if split is None else ds.split(split)


# ---------------------------------------------------------------------------------------------- ASE
_ASE_FORMATS = {".extxyz": "extxyz", ".xyz": "extxyz", ".traj": "traj", ".db": "db"}


def read_ase(
    path: str | os.PathLike[str],
    energy_key: str = "energy",
    forces_key: str = "forces",
    *,
    format: str | None = None,
    on_bad: str = "raise",
) -> MoleculeDataset:
    """Read labelled molecules from an extended XYZ file, an ASE trajectory or an ASE database.

    Energies are looked up under ``energy_key`` in ``atoms.info`` (or a database row's key-value
    pairs), then in the attached calculator's results; forces under ``forces_key`` in ``atoms.arrays``
    (or the row's ``data``), then in the calculator's results. Units must already be eV and eV/Å.
    Structures must be non-periodic molecules. Every configuration is its own molecule
    (``molecule_source`` = ``"FILE:INDEX"``); group them with your own ``molecule_id`` if you need
    molecule-level splits.

    Extended XYZ files are checked before ASE sees them: a count line that promises more atoms than
    the file holds (ASE would read on for minutes) is reported as a truncated or corrupt file.

    Args:
        path: ``.extxyz`` / ``.xyz``, ``.traj`` or ``.db`` file.
        energy_key: name of the energy label.
        forces_key: name of the forces label.
        format: ``"extxyz"``, ``"traj"`` or ``"db"`` (default: from the file extension).
        on_bad: ``"raise"`` or ``"skip"`` configurations with missing or malformed labels, non-finite
            values, coincident atoms (closer than 1e-6 Å) or periodic cells; an unreadable tail of a
            file counts as one skipped entry.

    Raises:
        ImportError: ``ase`` is not installed (``pip install 'nnip_scaling[data]'``).
        ValueError: naming the file and the configuration index.
    """
    _check_on_bad(on_bad)
    try:
        import ase.db  # noqa: F401
        import ase.io  # noqa: F401
    except ImportError as err:  # pragma: no cover - exercised only without ase
        raise ImportError("read_ase needs ASE: pip install 'nnip_scaling[data]'") from err
    name = os.fspath(path)
    if not os.path.exists(name):
        raise FileNotFoundError(f"{name}: no such file")
    fmt = format if format is not None else _ASE_FORMATS.get(Path(name).suffix.lower())
    if fmt not in ("extxyz", "traj", "db"):
        raise ValueError(f"{name}: cannot tell the format from the extension; pass format='extxyz', 'traj' or 'db'")
    out = _Collector(name, energy_key, forces_key, on_bad)
    if fmt == "db":
        _read_db(name, out)
    else:
        _read_frames(name, fmt, out)
    out.drop_coincident()
    if out.skipped:
        warnings.warn(f"{name}: skipped {len(out.skipped)} of {out.total} configurations "
                      f"(first: {out.skipped[0]})", stacklevel=2)
    return out.dataset(fmt)


class _Collector:
    """Configurations accepted so far, and the messages of those refused (``on_bad``)."""

    def __init__(self, name: str, energy_key: str, forces_key: str, on_bad: str) -> None:
        self.name, self.energy_key, self.forces_key, self.on_bad = name, energy_key, forces_key, on_bad
        self.zs: list[np.ndarray] = []
        self.rs: list[np.ndarray] = []
        self.es: list[float] = []
        self.fs: list[np.ndarray] = []
        self.kept: list[int] = []
        self.skipped: list[str] = []
        self.total = 0

    def bad(self, i: int, why: str) -> None:
        msg = f"{self.name}: configuration {i}: {why}"
        if self.on_bad == "raise":
            raise ValueError(msg)
        self.skipped.append(msg)

    def take(self, i: int, numbers: Any, positions: Any, pbc: Any, energy: Any, forces: Any) -> None:
        """Validate one configuration; keep it or report it with :meth:`bad`."""
        self.total += 1
        z = np.asarray(numbers, dtype=np.int64)
        r = np.asarray(positions, dtype=np.float64)
        n = z.shape[0]
        if n == 0:
            return self.bad(i, "no atoms")
        if np.any(pbc):
            return self.bad(i, "periodic structures are not supported (pbc must be all False)")
        if energy is None:
            return self.bad(i, f"no energy under key {self.energy_key!r}")
        if forces is None:
            return self.bad(i, f"no forces under key {self.forces_key!r}")
        try:
            e = float(np.asarray(energy, dtype=np.float64).reshape(()))
            f = np.asarray(forces, dtype=np.float64)
        except (TypeError, ValueError) as err:
            return self.bad(i, f"malformed labels ({err})")
        if f.shape != (n, 3):
            return self.bad(i, f"forces have shape {list(f.shape)}, expected [{n}, 3]")
        if (z < 1).any() or (z > MAX_ATOMIC_NUMBER).any():
            return self.bad(i, "atomic number outside 1..118")
        if not np.isfinite(r).all():
            return self.bad(i, "non-finite positions")
        if not (np.isfinite(e) and np.isfinite(f).all()):
            return self.bad(i, "non-finite energy or forces")
        self.kept.append(i)
        self.zs.append(z)
        self.rs.append(r)
        self.es.append(e)
        self.fs.append(f)

    def drop_coincident(self) -> None:
        """Refuse configurations with coincident atoms (one vectorised check over all of them)."""
        if not self.rs:
            return
        counts = np.array([z.shape[0] for z in self.zs], dtype=np.int64)
        reasons = _coincident_reasons(np.concatenate(self.rs), counts)
        for j in sorted(reasons):
            self.bad(self.kept[j], reasons[j])
        if reasons:
            keep = [j for j in range(len(self.kept)) if j not in reasons]
            for attr in ("zs", "rs", "es", "fs", "kept"):
                setattr(self, attr, [getattr(self, attr)[j] for j in keep])
            self.skipped.sort(key=_config_index)

    def dataset(self, fmt: str) -> MoleculeDataset:
        c = len(self.zs)
        return MoleculeDataset(
            atomic_numbers=np.concatenate(self.zs) if c else np.zeros(0, np.int64),
            positions=np.concatenate(self.rs) if c else np.zeros((0, 3)),
            energy=np.array(self.es, dtype=np.float64),
            forces=np.concatenate(self.fs) if c else np.zeros((0, 3)),
            n_atoms=np.array([z.shape[0] for z in self.zs], dtype=np.int64),
            molecule_id=np.arange(c, dtype=np.int64),
            molecule_smiles=np.array([""] * c, dtype=str),
            molecule_source=np.array([f"{os.path.basename(self.name)}:{i}" for i in self.kept], dtype=str),
            metadata={"source": os.path.basename(self.name), "format": fmt, "energy_key": self.energy_key,
                      "forces_key": self.forces_key},
            skipped=tuple(self.skipped),
        )


def _config_index(message: str) -> int:
    """The configuration index in a ``"FILE: configuration I: why"`` message (for ordering)."""
    try:
        return int(message.rsplit(": configuration ", 1)[1].split(":", 1)[0])
    except (IndexError, ValueError):  # pragma: no cover - all messages have the form
        return -1


def _read_db(name: str, out: _Collector) -> None:
    import ase.db

    try:
        db = ase.db.connect(name, type="db")
        rows = list(db.select())
    except Exception as err:  # sqlite / ASE raise many types for corrupt files
        raise ValueError(f"{name}: cannot read as an ASE database ({type(err).__name__}: {err})") from err
    for i, row in enumerate(rows):
        try:
            atoms = row.toatoms()
        except Exception as err:
            out.total += 1
            out.bad(i, f"unreadable row ({type(err).__name__}: {err})")
            continue
        kvp, data = row.key_value_pairs, row.data
        energy = kvp.get(out.energy_key)
        if energy is None and out.energy_key in ("energy", "free_energy"):
            energy = row.get(out.energy_key)
        forces = data.get(out.forces_key) if out.forces_key in data else None
        if forces is None and out.forces_key == "forces":
            forces = row.get("forces")
        out.take(i, atoms.numbers, atoms.positions, atoms.pbc, energy, forces)


def _read_frames(name: str, fmt: str, out: _Collector) -> None:
    """Frames of an extxyz file or an ASE trajectory; a corrupt tail ends the file (one bad entry)."""
    import ase.io

    source: Any = name
    tail_problem = None
    if fmt == "extxyz":
        n_ok, end, tail_problem = _check_xyz_counts(name)
        if tail_problem is not None:
            msg = f"unreadable from here on, file corrupt or truncated ({tail_problem})"
            if out.on_bad == "raise" or n_ok == 0:
                raise ValueError(f"{name}: configuration {n_ok}: {msg}")
            with open(name, "rb") as fh:  # hand ASE only the well-formed frames
                source = io.StringIO(fh.read(end).decode("utf-8", errors="replace"))
            tail_problem = (n_ok, msg)
    with ExitStack() as stack:
        try:
            frames = ase.io.iread(source, index=":", format=fmt)
            stack.callback(getattr(frames, "close", lambda: None))
        except Exception as err:
            raise ValueError(f"{name}: cannot open as {fmt} ({type(err).__name__}: {err})") from err
        i = 0
        while True:
            try:
                atoms = next(frames)
            except StopIteration:
                break
            except Exception as err:  # parse errors of corrupt / truncated files
                msg = f"unreadable from here on, file corrupt or truncated ({type(err).__name__}: {err})"
                if i == 0 or out.on_bad == "raise":
                    raise ValueError(f"{name}: configuration {i}: {msg}") from err
                out.total += 1
                out.skipped.append(f"{name}: configuration {i}: {msg}")
                return
            energy = atoms.info.get(out.energy_key)
            if energy is None:
                energy = _calc_result(atoms, out.energy_key)
            forces = atoms.arrays.get(out.forces_key)
            if forces is None:
                forces = _calc_result(atoms, out.forces_key)
            out.take(i, atoms.numbers, atoms.positions, atoms.pbc, energy, forces)
            i += 1
    if tail_problem is not None:
        out.total += 1
        out.skipped.append(f"{name}: configuration {tail_problem[0]}: {tail_problem[1]}")


def _calc_result(atoms: Any, key: str) -> Any:
    calc = atoms.calc
    results = getattr(calc, "results", None) if calc is not None else None
    return None if results is None else results.get(key)


def _check_xyz_counts(name: str) -> tuple[int, int, str | None]:
    """Walk the count lines of an (ext)XYZ file without parsing atoms.

    ASE trusts a frame's count line and reads that many lines, even past the end of the file: a count
    of 1e8 takes minutes. Here each count is checked against the lines that are left.

    Returns:
        ``(frames, end, problem)``: the number of well-formed frames before the first bad count line,
        the byte offset where they end, and a description of the problem (``None`` if there is none;
        lines that are not counts at all are left to ASE's own error).
    """
    frames = end = lineno = 0
    with open(name, "rb") as fh:
        lines = iter(fh)
        for line in lines:
            lineno += 1
            if not line.strip():
                break  # ASE stops at a blank line too
            try:
                n = int(line)
            except ValueError:
                break
            if n < 0:
                return frames, end, f"line {lineno}: the count line says {n} atoms"
            size, got = len(line), 0
            for follow in itertools.islice(lines, n + 1):  # comment line + n atom lines
                got += 1
                size += len(follow)
            if got < n + 1:
                return frames, end, (f"line {lineno}: the count line says {n} atoms but only "
                                     f"{max(got - 1, 0)} atom line(s) follow before the end of the file")
            lineno += got
            frames += 1
            end += size
    return frames, end, None
