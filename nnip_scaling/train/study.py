r"""The one-command scaling study: ladders -> training runs -> frontier and sum-law fits -> report.

This is what the paper does (sections 3-4), shrunk to a CPU budget: for each model family, a short
ladder of widths at fixed depth (:func:`default_config`, scaled down from :func:`~nnip_scaling.models.ladder`)
is trained on the same data to the same token budget :math:`D_\max` (single epoch, schedule-free AdamW,
μP learning rates from each family's base width, by default the ladder's middle width), logging validation
learning curves with their compute :math:`C = 3\kappa N D` and wall-clock hours. Then, per family:

1. the loss-compute Pareto frontier (Hoffmann et al. approach 1, section 4.1) after dropping each run's
   first ``drop_first`` of training (section 3.2), fitted by :math:`L = F_c C^{-\gamma_c}` (eq. 4,
   :math:`L_\infty = 0`, compute in PFLOPs), and the same in hours (:math:`\gamma_h`);
2. the sum law :math:`L = A N^{-\alpha} + B D^{-\beta}` (eq. 5, approach 3) on every logged
   :math:`(N, D, L)` point, bootstrapped by whole runs;
3. :math:`\gamma_c = \alpha\beta/(\alpha + \beta)` derived from it (eq. 7) next to the direct one (table 1),
   and the compute-optimal exponents :math:`a, b` (section 4.3).

The report (``report.md`` and ``report.json``) lists these with 95% bootstrap intervals and ranks the
families by their exponents; ``fig1_compute.png``, ``fig3_frontiers.png`` and ``fig5_sum_law.png``
mirror the paper's figures 1, 3 and 5 (matplotlib, extra ``plot``).

Budget: the wall-clock minutes cover everything (data, κ, training, fits, plots). Before a family runs,
a short pilot (two timed steps per width) measures its cost per atom, the time left is split equally
between the families not yet run, and :math:`D_\max` is set so that all the family's widths finish in
its share (so an overrun of one family is absorbed by the next). Each run also carries a minutes cap
(twice its planned time). The plan is saved (``plan.json``) so that re-running the same
command on the same ``--out`` resumes the unfinished runs with the same budgets.

CPU-sized runs are short: the exponents of a 3-minute study are noisy and need not match the paper's
(which trained up to 9·10^8 tokens on GPUs); the intervals say how noisy.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch

from nnip_scaling.models import KINDS, build_model, ladder

__all__ = [
    "FamilySpec",
    "StudyConfig",
    "FamilyFit",
    "StudyResult",
    "default_config",
    "load_config",
    "config_to_toml",
    "run_study",
    "PAPER_GAMMA_C",
]

#: The paper's compute exponents (table 1, frontier fit) per family, for comparison in the report.
PAPER_GAMMA_C: Mapping[str, float] = MappingProxyType(
    {"unconstrained": 0.142, "cartesian": 0.173, "directional": 0.255, "spherical": 0.403}
)
_PAPER_ALPHA = {"unconstrained": 0.276, "cartesian": 0.387, "directional": 0.524, "spherical": 0.817}
_PAPER_BETA = {"unconstrained": 0.311, "cartesian": 0.394, "directional": 0.499, "spherical": 0.753}
PFLOP = 1e15


# ----------------------------------------------------------------------------------------------------------
# configuration


@dataclass(frozen=True, kw_only=True)
class FamilySpec:
    """One family's ladder in the study.

    Attributes:
        kind: model family (``"unconstrained"``, ``"directional"``, ``"cartesian"``, ``"spherical"``).
        widths: the ladder's widths (at least 2 distinct; 3-4 recommended).
        depth: blocks, fixed along the ladder (paper section 3.3).
        options: family options passed to :func:`~nnip_scaling.models.build_model`.
        base_width: width at which the study's ``lr`` applies (μP transfer ``lr * base_width / width``);
            default: the middle width of the ladder (the paper tunes at ~1M parameters, inside its ladders).
        lr: overrides the study's ``lr`` for this family.
        batch_size: overrides the study's ``batch_size`` for this family.
    """

    kind: str
    widths: tuple[int, ...]
    depth: int
    options: Mapping[str, Any] = field(default_factory=dict)
    base_width: int | None = None
    lr: float | None = None
    batch_size: int | None = None

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
        for name in ("base_width", "batch_size"):
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
        max_tokens: cap on :math:`D_\\max` (``None``: the budget decides, up to one epoch of data).
        batch_size: molecules per step (paper: 64).
        lr: :math:`\\eta^*` at each family's base width (μP).
        evals_per_run: learning-curve points per run.
        n_bootstrap: bootstrap resamples of every fit (paper: 1000).
        drop_first: share of each run's steps dropped before fitting (paper: 1-10%).
        ema: exponential smoothing of the learning curves before fitting (paper: 0.9 for GemNet-OC), or
            ``None``.
        seed: seed of models, data order and bootstrap.
        threads: torch intra-op threads (``None``: leave torch's setting); tiny models are fastest and most
            repeatable on 1.
        kappa_batch_sizes: probe batches (molecules) of :func:`~nnip_scaling.flops.estimate_kappa`.
        families: the ladders.
    """

    minutes: float = 15.0
    data: str = "builtin"
    val_fraction: float = 0.1
    val_molecules: int = 64
    max_tokens: int | None = None
    batch_size: int = 16
    lr: float = 1e-2
    evals_per_run: int = 12
    n_bootstrap: int = 300
    drop_first: float = 0.1
    ema: float | None = None
    seed: int = 0
    threads: int | None = 1
    kappa_batch_sizes: tuple[int, ...] = (4, 16)
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
        number("batch_size", 1, integer=True, closed=True)
        number("lr", 0.0)
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
    """A CPU-sized ladder for ``kind``, scaled down from the paper's (``ladder(kind)``): the family's
    ladder options are kept where they fit a CPU (spherical: ``m_max``), the rest is shrunk."""
    paper = ladder(kind)[0]
    if kind == "unconstrained":  # table 3: depth 5, widths 128..2557
        return FamilySpec(kind=kind, widths=(16, 32, 64) if quick else (16, 32, 64, 128), depth=2)
    if kind == "directional":  # table 6: depth 4, widths 32..204, 10 Å / 50 neighbours
        opts = dict(num_radial=32, basis_dim=8, triplet_dim=8, cutoff=6.0, max_neighbors=30)
        if quick:
            opts["quadruplets"] = False
        # depth 1: triplets and quadruplets dominate the cost on a CPU (see benchmarks/bench_train.py)
        return FamilySpec(kind=kind, widths=(8, 16, 24) if quick else (8, 16, 24, 32), depth=1, options=opts)
    if kind == "cartesian":  # table 4: depth 12, widths 32..800, E = floor(sqrt w)
        return FamilySpec(kind=kind, widths=(8, 16, 32) if quick else (8, 16, 32, 64), depth=1 if quick else 2,
                          options=dict(n_radial=64))
    # spherical, table 5: depth 12, l_max 4, m_max 2, C 4..32, hidden 32 (C = 2 does not learn here: start at 3)
    m_max = getattr(paper, "m_max", 2)
    return FamilySpec(kind=kind, widths=(3, 6, 12) if quick else (4, 8, 12, 16), depth=1 if quick else 2,
                      options=dict(l_max=2, m_max=min(2, m_max), hidden_channels=8, num_radial=32))


def default_config(*, quick: bool = False) -> StudyConfig:
    """The study run by ``nnip-scaling study`` (15 minutes) or ``--quick`` (about 3 minutes): the four
    families on short ladders, on the built-in data."""
    return StudyConfig(
        minutes=2.5 if quick else 15.0,
        val_molecules=32 if quick else 64,
        evals_per_run=8 if quick else 12,
        n_bootstrap=100 if quick else 400,
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


# ----------------------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class FamilyFit:
    """Fits of one family (``None`` where a fit was impossible; ``notes`` says why).

    Attributes:
        kind: family.
        kappa: κ of the family (through-origin fit over its widths, :func:`~nnip_scaling.flops.estimate_kappa`).
        n_runs: runs with logged points.
        frontier: eq. (4) on the loss-FLOPs frontier, compute in PFLOPs (:math:`\\gamma_c` = ``frontier.gamma``).
        frontier_hours: eq. (4) on the loss-hours frontier (:math:`\\gamma_h`).
        sum_law: eq. (5) fit.
        consistency: direct vs derived :math:`\\gamma_c, F_c` (table 1).
        optimum: compute-optimal allocation (eq. 6-7).
        frontier_points: indices of the FLOPs-frontier rows in the family's prepared log.
        hours_points: indices of the hours-frontier rows.
        notes: warnings and reasons for missing fits.
    """

    kind: str
    kappa: float
    n_runs: int
    frontier: Any = None
    frontier_hours: Any = None
    sum_law: Any = None
    consistency: Any = None
    optimum: Any = None
    frontier_points: tuple[int, ...] = ()
    hours_points: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def gamma_c(self) -> float:
        """Direct compute exponent (NaN when not fitted)."""
        return self.frontier.gamma if self.frontier is not None else math.nan

    @property
    def gamma_c_derived(self) -> float:
        """:math:`\\alpha\\beta/(\\alpha+\\beta)` from the sum law (NaN when not fitted)."""
        return self.consistency.gamma_c_sum if self.consistency is not None else math.nan


@dataclass(frozen=True)
class StudyResult:
    """What :func:`run_study` returns.

    Attributes:
        out_dir: the output directory.
        runs: all learning curves (:class:`~nnip_scaling.scaling.RunLog`), also in ``runs.csv``.
        prepared: the rows the fits used (after ``drop_first`` / ``ema``).
        fits: one :class:`FamilyFit` per family, in config order.
        ranking: families by direct :math:`\\gamma_c`, largest first (fitted families only).
        report: path of ``report.md``.
        figures: PNG files written (empty without matplotlib).
        seconds: wall-clock time of the study.
    """

    out_dir: Path
    runs: Any
    prepared: Any
    fits: tuple[FamilyFit, ...]
    ranking: tuple[str, ...]
    report: Path
    figures: tuple[Path, ...]
    seconds: float


# ----------------------------------------------------------------------------------------------------------
# running


def _load_data(config: StudyConfig) -> tuple[Any, Any, str]:
    from nnip_scaling.data import load_dataset, load_npz, read_ase

    if config.data == "builtin":
        ds = load_dataset("builtin")
        name = "built-in GFN2-xTB set"
    else:
        p = Path(config.data)
        if not p.is_file():
            raise FileNotFoundError(f"data: no file {p}")
        ds = load_npz(p) if p.suffix == ".npz" else read_ase(p)
        name = str(p)
    if ds.molecule_split is None:
        ds = ds.split_by_molecule((1.0 - config.val_fraction, config.val_fraction, 0.0), seed=config.seed)
    train, val = ds.split("train"), ds.split("val")
    if len(train) == 0 or len(val) == 0:
        raise ValueError(f"data: the split left {len(train)} training and {len(val)} validation configurations")
    if len(val) > config.val_molecules:
        val = val.subset(config.val_molecules / len(val), seed=config.seed)
    return train, val, name


def _build(spec: FamilySpec, width: int, seed: int) -> Any:
    torch.manual_seed(seed)
    return build_model(spec.kind, width, spec.depth, **dict(spec.options))


def _seconds_per_atom(model: Any, train_ds: Any, normaliser: Any, batch_size: int, seed: int) -> float:
    """Wall seconds per atom of a whole training step (batch assembly, neighbour list, forward, backward,
    optimiser step), timed on two batches after one warm-up batch, times a safety factor of 1.25."""
    from nnip_scaling.data import iter_batches
    from nnip_scaling.train.loss import loss_terms

    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    order = np.random.default_rng(seed).permutation(len(train_ds))[: 3 * batch_size]
    batches = iter_batches(train_ds.select(order), batch_size, normaliser=normaliser)
    atoms, t = 0, 0.0
    for i in range(3):
        t0 = time.perf_counter()
        g = next(batches).with_edges(model.config.cutoff, model.config.max_neighbors)
        out = model(g)
        loss = loss_terms(out.energy, out.forces, g).total.mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i > 0:
            t += time.perf_counter() - t0
            atoms += g.n_atoms
    return 1.25 * t / max(atoms, 1)


def _concat(logs: list[Any]) -> Any:
    from nnip_scaling.scaling import RunLog

    keys = list(dict.fromkeys(k for log in logs for k in log.extra))
    extra = {k: np.concatenate([log.extra[k].astype(str) if log.extra[k].dtype.kind in "US" else log.extra[k]
                                for log in logs]) for k in keys}
    return RunLog(
        run_id=np.concatenate([log.run_id for log in logs]),
        n_params=np.concatenate([log.n_params for log in logs]),
        tokens=np.concatenate([log.tokens for log in logs]),
        flops=np.concatenate([log.flops for log in logs]),
        loss=np.concatenate([log.loss for log in logs]),
        hours=np.concatenate([log.hours for log in logs]),
        extra=extra,
    )


def _check_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise PermissionError(f"--out {str(out)!r} is not a writable directory: {err.strerror or err}") from err


def run_study(
    config: StudyConfig,
    out_dir: str | os.PathLike[str],
    *,
    log: Callable[[str], None] = print,
    plots: bool = True,
) -> StudyResult:
    """Run the study of ``config`` into ``out_dir`` (see the module docstring).

    Re-running with the same ``out_dir`` resumes: finished runs are kept, unfinished ones continue from
    their checkpoints with the saved plan.

    Args:
        config: a :class:`StudyConfig` (:func:`default_config` or :func:`load_config`).
        out_dir: output directory (created; must be writable, checked before anything runs).
        log: where progress lines go.
        plots: write the PNG figures (needs matplotlib; skipped with a message when it is missing).

    Returns:
        :class:`StudyResult`.

    Raises:
        PermissionError: ``out_dir`` is not writable.
        ImportError: ``schedulefree`` is missing (``pip install 'nnip_scaling[train]'``).
        FileNotFoundError / ValueError: bad data or configuration.
    """
    from nnip_scaling.flops import estimate_kappa
    from nnip_scaling.scaling import load_runs
    from nnip_scaling.train.checkpoint import atomic_write_text
    from nnip_scaling.train.loop import LOG_NAME, train

    if not isinstance(config, StudyConfig):
        raise TypeError(f"config must be a StudyConfig, got {type(config).__name__}")
    t_start = time.perf_counter()
    out = Path(out_dir)
    _check_out(out)
    try:
        import schedulefree  # noqa: F401
    except ImportError as err:
        raise ImportError("the study trains with schedule-free AdamW: pip install 'nnip_scaling[train]'") from err
    old_threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        train_ds, val_ds, data_name = _load_data(config)
        from nnip_scaling.data import Normaliser

        normaliser = Normaliser.fit(train_ds)
        log(f"data: {data_name}: {len(train_ds)} training configurations ({train_ds.n_atoms_total:,} atoms), "
            f"{len(val_ds)} validation configurations for the learning curves")
        (out / "config.toml").write_text(config_to_toml(config))
        plan_path = out / "plan.json"
        plan: dict[str, Any] = json.loads(plan_path.read_text()) if plan_path.exists() else {}
        plan.setdefault("families", {})

        # κ per family (figure 2): one count over the family's widths
        kappas: dict[str, Any] = {}
        for spec in config.families:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                est = estimate_kappa(lambda w, s=spec: _build(s, w, config.seed), widths=list(spec.widths),
                                     batch_sizes=list(config.kappa_batch_sizes), seed=config.seed)
            kappas[spec.kind] = (est, [str(w.message) for w in caught])

        results = []
        n_total = sum(len(s.widths) for s in config.families)
        i = 0
        for k, spec in enumerate(config.families):
            est = kappas[spec.kind][0]
            bs = spec.batch_size or config.batch_size
            fam_plan = plan["families"].get(spec.kind)
            if fam_plan is None:  # plan this family with the time that is left (self-correcting)
                per_atom = [_seconds_per_atom(_build(spec, w, config.seed), train_ds, normaliser, bs, config.seed)
                            for w in spec.widths]
                left = config.minutes * 60.0 - (time.perf_counter() - t_start) - _reserve(config)
                fam_plan = _plan_family(config, spec, train_ds, val_ds, per_atom,
                                        max(left, 0.0) / (len(config.families) - k))
                plan["families"][spec.kind] = fam_plan
                atomic_write_text(json.dumps(plan, indent=1), plan_path)
            log(f"{spec.kind}: widths {list(spec.widths)}, depth {spec.depth}, D_max = {fam_plan['tokens']:,} atoms, "
                f"kappa = {est.kappa:.3g}")
            for w, row in zip(spec.widths, est.per_size):
                i += 1
                model = _build(spec, w, config.seed)
                run_id = f"{spec.kind}-w{w}"
                t0 = time.perf_counter()
                res = train(
                    model, train_ds, val_ds, out_dir=out / "runs" / run_id, resume=True, normaliser=normaliser,
                    kappa=row.kappa, progress=False, run_id=run_id, tokens=int(fam_plan["tokens"]),
                    minutes=float(fam_plan["minutes_cap"][str(w)]), batch_size=bs, lr=spec.lr or config.lr,
                    base_width=spec.base_width or spec.widths[len(spec.widths) // 2], seed=config.seed,
                    eval_every=int(fam_plan["eval_every"]),
                )
                log(f"[{i}/{n_total}] {run_id:<18} N={res.n_params:>8,}  D={res.tokens:>9,}  steps={res.steps:>5}  "
                    f"loss {res.rows[0].loss if res.rows else math.nan:.3f} -> {res.final_loss:.3f}  "
                    f"({time.perf_counter() - t0:.1f} s, stop: {res.stop_reason})")
                results.append(res)
        logs = [load_runs(out / "runs" / r.run_id / LOG_NAME) for r in results if r.rows]
        runs = _concat(logs)
        from nnip_scaling.scaling import save_runs

        save_runs(out / "runs.csv", runs)
        fits, prepared = _fit_all(config, runs, kappas)
        ranking = tuple(f.kind for f in sorted((f for f in fits if f.frontier is not None),
                                               key=lambda f: -f.gamma_c))
        figures: tuple[Path, ...] = ()
        if plots:
            try:
                from nnip_scaling.train.report import write_figures

                figures = write_figures(out, prepared, fits)
            except ImportError as err:
                log(f"plots skipped: {err}")
        seconds = time.perf_counter() - t_start
        from nnip_scaling.train.report import write_report

        report = write_report(out, config=config, data_name=data_name, n_train=len(train_ds),
                              n_train_atoms=train_ds.n_atoms_total, n_val=len(val_ds), runs=runs,
                              results=results, fits=fits, ranking=ranking, figures=figures, plan=plan,
                              seconds=seconds, kappa_notes={k: v[1] for k, v in kappas.items()})
        return StudyResult(out_dir=out, runs=runs, prepared=prepared, fits=tuple(fits), ranking=ranking,
                           report=report, figures=figures, seconds=seconds)
    finally:
        torch.set_num_threads(old_threads)


_SUM_LAW_STARTS = 8


def _reserve(config: StudyConfig) -> float:
    """Seconds kept for the fits, the report and the plots at the end: the sum-law fits dominate
    (``n_bootstrap + n_starts`` nonlinear least-squares refits per family, ~40 ms each on a CPU core)."""
    n = len(config.families)
    return 8.0 + n * (2.0 + 0.04 * (config.n_bootstrap + _SUM_LAW_STARTS))


_FIXED_PER_RUN = 1.5  # seconds: model build, FLOP count of one step, final evaluation and checkpoint


def _plan_family(config: StudyConfig, spec: FamilySpec, train_ds: Any, val_ds: Any, per_atom: Sequence[float],
                 seconds: float) -> dict[str, Any]:
    """Token budget :math:`D_\\max` of one family so that its runs fit in ``seconds``.

    Each run costs about ``D * s_w`` (training, ``s_w`` seconds per atom from the pilot) plus
    ``evals_per_run`` validations (forward only, about a third of a training step per atom) plus a fixed
    overhead. ``D`` is at least four batches and at most one epoch of the training data.
    """
    bs = spec.batch_size or config.batch_size
    atoms_per_config = train_ds.n_atoms_total / len(train_ds)
    val_atoms = val_ds.n_atoms_total
    eval_cost = [config.evals_per_run * val_atoms * sw / 3.0 for sw in per_atom]
    d = (seconds - sum(eval_cost) - _FIXED_PER_RUN * len(per_atom)) / sum(per_atom)
    d = max(d, 4 * bs * atoms_per_config)
    d = min(d, (len(train_ds) // bs) * bs * atoms_per_config * 0.98)
    if config.max_tokens is not None:
        d = min(d, config.max_tokens)
    steps = max(1, int(d // (bs * atoms_per_config)))
    return {
        "seconds": seconds,
        "tokens": int(d),
        "eval_every": max(1, steps // config.evals_per_run),
        "minutes_cap": {str(w): max(2.0 * (d * sw + ev) / 60.0, 0.1)
                        for w, sw, ev in zip(spec.widths, per_atom, eval_cost)},
        "seconds_per_atom": {str(w): sw for w, sw in zip(spec.widths, per_atom)},
    }


def _fit_all(config: StudyConfig, runs: Any, kappas: Mapping[str, Any]) -> tuple[list[FamilyFit], Any]:
    from nnip_scaling.scaling import (
        compute_optimal,
        consistency,
        fit_power_law,
        fit_sum_power_law,
        pareto_frontier,
        prepare_runs,
    )

    prepared = prepare_runs(runs, drop_first=config.drop_first, ema=config.ema)
    fits = []
    kinds = prepared.extra["kind"].astype(str)
    for spec in config.families:
        est, _ = kappas[spec.kind]
        notes: list[str] = []
        mask = kinds == spec.kind
        if not mask.any():
            fits.append(FamilyFit(kind=spec.kind, kappa=est.kappa, n_runs=0, notes=("no logged points",)))
            continue
        fam = prepared.select(mask)
        n_runs = len(np.unique(fam.run_id))
        order = fam.tokens
        res: dict[str, Any] = {}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for key, x in (("frontier", fam.flops / PFLOP), ("frontier_hours", fam.hours)):
                idx = pareto_frontier(x, fam.loss, run_id=fam.run_id, order=order)
                res[key + "_points"] = tuple(int(j) for j in idx)
                try:
                    res[key] = fit_power_law(x[idx], fam.loss[idx], L_inf=0.0, n_bootstrap=config.n_bootstrap,
                                             seed=config.seed)
                except ValueError as err:
                    notes.append(f"{key.replace('_', ' ')} fit: {err}")
            try:
                res["sum_law"] = fit_sum_power_law(fam.N, fam.D, fam.loss, L_inf=0.0, groups=fam.run_id,
                                                   n_bootstrap=config.n_bootstrap, seed=config.seed,
                                                   n_starts=_SUM_LAW_STARTS)
            except ValueError as err:
                notes.append(f"sum-law fit: {err}")
            if res.get("sum_law") is not None:
                try:
                    res["optimum"] = compute_optimal(res["sum_law"], est.kappa, compute_unit=PFLOP)
                    if res.get("frontier") is not None:
                        res["consistency"] = consistency(res["frontier"], res["sum_law"], est.kappa,
                                                         compute_unit=PFLOP)
                except ValueError as err:
                    notes.append(f"compute-optimal allocation: {err}")
        notes.extend(sorted({f"{w.category.__name__}: {w.message}" for w in caught}))
        fits.append(FamilyFit(
            kind=spec.kind, kappa=est.kappa, n_runs=n_runs, frontier=res.get("frontier"),
            frontier_hours=res.get("frontier_hours"), sum_law=res.get("sum_law"),
            consistency=res.get("consistency"), optimum=res.get("optimum"),
            frontier_points=res.get("frontier_points", ()), hours_points=res.get("frontier_hours_points", ()),
            notes=tuple(notes),
        ))
    return fits, prepared


def machine_description() -> str:
    """One line: CPU, threads, torch version."""
    return (f"{platform.machine()} {platform.processor() or ''}".strip()
            + f", {os.cpu_count()} CPU(s), torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
