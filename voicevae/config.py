"""Typed configuration that travels with the weights.

Every config is a dataclass of plain Python values, so a checkpoint can store
it as a dict and `torch.load(weights_only=True)` can read it back. Loading is
strict: an unknown key is an error that names the key and where it came from,
because a misspelt setting that is silently ignored trains the wrong model.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is unknown, missing or out of range."""


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "config") -> T:
    """Build dataclass `cls` from `data`, recursing into nested dataclasses.

    `where` names the source (a file and section) for error messages.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        # e.g. `model: 5` in a YAML file
        raise ConfigError(f"{where}: expected a mapping of settings, got {data!r}")
    data = dict(data)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown setting(s) {', '.join(unknown)}; known settings are {', '.join(sorted(fields))}")
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


def load_yaml(cls: type[T], path: str | Path, overrides: list[str] | None = None) -> T:
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

    def scaled(self, n_fft: int, hop_length: int, n_mels: int) -> MelConfig:
        """The same analysis with another window (= n_fft), hop and band count."""
        return dataclasses.replace(self, n_fft=n_fft, win_length=n_fft, hop_length=hop_length, n_mels=n_mels)


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
    # The decoder also reads the source's intonation (pitch.intonation: log-F0
    # relative to the clip's mean, and voicing, per mel frame), so the melody
    # comes from the source and the register from z_s instead of neither: the
    # content encoder's voice warp (content_warp) hides F0 from z_c.
    pitch_input: bool = False
    # With pitch_input, also a harmonic source (harmonics.py): the log-mel
    # ripple of equal harmonics at the frame's F0, scaled per bin and frame by
    # a gain the decoder predicts, is added to its output. Below 1 kHz the
    # ripple is what the vocoder voices from, and a mean-predicting decoder
    # blurs it away. The register (mean log2 F0) of a clip decoded with its
    # own latents is its own; a conversion reads it from the target's speaker
    # latent, through a head trained with lambdas["pitch/register"].
    harmonic_source: bool = False

    def validate(self, where: str = "model") -> None:
        if self.harmonic_source and not self.pitch_input:
            raise ConfigError(f"{where}.harmonic_source: needs {where}.pitch_input (the source's F0 places the harmonics)")
        if self.content_latent not in ("gaussian", "categorical"):
            raise ConfigError(f"{where}.content_latent: must be 'gaussian' or 'categorical', got {self.content_latent!r}")
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
    # Clips whose `bandwidth_hz` label is below mel.f_max (telephone prompts):
    # "mask" scores only the bins below their band, "drop" leaves them out,
    # "keep" treats them as full-band (data.py).
    band_limited: str = "mask"

    def validate(self, where: str = "data") -> None:
        if self.band_limited not in ("mask", "drop", "keep"):
            raise ConfigError(f"{where}.band_limited: must be 'mask', 'drop' or 'keep', got {self.band_limited!r}")


@dataclass
class ChannelConfig:
    """Random recording conditions applied to what the encoders see (augment.py).

    The reconstruction target stays the clean clip, so the encoders learn to
    read the same voice and words through a different microphone, room or
    line. Each effect is applied to a clip with its own probability.
    """

    p_gain: float = 0.0
    gain_db: float = 10.0  # level change, uniform in [-gain_db, gain_db]
    p_noise: float = 0.0
    snr_db: tuple[float, float] = (5.0, 40.0)  # noise below the clip's mean level
    p_reverb: float = 0.0
    rt60_s: tuple[float, float] = (0.1, 0.6)  # decay time of the room tail
    p_band: float = 0.0
    band_hz: tuple[float, float] = (3400.0, 7000.0)  # cut-off of a band limit
    # Which encoders see the channel: "both", or "content" (the speaker encoder
    # reads the clean clip, so the voice it learns is not averaged over rooms).
    encoders: str = "both"

    def validate(self, where: str = "channel") -> None:
        if self.encoders not in ("both", "content"):
            raise ConfigError(f"{where}.encoders: expected 'both' or 'content', got {self.encoders!r}")
        for name in ("p_gain", "p_noise", "p_reverb", "p_band"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{where}.{name}: a probability must be in [0, 1]")
        for name in ("snr_db", "rt60_s", "band_hz"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ConfigError(f"{where}.{name}: expected [low, high] with 0 < low <= high, got {[lo, hi]}")


@dataclass
class AdversarialConfig:
    """A second training stage for the decoder, as RAVE's: a mel discriminator against over-smoothed means.

    A Gaussian decoder trained on the ELBO alone predicts the mean of what
    could follow from its latents, a smooth spectrum the vocoder renders as
    a muffled voice. From `start_step` on, a discriminator on (mel, time)
    patches learns to tell the decoder's means from real mels, and the
    decoder is asked to fool it ("adv/gen") and to match the discriminator's
    features of the real clip ("fm"), the ELBO terms still in place. The
    encoders stop learning (`freeze_encoders`), so the latents, and every
    vector computed from them, keep their meaning.
    """

    start_step: int | None = None  # None: no second stage
    channels: tuple[int, ...] = (32, 64, 128)  # discriminator widths, one strided 2-D conv each
    lr: float = 2e-4  # the discriminator's (Adam, betas 0.5/0.9)
    loss: str = "hinge"  # or "lsgan"
    freeze_encoders: bool = True

    def validate(self, where: str = "adversarial") -> None:
        if self.start_step is not None and self.start_step < 0:
            raise ConfigError(f"{where}.start_step: must be >= 0, got {self.start_step}")
        if self.loss not in ("hinge", "lsgan"):
            raise ConfigError(f"{where}.loss: expected 'hinge' or 'lsgan', got {self.loss!r}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"{where}.channels: expected positive widths, got {list(self.channels)}")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr: must be positive")


@dataclass
class PhoneticConfig:
    """The content path's phonetic term (training/phonetic.py), on when lambdas["phone/ctc"] > 0.

    Each step, `clips` whole training clips with a transcript go through the
    content encoder as the ELBO's crops do (voice warp, channel), and a small
    head on the sampled content latent must spell the transcript's phones
    (espeak-ng IPA, phonemes.py) under CTC. The head is training-only; the
    model file is unchanged.
    """

    clips: int = 8  # whole clips per step
    max_frames: int = 800  # longer clips (9.3 s at hop 256) are left out, to bound a step's cost
    hidden: int = 128  # the head: conv(content_dim -> hidden, kernel 3) -> GELU -> conv(hidden -> phones + blank, 1)
    lr: float = 1e-3  # the head's own Adam
    default_language: str = "en"  # for clips whose manifest row has no language

    def validate(self, where: str = "phonetic") -> None:
        for name in ("clips", "max_frames", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"{where}.lr: must be positive")
        if not self.default_language:
            raise ConfigError(f"{where}.default_language: name a language (e.g. en)")


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
    # Pseudo-speakers (augment.py): each speaker of a batch gets its own
    # mel-axis warp in [1/(1 + r), 1 + r], applied to input and target alike,
    # so the speaker latent sees a continuum of voices; 0 turns it off.
    speaker_warp: float = 0.0
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    phonetic: PhoneticConfig = field(default_factory=PhoneticConfig)
    # Weights of the named loss terms (training/elbo.py); a term without a
    # weight is logged, not optimised. A positive "cycle/content" turns on the
    # content-consistency term, "cycle/voices" the voice-cycle term (elbo.py); "sf/reinforce" trains a categorical content latent;
    # "adv/gen", "fm" and "adv/disc" weigh the adversarial stage (training/adversarial.py);
    # a positive "phone/ctc" turns on the phonetic term (training/phonetic.py).
    lambdas: dict[str, float] = field(
        default_factory=lambda: {"rec/nll": 1.0, "kl/content": 1.0, "kl/speaker": 1.0, "sf/reinforce": 1.0}
    )
    amp: bool = True  # mixed precision on CUDA (ignored on CPU)
    log_every: int = 50
    valid_every: int = 1000
    ckpt_every: int = 1000
    keep_last: int = 3

    def lr_at(self, step: int) -> float:
        """Cosine decay from lr to lr_min over the run (a plain function of the step)."""
        progress = min(1.0, step / max(1, self.steps))
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1 + math.cos(math.pi * progress))

    def validate(self, where: str = "config") -> None:
        _check_run_lengths(self, where)
        _check_lambdas(self.lambdas, VAE_TERMS, where)
        if self.model.content_latent == "categorical" and not self.lambdas.get("sf/reinforce", 0.0):
            raise ConfigError(
                f"{where}.lambdas.sf/reinforce: a categorical content latent learns only through it; give it a weight"
            )
        if self.n_samples < 1:
            raise ConfigError(f"{where}.n_samples: must be >= 1")
        self.channel.validate(f"{where}.channel")
        self.adversarial.validate(f"{where}.adversarial")
        self._check_adversarial_weights(where)
        self.phonetic.validate(f"{where}.phonetic")
        if self.lambdas.get("phone/ctc", 0.0) > 0:
            if self.model.content_latent == "categorical":
                raise ConfigError(f"{where}.lambdas.phone/ctc: the phonetic term needs the Gaussian content latent")
        for name in ("content_warp", "speaker_warp"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"{where}.{name}: must be in [0, 1), got {getattr(self, name)}")
        for term in ("cycle/content", "cycle/voices"):
            if self.lambdas.get(term, 0.0) > 0 and self.model.content_latent != "gaussian":
                raise ConfigError(f"{where}.lambdas.{term}: needs model.content_latent 'gaussian'")
        if self.model.n_mels != self.mel.n_mels:
            raise ConfigError(f"{where}: model.n_mels={self.model.n_mels} differs from mel.n_mels={self.mel.n_mels}")
        if self.model.harmonic_source and not self.lambdas.get("pitch/register", 0.0) > 0:
            raise ConfigError(
                f"{where}.lambdas.pitch/register: model.harmonic_source reads a conversion's register from the "
                "target's speaker latent; give the head that learns it a weight (1.0 is usual)"
            )
        if not self.lambdas.get("rec/nll"):
            # The usual way here: `--set lambdas.X=w` on a YAML without a lambdas
            # section makes {X: w} the whole dict, dropping the default weights.
            raise ConfigError(
                f"{where}.lambdas.rec/nll: the reconstruction has no weight, so nothing trains the VAE "
                f"(weights given: {self.lambdas}); list every weight the run needs"
            )

    def _check_adversarial_weights(self, where: str) -> None:
        """The stage's start and its three weights must come together."""
        start = self.adversarial.start_step
        if start is None:
            staged = sorted(k for k in ("adv/gen", "fm", "adv/disc") if self.lambdas.get(k))
            if staged:
                raise ConfigError(
                    f"{where}.lambdas: {', '.join(staged)} weigh the adversarial stage, which never starts "
                    "without adversarial.start_step; set it or drop the weights"
                )
            return
        if start >= self.steps:
            raise ConfigError(f"{where}.adversarial.start_step: must be before steps={self.steps}, got {start}")
        if not self.lambdas.get("adv/disc", 0.0):
            raise ConfigError(
                f"{where}.lambdas.adv/disc: the adversarial stage starts at step {start}, "
                "and the discriminator learns only through adv/disc; give it a weight"
            )
        if not (self.lambdas.get("adv/gen") or self.lambdas.get("fm")):
            raise ConfigError(
                f"{where}.lambdas: the adversarial stage starts at step {start}, "
                "but neither adv/gen nor fm has a weight, so the decoder would ignore the discriminator"
            )


# ------------------------------------------------------------------ the fast vocoder


@dataclass
class VocosConfig:
    """Architecture of the fast vocoder (vocoder/vocos.py); travels inside its checkpoints."""

    dim: int = 128  # channels of the backbone
    intermediate_dim: int = 384  # width of each block's pointwise MLP
    num_layers: int = 8  # ConvNeXt blocks
    kernel_size: int = 7  # depthwise kernel, in frames
    # Predict the log-magnitude as a correction to the pseudo-inverse of the mel
    # filterbank applied to the input (what Griffin-Lim starts from) instead of
    # from scratch: the network then spends its capacity on phase.
    mel_prior: bool = False
    # How the head outputs phase: "angle" regresses it directly (Vocos);
    # "atan2" outputs a 2-D vector per bin and takes its direction (APNet's
    # parallel estimation), so a phase near +-pi needs no jump in the output.
    phase: str = "angle"

    def validate(self, where: str = "model") -> None:
        if self.phase not in ("angle", "atan2"):
            raise ConfigError(f"{where}.phase: must be 'angle' or 'atan2', got {self.phase!r}")
        for name in ("dim", "intermediate_dim", "num_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            raise ConfigError(f"{where}.kernel_size: must be odd, got {self.kernel_size}")


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
        self.resolutions = tuple(tuple(r) for r in self.resolutions)  # type: ignore[misc]

    def validate(self, where: str = "disc") -> None:
        if not self.periods and not self.resolutions:
            raise ConfigError(f"{where}: periods and resolutions are both empty; the GAN needs at least one discriminator")


@dataclass
class VocoderConfig:
    """A vocoder training run (training/vocoder.py)."""

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
    # Weights of the named losses (a loss without a weight is not optimised);
    # "adv/disc" scales the discriminators' own loss.
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
        self.stft_resolutions = tuple(tuple(r) for r in self.stft_resolutions)  # type: ignore[misc]
        self.mel_scales = tuple(tuple(s) for s in self.mel_scales)  # type: ignore[misc]

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step `step` (0-based)."""
        return self.lr * self.lr_decay**step

    def validate(self, where: str = "config") -> None:
        _check_run_lengths(self, where)
        _check_lambdas(self.lambdas, (*VOCODER_GENERATOR_TERMS, "adv/disc"), where)
        if self.disc_start_step < self.steps and not self.lambdas.get("adv/disc", 0.0):
            raise ConfigError(
                f"{where}.lambdas.adv/disc: the GAN starts at disc_start_step={self.disc_start_step} < steps={self.steps}, "
                "and the discriminators learn only through adv/disc; give it a weight"
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
            self.mel.scaled(*scale).validate(f"{where}.mel_scales[{i}]")


ADAPT_TERMS = ("rec/nll", "preserve/voices", "prior/speaker", "cycle/content", "cycle/voices", "pitch/register", "rec/prematched")
ADAPT_TRAINABLE = ("decoder", "speaker_path", "vector")


@dataclass
class AdaptConfig:
    """How to adapt a model to one new voice (training/adapt.py); stored in the adapted model.pt under "adapt"."""

    steps: int = 400
    lr: float = 3e-4  # decoder
    speaker_lr: float = 1e-2  # the new speaker's vector
    segment_frames: int = 128
    batch_size: int = 8
    min_seconds: float = 10.0  # less speech than this is refused
    # What is fine-tuned besides the new speaker's vector: "decoder" (all of
    # it), "speaker_path" (the decoder's AdaIN style layers, which map z_s to
    # scales and shifts) or "vector" (nothing else).
    trainable: str = "decoder"
    # The content encoder reads each crop with its mel axis warped by a random
    # factor in [1/(1 + content_warp), 1 + content_warp] (augment.random_warp),
    # and the decoder is still asked for the unwarped crop in the new voice:
    # the decoder then learns to render content read from other voices, which
    # is what every conversion feeds it, not only the target's own.
    content_warp: float = 0.0
    seed: int = 0
    # Weights of the named terms (ADAPT_TERMS).
    # "pitch/register" counts only for a model with a harmonic source (the new voice's register, learnt from its clips).
    # "cycle/voices" (on since it measured +0.013 to +0.024 similarity at 30 s to 3 min, README) rebuilds the
    # clips from content read off their rendering in other voices; 0 turns it off.
    # "rec/prematched" (off: it measured nothing, README) rebuilds them from content spliced out of their other clips.
    lambdas: dict[str, float] = field(
        default_factory=lambda: {
            "rec/nll": 1.0,
            "preserve/voices": 1.0,
            "prior/speaker": 1.0,
            "pitch/register": 1.0,
            "cycle/voices": 1.0,
        }
    )

    def validate(self, where: str = "adapt") -> None:
        for name in ("steps", "segment_frames", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{where}.{name}: must be >= 1, got {getattr(self, name)}")
        _check_lambdas(self.lambdas, ADAPT_TERMS, where)
        if self.min_seconds < 0:
            raise ConfigError(f"{where}.min_seconds: must be >= 0")
        if self.trainable not in ADAPT_TRAINABLE:
            raise ConfigError(f"{where}.trainable: must be one of {', '.join(ADAPT_TRAINABLE)}, got {self.trainable!r}")
        if not 0 <= self.content_warp < 1:
            raise ConfigError(f"{where}.content_warp: must be in [0, 1), got {self.content_warp}")


def adapt_config(overrides: list[str], where: str, **settings: Any) -> AdaptConfig:
    """An AdaptConfig from KEY=VALUE overrides laid over the defaults (and `settings`).

    Laid over the defaults, not over nothing: `lambdas.cycle/content=1` then
    adds a weight beside the default ones instead of replacing the whole dict
    (which would drop rec/nll and fit nothing).
    """
    return from_dict(AdaptConfig, apply_overrides({**to_dict(AdaptConfig()), **settings}, overrides), where)


# Named losses each training loop computes (training/elbo.py, training/vocoder.py).
VAE_TERMS = (
    "rec/nll",
    "kl/content",
    "kl/speaker",
    "cycle/content",
    "cycle/voices",
    "speaker/consistency",
    "sf/reinforce",
    "adv/gen",
    "fm",
    "phone/ctc",
    "adv/disc",
    "pitch/register",
)
VOCODER_GENERATOR_TERMS = ("mel/l1", "stft/sc", "stft/mag", "phase/ip", "phase/gd", "phase/iaf", "adv/gen", "fm", "mel/multi")


def _check_lambdas(lambdas: dict[str, float], known: tuple[str, ...], where: str) -> None:
    """A weight for a loss the loop never computes is a typo, not a no-op: name it."""
    unknown = sorted(set(lambdas) - set(known))
    if unknown:
        raise ConfigError(f"{where}.lambdas: unknown loss name(s) {', '.join(unknown)}; known are {', '.join(known)}")


def _check_run_lengths(config: Any, where: str) -> None:
    """Steps and intervals of a training run must be positive: `steps: -5` would train nothing and exit 0."""
    for name in ("steps", "log_every", "valid_every", "ckpt_every", "keep_last"):
        value = getattr(config, name)
        if value < 1:
            raise ConfigError(f"{where}.{name}: must be >= 1, got {value}")
