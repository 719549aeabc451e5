"""`voicevae train`: fit the VAE to a corpus by maximising the ELBO.

Read top to bottom: set-up (devices, ranks, the run folder, data, model,
optimiser), resume, then one plain loop of sample batch -> named ELBO terms
-> weighted loss -> step, with logging, validation and checkpoints at fixed
intervals.

Runs on CPU, on one GPU (bf16 autocast when `amp`), or on several GPUs with
`torchrun --nproc_per_node N -m voicevae.cli train ...` (DistributedDataParallel
around the ELBO module; gloo on CPU, nccl on CUDA).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from ..augment import channel, speaker_warp
from ..checkpoint import CheckpointError, load_checkpoint
from ..config import VAE_TERMS, TrainConfig, from_dict, load_yaml, to_dict
from ..data import MelCorpus, SpeakerBalancedBatches, load_corpus, mel_statistics
from ..distributions import MovingAverageBaseline
from ..model import VAE
from .adversarial import Critic, encoder_parameters
from .elbo import ELBO, kl_weight
from .phonetic import PhoneBatch, Phonetic
from .state import Deadline, RunFolder, RunLog, add_run_arguments, load_run_config, rng_state, set_rng_state, weighted_loss

KIND = "vae-train"


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a training YAML (plus --set overrides) into a TrainConfig, strictly."""
    return load_yaml(TrainConfig, path, overrides)


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


@dataclass
class State:
    """Everything a training step reads or changes, and what a checkpoint holds."""

    config: TrainConfig
    model: VAE
    objective: ELBO
    optimizer: torch.optim.Optimizer
    batches: SpeakerBalancedBatches
    baseline: MovingAverageBaseline
    critic: Critic | None = None  # the adversarial stage's discriminator, when configured
    phonetic: Phonetic | None = None  # the phonetic term's head, when lambdas.phone/ctc is set
    step: int = 0
    best_valid: float = -math.inf


def train_step(
    state: State,
    objective: torch.nn.Module,
    mel: torch.Tensor,
    phones: tuple[Phonetic, PhoneBatch] | None = None,
    **inputs: torch.Tensor | None,
) -> dict[str, torch.Tensor]:
    """One optimiser step on a batch of log-mels (B, n_mels, F); returns the named terms (detached).

    objective: `state.objective`, or its DistributedDataParallel wrapper.
    phones: the phonetic term and this step's whole clips (training/phonetic.py), when on.
    inputs: the objective's optional tensor inputs (encoder_input, band_bins, speakers).
    In the adversarial stage the discriminator judges the decoded means, the
    encoders' gradients are dropped (they stay as they are), and the
    discriminator takes its own step after the VAE's.
    """
    cfg = state.config
    critic = state.critic if state.critic is not None and state.critic.active(state.step) else None
    for group in state.optimizer.param_groups:
        group["lr"] = cfg.lr_at(state.step)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cfg.amp and mel.device.type == "cuda" else nullcontext()
    with autocast:
        terms = objective(mel, critic=critic, phones=phones, **inputs)
    # The KL terms carry the warm-up weight on top of their lambdas.
    loss = weighted_loss(terms, cfg.lambdas, {"kl/": kl_weight(state.step, cfg.kl_warmup_steps)})
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if critic is not None and cfg.adversarial.freeze_encoders:
        # After backward, so DistributedDataParallel has reduced every gradient;
        # AdamW skips a parameter without one.
        for p in encoder_parameters(state.model):
            p.grad = None
    grad_norm = torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.grad_clip)
    state.optimizer.step()
    if state.phonetic is not None:
        state.phonetic.step()
    if critic is not None:
        terms.update(critic.discriminator_step(cfg.lambdas["adv/disc"]))
    state.step += 1
    return {**{k: v.detach() for k, v in terms.items()}, "grad_norm": grad_norm.detach()}


@torch.no_grad()
def validate(model: VAE, corpus: MelCorpus, device: torch.device, max_clips: int = 16, is_samples: int = 16) -> dict[str, float]:
    """ELBO and importance-sampled log p(x), nats per frame, on the first clips of a split."""
    model.eval()
    objective = ELBO(model)
    elbo, log_px, frames = 0.0, 0.0, 0
    for i, (mel, bins) in enumerate(zip(corpus.mels[:max_clips], corpus.band_bins)):
        x = mel.float().unsqueeze(0).to(device)
        n = x.shape[-1]
        pitch = corpus.pitch[i].float().unsqueeze(0).to(device) if corpus.pitch else None
        elbo += float(objective(x, band_bins=torch.tensor([bins]), pitch=pitch)["elbo"]) * n
        log_px += float(model.log_px(x, n_samples=is_samples, pitch=pitch).sum())
        frames += n
    model.train()
    return {"valid/elbo": elbo / frames, "valid/log_px": log_px / frames}


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: bool = True,
    max_minutes: float | None = None,
    init_from: str | Path | None = None,
) -> Path:
    """Run (or resume) training as configured; returns the path of the final model file.

    init_from: a run folder (its newest checkpoint) or a ckpt-*.pt file to
    start this new run from: weights, optimiser, sampler, RNG and step, so
    it goes on as a resumed run would, but into its own out_dir, leaving the
    other run's files as they are (a second stage, a longer schedule). A
    model file (model.pt, the shipped default's, say) gives its weights,
    architecture and normalisation only: a fine-tune from step 0.

    max_minutes: a wall-clock budget (a lent machine, a job queue's limit).
    Once spent, the run checkpoints the step it reached, writes the model
    file as it stands and stops; `--resume` continues exactly. Rank 0's clock
    decides for all ranks, so they stop at the same step.
    """
    rank, world, device = setup_distributed()
    folder = RunFolder(cfg.out_dir, KIND, cfg.keep_last)
    deadline = Deadline(max_minutes)
    if init_from is not None and resume:
        raise ValueError("--init-from starts a new run from another one's checkpoint and --resume continues this one: pass one")
    saved = folder.start(resume)
    source = folder.latest()
    weights: VAE | None = None
    if init_from is not None:
        source = initial_checkpoint(Path(init_from))
        data = load_checkpoint(source, (KIND, VAE.kind))
        if data["kind"] == VAE.kind:
            # A model file (a shipped model.pt): its weights and architecture, a fresh optimiser from step 0.
            weights = VAE.from_checkpoint(data, str(source))
            cfg = from_dict(TrainConfig, {**to_dict(cfg), "model": data["config"], "mel": data["mel"]}, str(source))
        else:
            saved = data
    if saved is not None:
        # On resume the checkpoint's architecture and mel settings win over the YAML.
        cfg = from_dict(TrainConfig, {**to_dict(cfg), "model": saved["config"], "mel": saved["mel"]}, str(source))
        if saved["world_size"] != world:
            raise ValueError(
                f"{source}: written by {saved['world_size']} process(es), continued with {world}; "
                "use the same number to continue identically"
            )
        # Refused when continuing this run; --init-from starts a new one, which may drop either.
        if init_from is None and "critic" in saved and cfg.adversarial.start_step is None:
            # The stage lives in the YAML and --set, not in the weights: without
            # them the run would go on with no discriminator and free encoders.
            raise ValueError(
                f"{source}: is in the adversarial stage, but this config has no adversarial.start_step; "
                f"continue with the run's own config ({folder.path / 'config.yaml'}) or the same --set options"
            )
        if init_from is None and "phonetic" in saved and not cfg.lambdas.get("phone/ctc", 0.0) > 0:
            raise ValueError(
                f"{source}: was trained with the phonetic term, but this config gives lambdas.phone/ctc no weight; "
                f"continue with the run's own config ({folder.path / 'config.yaml'}) or the same --set options"
            )
    torch.manual_seed(cfg.seed + rank)
    if rank == 0:
        folder.write_config(cfg)

    # Rank 0 builds the mel cache (and the intonation cache); the others wait and then read it.
    pitch = cfg.model.pitch_input
    if rank == 0:
        train_set = load_corpus(cfg.data.manifest, cfg.data.train_split, cfg.mel, cfg.data, progress, pitch)
    if world > 1:
        dist.barrier()
    if rank != 0:
        train_set = load_corpus(cfg.data.manifest, cfg.data.train_split, cfg.mel, cfg.data, False, pitch)
    try:
        valid_set = load_corpus(cfg.data.manifest, cfg.data.valid_split, cfg.mel, cfg.data, progress and rank == 0, pitch)
    except ValueError:
        valid_set = None  # a manifest without a validation split: skip validation

    if weights is not None:
        model = weights  # with its own normalisation: the weights were fitted to it
    else:
        model = VAE(cfg.model, cfg.mel)
        model.set_normalization(*mel_statistics(train_set))
    model.to(device)
    baseline = MovingAverageBaseline()
    objective = ELBO(
        model,
        cfg.n_samples,
        cfg.free_bits,
        cfg.content_warp,
        cfg.lambdas.get("cycle/content", 0.0) > 0,
        baseline,
        channel_speaker=cfg.channel.encoders == "both",
        voice_cycle=cfg.lambdas.get("cycle/voices", 0.0) > 0,
    )
    state = State(
        config=cfg,
        model=model,
        objective=objective,
        optimizer=torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
        batches=SpeakerBalancedBatches(train_set, cfg.data, model.floor, seed=cfg.seed * 1000 + rank),
        baseline=baseline,
        critic=Critic(cfg.adversarial, device, seed=cfg.seed) if cfg.adversarial.start_step is not None else None,
    )
    if cfg.lambdas.get("phone/ctc", 0.0) > 0:
        # Seeded alike on every rank (equal heads), with its own clip generator per rank.
        state.phonetic = Phonetic(
            cfg.phonetic,
            train_set,
            cfg.data.manifest,
            cfg.data.train_split,
            model,
            cfg.data.cache_dir,
            seed=cfg.seed,
            clip_seed=cfg.seed * 1000 + rank + 7919,
            inventory=saved["phonetic"]["inventory"] if saved is not None and "phonetic" in saved else None,
            progress=progress and rank == 0,
        )
    if saved is not None:
        load_state(state, saved, rank)
    ddp = DistributedDataParallel(objective) if world > 1 else objective

    log = RunLog(
        folder.path,
        {
            "train": (*terms_logged(cfg), "grad_norm", "kl_weight", "lr", "frames_per_s", "data_fraction"),
            "valid": ("valid/elbo", "valid/log_px"),
        },
        rank == 0,
    )
    bar = tqdm(total=cfg.steps, initial=state.step, disable=not progress or rank != 0, desc="train")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}  # steps behind each of `sums` (the adversarial terms join mid-run)
    count = 0  # steps in this window: a resumed run's first window can be short
    data_time = step_time = 0.0
    model.train()
    saved_step = -1
    ch = cfg.channel
    with_channel = max(ch.p_gain, ch.p_noise, ch.p_reverb, ch.p_band) > 0
    with_consistency = cfg.lambdas.get("speaker/consistency", 0.0) > 0

    def checkpoint() -> None:
        # Every rank's sampler and RNG state goes into the checkpoint so a
        # resumed run draws exactly what an uninterrupted one would.
        nonlocal saved_step
        ranks: list[Any] = [{"batches": state.batches.state_dict(), "rng": rng_state()}]
        if state.phonetic is not None:
            ranks[0]["phones"] = state.phonetic.generator.get_state()
        if world > 1:
            gathered: list[Any] = [None] * world
            dist.all_gather_object(gathered, ranks[0])
            ranks = gathered
        if rank == 0:
            folder.save(state.step, checkpoint_payload(state, ranks))
        saved_step = state.step

    while state.step < cfg.steps:
        if deadline.spent(world, device):
            if saved_step != state.step:
                checkpoint()
            if rank == 0:
                print(f"train: --max-minutes {max_minutes:g} spent at step {state.step}; --resume continues")
            break
        t0 = time.perf_counter()
        mel, speakers, bins, contours = state.batches.next()
        mel, bins = speaker_warp(mel, speakers, bins, cfg.speaker_warp)
        # The encoders (or the content encoder alone) see the clip through a random channel; the target stays clean.
        seen = channel(mel, cfg.channel, cfg.mel, model.floor) if with_channel else None
        # The phonetic term's whole clips, drawn from its own generator.
        phones = (
            None
            if state.phonetic is None
            else (state.phonetic, state.phonetic.next(cfg.content_warp, cfg.channel if with_channel else None, cfg.mel, model))
        )
        mel = mel.to(device, non_blocking=True)
        t1 = time.perf_counter()
        terms = train_step(
            state,
            ddp,
            mel,
            encoder_input=None if seen is None else seen.to(device),
            band_bins=bins.to(device),
            speakers=speakers.to(device) if with_consistency else None,
            phones=phones,
            pitch=None if contours is None else contours.to(device),
        )
        for k, v in terms.items():
            # float() is a CPU-GPU sync point; fine at this model size.
            sums[k] = sums.get(k, 0.0) + float(v)
            counts[k] = counts.get(k, 0) + 1
        count += 1
        t2 = time.perf_counter()
        data_time += t1 - t0
        step_time += t2 - t0
        bar.update(1)
        step = state.step

        if step % cfg.log_every == 0 or step == cfg.steps:
            n = count
            values = {k: v / counts[k] for k, v in sums.items()}
            values.update(
                {
                    "kl_weight": kl_weight(step - 1, cfg.kl_warmup_steps),
                    "lr": cfg.lr_at(step - 1),  # the rate the step just taken used
                    "frames_per_s": mel.numel() / mel.shape[1] * world * n / step_time,
                    "data_fraction": data_time / step_time,
                }
            )
            bar.set_postfix({"elbo": f"{values['elbo']:.2f}", "nll": f"{values['rec/nll']:.2f}"})
            log.write("train", step, values)
            sums, counts, count, data_time, step_time = {}, {}, 0, 0.0, 0.0
        if valid_set is not None and rank == 0 and (step % cfg.valid_every == 0 or step == cfg.steps):
            values = validate(model, valid_set, device)
            state.best_valid = max(state.best_valid, values["valid/elbo"])
            log.write("valid", step, values)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            checkpoint()
    bar.close()
    log.close()
    final = folder.path / "model.pt"
    if rank == 0:
        model.save(final, train_config=to_dict(cfg), step=state.step)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def initial_checkpoint(path: Path) -> Path:
    """The checkpoint --init-from names: the file itself, or the newest ckpt-*.pt of a run folder."""
    if path.is_file():
        return path
    latest = RunFolder(path, KIND, keep_last=0).latest() if path.is_dir() else None
    if latest is None:
        raise CheckpointError(f"--init-from {path}: not a checkpoint file or a run folder holding ckpt-*.pt")
    return latest


def terms_logged(cfg: TrainConfig) -> tuple[str, ...]:
    """The named terms this run computes, in the order of VAE_TERMS, plus the ELBO itself."""
    computed = {"rec/nll", "kl/content", "kl/speaker"}
    if cfg.lambdas.get("cycle/content", 0.0) > 0:
        computed.add("cycle/content")
    if cfg.lambdas.get("cycle/voices", 0.0) > 0:
        computed.add("cycle/voices")
    if cfg.lambdas.get("speaker/consistency", 0.0) > 0:
        computed.add("speaker/consistency")
    if cfg.model.content_latent == "categorical":
        computed.add("sf/reinforce")
    if cfg.adversarial.start_step is not None:
        computed.update({"adv/gen", "fm", "adv/disc"})
    if cfg.lambdas.get("phone/ctc", 0.0) > 0:
        computed.add("phone/ctc")
    if cfg.model.harmonic_source:
        computed.add("pitch/register")
    return (*(t for t in VAE_TERMS if t in computed), "elbo")


def checkpoint_payload(state: State, ranks: list[dict]) -> dict[str, Any]:
    return {
        **state.model.export(),  # "config" and "mel" of the model, so VAE.load reads it too
        "train_config": to_dict(state.config),
        "optimizer": state.optimizer.state_dict(),
        "ranks": ranks,
        "baseline": state.baseline.state_dict(),
        "best_valid": state.best_valid,
        "world_size": len(ranks),
        **({"critic": state.critic.state_dict()} if state.critic is not None else {}),
        **({"phonetic": state.phonetic.state_dict()} if state.phonetic is not None else {}),
    }


def load_state(state: State, saved: dict[str, Any], rank: int) -> None:
    """Put a checkpoint's weights, optimiser, sampler, RNG and step back into `state`."""
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.batches.load_state_dict(saved["ranks"][rank]["batches"])
    set_rng_state(saved["ranks"][rank]["rng"])
    state.baseline.load_state_dict(saved["baseline"])
    # A checkpoint from before the adversarial stage has no discriminator: it starts fresh.
    if state.critic is not None and "critic" in saved:
        state.critic.load_state_dict(saved["critic"])
    # Likewise a checkpoint from before the phonetic term: its head starts fresh.
    if state.phonetic is not None and "phonetic" in saved:
        state.phonetic.load_state_dict(saved["phonetic"])
        state.phonetic.generator.set_state(saved["ranks"][rank]["phones"])
    state.step, state.best_valid = int(saved["step"]), float(saved["best_valid"])


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_run_arguments(p, "recipes/synthetic/config.yaml")
    p.add_argument(
        "--init-from",
        metavar="RUN_OR_CKPT",
        help="start this new run where another stopped (its newest checkpoint, or this ckpt-*.pt), in its own out_dir; "
        "a model file (model.pt) gives only its weights, trained on from step 0 with a fresh optimiser",
    )


def run(args: argparse.Namespace) -> int:
    cfg = load_run_config(TrainConfig, args)
    final = train(cfg, resume=args.resume, progress=not args.quiet, max_minutes=args.max_minutes, init_from=args.init_from)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"model written to {final}")
    return 0
