"""Typed configuration that travels with the weights.

Every config is a dataclass of plain Python values, so a checkpoint can store
it as a dict and `torch.load(weights_only=True)` can read it back. Loading is
strict: an unknown key is an error that names the key and where it came from,
because a misspelt setting that is silently ignored trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Type, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is unknown, missing or out of range."""


def from_dict(cls: Type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    `where` names the source (a file and section) for error messages.
    """
    data = dict(data or {})
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"known settings are {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            value = from_dict(hint, value, f"{where}.{name}")
        kwargs[name] = _coerce(value, hint, f"{where}.{name}")
    obj = cls(**kwargs)
    check = getattr(obj, "validate", None)
    if check is not None:
        check(where)
    return obj


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Accept ints (and "2e-4") for float settings and lists for tuple settings; reject the rest."""
    if dataclasses.is_dataclass(hint):
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(hint):
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
        origin = typing.get_origin(hint)
    if hint is float:
        # PyYAML reads "2e-4" (no dot) as a string: take it. float() would
        # also take True, which is no number here.
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if hint in (int, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
    if hint is int and isinstance(value, bool):
        raise ConfigError(f"{where}: expected int, got {value!r}")
    if origin is tuple and isinstance(value, (list, tuple)):
        return tuple(value)
    if origin is dict and not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return value


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain-dict form of a config dataclass (tuples become lists for YAML)."""
    out = dataclasses.asdict(obj)
    return _listify(out)


def _listify(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _listify(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_listify(v) for v in x]
    return x


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values parsed as YAML) to a config dict."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. model.channels=64")
        key, value = item.split("=", 1)
        node = data
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r}: {p} is not a section")
        node[leaf] = yaml.safe_load(value)
    return data


def load_yaml(cls: Type[T], path: str | Path, overrides: list[str] | None = None) -> T:
    """Read a YAML file (plus `--set key=value` overrides) into config class `cls`, naming the file in any error."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    return from_dict(cls, apply_overrides(data or {}, overrides or []), str(path))


@dataclass
class MelConfig:
    """Log-mel analysis. Defaults match the pretrained HiFi-GAN (universal)."""

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    # log(max(mel, floor)): the floor keeps silence finite; HiFi-GAN used 1e-5.
    log_floor: float = 1e-5

    def validate(self, where: str = "mel") -> None:
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ConfigError(
                f"{where}: need 0 <= f_min < f_max <= sample_rate/2, got "
                f"f_min={self.f_min}, f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.win_length > self.n_fft or self.hop_length <= 0:
            raise ConfigError(f"{where}: need 0 < hop_length and win_length <= n_fft")
        if self.log_floor <= 0:
            raise ConfigError(f"{where}: log_floor must be positive")


@dataclass
class VAEConfig:
    """Architecture of the convolutional VAE (see voicevae/model.py)."""

    n_mels: int = 80
    channels: int = 192  # width of every conv block
    n_blocks: int = 4  # residual blocks per encoder/decoder stack
    kernel_size: int = 5
    # Content latent: one vector per `downsample` mel frames, changes over time.
    content_dim: int = 8
    downsample: int = 2
    # Speaker latent: one vector per utterance, pooled over time.
    speaker_dim: int = 64
    # "gaussian" uses reparameterization; "categorical" makes the content latent
    # discrete (content_codes choices per frame), trained with the score-function
    # estimator.
    content_latent: str = "gaussian"
    content_codes: int = 64
    # Observation noise sigma of p(x|z) = N(mu, sigma^2 I) in log-mel units.
    init_log_sigma: float = -0.5
    learn_sigma: bool = True

    def validate(self, where: str = "model") -> None:
        if self.content_latent not in ("gaussian", "categorical"):
            raise ConfigError(
                f"{where}.content_latent: must be 'gaussian' or 'categorical', "
                f"got {self.content_latent!r}"
            )
        for name in ("channels", "n_blocks", "content_dim", "speaker_dim", "downsample"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: must be odd")


@dataclass
class DataConfig:
    """Where training clips come from and how they are batched."""

    manifest: str = "data/synthetic/manifest.csv"
    cache_dir: str = "data/cache"
    # A manifest may hold a split column; held-out rows stay out of training.
    train_split: str = "train"
    valid_split: str = "valid"
    segment_frames: int = 128  # random crop length in mel frames
    min_frames: int = 16  # clips shorter than this are rejected at caching
    speakers_per_batch: int = 8
    clips_per_speaker: int = 2
    num_workers: int = 0


@dataclass
class TrainConfig:
    """A training run: model, data, optimisation and loss weights."""

    mel: MelConfig = field(default_factory=MelConfig)
    model: VAEConfig = field(default_factory=VAEConfig)
    data: DataConfig = field(default_factory=DataConfig)
    out_dir: str = "runs/vae"
    seed: int = 0
    steps: int = 20000
    lr: float = 1e-3
    lr_min: float = 1e-4
    weight_decay: float = 0.0
    grad_clip: float = 5.0
    # K in the K-sample ELBO estimate of the reconstruction term.
    n_samples: int = 1
    # KL annealing: the KL weight rises linearly from 0 to 1 over warmup steps.
    kl_warmup_steps: int = 2000
    # Free bits (nats per latent dimension) below which KL is not penalised.
    free_bits: float = 0.0
    # Voice perturbation of the content encoder's input (augment.py): the
    # largest mel-axis warp, 0.15 = factors in [1/1.15, 1.15]; 0 turns it off.
    content_warp: float = 0.0
    # Extra weights on the named loss terms; keys are loss names. A positive
    # "cycle/content" turns on the content-consistency term (losses.content_cycle_loss).
    lambdas: dict[str, float] = field(default_factory=lambda: {"rec/nll": 1.0, "kl/content": 1.0, "kl/speaker": 1.0})
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    log_every: int = 50
    valid_every: int = 1000
    ckpt_every: int = 1000
    keep_last: int = 3

    def validate(self, where: str = "config") -> None:
        if self.n_samples < 1:
            raise ConfigError(f"{where}.n_samples: must be >= 1")
        if not 0.0 <= self.content_warp < 1.0:
            raise ConfigError(f"{where}.content_warp: must be in [0, 1), got {self.content_warp}")
        if self.lambdas.get("cycle/content", 0.0) > 0 and self.model.content_latent != "gaussian":
            raise ConfigError(f"{where}.lambdas.cycle/content: needs model.content_latent 'gaussian'")
        if self.model.n_mels != self.mel.n_mels:
            raise ConfigError(
                f"{where}: model.n_mels={self.model.n_mels} differs from mel.n_mels={self.mel.n_mels}"
            )
