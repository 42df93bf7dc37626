r"""The study's settings: :class:`StudyConfig` (the ``[study]`` table of a TOML file) and one
:class:`FamilySpec` per model family (``[families.<kind>]``), their defaults and TOML round trip.

The default ladders are the paper's (:func:`~nnip_scaling.models.ladder`, tables 3-6) shrunk to a CPU
budget; :func:`default_config` gives the 15-minute study and ``quick=True`` the ~3-minute one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from nnip_scaling.models import KINDS, ladder

__all__ = ["FamilySpec", "StudyConfig", "default_config", "load_config", "config_to_toml"]


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """One family's ladder in the study.

    Attributes:
        kind: model family (``"unconstrained"``, ``"directional"``, ``"cartesian"``, ``"spherical"``).
        widths: the ladder's widths (at least 2 distinct; 3-4 recommended).
        depth: blocks, fixed along the ladder (paper section 3.3).
        options: family options passed to :func:`~nnip_scaling.models.build_model`.
        base_width: width at which the study's ``lr`` applies (μP transfer from this width to the others,
            see :func:`~nnip_scaling.train.train`); default: the middle width of the ladder (the paper tunes
            at ~1M parameters, inside its ladders).
        lr: overrides the study's ``lr`` for this family.
        batch_size: overrides the study's ``batch_size`` for this family.
        tokens: the family's token budget :math:`D_\\max` (atoms seen by every width); default (``None``):
            set by the study's time budget from a timed pilot.
    """

    kind: str
    widths: tuple[int, ...]
    depth: int
    options: Mapping[str, Any] = field(default_factory=dict)
    base_width: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    tokens: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {list(KINDS)}, got {self.kind!r}")
        if isinstance(self.widths, (str, bytes)) or not isinstance(self.widths, Sequence):
            raise TypeError(f"widths of {self.kind} must be a list of ints, got {type(self.widths).__name__}")
        ws = tuple(self.widths)
        if len(ws) < 2 or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in ws):
            raise ValueError(f"widths of {self.kind} must be at least two ints >= 1, got {list(ws)}")
        if len(set(ws)) != len(ws):
            raise ValueError(f"widths of {self.kind} must be distinct, got {list(ws)}")
        object.__setattr__(self, "widths", tuple(sorted(ws)))
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth of {self.kind} must be an int >= 1, got {self.depth!r}")
        if not isinstance(self.options, Mapping):
            raise TypeError(f"options of {self.kind} must be a table, got {type(self.options).__name__}")
        object.__setattr__(self, "options", MappingProxyType(dict(self.options)))
        for name in ("base_width", "batch_size", "tokens"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} of {self.kind} must be an int >= 1, got {v!r}")
        if self.lr is not None and (isinstance(self.lr, bool) or not isinstance(self.lr, (int, float))
                                    or not (math.isfinite(self.lr) and self.lr > 0)):
            raise ValueError(f"lr of {self.kind} must be a positive number, got {self.lr!r}")


@dataclass(frozen=True, kw_only=True)
class StudyConfig:
    """Settings of :func:`run_study` (the TOML file's ``[study]`` table and ``[families.<kind>]`` tables).

    Attributes:
        minutes: wall-clock budget of the whole study.
        data: ``"builtin"`` or a path to a data set (``.npz`` of :func:`~nnip_scaling.data.save_npz`, or any
            file ASE reads with energies and forces: ``.extxyz``, ``.traj``, ``.db``).
        val_fraction: validation share of molecules when the data carry no split.
        val_molecules: configurations of the validation split used for the learning curves.
        max_tokens: cap on :math:`D_\\max` (``None``: the budget decides, up to ``epochs`` passes over the data).
        epochs: most passes over the training data. A :math:`D_\\max` beyond one pass trains several epochs,
            each in a fresh order with every molecule randomly rotated (data augmentation; a no-op for the
            exactly equivariant families, and it keeps the repeats of the unconstrained family distinct).
        batch_size: molecules per step (paper: 64; 8 here, for more steps in a CPU budget).
        lr: :math:`\\eta^*` at each family's base width (μP).
        lr_rule: how ``lr`` transfers to other widths (:func:`~nnip_scaling.train.train`): ``"mup"``
            (per-parameter μP rates) or ``"global"`` (the paper's :math:`\\eta^* w_0/w` for every parameter);
            ``None``: train's default (``"mup"``).
        evals_per_run: learning-curve points per run.
        n_bootstrap: bootstrap resamples of every fit (paper: 1000).
        drop_first: share of each run's steps dropped before fitting (paper: 1-10%).
        ema: exponential smoothing of the learning curves before fitting (paper: 0.9 for GemNet-OC), or
            ``None``.
        seed: seed of models, data order and bootstrap.
        threads: torch intra-op threads of each run (``None``: the CPU's cores divided among the workers);
            tiny models are fastest and most repeatable on 1.
        min_wider_wins: share of (data size, adjacent widths) pairs the wider model must win for the
            wider-wins gate to pass (:func:`~nnip_scaling.scaling.gates.wider_wins`).
        kappa_batch_sizes: probe batches (molecules) of :func:`~nnip_scaling.flops.estimate_kappa`.
        families: the ladders.
    """

    minutes: float = 15.0
    data: str = "builtin"
    val_fraction: float = 0.1
    val_molecules: int = 64
    max_tokens: int | None = None
    epochs: int = 4
    batch_size: int = 8
    lr: float = 3e-2
    lr_rule: str | None = None
    evals_per_run: int = 12
    n_bootstrap: int = 300
    drop_first: float = 0.1
    ema: float | None = None
    seed: int = 0
    threads: int | None = 1
    kappa_batch_sizes: tuple[int, ...] = (4, 16)
    min_wider_wins: float = 0.8
    families: tuple[FamilySpec, ...] = ()

    def __post_init__(self) -> None:
        def number(name: str, low: float, *, integer: bool = False, allow_none: bool = False, closed: bool = False):
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, int if integer else (int, float)):
                raise TypeError(f"{name} must be {'an int' if integer else 'a number'}, got {v!r}")
            if not (math.isfinite(v) and (v >= low if closed else v > low)):
                raise ValueError(f"{name} must be {'>=' if closed else '>'} {low}, got {v!r}")

        number("minutes", 0.0)
        if not isinstance(self.data, str) or not self.data:
            raise TypeError(f"data must be 'builtin' or a file path, got {self.data!r}")
        number("val_fraction", 0.0)
        if self.val_fraction >= 1:
            raise ValueError(f"val_fraction must be < 1, got {self.val_fraction}")
        number("val_molecules", 1, integer=True, closed=True)
        number("max_tokens", 1, integer=True, allow_none=True, closed=True)
        number("epochs", 1, integer=True, closed=True)
        number("batch_size", 1, integer=True, closed=True)
        number("lr", 0.0)
        if self.lr_rule is not None and self.lr_rule not in ("mup", "global"):
            raise ValueError(f"lr_rule must be 'mup' or 'global', got {self.lr_rule!r}")
        number("evals_per_run", 2, integer=True, closed=True)
        number("n_bootstrap", 0, integer=True, closed=True)
        number("drop_first", 0.0, closed=True)
        if self.drop_first >= 1:
            raise ValueError(f"drop_first must be < 1, got {self.drop_first}")
        number("ema", 0.0, allow_none=True, closed=True)
        if self.ema is not None and self.ema >= 1:
            raise ValueError(f"ema must be < 1, got {self.ema}")
        number("seed", 0, integer=True, closed=True)
        number("threads", 1, integer=True, allow_none=True, closed=True)
        number("min_wider_wins", 0.0)
        if self.min_wider_wins > 1:
            raise ValueError(f"min_wider_wins must be <= 1, got {self.min_wider_wins}")
        kb = tuple(self.kappa_batch_sizes)
        if not kb or any(isinstance(b, bool) or not isinstance(b, int) or not 1 <= b <= 90 for b in kb):
            raise ValueError(f"kappa_batch_sizes must be ints in 1..90, got {list(kb)}")
        object.__setattr__(self, "kappa_batch_sizes", kb)
        fams = tuple(self.families)
        if not fams:
            raise ValueError("families must name at least one family")
        for f in fams:
            if not isinstance(f, FamilySpec):
                raise TypeError(f"families must hold FamilySpec objects, got {type(f).__name__}")
        kinds = [f.kind for f in fams]
        if len(set(kinds)) != len(kinds):
            raise ValueError(f"each family may appear once, got {kinds}")
        object.__setattr__(self, "families", fams)


def _family_defaults(kind: str, *, quick: bool) -> FamilySpec:
    """A CPU-sized ladder for ``kind``, scaled down from the paper's (``ladder(kind)``): three widths 2x apart
    (adjacent models differ enough for the wider one to win at equal data within a CPU budget), the
    family's ladder options kept where they fit a CPU (spherical: ``m_max``), the rest shrunk."""
    paper = ladder(kind)[0]
    if kind == "unconstrained":  # table 3: depth 5, widths 128..2557
        return FamilySpec(kind=kind, widths=(16, 32, 64), depth=2)
    if kind == "directional":  # table 6: depth 4, widths 32..204, 10 Å / 50 neighbours
        # depth 1 without quadruplets: triplets and quadruplets dominate the cost on a CPU (benchmarks/bench_train.py)
        opts = dict(num_radial=32, basis_dim=8, triplet_dim=8, cutoff=6.0, max_neighbors=30, quadruplets=False)
        return FamilySpec(kind=kind, widths=(8, 16, 32), depth=1, options=opts)
    if kind == "cartesian":  # table 4: depth 12, widths 32..800, E = floor(sqrt w)
        return FamilySpec(kind=kind, widths=(8, 16, 32), depth=1 if quick else 2, options=dict(n_radial=64))
    # spherical, table 5: depth 12, l_max 4, m_max 2, C 4..32, hidden 32 (C = 2 does not learn here: start at 3)
    m_max = getattr(paper, "m_max", 2)
    return FamilySpec(kind=kind, widths=(3, 6, 12) if quick else (4, 8, 16), depth=1 if quick else 2,
                      options=dict(l_max=2, m_max=min(2, m_max), hidden_channels=8, num_radial=32))


def default_config(*, quick: bool = False) -> StudyConfig:
    """The study run by ``nnip-scaling study`` (15 minutes) or ``--quick`` (about 3 minutes): the four
    families on three widths each, on the built-in data.

    Batch 8 and :math:`\\eta^* = 0.03` at the middle width (μP, ``lr_rule="mup"``): on a CPU budget the runs
    are a few hundred steps long, and a learning-rate sweep of 200 steps (rates 0.01, 0.03, 0.1 at widths 4x
    apart) found 0.03 best for cartesian at widths 8 and 32 and for spherical at width 4 (its width 16 was
    measured at 0.01 only); the wider model won at every rate measured."""
    return StudyConfig(
        minutes=3.0 if quick else 15.0,
        val_molecules=32 if quick else 64,
        evals_per_run=8 if quick else 12,
        n_bootstrap=50 if quick else 400,
        families=tuple(_family_defaults(k, quick=quick) for k in KINDS),
    )


_STUDY_KEYS = {f.name for f in dataclasses.fields(StudyConfig)} - {"families"}
_FAMILY_KEYS = {f.name for f in dataclasses.fields(FamilySpec)} - {"kind"}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        import tomllib  # Python >= 3.11
    except ModuleNotFoundError:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as err:
            raise ImportError("reading study.toml on Python 3.10 needs tomli: pip install tomli "
                              "(a dependency of nnip_scaling on 3.10)") from err
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{path}: not valid TOML ({err})") from None


def load_config(path: str | os.PathLike[str], *, quick: bool = False) -> StudyConfig:
    """Read a study configuration (TOML) over the defaults (:func:`default_config`).

    The file has an optional ``[study]`` table (any :class:`StudyConfig` field but ``families``) and
    optional ``[families.<kind>]`` tables (``widths``, ``depth``, ``options``, ``base_width``, ``lr``,
    ``batch_size``). When it names families, only those are run; a family table may give just some
    keys, the rest coming from that family's default ladder. Relative ``data`` paths are taken relative to
    the file. See docs/tutorial.md.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid TOML, unknown tables or keys (named), bad values.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no study config at {path}")
    raw = _read_toml(path)
    unknown = sorted(set(raw) - {"study", "families"})
    if unknown:
        raise ValueError(f"{path}: unknown table(s) {unknown}; expected [study] and [families.<kind>]")
    base = default_config(quick=quick)
    study = raw.get("study", {})
    if not isinstance(study, dict):
        raise ValueError(f"{path}: [study] must be a table")
    bad = sorted(set(study) - _STUDY_KEYS)
    if bad:
        raise ValueError(f"{path}: unknown key(s) {bad} in [study]; valid keys: {sorted(_STUDY_KEYS)}")
    study = dict(study)
    if "data" in study and isinstance(study["data"], str) and study["data"] != "builtin":
        p = Path(study["data"]).expanduser()
        study["data"] = str(p if p.is_absolute() else (path.parent / p).resolve())
    fams_raw = raw.get("families", {})
    if not isinstance(fams_raw, dict):
        raise ValueError(f"{path}: [families] must hold tables [families.<kind>]")
    families = base.families
    if fams_raw:
        families = []
        for kind, table in fams_raw.items():
            if kind not in KINDS:
                raise ValueError(f"{path}: unknown family [families.{kind}]; valid: {list(KINDS)}")
            if not isinstance(table, dict):
                raise ValueError(f"{path}: [families.{kind}] must be a table")
            bad = sorted(set(table) - _FAMILY_KEYS)
            if bad:
                raise ValueError(f"{path}: unknown key(s) {bad} in [families.{kind}]; valid keys: "
                                 f"{sorted(_FAMILY_KEYS)}")
            default = _family_defaults(kind, quick=quick)
            merged = {k: getattr(default, k) for k in _FAMILY_KEYS}
            table = dict(table)
            if "options" in table:  # the file's options override the default ladder's, key by key
                if not isinstance(table["options"], dict):
                    raise ValueError(f"{path}: options of [families.{kind}] must be a table")
                merged["options"] = {**dict(default.options), **table.pop("options")}
            merged.update(table)
            families.append(FamilySpec(kind=kind, **merged))
    return dataclasses.replace(base, **study, families=tuple(families))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def config_to_toml(config: StudyConfig) -> str:
    """The configuration as a TOML document that :func:`load_config` reads back (``None`` values omitted)."""
    lines = ["# nnip-scaling study configuration (see docs/tutorial.md)", "[study]"]
    for f in dataclasses.fields(StudyConfig):
        if f.name == "families":
            continue
        v = getattr(config, f.name)
        if v is not None:
            lines.append(f"{f.name} = {_toml_value(v)}")
    for fam in config.families:
        lines += ["", f"[families.{fam.kind}]"]
        for f in dataclasses.fields(FamilySpec):
            if f.name == "kind":
                continue
            v = getattr(fam, f.name)
            if v is not None:
                lines.append(f"{f.name} = {_toml_value(dict(v) if f.name == 'options' else v)}")
    return "\n".join(lines) + "\n"
