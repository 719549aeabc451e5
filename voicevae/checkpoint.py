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
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from .config import ConfigError

FORMAT = "voicevae"
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, of another kind or of another version."""


def save_checkpoint(path: str | os.PathLike, kind: str, payload: dict[str, Any]) -> Path:
    """Atomically write `payload` (plus format, version and kind) to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "version": VERSION, "kind": kind, **payload}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: str | os.PathLike, kind: str | tuple[str, ...], map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint and check that it is a voicevae file of the expected kind."""
    path = Path(path)
    kinds = (kind,) if isinstance(kind, str) else tuple(kind)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint ({e.__class__.__name__}: {e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a voicevae checkpoint")
    if data.get("version") != VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {data.get('version')}, this voicevae reads version {VERSION}"
        )
    if data.get("kind") not in kinds:
        raise CheckpointError(
            f"{path}: is a {data.get('kind')!r} checkpoint, expected {' or '.join(map(repr, kinds))}"
        )
    return data


def rng_state() -> dict[str, Any]:
    """Random generator states, so a resumed run draws the same numbers."""
    import random

    import numpy as np

    state = {
        "torch": torch.get_rng_state(),
        "python": list(random.getstate()[1]) + [random.getstate()[2] if random.getstate()[2] is not None else -1],
        "numpy": torch.from_numpy(np.random.get_state()[1].astype("int64")),
        "numpy_pos": int(np.random.get_state()[2]),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    import random

    import numpy as np

    torch.set_rng_state(state["torch"])
    py = state["python"]
    gauss = None if py[-1] == -1 else py[-1]
    random.setstate((3, tuple(int(v) for v in py[:-1]), gauss))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype("uint32"), state["numpy_pos"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def check_max_minutes(minutes: float | None) -> None:
    """Refuse a `--max-minutes` budget that is not positive (before any work starts)."""
    if minutes is not None and minutes <= 0:
        raise ConfigError(f"--max-minutes: must be > 0, got {minutes:g}")


class Deadline:
    """A training run's wall-clock budget (`--max-minutes`); None means no budget.

    The clock is monotonic, so the budget cannot jump with the wall clock.
    Under torchrun rank 0's clock decides and every rank gets its answer, so
    all ranks stop at the same step.
    """

    def __init__(self, minutes: float | None) -> None:
        check_max_minutes(minutes)
        self.at = None if minutes is None else time.monotonic() + 60.0 * minutes

    def spent(self, world: int = 1, device: torch.device | None = None) -> bool:
        if self.at is None:
            return False
        spent = time.monotonic() >= self.at
        if world > 1:
            flag = torch.tensor([float(spent)], device=device)
            dist.broadcast(flag, src=0)
            spent = bool(flag.item())
        return spent
