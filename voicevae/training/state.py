"""What both training loops share: the run folder, checkpoints, resume, RNG, deadline, logs, loss weights.

A run folder holds

    config.yaml            the run's settings as resolved (YAML + --set)
    ckpt-0001000.pt ...    resumable checkpoints (the newest `keep_last` are kept)
    train.csv, valid.csv   one row per logging / validation step
    model.pt               (the VAE) the final weights, loadable without outside config

Each loop (training/vae.py, training/vocoder.py) builds its own models and
optimisers, and hands the shared parts to this module: `RunFolder` decides
between a fresh start and `--resume`, writes and prunes checkpoints and
clears temporary files a killed write left behind; `Deadline` implements
`--max-minutes`; `rng_state` makes a resumed run draw the numbers an
uninterrupted one would; `weighted_loss` turns named losses and a `lambdas`
dict into the one number that is minimised.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import re
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import torch
import torch.distributed as dist
import yaml

from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..config import ConfigError, load_yaml, to_dict

CKPT_PATTERN = re.compile(r"^ckpt-(\d+)\.pt$")
# save_checkpoint writes ".<name>.<random>.tmp" beside the target, then renames it.
TEMP_GLOB = ".ckpt-*.pt.*.tmp"


C = TypeVar("C")


# ------------------------------------------------------------------ the run folder


class RunFolder:
    """A run's output folder: its checkpoints, the resume decision, and clean-up.

    kind: the checkpoint kind that loading checks ("vae-train", "vocoder").
    """

    def __init__(self, out_dir: str | Path, kind: str, keep_last: int) -> None:
        self.path = Path(out_dir)
        self.kind = kind
        self.keep_last = keep_last

    def checkpoint_path(self, step: int) -> Path:
        return self.path / f"ckpt-{step:07d}.pt"

    def checkpoints(self) -> list[tuple[int, Path]]:
        """(step, path) of every checkpoint in the folder, oldest first."""
        if not self.path.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.path.iterdir() if (m := CKPT_PATTERN.match(p.name))]
        return sorted(found)

    def latest(self) -> Path | None:
        found = self.checkpoints()
        return found[-1][1] if found else None

    def start(self, resume: bool) -> dict[str, Any] | None:
        """The checkpoint to resume from (loaded), or None for a fresh run; refuses to clobber.

        A fresh run into a folder that already holds checkpoints is an error
        (its checkpoints and logs would be mixed with the new run's), and so
        is --resume with nothing to resume.
        """
        self.remove_stale_temp_files()
        last = self.latest()
        logs = [p.name for p in (self.path / "train.csv", self.path / "valid.csv") if p.exists()]
        if last is None and logs and not resume:
            raise FileExistsError(
                f"{self.path}: holds the logs of an earlier run ({', '.join(logs)}) but no checkpoint; "
                "move them away or choose another out_dir"
            )
        if last is not None and not resume:
            raise FileExistsError(
                f"{self.path}: already holds checkpoints ({last.name}); pass --resume to continue it or choose another out_dir"
            )
        if resume and last is None:
            raise CheckpointError(f"{self.path}: --resume given but there is no ckpt-*.pt checkpoint to resume from")
        return None if last is None else load_checkpoint(last, self.kind)

    def remove_stale_temp_files(self) -> list[Path]:
        """Delete temporary checkpoint files that a killed write (kill -9, power loss) left behind.

        Only rank 0 writes checkpoints into a run folder, and not before the
        run has started: every such file is stale.
        """
        if not self.path.is_dir():
            return []
        stale = sorted(self.path.glob(TEMP_GLOB))
        for p in stale:
            p.unlink(missing_ok=True)  # under torchrun every rank looks; the first one removes it
        return stale

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        """Write ckpt-<step>.pt atomically, then delete all but the newest `keep_last`."""
        path = save_checkpoint(self.checkpoint_path(step), self.kind, {**payload, "step": step})
        for _, old in self.checkpoints()[: -self.keep_last]:
            old.unlink()
        return path

    def write_config(self, config: Any) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "config.yaml").write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


# ------------------------------------------------------------------ RNG


def seed_everything(seed: int) -> None:
    """Seed torch, Python's and NumPy's global generators (data sampling uses all three)."""
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def rng_state() -> dict[str, Any]:
    """Random generator states as tensors and plain values, so a checkpoint loads with weights_only."""
    _, py_state, gauss = random.getstate()
    _, np_keys, np_pos, *_ = cast(tuple[Any, ...], np.random.get_state())
    state = {
        "torch": torch.get_rng_state(),
        "python": [*py_state, -1 if gauss is None else gauss],
        "numpy": torch.from_numpy(np_keys.astype("int64")),
        "numpy_pos": int(np_pos),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` saved."""
    torch.set_rng_state(state["torch"])
    *py_state, gauss = state["python"]
    random.setstate((3, tuple(int(v) for v in py_state), None if gauss == -1 else gauss))
    np.random.set_state(("MT19937", state["numpy"].numpy().astype("uint32"), state["numpy_pos"], 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ------------------------------------------------------------------ ranks


def average_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Average the gradients of parameters outside DistributedDataParallel across torchrun's ranks.

    For the modules that train beside the wrapped objective (the adversarial
    stage's discriminator, the phonetic head): each rank computed them on
    its own batch, as DDP's ranks do. A no-op in a single process.
    """
    world = dist.get_world_size() if dist.is_initialized() else 1
    if world == 1:
        return
    for p in parameters:
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


# ------------------------------------------------------------------ the deadline


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
        self.minutes = minutes
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


# ------------------------------------------------------------------ loss weights


def weighted_loss(
    losses: Mapping[str, torch.Tensor], lambdas: Mapping[str, float], scale: Mapping[str, float] | None = None
) -> torch.Tensor:
    """sum_k lambdas[k] * losses[k] over the losses that have a weight (a loss without one is only logged).

    scale multiplies the weights of names that start with one of its keys,
    e.g. {"kl/": beta} for the KL warm-up.
    """
    scale = scale or {}
    total: torch.Tensor | None = None
    for name, weight in lambdas.items():
        if name not in losses or not weight:
            continue
        for prefix, factor in scale.items():
            if name.startswith(prefix):
                weight = weight * factor
        term = weight * losses[name].float()
        total = term if total is None else total + term
    if total is None:
        raise ConfigError(f"lambdas: no computed loss has a weight (computed: {', '.join(losses)})")
    return total


# ------------------------------------------------------------------ logs


class RunLog:
    """CSV logs (train.csv, valid.csv) and TensorBoard where installed; rank 0 only.

    The columns of each file are fixed when it is created (`columns`), so
    losses that join later (the GAN's after its warm-up) keep their column;
    a resumed run appends to the files under their existing header, widened
    by any column it adds.
    """

    def __init__(
        self, out_dir: Path, columns: Mapping[str, Iterable[str]], enabled: bool = True, tensorboard: bool = True
    ) -> None:
        self.out_dir = out_dir
        self.enabled = enabled
        self.columns: dict[str, list[str]] = {}
        for name, cols in columns.items():
            path = out_dir / f"{name}.csv"
            if not enabled:
                continue
            if path.exists():
                with path.open(newline="") as f:
                    rows = list(csv.reader(f))
                header = rows[0] if rows else ["step"]
                self.columns[name] = header + [c for c in cols if c not in header]
                if self.columns[name] != header:
                    # A resumed run that logs more (a stage joined): widen the
                    # header, old rows keep their values with the new cells empty.
                    tmp = path.with_name(path.name + ".tmp")
                    with tmp.open("w", newline="") as f:
                        width = len(self.columns[name])
                        csv.writer(f).writerows([self.columns[name], *(r + [""] * (width - len(r)) for r in rows[1:])])
                    os.replace(tmp, path)
            else:
                self.columns[name] = ["step", *cols]
                with path.open("w", newline="") as f:
                    csv.writer(f).writerow(self.columns[name])
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard is optional
                pass
            else:
                self.tb = SummaryWriter(str(out_dir / "tb"))

    def write(self, name: str, step: int, values: Mapping[str, float]) -> None:
        if not self.enabled:
            return
        with (self.out_dir / f"{name}.csv").open("a", newline="") as f:
            row = {"step": step, **{k: f"{v:.6g}" for k, v in values.items()}}
            csv.DictWriter(f, fieldnames=self.columns[name], extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def read_log(path: str | Path) -> list[dict[str, str]]:
    """Rows of a run's CSV log."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------ command line


def add_run_arguments(parser: argparse.ArgumentParser, example: str) -> None:
    """The options every trainer takes, spelt alike."""
    parser.add_argument("--config", required=True, help=f"training YAML (see {example})")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out_dir")
    parser.add_argument("--out-dir", help="override out_dir")
    parser.add_argument("--steps", type=int, help="override steps")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any setting, e.g. --set lr=2e-4 (values are YAML)",
    )
    parser.add_argument(
        "--max-minutes", type=float, metavar="M", help="wall-clock budget: checkpoint and stop after M minutes (resumable)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def load_run_config(cls: type[C], args: argparse.Namespace) -> C:
    """The YAML named by --config with --out-dir, --steps and every --set applied, checked strictly."""
    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    check_max_minutes(args.max_minutes)
    return load_yaml(cls, args.config, overrides)
