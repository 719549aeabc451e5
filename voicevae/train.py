"""`voicevae train`: fit the VAE to a corpus by maximising the ELBO.

Read top to bottom: set-up (devices, ranks, data, model, optimiser), resume,
then one plain loop of sample batch -> named ELBO terms -> weighted loss ->
step, with logging, validation and checkpoints at fixed intervals.

Runs on CPU, on one GPU (bf16 autocast when `amp`), or on several GPUs with
`torchrun --nproc_per_node N -m voicevae.cli train ...` (DistributedDataParallel;
gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import re
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from .checkpoint import Deadline, check_max_minutes, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import TrainConfig, from_dict, load_yaml, to_dict
from .data import SpeakerBalancedBatches, load_corpus, mel_statistics
from .distributions import MovingAverageBaseline
from .losses import kl_weight, total_loss
from .model import VAE

CKPT_PATTERN = re.compile(r"ckpt-(\d+)\.pt$")


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a training YAML (plus --set overrides) into a TrainConfig, strictly."""
    return load_yaml(TrainConfig, path, overrides)


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = [(int(m.group(1)), p) for p in out_dir.glob("ckpt-*.pt") if (m := CKPT_PATTERN.search(p.name))]
    return max(found)[1] if found else None


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Cosine decay from lr to lr_min over the run (a plain function of the step)."""
    progress = min(1.0, step / max(1, cfg.steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * progress))


class RunLog:
    """CSV logs (train.csv, valid.csv) and TensorBoard when installed; rank 0 only.

    Each CSV takes its columns from its first row, so training and validation
    rows, which have different measures, go to different files.
    """

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.enabled = enabled
        self.out_dir = out_dir
        self.columns: dict[str, list[str]] = {}
        self.tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(out_dir / "tb"))
            except ImportError:  # tensorboard is optional
                self.tb = None

    def write(self, step: int, values: dict[str, float], name: str = "train") -> None:
        if not self.enabled:
            return
        path = self.out_dir / f"{name}.csv"
        row = {"step": step, **values}
        new = not path.exists()
        if name not in self.columns:
            self.columns[name] = list(row) if new else next(csv.reader(path.open()))
        with path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns[name], extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world_size, device) from torchrun's environment, or (0, 1, best device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if world > 1 else 0
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return rank, world, device


@torch.no_grad()
def validate(model: VAE, corpus, device: torch.device, max_clips: int = 16, is_samples: int = 16) -> dict[str, float]:
    """ELBO and importance-sampled log p(x), nats per frame, on the first clips of a split."""
    model.eval()
    elbo, log_px, frames = 0.0, 0.0, 0
    for mel in corpus.mels[:max_clips]:
        x = mel.float().unsqueeze(0).to(device)
        terms = model(x)
        n = x.shape[-1]
        elbo += float(terms["elbo"]) * n
        log_px += float(model.log_px(x, n_samples=is_samples).sum())
        frames += n
    model.train()
    return {"valid/elbo": elbo / frames, "valid/log_px": log_px / frames}


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, max_minutes: float | None = None) -> Path:
    """Run (or resume) training as configured; returns the path of the final model file.

    max_minutes: a wall-clock budget (a lent machine, a job queue's limit).
    Once spent, the run checkpoints the step it reached, writes the model
    file as it stands and stops; `--resume` continues exactly. Rank 0's clock
    decides for all ranks, so they stop at the same step.
    """
    rank, world, device = setup_distributed()
    out_dir = Path(cfg.out_dir)
    last = latest_checkpoint(out_dir) if out_dir.is_dir() else None
    if last is not None and not resume:
        raise FileExistsError(f"{out_dir}: already holds checkpoints ({last.name}); pass --resume to continue it or choose another out_dir")
    if resume and last is None:
        raise FileNotFoundError(f"{out_dir}: --resume given but no ckpt-*.pt to resume from")

    state = load_checkpoint(last, "vae-train") if last is not None else None
    if state is not None:
        # On resume the checkpoint's architecture and mel settings win over the YAML.
        cfg = from_dict(TrainConfig, {**to_dict(cfg), "model": state["config"], "mel": state["mel"]}, f"{last}")
    torch.manual_seed(cfg.seed + rank)

    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    # Rank 0 builds the mel cache; the others wait and then read it.
    if rank == 0:
        train_set = load_corpus(cfg.data.manifest, cfg.data.train_split, cfg.mel, cfg.data, progress)
    if world > 1:
        dist.barrier()
    if rank != 0:
        train_set = load_corpus(cfg.data.manifest, cfg.data.train_split, cfg.mel, cfg.data, False)
    try:
        valid_set = load_corpus(cfg.data.manifest, cfg.data.valid_split, cfg.mel, cfg.data, progress and rank == 0)
    except ValueError:
        valid_set = None  # a manifest without a validation split: skip validation

    model = VAE(cfg.model, cfg.mel)
    model.set_normalization(*mel_statistics(train_set))
    model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batches = SpeakerBalancedBatches(train_set, cfg.data, model.floor, seed=cfg.seed * 1000 + rank)
    baseline = MovingAverageBaseline()
    step, best = 0, -math.inf
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if state["world_size"] != world:
            raise ValueError(f"{last}: written by {state['world_size']} process(es), resumed with {world}; resume with the same number to continue identically")
        batches.load_state_dict(state["ranks"][rank]["batches"])
        set_rng_state(state["ranks"][rank]["rng"])
        baseline.load_state_dict(state["baseline"])
        step, best = int(state["step"]), float(state["best_valid"])
    ddp = DistributedDataParallel(model) if world > 1 else model

    use_amp = cfg.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    log = RunLog(out_dir, rank == 0)
    bar = tqdm(total=cfg.steps, initial=step, disable=not progress or rank != 0, desc="train")
    sums: dict[str, float] = {}
    data_time = step_time = 0.0
    model.train()
    deadline = Deadline(max_minutes)
    saved_step = -1

    def checkpoint() -> None:
        # Every rank's sampler and RNG state goes into the checkpoint so a
        # resumed run draws exactly what an uninterrupted one would.
        nonlocal saved_step
        ranks = [{"batches": batches.state_dict(), "rng": rng_state()}]
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, ranks[0])
            ranks = gathered
        if rank == 0:
            save_training_state(out_dir, cfg, model, optimizer, ranks, baseline, step, best)
        saved_step = step

    while step < cfg.steps:
        if deadline.spent(world, device):
            if saved_step != step:
                checkpoint()
            if rank == 0:
                print(f"train: --max-minutes {max_minutes:g} spent at step {step}; --resume continues")
            break
        t0 = time.perf_counter()
        mel, _ = batches.next()
        mel = mel.to(device, non_blocking=True)
        t1 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, cfg)
        beta = kl_weight(step, cfg.kl_warmup_steps)
        with autocast():
            terms = ddp(
                mel,
                n_samples=cfg.n_samples,
                free_bits=cfg.free_bits,
                baseline=baseline,
                content_warp=cfg.content_warp,
                content_cycle=cfg.lambdas.get("cycle/content", 0.0) > 0,
            )
        loss = total_loss({k: v.float() for k, v in terms.items()}, cfg.lambdas, beta)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1
        for k, v in terms.items():
            # float() is a CPU-GPU sync point; fine at this model size.
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(grad_norm)
        t2 = time.perf_counter()
        data_time += t1 - t0
        step_time += t2 - t0
        bar.update(1)

        if step % cfg.log_every == 0 or step == cfg.steps:
            n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
            values = {k: v / n for k, v in sums.items()}
            values.update(
                {"kl_weight": beta, "lr": lr_at(step, cfg), "frames_per_s": mel.numel() / mel.shape[1] * world * n / step_time, "data_fraction": data_time / step_time}
            )
            bar.set_postfix({"elbo": f"{values['elbo']:.2f}", "nll": f"{values['rec/nll']:.2f}"})
            log.write(step, values)
            sums, data_time, step_time = {}, 0.0, 0.0
        if valid_set is not None and rank == 0 and (step % cfg.valid_every == 0 or step == cfg.steps):
            values = validate(model, valid_set, device)
            best = max(best, values["valid/elbo"])
            log.write(step, values, "valid")
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    bar.close()
    log.close()
    final = out_dir / "model.pt"
    if rank == 0:
        model.save(final, train_config=to_dict(cfg), step=step)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def save_training_state(out_dir: Path, cfg: TrainConfig, model: VAE, optimizer, ranks: list[dict], baseline, step: int, best: float) -> Path:
    """Write ckpt-<step>.pt atomically and delete all but the newest `keep_last`."""
    path = save_checkpoint(
        out_dir / f"ckpt-{step:07d}.pt",
        "vae-train",
        {
            **model.export(),  # "config" and "mel" of the model, so VAE.load reads it too
            "train_config": to_dict(cfg),
            "optimizer": optimizer.state_dict(),
            "ranks": ranks,
            "baseline": baseline.state_dict(),
            "step": step,
            "best_valid": best,
            "world_size": len(ranks),
        },
    )
    found = sorted(p for p in out_dir.glob("ckpt-*.pt") if CKPT_PATTERN.search(p.name))
    for old in found[: -cfg.keep_last]:
        old.unlink()
    return path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", required=True, help="training YAML (see recipes/synthetic/config.yaml)")
    p.add_argument("--resume", action="store_true", help="continue from the newest ckpt-*.pt in out_dir")
    p.add_argument("--out-dir", help="override out_dir")
    p.add_argument("--steps", type=int, help="override steps")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override any setting, e.g. --set model.channels=64")
    p.add_argument("--max-minutes", type=float, metavar="M", help="wall-clock budget: checkpoint, write the model and stop after M minutes (resumable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    overrides = list(args.overrides)
    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    if args.steps is not None:
        overrides.append(f"steps={args.steps}")
    cfg = load_config(args.config, overrides)
    check_max_minutes(args.max_minutes)
    final = train(cfg, resume=args.resume, progress=not args.quiet, max_minutes=args.max_minutes)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"model written to {final}")
    return 0
