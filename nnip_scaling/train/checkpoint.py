"""Checkpoints: atomic writes, safe loads, plain data only.

A checkpoint is one ``torch.save`` file holding only tensors and plain Python data (dicts, lists,
tuples, strings, numbers, booleans, ``None``), so it loads with ``torch.load(weights_only=True)``: no
pickled classes, nothing executed on load. Model and training configurations are stored as
``dataclasses.asdict`` dictionaries and rebuilt by the caller.

Writes are atomic: the file is written to a temporary name in the same directory, flushed to disk
(``fsync``), then renamed over the target (``os.replace``, atomic on POSIX and Windows), and the
directory entry is synced. A process killed at any moment (even ``SIGKILL``) leaves either the old
file or the new one, never a torn one. :func:`atomic_write_text` does the same for text files (the run
logs).

Layout of a training checkpoint (``format = "nnip_scaling.train/1"``; see :func:`~nnip_scaling.train.train`):

=================  ===========================================================================
key                content
=================  ===========================================================================
format             ``"nnip_scaling.train/1"``
model_config       ``dataclasses.asdict(model.config)``: ``build_model(**model_config)`` rebuilds it
model_state        ``model.state_dict()``, the schedule-free *averaged* weights :math:`x`
optimizer_state    ``optimizer.state_dict()`` (saved in the optimizer's eval mode)
normaliser         :meth:`Normaliser.state_dict <nnip_scaling.data.Normaliser.state_dict>`
train_config       ``dataclasses.asdict(TrainConfig)``
run                run constants (run id, kind, width, depth, N, kappa, measured FLOPs per atom)
progress           step, tokens, epoch, batch within the epoch, hours, stop reason
rows               the learning-curve rows logged so far (list of dicts)
=================  ===========================================================================
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

__all__ = ["FORMAT", "atomic_save", "atomic_write_text", "load_checkpoint", "load_model"]

FORMAT = "nnip_scaling.train/1"


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open directories
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _atomic(path: Path, write: Any) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_save(obj: Mapping[str, Any], path: str | os.PathLike[str]) -> Path:
    """``torch.save(obj, path)`` atomically (temporary file + fsync + rename).

    Args:
        obj: tensors and plain data only (checked on the way back by ``weights_only=True``).
        path: target file; its directory must exist.

    Returns:
        the path written.
    """
    return _atomic(Path(path), lambda fh: torch.save(dict(obj), fh))


def atomic_write_text(text: str, path: str | os.PathLike[str]) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    return _atomic(Path(path), lambda fh: fh.write(data))


def load_checkpoint(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a training checkpoint with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not a checkpoint of this format (or is damaged).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ValueError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not an nnip_scaling training checkpoint (format {FORMAT!r})")
    return state


def load_model(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> tuple[Any, Any]:
    """Rebuild a trained model and its energy normaliser from a checkpoint.

    The weights are the schedule-free averaged weights :math:`x` (the ones evaluated in the log).

    Returns:
        ``(model, normaliser)``: a :class:`~nnip_scaling.models.Potential` in eval mode and a
        :class:`~nnip_scaling.data.Normaliser` (convert predictions to eV with
        ``normaliser.energy_to_ev`` / ``forces_to_ev``).
    """
    from nnip_scaling.data import Normaliser
    from nnip_scaling.models import build_model

    state = load_checkpoint(path, map_location=map_location)
    model = build_model(**state["model_config"])
    model.load_state_dict(state["model_state"])
    model.eval()
    return model, Normaliser.from_state_dict(state["normaliser"])
