"""Run logs: one row per evaluation point of a learning curve (CSV or JSON Lines).

Columns (names fixed):

============  =========================================================================
run_id        identifier of the training run (one learning curve), any string
n_params      N, trainable parameters of the model
tokens        D, training tokens seen so far (atoms, for force fields)
flops         C, training FLOPs spent so far (about ``3 kappa N D``, paper eq. 3)
loss          validation loss at this point
hours         optional: wall-clock training hours so far (paper's H)
(anything)    optional free columns, kept as they are: e.g. ``arch``, ``step``, ``split``
============  =========================================================================

``n_params``, ``tokens``, ``flops``, ``loss`` (and ``hours`` when present) must be finite and positive;
a violation raises ``ValueError`` naming the column and the row (1-based data row; CSV errors also give
the file line).
"""

from __future__ import annotations

import codecs
import csv
import errno
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["RunLog", "load_runs", "save_runs", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("run_id", "n_params", "tokens", "flops", "loss")
_POSITIVE = ("n_params", "tokens", "flops", "loss")


def _check_positive(name: str, values: object, *, where: str = "") -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{where}column {name!r} must hold numbers") from None
    if arr.ndim != 1:
        raise ValueError(f"{where}column {name!r} must be 1-D, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr <= 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "is not a finite number" if not np.isfinite(arr[i]) else "must be positive"
        raise ValueError(f"{where}row {i + 1}: {name} = {float(arr[i])!r} {what} "
                         f"({int(bad.sum())} bad row(s) in column {name!r})")
    return arr


@dataclass(frozen=True, eq=False)
class RunLog:
    """Validated run log (see module docstring for the columns).

    Build it with :func:`load_runs` or directly from arrays; construction checks every value.

    Shapes:
        every column: ``[n_rows]``; ``run_id`` and free columns as numpy arrays (str or float).
    """

    run_id: np.ndarray
    n_params: np.ndarray
    tokens: np.ndarray
    flops: np.ndarray
    loss: np.ndarray
    hours: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run_id = np.asarray(self.run_id).astype(str)
        if run_id.ndim != 1:
            raise ValueError(f"column 'run_id' must be 1-D, got shape {run_id.shape}")
        n = len(run_id)
        cols = {name: _check_positive(name, getattr(self, name)) for name in _POSITIVE}
        if self.hours is not None:
            cols["hours"] = _check_positive("hours", self.hours)
        extra = {}
        if not isinstance(self.extra, Mapping):
            raise TypeError(f"extra must be a mapping of column name to values, got "
                            f"{type(self.extra).__name__}")
        for k, v in self.extra.items():
            if k in REQUIRED_COLUMNS or k == "hours":
                raise ValueError(f"extra column {k!r} clashes with a standard column")
            extra[str(k)] = np.asarray(v)
        for name, arr in {**cols, **extra}.items():
            if len(arr) != n:
                raise ValueError(f"column {name!r} has {len(arr)} rows, run_id has {n}")
        if n == 0:
            raise ValueError("the run log is empty")
        object.__setattr__(self, "run_id", run_id)
        for name, arr in cols.items():
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "extra", extra)

    def __repr__(self) -> str:
        return (f"RunLog({len(self)} rows, {len(np.unique(self.run_id))} runs, "
                f"columns={list(self.columns)})")

    def __str__(self) -> str:
        """One line per run (first 20): rows, N, tokens and FLOPs reached, last and best loss."""
        ids, first = np.unique(self.run_id, return_index=True)
        ids = ids[np.argsort(first)]
        lines = [f"{repr(self)}",
                 f"{'run_id':<24}{'rows':>6}{'n_params':>12}{'tokens':>12}{'flops':>12}{'last loss':>12}"
                 f"{'best loss':>12}"]
        for rid in ids[:20]:
            m = self.run_id == rid
            lines.append(f"{str(rid)[:23]:<24}{int(m.sum()):>6}{self.n_params[m].max():>12.4g}"
                         f"{self.tokens[m].max():>12.4g}{self.flops[m].max():>12.4g}"
                         f"{self.loss[m][-1]:>12.4g}{self.loss[m].min():>12.4g}")
        if len(ids) > 20:
            lines.append(f"... {len(ids) - 20} more runs")
        return "\n".join(lines)

    # Paper symbols as aliases.
    @property
    def N(self) -> np.ndarray:
        """Model sizes (``n_params``)."""
        return self.n_params

    @property
    def D(self) -> np.ndarray:
        """Data sizes (``tokens``)."""
        return self.tokens

    @property
    def C(self) -> np.ndarray:
        """Compute in FLOPs (``flops``)."""
        return self.flops

    def __len__(self) -> int:
        return len(self.run_id)

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in file order: the standard ones, then ``hours``, then free columns."""
        return REQUIRED_COLUMNS + (("hours",) if self.hours is not None else ()) + tuple(self.extra)

    def column(self, name: str) -> np.ndarray:
        """Any column by name."""
        if name in REQUIRED_COLUMNS:
            return getattr(self, name)
        if name == "hours":
            if self.hours is None:
                raise KeyError("this run log has no 'hours' column")
            return self.hours
        if name in self.extra:
            return self.extra[name]
        raise KeyError(f"no column {name!r}; columns are {list(self.columns)}")

    def select(self, rows: ArrayLike) -> RunLog:
        """Rows selected by a boolean mask ``[n_rows]`` or an index array."""
        rows = np.asarray(rows)
        if rows.dtype == bool and rows.shape != (len(self),):
            raise ValueError(f"mask must have shape ({len(self)},), got {rows.shape}")
        return RunLog(
            run_id=self.run_id[rows], n_params=self.n_params[rows], tokens=self.tokens[rows],
            flops=self.flops[rows], loss=self.loss[rows],
            hours=None if self.hours is None else self.hours[rows],
            extra={k: v[rows] for k, v in self.extra.items()},
        )

    def where(self, **equals: object) -> RunLog:
        """Rows whose columns equal the given values, e.g. ``runs.where(arch="eSEN")``.

        Values are compared as strings, so ``where(step=10)`` matches a CSV cell ``10``.
        """
        mask = np.ones(len(self), dtype=bool)
        for k, v in equals.items():
            col = self.column(k)
            if col.dtype.kind in "fiu" and not isinstance(v, str):
                mask &= col == v
            else:
                mask &= col.astype(str) == str(v)
        if not mask.any():
            raise ValueError(f"no rows match {equals}")
        return self.select(mask)

    def with_loss(self, loss: ArrayLike) -> RunLog:
        """The same log with another loss column (e.g. smoothed)."""
        return RunLog(run_id=self.run_id, n_params=self.n_params, tokens=self.tokens,
                      flops=self.flops, loss=np.asarray(loss), hours=self.hours, extra=self.extra)


def _format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in ("csv", "jsonl"):
            raise ValueError(f"format must be 'csv' or 'jsonl', got {fmt!r}")
        return fmt
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {str(path)!r} from its suffix; use a .csv or "
                     ".jsonl file, or pass format='csv' / 'jsonl'")


def _parse_number(text: object, *, col: str, where: str) -> float:
    if isinstance(text, bool):
        raise ValueError(f"{where}: column {col!r} is {str(text).lower()}, a boolean, not a number")
    if text is None or (isinstance(text, str) and not text.strip()):
        raise ValueError(f"{where}: column {col!r} is empty")
    try:
        v = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: column {col!r} is not a number: {text!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: column {col!r} is not a finite number: {text!r}")
    if v <= 0:
        raise ValueError(f"{where}: column {col!r} must be positive, got {text!r}")
    return v


def _free_column(values: list) -> np.ndarray:
    """Free columns become float arrays when every entry is a number, else string arrays."""
    try:
        arr = np.array([float(v) for v in values], dtype=np.float64)
        if not any(isinstance(v, bool) for v in values):
            return arr
    except (TypeError, ValueError):
        pass
    return np.array(["" if v is None else str(v) for v in values])


def load_runs(path: str | os.PathLike, *, format: str | None = None, encoding: str = "utf-8") -> RunLog:
    """Read a run log from CSV (header row) or JSON Lines (one object per line).

    Args:
        path: file path; the format is taken from the suffix (``.csv``; ``.jsonl``/``.ndjson``/
            ``.json``) unless ``format`` is given.
        format: ``"csv"`` or ``"jsonl"``.
        encoding: text encoding (default UTF-8). A UTF-8 byte-order mark, as spreadsheet programs
            write, is ignored.

    Returns:
        :class:`RunLog`.

    Raises:
        FileNotFoundError: no such file.
        ValueError: unknown format, text that is not in ``encoding``, missing columns, empty /
            non-numeric / boolean / NaN / inf / non-positive values (the message names the file, the
            column, the 1-based data row and the line).
    """
    path = Path(path)
    fmt = _format(path, format)
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    try:
        header, records = (_read_csv if fmt == "csv" else _read_jsonl)(path, _text_encoding(encoding))
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{path}: not {encoding} text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            f"re-save it as UTF-8 or pass encoding='latin-1' (or the file's encoding)") from None
    if not records:
        raise ValueError(f"{path}: no data rows")
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{path}: missing required column(s) {missing}; found columns {header}")
    return _to_runlog(path, header, records)


def _text_encoding(encoding: str) -> str:
    """``utf-8`` reads as ``utf-8-sig``: a byte-order mark would otherwise glue onto the first column."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding: unknown text encoding {encoding!r}") from None
    return "utf-8-sig" if name == "utf-8" else encoding


def _read_csv(path: Path, encoding: str) -> tuple[list[str], list[tuple[str, dict]]]:
    records: list[tuple[str, dict]] = []  # (location text, row mapping)
    with open(path, newline="", encoding=encoding) as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            raise ValueError(f"{path}: empty file (no header row)")
        header = [h.strip() for h in reader.fieldnames]
        if len(set(header)) != len(header):
            raise ValueError(f"{path}: duplicate column names in header {header}")
        for row in reader:
            if all((v is None or not str(v).strip()) for v in row.values()):
                continue  # blank line
            if None in row:
                raise ValueError(f"{path} line {reader.line_num}: more fields than the header")
            records.append((f"line {reader.line_num}", {k.strip(): v for k, v in row.items()}))
    return header, records


def _read_jsonl(path: Path, encoding: str) -> tuple[list[str], list[tuple[str, dict]]]:
    header: list[str] = []
    records: list[tuple[str, dict]] = []
    with open(path, encoding=encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path} line {lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path} line {lineno}: expected a JSON object, got "
                                 f"{type(obj).__name__}")
            for k in obj:
                if k not in header:
                    header.append(k)
            records.append((f"line {lineno}", obj))
    return header, records


def _to_runlog(path: Path, header: list[str], records: list[tuple[str, dict]]) -> RunLog:
    cols: dict[str, list] = {c: [] for c in header}
    for i, (loc, row) in enumerate(records, start=1):
        where = f"{path} row {i} ({loc})"
        for c in header:
            if c not in row:
                raise ValueError(f"{where}: column {c!r} is missing")
            v = row[c]
            if c in _POSITIVE or c == "hours":
                v = _parse_number(v, col=c, where=where)
            elif c == "run_id":
                if v is None or (isinstance(v, str) and not v.strip()):
                    raise ValueError(f"{where}: column 'run_id' is empty")
                v = str(v)
            cols[c].append(v)
    extra = {c: _free_column(cols[c]) for c in header
             if c not in REQUIRED_COLUMNS and c != "hours"}
    return RunLog(
        run_id=np.array(cols["run_id"]), n_params=np.array(cols["n_params"]),
        tokens=np.array(cols["tokens"]), flops=np.array(cols["flops"]), loss=np.array(cols["loss"]),
        hours=np.array(cols["hours"]) if "hours" in cols else None, extra=extra,
    )


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**53:
        return int(v)
    return v


def save_runs(path: str | os.PathLike, runs: RunLog, *, format: str | None = None) -> Path:
    """Write a run log as CSV or JSON Lines (format from the suffix, or ``format``).

    Numbers are written exactly (integral values as integers, others with 17 significant digits),
    so ``load_runs(save_runs(p, r))`` reproduces ``r``.

    Returns:
        the path written.
    """
    if not isinstance(runs, RunLog):
        raise TypeError(f"runs must be a RunLog, got {type(runs).__name__}")
    path = Path(path)
    fmt = _format(path, format)
    names = runs.columns
    columns = [runs.column(c) for c in names]
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            for i in range(len(runs)):
                row = []
                for col in columns:
                    v = _jsonable(col[i])
                    row.append(format_number(v) if isinstance(v, float) else v)
                w.writerow(row)
    else:
        with open(path, "w", encoding="utf-8") as fh:
            for i in range(len(runs)):
                row = {c: _jsonable(col[i]) for c, col in zip(names, columns, strict=True)}
                fh.write(json.dumps(row) + "\n")
    return path


def format_number(v: float) -> str:
    """Shortest text that reads back as exactly ``v``."""
    return repr(float(v))
