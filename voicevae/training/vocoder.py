"""Train the fast Vocos-style vocoder: `voicevae train-vocoder --config recipes/vocoder/config.yaml`.

Read top to bottom: the config, the data (random segments of the manifest's
train split), one training step (named losses weighted by `lambdas`), the
loop with logging, validation and checkpoints.

Losses: "mel/l1", "stft/sc", "stft/mag" and, when weighted, the phase of the
predicted spectrum against the real one ("phase/ip", "phase/gd",
"phase/iaf") from the start; after
`disc_start_step` the multi-period and multi-resolution discriminators join
with "adv/gen" and "fm" for the generator and "adv/disc" for themselves.
Checkpoints (kind "vocoder", ckpt-<step>.pt in the run folder of
training/state.py) carry the config, so `load_vocoder(path)` needs nothing
else, and the optimiser and RNG states, so `--resume` continues the run
exactly as if it had not stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..audio import load_audio
from ..checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from ..config import VOCODER_GENERATOR_TERMS, ConfigError, VocoderConfig, VocoderDataConfig, from_dict, to_dict
from ..corpora import ManifestError, read_manifest
from ..features import MelFrontend
from ..vocoder.base import MelTransform, check_compatible, vae_mel_transform
from ..vocoder.discriminators import Discriminators
from ..vocoder.losses import (
    MelL1Loss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    phase_losses,
)
from ..vocoder.vocos import VocosVocoder
from .state import (
    Deadline,
    RunFolder,
    RunLog,
    add_run_arguments,
    load_run_config,
    rng_state,
    seed_everything,
    set_rng_state,
    weighted_loss,
)

KIND = "vocoder"
PHASE_TERMS = ("phase/ip", "phase/gd", "phase/iaf")


# ------------------------------------------------------------------ data


class SegmentSampler:
    """Random fixed-length segments of a list of clips, drawn with torch's global RNG.

    Clips are read from disk per draw rather than held in memory: a corpus of
    hours does not fit in RAM as float32, and reading a few seconds of WAV costs
    far less than a training step.
    """

    def __init__(self, paths: list[Path], sample_rate: int, segment_samples: int) -> None:
        if not paths:
            raise ConfigError("no training clips: the manifest's train split is empty")
        self.paths = paths
        self.sample_rate = sample_rate
        self.segment_samples = segment_samples

    def sample(self, batch_size: int) -> torch.Tensor:
        """Returns audio (batch_size, segment_samples); short clips are zero-padded."""
        out = torch.zeros(batch_size, self.segment_samples)
        for i, index in enumerate(torch.randint(len(self.paths), (batch_size,)).tolist()):
            wav = load_audio(self.paths[index], self.sample_rate)
            excess = wav.shape[0] - self.segment_samples
            start = int(torch.randint(excess + 1, ())) if excess > 0 else 0
            piece = wav[start : start + self.segment_samples]
            out[i, : piece.shape[0]] = piece
        return out


def training_paths(data: VocoderDataConfig) -> list[Path]:
    """The train split of `manifest` and of every extra manifest."""
    paths = manifest_paths(data.manifest, data.train_split)
    for i, extra in enumerate(data.extra_manifests):
        try:
            paths += manifest_paths(extra, data.train_split)
        except ManifestError as e:
            raise ConfigError(f"data.extra_manifests[{i}]: {e}") from e
    return paths


def manifest_paths(manifest: str | Path, split: str) -> list[Path]:
    return [u.path for u in read_manifest(manifest, split=split)]


# ------------------------------------------------------------------ the step


@dataclass
class State:
    """Everything a training step reads or changes."""

    config: VocoderConfig
    generator: VocosVocoder
    disc: Discriminators
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    frontend: MelFrontend
    mel_loss: MelL1Loss
    multi_mel_loss: MultiScaleMelLoss
    stft_loss: MultiResolutionSTFTLoss
    device: torch.device
    mel_transform: MelTransform | None = None
    ema: AveragedModel | None = None
    step: int = 0

    @property
    def inference_generator(self) -> VocosVocoder:
        """The weights that get scored and shipped: the moving average when kept."""
        if self.ema is None:
            return self.generator
        averaged: VocosVocoder = self.ema.module  # type: ignore[assignment]  # AveragedModel keeps a deep copy
        return averaged


def _autocast(state: State) -> torch.autocast:
    cuda = state.device.type == "cuda" and state.config.amp
    return torch.autocast(state.device.type, dtype=torch.bfloat16, enabled=cuda)


def train_step(state: State, audio: torch.Tensor) -> dict[str, float]:
    """One optimiser step of the generator (and, after warm-up, the discriminators).

    audio: (B, T) real segments with T a multiple of hop. Returns the named
    losses as floats (this reads them back from the device: a sync point).
    """
    cfg = state.config
    lam = cfg.lambdas
    audio = audio.to(state.device)
    with torch.no_grad():
        target = state.frontend(audio)  # (B, n_mels, F)
        inputs = target if state.mel_transform is None else state.mel_transform(target).clone()
    for group in (*state.opt_g.param_groups, *state.opt_d.param_groups):
        group["lr"] = cfg.lr_at(state.step)
    adversarial = state.step >= cfg.disc_start_step

    with _autocast(state):
        mag, phase = state.generator.polar(inputs)  # each (B, n_freqs, F)
    fake = state.generator.synthesize(mag, phase)  # (B, T)
    losses: dict[str, torch.Tensor] = {}
    if any(lam.get(name, 0.0) for name in PHASE_TERMS):
        with torch.no_grad():
            real = state.frontend.stft(audio)
            weight = real.abs() ** cfg.phase_weight_power if cfg.phase_weight_power else None
        losses["phase/ip"], losses["phase/gd"], losses["phase/iaf"] = phase_losses(phase, real.angle(), weight)

    if adversarial:
        with _autocast(state):
            real_logits, _ = state.disc(audio)
            fake_logits, _ = state.disc(fake.detach())
        losses["adv/disc"] = discriminator_loss(real_logits, fake_logits, cfg.adv_loss)
        state.opt_d.zero_grad(set_to_none=True)
        weighted_loss({"adv/disc": losses["adv/disc"]}, lam).backward()
        torch.nn.utils.clip_grad_norm_(state.disc.parameters(), cfg.grad_clip)
        state.opt_d.step()

    losses["mel/l1"] = state.mel_loss(fake, target)
    if lam.get("mel/multi", 0.0):
        losses["mel/multi"] = state.multi_mel_loss(fake, audio)
    losses["stft/sc"], losses["stft/mag"] = state.stft_loss(fake, audio)
    if adversarial:
        with _autocast(state):
            # Real features are targets only: no graph needed for them.
            with torch.no_grad():
                _, real_features = state.disc(audio)
            fake_logits, fake_features = state.disc(fake)
        losses["adv/gen"] = generator_loss(fake_logits, cfg.adv_loss)
        losses["fm"] = feature_matching_loss(real_features, fake_features)
    generator_losses = {name: value for name, value in losses.items() if name != "adv/disc"}
    state.opt_g.zero_grad(set_to_none=True)
    weighted_loss(generator_losses, lam).backward()
    torch.nn.utils.clip_grad_norm_(state.generator.parameters(), cfg.grad_clip)
    state.opt_g.step()
    if state.ema is not None:
        state.ema.update_parameters(state.generator)
    state.step += 1
    return {name: float(value.detach()) for name, value in losses.items()}


@torch.no_grad()
def validate(state: State, logmels: list[torch.Tensor]) -> float:
    """Mean mel L1 of copy-synthesis over whole validation clips (each (1, n_mels, F))."""
    generator = state.inference_generator
    generator.eval()
    errors = []
    for logmel in logmels:
        logmel = logmel.to(state.device)
        inputs = logmel if state.mel_transform is None else state.mel_transform(logmel).clone()
        audio = generator(inputs)
        errors.append(float((state.frontend(audio) - logmel).abs().mean()))
    generator.train()
    return sum(errors) / max(len(errors), 1)


# ------------------------------------------------------------------ checkpoints


def checkpoint_payload(state: State) -> dict[str, Any]:
    """What a resumable checkpoint holds besides the step (RunFolder.save adds it)."""
    payload: dict[str, Any] = {
        "config": to_dict(state.config),
        "model": state.generator.state_dict(),
        "disc": state.disc.state_dict(),
        "opt_g": state.opt_g.state_dict(),
        "opt_d": state.opt_d.state_dict(),
        "rng": rng_state(),
    }
    if state.ema is not None:
        # The moving average as a plain generator state dict.
        payload.update(ema=state.ema.module.state_dict(), ema_updates=int(state.ema.n_averaged))
    return payload


def load_state(state: State, saved: dict[str, Any], where: Path) -> None:
    """Put a checkpoint's weights, optimisers, RNG and step back into `state`."""
    state.generator.load_state_dict(saved["model"])
    if state.ema is not None:
        if "ema" not in saved:
            raise CheckpointError(f"--resume: {where.name} has no moving average; set ema_decay: 0 or start a new run")
        state.ema.module.load_state_dict(saved["ema"])
        state.ema.n_averaged.fill_(saved["ema_updates"])
    state.disc.load_state_dict(saved["disc"])
    state.opt_g.load_state_dict(saved["opt_g"])
    state.opt_d.load_state_dict(saved["opt_d"])
    state.step = int(saved["step"])
    set_rng_state(saved["rng"])


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy only the config and generator weights of a training checkpoint (for shipping)."""
    data = load_checkpoint(src, KIND)
    weights = data.get("ema", data["model"])
    return save_checkpoint(dst, KIND, {"config": data["config"], "model": weights, "step": data.get("step", 0)})


# ------------------------------------------------------------------ the loop


def build_state(config: VocoderConfig, device: torch.device, mel_transform: MelTransform | None) -> State:
    generator = VocosVocoder(config.mel, config.model).to(device)
    d = config.disc
    disc = Discriminators(d.periods, d.period_channels, d.resolutions, d.resolution_channels).to(device)
    return State(
        config=config,
        generator=generator,
        disc=disc,
        opt_g=torch.optim.AdamW(generator.parameters(), lr=config.lr, betas=config.betas),
        opt_d=torch.optim.AdamW(disc.parameters(), lr=config.lr, betas=config.betas),
        frontend=MelFrontend(config.mel).to(device),
        mel_loss=MelL1Loss(config.mel).to(device),
        multi_mel_loss=MultiScaleMelLoss(config.mel, config.mel_scales).to(device),
        stft_loss=MultiResolutionSTFTLoss(config.stft_resolutions).to(device),
        device=device,
        mel_transform=mel_transform,
        ema=AveragedModel(generator, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay)) if config.ema_decay else None,
    )


def train(
    config: VocoderConfig,
    resume: bool = False,
    init_from: str | Path | None = None,
    mel_transform: MelTransform | None = None,
    progress: bool = True,
    max_minutes: float | None = None,
) -> Path:
    """Run (or continue) training; returns the path of the last checkpoint written.

    max_minutes: a wall-clock budget (for a lent machine or a job queue's
    limit): once spent, the run writes a checkpoint at the step it reached and
    stops; `--resume` carries on from there exactly.
    """
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.threads:
        torch.set_num_threads(config.threads)
    folder = RunFolder(config.out_dir, KIND, config.keep_last)
    deadline = Deadline(max_minutes)
    if init_from is not None and resume:
        raise ConfigError("--resume and --init-from exclude each other")
    saved = folder.start(resume)
    if saved is not None:
        # The checkpoint's architecture wins; schedule and data may change.
        arch = from_dict(VocoderConfig, saved["config"], f"{folder.latest()}: config")
        config = dataclasses.replace(config, mel=arch.mel, model=arch.model, disc=arch.disc)

    seed_everything(config.seed)
    if mel_transform is None and config.vae_checkpoint:
        mel_transform = vae_mel_transform(config.vae_checkpoint, device, config.mel)
    state = build_state(config, device, mel_transform)
    if saved is not None:
        load_state(state, saved, folder.latest() or folder.path)
    elif init_from is not None:
        _init_weights(state, init_from)
    folder.write_config(config)

    hop = config.mel.hop_length
    sampler = SegmentSampler(training_paths(config.data), config.mel.sample_rate, config.data.segment_frames * hop)
    valid_paths = manifest_paths(config.data.manifest, config.data.valid_split)[: config.data.valid_clips]
    valid_mels = [state.frontend(load_audio(p, config.mel.sample_rate)[None].to(device)) for p in valid_paths]

    log = RunLog(
        folder.path,
        {"train": ("seconds", "lr", *VOCODER_GENERATOR_TERMS, "adv/disc"), "valid": ("valid/mel_l1",)},
        tensorboard=False,
    )
    last_path = folder.latest()
    sums: dict[str, float] = {}
    count = 0
    started = time.time()
    bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc="train-vocoder", dynamic_ncols=True)
    while state.step < config.steps:
        if deadline.spent():
            if last_path != folder.checkpoint_path(state.step):  # not just written by ckpt_every
                last_path = folder.save(state.step, checkpoint_payload(state))
            print(f"train-vocoder: --max-minutes {max_minutes:g} spent at step {state.step}; --resume continues")
            break
        losses = train_step(state, sampler.sample(config.data.batch_size))
        bar.update(1)
        for name, value in losses.items():
            sums[name] = sums.get(name, 0.0) + value
        count += 1
        if state.step % config.log_every == 0 or state.step == config.steps:
            means = {name: total / count for name, total in sums.items()}
            bar.set_postfix({k: f"{means[k]:.4g}" for k in ("mel/l1", "adv/gen") if k in means})
            log.write("train", state.step, {"seconds": time.time() - started, "lr": config.lr_at(state.step - 1), **means})
            sums, count = {}, 0
        if valid_mels and (state.step % config.valid_every == 0 or state.step == config.steps):
            log.write("valid", state.step, {"valid/mel_l1": validate(state, valid_mels)})
        if state.step % config.ckpt_every == 0 or state.step == config.steps:
            last_path = folder.save(state.step, checkpoint_payload(state))
    bar.close()
    log.close()
    assert last_path is not None  # a resumed run has one, and every fresh run writes one (steps >= 1)
    return last_path


def _init_weights(state: State, path: str | Path) -> None:
    """Start from another run's weights (generator, and discriminators when present)."""
    data = load_checkpoint(path, KIND)
    other = from_dict(VocoderConfig, data["config"], f"{path}: config")
    check_compatible(other.mel, state.config.mel)
    try:
        state.generator.load_state_dict(data.get("ema", data["model"]))
        if "disc" in data and other.disc == state.config.disc:
            state.disc.load_state_dict(data["disc"])
    except RuntimeError as e:
        raise CheckpointError(f"--init-from {path}: weights do not fit this config's model ({e})") from e


# ------------------------------------------------------------------ CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser, "recipes/vocoder/config.yaml")
    parser.add_argument("--init-from", metavar="CKPT", help="start from the weights of another vocoder checkpoint")
    parser.add_argument("--vae-checkpoint", metavar="PATH", help="fine-tune on this VAE's reconstructions")
    parser.add_argument("--threads", type=int, help="torch CPU threads (overrides the config)")


def run(args: argparse.Namespace) -> int:
    for name in ("threads", "vae_checkpoint"):
        value = getattr(args, name)
        if value is not None:
            args.overrides.append(f"{name}={value}")
    config = load_run_config(VocoderConfig, args)
    path = train(config, resume=args.resume, init_from=args.init_from, progress=not args.quiet, max_minutes=args.max_minutes)
    print(f"last checkpoint: {path}")
    return 0
