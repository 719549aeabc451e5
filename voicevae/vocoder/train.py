"""Train the fast Vocos-style vocoder: `voicevae train-vocoder --config recipes/vocoder/config.yaml`.

Read top to bottom: the config, the data (random segments of the manifest's
train split), one training step (named losses weighted by `lambdas`), the
loop with logging, validation and checkpoints.

Losses: "mel/l1", "stft/sc", "stft/mag" and, when weighted, the phase of the
predicted spectrum against the real one ("phase/ip", "phase/gd",
"phase/iaf") from the start; after
`disc_start_step` the multi-period and multi-resolution discriminators join
with "adv/gen" and "fm" for the generator and "adv/disc" for themselves.
Checkpoints (kind "vocoder") carry the config, so `load_vocoder(path)` needs
nothing else, and the optimiser and RNG states, so `--resume` continues the
run exactly as if it had not stopped.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from ..audio import load_audio
from ..checkpoint import CheckpointError, Deadline, check_max_minutes, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..config import ConfigError, MelConfig, from_dict, load_yaml, to_dict
from ..features import MelFrontend
from .base import check_compatible
from .discriminators import Discriminators
from .losses import (
    MelL1Loss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    discriminator_loss,
    feature_matching_loss,
    generator_loss,
    phase_losses,
    scale_config,
)
from .vocos import VocosConfig, VocosVocoder

KIND = "vocoder"
GENERATOR_TERMS = ("mel/l1", "stft/sc", "stft/mag", "phase/ip", "phase/gd", "phase/iaf", "adv/gen", "fm", "mel/multi")
PHASE_TERMS = ("phase/ip", "phase/gd", "phase/iaf")
# Columns are only ever appended, so a resumed run's log keeps its header.
LOG_COLUMNS = ("step", "seconds", "lr", *GENERATOR_TERMS[:-1], "adv/disc", "valid/mel_l1", "mel/multi")

MelTransform = Callable[[torch.Tensor], torch.Tensor]


# ------------------------------------------------------------------ config


@dataclass
class VocoderDataConfig:
    """Training audio: random fixed-length segments of the manifest's clips."""

    manifest: str = "data/synthetic/manifest.csv"
    train_split: str = "train"
    valid_split: str = "valid"
    segment_frames: int = 32  # mel frames per training segment (32 * 256 = 8192 samples)
    batch_size: int = 8
    valid_clips: int = 8  # first N clips of the valid split, scored whole
    # More manifests whose train splits join the training clips (validation
    # stays on `manifest`): e.g. `make-corpus --voices extra`, more talkers.
    extra_manifests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.extra_manifests = tuple(self.extra_manifests)  # YAML gives a list

    def validate(self, where: str = "data") -> None:
        for name in ("segment_frames", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1")


@dataclass
class DiscriminatorConfig:
    """Sizes of the multi-period and multi-resolution discriminators."""

    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    # HiFi-GAN uses (32, 128, 512, 1024) and Vocos 32-channel resolution
    # discriminators; on a CPU those cost ~40x a generator step, so ours are slim.
    period_channels: tuple[int, ...] = (8, 32, 64, 128)
    # Either family may be empty (not both). On a CPU the resolution
    # discriminators cost most: with these sizes a GAN step takes ~20x a plain
    # one, 4-5x with the period discriminators alone (benchmarks/vocoder_gan_step.py).
    resolutions: tuple[tuple[int, int], ...] = ((1024, 256), (2048, 512), (512, 128))  # (n_fft, hop)
    resolution_channels: int = 16

    def __post_init__(self) -> None:
        # YAML and checkpoints hold the pairs as lists.
        self.resolutions = tuple(tuple(r) for r in self.resolutions)

    def validate(self, where: str = "disc") -> None:
        if not self.periods and not self.resolutions:
            raise ConfigError(f"{where}: periods and resolutions are both empty; the GAN needs at least one discriminator")


@dataclass
class VocoderConfig:
    """A vocoder training run."""

    mel: MelConfig = field(default_factory=MelConfig)
    model: VocosConfig = field(default_factory=VocosConfig)
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    data: VocoderDataConfig = field(default_factory=VocoderDataConfig)
    out_dir: str = "runs/vocoder"
    seed: int = 0
    steps: int = 4000
    lr: float = 5e-4
    # Exponential decay per step, a function of the step alone so resuming
    # changes nothing and extending `steps` does not rewrite the past schedule.
    lr_decay: float = 0.9999
    betas: tuple[float, float] = (0.8, 0.99)
    grad_clip: float = 10.0
    disc_start_step: int = 2000  # steps of reconstruction-only warm-up before the GAN
    adv_loss: str = "hinge"  # "hinge" or "lsgan"
    stft_resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
    # (n_fft, hop, n_mels) of the "mel/multi" loss, used when it is weighted.
    mel_scales: tuple[tuple[int, int, int], ...] = ((256, 64, 20), (512, 128, 40), (2048, 512, 160))
    # The phase losses weight each bin by the real magnitude to this power:
    # 0 weighs all bins alike (APNet), 1 follows the energy, which in speech
    # sits below ~1 kHz; 0.5 lies between.
    phase_weight_power: float = 0.0
    # Keep an exponential moving average of the generator's weights (0: off).
    # Without a GAN the weights still wander from step to step; the average
    # is what validation scores and what `load_vocoder` and export use.
    ema_decay: float = 0.0
    # Weights of the named losses; "adv/disc" scales the discriminators' own loss.
    lambdas: dict[str, float] = field(
        default_factory=lambda: {"mel/l1": 45.0, "stft/sc": 1.0, "stft/mag": 1.0, "adv/gen": 1.0, "fm": 2.0, "adv/disc": 1.0}
    )
    # Fine-tune on VAE reconstructions: the generator hears decoder output, the
    # losses compare with the real audio.
    vae_checkpoint: str | None = None
    amp: bool = True  # bfloat16 autocast on CUDA; ignored on CPU
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    log_every: int = 25
    valid_every: int = 500
    ckpt_every: int = 500
    keep_last: int = 3

    def __post_init__(self) -> None:
        self.stft_resolutions = tuple(tuple(r) for r in self.stft_resolutions)
        self.mel_scales = tuple(tuple(s) for s in self.mel_scales)

    def validate(self, where: str = "config") -> None:
        unknown = sorted(set(self.lambdas) - set(GENERATOR_TERMS) - {"adv/disc"})
        if unknown:
            raise ConfigError(
                f"{where}.lambdas: unknown loss name(s) {', '.join(unknown)}; "
                f"known are {', '.join((*GENERATOR_TERMS, 'adv/disc'))}"
            )
        if self.adv_loss not in ("hinge", "lsgan"):
            raise ConfigError(f"{where}.adv_loss: must be 'hinge' or 'lsgan', got {self.adv_loss!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"{where}.ema_decay: must be in [0, 1), got {self.ema_decay}")
        if self.phase_weight_power < 0:
            raise ConfigError(f"{where}.phase_weight_power: must be >= 0, got {self.phase_weight_power}")
        if self.mel.win_length != self.mel.n_fft:
            raise ConfigError(f"{where}.mel: the Vocos head needs win_length == n_fft")
        self.disc.validate(f"{where}.disc")
        for i, scale in enumerate(self.mel_scales):
            if len(scale) != 3:
                raise ConfigError(f"{where}.mel_scales[{i}]: need [n_fft, hop, n_mels], got {list(scale)}")
            scale_config(self.mel, scale).validate(f"{where}.mel_scales[{i}]")
        for name in ("steps", "log_every", "valid_every", "ckpt_every", "keep_last"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1")


def lr_at(config: VocoderConfig, step: int) -> float:
    """Learning rate for optimiser step `step` (0-based)."""
    return config.lr * config.lr_decay**step


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
    from ..corpora import ManifestError

    paths = manifest_paths(data.manifest, data.train_split)
    for i, extra in enumerate(data.extra_manifests):
        try:
            paths += manifest_paths(extra, data.train_split)
        except ManifestError as e:
            raise ConfigError(f"data.extra_manifests[{i}]: {e}") from e
    return paths


def manifest_paths(manifest: str | Path, split: str) -> list[Path]:
    from ..corpora import read_manifest

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
        return self.generator if self.ema is None else self.ema.module


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
        group["lr"] = lr_at(cfg, state.step)
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
        (lam.get("adv/disc", 1.0) * losses["adv/disc"]).backward()
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
    total = sum(lam.get(name, 0.0) * value for name, value in losses.items() if name in GENERATOR_TERMS)
    state.opt_g.zero_grad(set_to_none=True)
    total.backward()
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


def checkpoint_path(out_dir: Path, step: int) -> Path:
    return out_dir / f"vocoder_{step:07d}.pt"


def latest_checkpoint(out_dir: Path) -> Path | None:
    found = sorted(out_dir.glob("vocoder_*.pt"))
    return found[-1] if found else None


def save_state(state: State, out_dir: Path) -> Path:
    """Write a resumable checkpoint and delete all but the newest `keep_last`."""
    path = save_checkpoint(
        checkpoint_path(out_dir, state.step),
        KIND,
        {
            "config": to_dict(state.config),
            "model": state.generator.state_dict(),
            "disc": state.disc.state_dict(),
            "opt_g": state.opt_g.state_dict(),
            "opt_d": state.opt_d.state_dict(),
            "step": state.step,
            "rng": rng_state(),
            **_ema_entries(state),
        },
    )
    for old in sorted(out_dir.glob("vocoder_*.pt"))[: -state.config.keep_last]:
        old.unlink()
    return path


def export_checkpoint(src: str | Path, dst: str | Path) -> Path:
    """Copy only the config and generator weights of a training checkpoint (for shipping)."""
    data = load_checkpoint(src, KIND)
    weights = data.get("ema", data["model"])
    return save_checkpoint(dst, KIND, {"config": data["config"], "model": weights, "step": data.get("step", 0)})


def _ema_entries(state: State) -> dict:
    """Checkpoint entries of the moving average: its weights as a plain generator state dict."""
    if state.ema is None:
        return {}
    return {"ema": state.ema.module.state_dict(), "ema_updates": int(state.ema.n_averaged)}


def vae_mel_transform(path: str | Path, device: torch.device, mel_config: MelConfig) -> MelTransform:
    """logmel -> VAE reconstruction of it, from a VAE checkpoint."""
    try:
        from ..model import VAE
    except ImportError as e:
        raise ConfigError(f"vae_checkpoint {path}: voicevae.model.VAE is not available ({e})") from e
    vae = VAE.load(path).to(device)
    check_compatible(mel_config, vae.mel_config)

    @torch.no_grad()
    def transform(logmel: torch.Tensor) -> torch.Tensor:
        return vae.reconstruct(logmel.to(device))

    return transform


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
    out_dir = Path(config.out_dir)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if config.threads:
        torch.set_num_threads(config.threads)

    resume_data = None
    if resume:
        last = latest_checkpoint(out_dir)
        if last is None:
            raise CheckpointError(f"--resume: no vocoder_*.pt checkpoint in {out_dir}")
        resume_data = load_checkpoint(last, KIND)
        saved = from_dict(VocoderConfig, resume_data["config"], f"{last}: config")
        # The checkpoint's architecture wins; schedule and data may change.
        config = dataclasses.replace(config, mel=saved.mel, model=saved.model, disc=saved.disc)

    torch.manual_seed(config.seed)
    random.seed(config.seed)
    np.random.seed(config.seed)
    if mel_transform is None and config.vae_checkpoint:
        mel_transform = vae_mel_transform(config.vae_checkpoint, device, config.mel)
    state = build_state(config, device, mel_transform)

    if resume_data is not None:
        state.generator.load_state_dict(resume_data["model"])
        if state.ema is not None:
            if "ema" not in resume_data:
                raise CheckpointError(f"--resume: {last} has no moving average; set ema_decay: 0 or start a new run")
            state.ema.module.load_state_dict(resume_data["ema"])
            state.ema.n_averaged.fill_(resume_data["ema_updates"])
        state.disc.load_state_dict(resume_data["disc"])
        state.opt_g.load_state_dict(resume_data["opt_g"])
        state.opt_d.load_state_dict(resume_data["opt_d"])
        state.step = int(resume_data["step"])
        set_rng_state(resume_data["rng"])
    elif init_from is not None:
        _init_weights(state, init_from)

    hop = config.mel.hop_length
    sampler = SegmentSampler(training_paths(config.data), config.mel.sample_rate, config.data.segment_frames * hop)
    valid_paths = manifest_paths(config.data.manifest, config.data.valid_split)[: config.data.valid_clips]
    valid_mels = [state.frontend(load_audio(p, config.mel.sample_rate)[None].to(device)) for p in valid_paths]

    out_dir.mkdir(parents=True, exist_ok=True)
    log_path = out_dir / "log.csv"
    new_log = not log_path.exists() or not resume
    last_path = latest_checkpoint(out_dir) if resume else None
    sums: dict[str, float] = {}
    count = 0
    started = time.time()
    deadline = Deadline(max_minutes)
    with open(log_path, "w" if new_log else "a", newline="") as log_file:
        log = csv.DictWriter(log_file, LOG_COLUMNS)
        if new_log:
            log.writeheader()
        bar = tqdm(total=config.steps, initial=state.step, disable=not progress, desc="train-vocoder", dynamic_ncols=True)
        while state.step < config.steps:
            if deadline.spent():
                if last_path != checkpoint_path(out_dir, state.step):  # not just written by ckpt_every
                    last_path = save_state(state, out_dir)
                print(f"train-vocoder: --max-minutes {max_minutes:g} spent at step {state.step}; --resume continues")
                break
            losses = train_step(state, sampler.sample(config.data.batch_size))
            bar.update(1)
            for name, value in losses.items():
                sums[name] = sums.get(name, 0.0) + value
            count += 1
            row: dict[str, float | int | str] = {}
            if state.step % config.log_every == 0 or state.step == config.steps:
                row = {name: f"{total / count:.5g}" for name, total in sums.items()}
                bar.set_postfix({k: row[k] for k in ("mel/l1", "adv/gen") if k in row})
                sums, count = {}, 0
            if valid_mels and (state.step % config.valid_every == 0 or state.step == config.steps):
                row["valid/mel_l1"] = f"{validate(state, valid_mels):.5g}"
            if row:
                log.writerow({"step": state.step, "seconds": f"{time.time() - started:.1f}", "lr": f"{lr_at(config, state.step - 1):.3g}", **row})
                log_file.flush()
            if state.step % config.ckpt_every == 0 or state.step == config.steps:
                last_path = save_state(state, out_dir)
        bar.close()
    if last_path is None:
        raise CheckpointError(f"{out_dir}: nothing to do, the run is already at step {state.step} of {config.steps}")
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
    parser.add_argument("--config", required=True, help="YAML training config (see recipes/vocoder/config.yaml)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in out_dir")
    parser.add_argument("--init-from", metavar="CKPT", help="start from the weights of another vocoder checkpoint")
    parser.add_argument("--vae-checkpoint", metavar="PATH", help="fine-tune on this VAE's reconstructions")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override any setting, e.g. --set data.batch_size=32 (values are YAML)",
    )
    parser.add_argument("--out-dir", help="override out_dir from the config")
    parser.add_argument("--steps", type=int, help="override steps from the config")
    parser.add_argument("--threads", type=int, help="torch CPU threads (overrides the config)")
    parser.add_argument(
        "--max-minutes", type=float, metavar="M", help="wall-clock budget: checkpoint and stop after M minutes (resumable)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = load_yaml(VocoderConfig, args.config, args.overrides)
    overrides = {
        "out_dir": args.out_dir,
        "steps": args.steps,
        "threads": args.threads,
        "vae_checkpoint": args.vae_checkpoint,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    config.validate(args.config)
    if args.resume and args.init_from:
        raise ConfigError("--resume and --init-from exclude each other")
    check_max_minutes(args.max_minutes)
    path = train(
        config, resume=args.resume, init_from=args.init_from, progress=not args.no_progress, max_minutes=args.max_minutes
    )
    print(f"last checkpoint: {path}")
    return 0
