"""Attribute vectors: average the speaker latents of clips that share a label.

For a label value v of a column (a speaker id, a gender, an accent, ...):

    mean[v]        = mean of the utterance latents (posterior means) with value v
    direction[v]   = mean[v] - mean(latents without v)           (SEED.md, "Resynthesis")

Speaker vectors are the `mean` of the speaker column; attribute directions
are the `direction` of every other label column. A vector file also keeps
the utterance posteriors (for sampling the aggregated posterior), the
per-frame log p(x) of the clips it was made from and their stationary
baselines (complexity.py; the likelihood ratios set the anomaly
threshold), a content bank (content means of crops of some of the clips,
known speech for adaptation's content term), each speaker's content
statistics (content_stats.py, for content_norm), and the fingerprint of the
model it belongs to: loading it with another model is refused, because
latents of two models share no axes.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .audio import load_audio
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .complexity import stationary_log_likelihood
from .config import MelConfig, from_dict, to_dict
from .content_stats import ContentStats, speech_latents
from .corpora import Utterance, read_manifest
from .distributions import AggregatedPosterior
from .features import MelFrontend
from .model import VAE
from .pitch import f0_stats, intonation

KIND = "vectors"
BANK_CLIPS = 256  # clips whose content goes into the content bank
BANK_FRAMES = 32  # latent frames per crop (64 mel frames, 0.75 s, at downsample 2)


# Model options added after vector files were first written, with the value
# that means "off". An option left off is kept out of the hash, so adding an
# off-by-default option does not orphan every vector file made before it
# (the weights and every other setting still pin the latent space).
LATER_OPTIONS = {"pitch_input": False, "harmonic_source": False}


def model_fingerprint(model: VAE) -> str:
    """A short hash of the model's weights and configs: which latent space vectors live in."""
    config = {k: v for k, v in to_dict(model.config).items() if not (k in LATER_OPTIONS and v == LATER_OPTIONS[k])}
    h = hashlib.sha256()
    h.update(repr((config, to_dict(model.mel_config))).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class UnknownName(ValueError):
    """A voice or attribute name the vector file does not hold."""


def unknown_message(what: str, name: str, known: list[str], listing: str) -> str:
    """'unknown voice 'Flite_SLT'; did you mean 'flite_slt'? ...' with close matches (case-insensitive)."""
    lower = {k.lower(): k for k in known}
    close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=3, cutoff=0.6)]
    shown = ", ".join(known[:12]) + (f", ... ({len(known)} in all)" if len(known) > 12 else "")
    known_part = f"known {what}s: {shown or 'none'} (list them with `{listing}`)"
    if close:
        return f"unknown {what} {name!r}; did you mean {' or '.join(map(repr, close))}? The {known_part}"
    return f"unknown {what} {name!r}; {known_part}"


@dataclass
class LabelStats:
    """Per value of one label column: mean latent (Ds,), std over utterances (Ds,), count."""

    means: dict[str, torch.Tensor] = field(default_factory=dict)
    stds: dict[str, torch.Tensor] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class VectorSet:
    """Speaker vectors and attribute directions of one model (see module docstring)."""

    fingerprint: str
    mel: MelConfig
    labels: dict[str, LabelStats]  # column -> stats; "speaker" holds speaker vectors
    directions: dict[str, torch.Tensor]  # "column=value" -> (Ds,)
    posterior_mu: torch.Tensor  # (N, Ds) utterance posteriors, for the aggregated posterior
    posterior_logvar: torch.Tensor
    frame_scores: torch.Tensor  # (N,) log p(x) per frame of the same clips
    # speaker -> F0 statistics (pitch.f0_stats: median_hz, std_semitones, voiced_s, melody_octaves), for
    # match_pitch and f0_spread
    f0: dict[str, dict[str, float]] = field(default_factory=dict)
    # (N, Dc, BANK_FRAMES) content posterior means of crops of N of the clips:
    # speech the model knows, for adaptation to decode in a new voice
    # (training/adapt.py, "cycle/content"). None in files made before it.
    content_bank: torch.Tensor | None = None
    # (N,) log-likelihood per frame of the same clips under their own stationary
    # model (complexity.py): frame_scores minus these are the likelihood ratios
    # the anomaly threshold is set on. None in files made before it.
    frame_baselines: torch.Tensor | None = None
    # speaker -> its content latents' per-channel mean and spread over speech
    # frames (content_stats.py), for content_norm to a named voice. Empty in
    # files made before it.
    content: dict[str, ContentStats] = field(default_factory=dict)

    @property
    def speakers(self) -> list[str]:
        return sorted(self.labels["speaker"].means)

    def speaker(self, name: str) -> torch.Tensor:
        try:
            return self.labels["speaker"].means[name]
        except KeyError:
            raise UnknownName(unknown_message("voice", name, self.speakers, "voicevae voices")) from None

    @property
    def within_speaker_std(self) -> torch.Tensor:
        """Pooled std of utterance latents around their speaker's mean, (Ds,)."""
        stats = self.labels["speaker"]
        num = sum((stats.counts[s] - 1) * stats.stds[s] ** 2 for s in stats.means if stats.counts[s] > 1)
        den = sum(stats.counts[s] - 1 for s in stats.means if stats.counts[s] > 1)
        if den == 0:
            return torch.ones_like(self.posterior_mu[0])
        return torch.as_tensor(num / den).sqrt()

    def aggregated_posterior(self) -> AggregatedPosterior:
        return AggregatedPosterior(self.posterior_mu, self.posterior_logvar)

    # The margin only keeps a clip at the quantile from being flagged by the noise of
    # importance sampling; it is no safety band (the ratios of the shipped default's
    # clips spread over about 160 nats, the quantile sets the verdict).
    def anomaly_threshold(self, quantile: float = 0.01, margin: float = 0.5) -> float:
        """Likelihood ratio per frame (VoiceConverter.likelihood_ratio) below which a clip looks unlike
        the data the vectors came from: the `quantile` of the reference clips' ratios minus `margin` nats.

        -inf (nothing is flagged) for a vector file made before the ratio, which holds no baselines.
        """
        if self.frame_baselines is None:
            return -math.inf
        return float(torch.quantile(self.frame_scores - self.frame_baselines, quantile)) - margin

    # ----- persistence ----------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        labels = {col: {"means": st.means, "stds": st.stds, "counts": st.counts} for col, st in self.labels.items()}
        return save_checkpoint(
            path,
            KIND,
            {
                "fingerprint": self.fingerprint,
                "mel": to_dict(self.mel),
                "labels": labels,
                "directions": self.directions,
                "posterior_mu": self.posterior_mu,
                "posterior_logvar": self.posterior_logvar,
                "frame_scores": self.frame_scores,
                "f0": self.f0,
                "content_bank": self.content_bank,
                "frame_baselines": self.frame_baselines,
                "content": {name: {"mean": st.mean, "sd": st.sd} for name, st in self.content.items()},
            },
        )

    @classmethod
    def load(cls, path: str | Path, model: VAE | None = None) -> VectorSet:
        """Read a vector file; with `model`, refuse it unless it was made with that model."""
        data = load_checkpoint(path, KIND)
        vs = cls(
            fingerprint=data["fingerprint"],
            mel=from_dict(MelConfig, data["mel"], f"{path}: mel"),
            labels={col: LabelStats(d["means"], d["stds"], d["counts"]) for col, d in data["labels"].items()},
            directions=data["directions"],
            posterior_mu=data["posterior_mu"],
            posterior_logvar=data["posterior_logvar"],
            frame_scores=data["frame_scores"],
            f0=data.get("f0", {}),  # vector files before pitch control have none
            content_bank=data.get("content_bank"),
            frame_baselines=data.get("frame_baselines"),
            content={name: ContentStats(d["mean"], d["sd"]) for name, d in data.get("content", {}).items()},
        )
        if vs.frame_baselines is None:
            warnings.warn(
                f"{path}: made before the likelihood-ratio anomaly score, so it sets no anomaly threshold "
                "(no clip is flagged); run `voicevae vectors` again to get one",
                stacklevel=2,
            )
        if model is not None:
            fp = model_fingerprint(model)
            if fp != vs.fingerprint:
                raise CheckpointError(
                    f"{path}: vectors were made for model {vs.fingerprint}, not for the loaded model {fp}; run `voicevae vectors` with this model"
                )
        return vs


def bank_picks(n: int) -> range:
    """Which of n clips give the content bank a crop (from its middle): every k-th, at most BANK_CLIPS, over all n.

    Manifests run speaker by speaker, so the first BANK_CLIPS would be a few speakers' speech.
    """
    return range(0, n, max(1, math.ceil(n / BANK_CLIPS)))


def label_stats(latents: torch.Tensor, values: list[str]) -> LabelStats:
    """Group latents (N, Ds) by `values` (N labels) into means, stds and counts."""
    stats = LabelStats()
    for v in sorted(set(values)):
        idx = torch.tensor([i for i, x in enumerate(values) if x == v])
        group = latents[idx]
        stats.means[v] = group.mean(0)
        stats.stds[v] = group.std(0, unbiased=True) if len(idx) > 1 else torch.zeros_like(group[0])
        stats.counts[v] = len(idx)
    return stats


def attribute_directions(latents: torch.Tensor, column: str, values: list[str]) -> dict[str, torch.Tensor]:
    """mean(latents with value) - mean(latents with another value), for every value that has both.

    An empty value means the label is unknown for that clip (a merged corpus
    where only some sources name a gender): such clips are on neither side.
    """
    out = {}
    known = torch.tensor([x != "" for x in values])
    for v in sorted(set(values) - {""}):
        has = torch.tensor([x == v for x in values])
        other = known & ~has
        if not other.any():
            continue
        out[f"{column}={v}"] = latents[has].mean(0) - latents[other].mean(0)
    return out


@torch.inference_mode()
def compute_vectors(
    model: VAE,
    utterances: list[Utterance],
    device: str | torch.device = "cpu",
    is_samples: int = 16,
    progress: bool = True,
    f0_clips: int = 20,
    label_columns: list[str] | None = None,
    seed: int = 0,
) -> VectorSet:
    """Encode every utterance and build speaker vectors, attribute directions, score and F0 stats.

    label_columns: the manifest labels that get attribute directions (default
    all); a merged corpus has bookkeeping columns (licence, source) that make
    no useful direction.

    f0_clips: clips per speaker whose pitch is tracked for its F0 statistics
    (pYIN is the slow part; 20 clips pin a median well); 0 skips them.

    seed: of the importance samples behind the scores, so the same model and
    clips give the same file (and the same anomaly threshold) each time.
    """
    if not utterances:
        raise ValueError("no utterances to compute vectors from")
    frontend = MelFrontend(model.mel_config).to(device)
    model = model.to(device).eval()
    mus, logvars, scores, baselines = [], [], [], []
    crops: list[torch.Tensor] = []
    speech: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}  # speaker -> (content means, speech frames) per clip
    picks = set(bank_picks(len(utterances)))
    on_cuda = torch.device(device).type == "cuda"
    # The caller's random state is left as it was (manual_seed seeds the CUDA generators too).
    with torch.random.fork_rng(devices=[torch.device(device)] if on_cuda else []):
        torch.manual_seed(seed)
        for i, u in enumerate(tqdm(utterances, desc="encoding", disable=not progress, leave=False)):
            wav = load_audio(u.path, model.mel_config.sample_rate)
            mel = frontend(wav.to(device)).unsqueeze(0)
            q = model.posterior(mel)
            mus.append(q.speaker.mu[0].cpu())
            logvars.append(q.speaker.logvar[0].cpu())
            # A pitch_input model scores each clip given its own intonation, as VoiceConverter.score does.
            pitch = None
            if model.config.pitch_input:
                pitch = (
                    intonation(wav, model.mel_config.sample_rate, mel.shape[-1], model.mel_config.hop_length)
                    .unsqueeze(0)
                    .to(device)
                )
            scores.append(float(model.log_px(mel, n_samples=is_samples, pitch=pitch)[0]) / mel.shape[-1])
            baselines.append(stationary_log_likelihood(mel[0]))
            content = getattr(q.content, "mu", None)  # (1, Dc, L); a categorical content latent has neither
            if content is not None:
                frames = speech_latents(mel[0].cpu(), content.shape[-1], model.config.downsample)
                speech.setdefault(u.speaker, []).append((content[0].cpu(), frames))
            if content is not None and i in picks and content.shape[-1] >= BANK_FRAMES:
                start = (content.shape[-1] - BANK_FRAMES) // 2
                crops.append(content[0, :, start : start + BANK_FRAMES].cpu())
    mu, logvar = torch.stack(mus), torch.stack(logvars)
    labels = {"speaker": label_stats(mu, [u.speaker for u in utterances])}
    directions: dict[str, torch.Tensor] = {}
    present = {k for u in utterances for k in u.labels}
    missing = sorted(set(label_columns or []) - present)
    if missing:
        raise ValueError(
            f"--labels: {', '.join(missing)} not a label column of the manifest (it has {', '.join(sorted(present))})"
        )
    columns = sorted(present if label_columns is None else set(label_columns))
    for col in columns:
        values = [u.labels.get(col, "") for u in utterances]
        labels[col] = label_stats(mu, values)
        directions.update(attribute_directions(mu, col, values))
    f0 = {}
    if f0_clips > 0:
        rate = model.mel_config.sample_rate
        for s in tqdm(labels["speaker"].means, desc="pitch", disable=not progress, leave=False):
            clips = [u.path for u in utterances if u.speaker == s][:f0_clips]
            try:
                f0[s] = f0_stats([load_audio(p, rate) for p in clips], rate)
            except ValueError as e:  # whispered or unvoiced clips: that voice cannot match_pitch
                warnings.warn(f"speaker {s!r}: no F0 statistics ({e}); match_pitch will refuse it", stacklevel=2)
    content_stats = {}
    for s, pieces in speech.items():
        try:
            content_stats[s] = ContentStats.of_latents(pieces)
        except ValueError as e:  # silent clips: that voice cannot be a content_norm target
            warnings.warn(f"speaker {s!r}: no content statistics ({e})", stacklevel=2)
    bank = torch.stack(crops) if crops else None
    return VectorSet(
        model_fingerprint(model),
        model.mel_config,
        labels,
        directions,
        mu,
        logvar,
        torch.tensor(scores),
        f0,
        bank,
        torch.tensor(baselines, dtype=torch.float32),
        content_stats,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="VAE checkpoint (model.pt)")
    p.add_argument("--manifest", required=True, help="CSV manifest; every column past path,speaker,text,split is a label")
    p.add_argument("--split", default="train", help="which split to average over (default: train; 'all' for every row)")
    p.add_argument("-o", "--out", required=True, help="vector file to write")
    p.add_argument("--force", action="store_true", help="overwrite an existing vector file")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--f0-clips", type=int, default=20, help="clips per speaker for its F0 statistics (0: none)")
    p.add_argument("--labels", help="comma list of label columns that get attribute directions (default: all)")


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if out.exists() and not args.force:
        raise FileExistsError(f"{out}: exists; pass --force to overwrite")
    model = VAE.load(args.model)
    utts = read_manifest(args.manifest, split=None if args.split == "all" else args.split)
    labels = [c for c in args.labels.split(",") if c] if args.labels else None
    vs = compute_vectors(model, utts, args.device, f0_clips=args.f0_clips, label_columns=labels)
    if not math.isfinite(vs.anomaly_threshold()):
        raise ValueError(f"{args.model}: likelihood ratios of the clips are not finite; the model may be broken")
    vs.save(out)
    counts = vs.labels["speaker"].counts
    print(
        f"{out}: {len(counts)} speakers ({sum(counts.values())} clips), {len(vs.directions)} attribute directions, anomaly threshold {vs.anomaly_threshold():.2f} nats/frame"
    )
    return 0
