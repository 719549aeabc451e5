"""Checkpoint files: atomic writes, a format version, and a kind that loading checks.

A checkpoint is a dict of tensors and plain Python values only, so it loads
with `torch.load(weights_only=True)`:

    {"format": "voicevae", "version": 1, "kind": "vae" | "vocoder" | ...,
     "config": {...}, "model": state_dict, ...anything else plain}

Writing goes to a temporary file in the same folder and is renamed over the
target, so a crash mid-write never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

FORMAT = "voicevae"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, of another kind or of another version."""


def _follow_umask(path: str | os.PathLike) -> None:
    """Give a file made by tempfile.mkstemp (always 0600) the mode a plain open() would: 0666 & ~umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


@contextmanager
def atomic_write(path: Path, suffix: str) -> Iterator[str]:
    """Yield a temporary file's name beside `path`; once the block ends without error it replaces `path`.

    Every file the toolkit writes (checkpoints, audio, manifests) goes through
    here: a crash mid-write leaves neither a truncated `path` nor the
    temporary file (`.<name>.<random><suffix>`), and the file gets the mode
    the umask gives any new file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        _follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> Path:
    """Atomically write `payload` (plus format, version and kind) to `path`."""
    path = Path(path)
    data = {"format": FORMAT, "version": VERSION, "kind": kind, **payload}
    with atomic_write(path, ".tmp") as tmp, open(tmp, "wb") as f:
        torch.save(data, f)
        f.flush()
        os.fsync(f.fileno())
    return path


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint and check that it is a voicevae file of the expected kind."""
    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        # PyTorch's message (for junk and for pickled objects alike) advises
        # retrying with weights_only=False, which runs whatever code the file
        # holds: never the advice for a stranger's file, so it is not passed on.
        raise CheckpointError(
            f"{path}: not a readable checkpoint: not a file voicevae wrote, or one holding Python objects beyond "
            "tensors and plain values, which voicevae does not unpickle (that could run code)"
        ) from None
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e.__class__.__name__}: {e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a voicevae checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {data.get('version')}, this voicevae reads version {VERSION}")
    if data.get("kind") not in kinds:
        raise CheckpointError(f"{path}: is a {data.get('kind')!r} checkpoint, expected {' or '.join(map(repr, kinds))}")
    return data
