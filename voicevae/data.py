"""Training data: a log-mel cache of a manifest and speaker-balanced random crops.

The whole corpus is analysed once into one cache file (mels stored as
float16) keyed by the manifest's content and the mel settings, so a second run
starts at once and a changed manifest or mel setting never reuses stale
features. Batches are drawn in memory: each holds `speakers_per_batch`
speakers with `clips_per_speaker` random crops each, so every batch shows the
model the contrast between voices that the speaker latent must capture.

Band-limited clips (a manifest's `bandwidth_hz` label, e.g. 4000 for an 8 kHz
telephone prompt resampled to the model rate) have nothing in their top mel
bins. `data.band_limited` says what training does with them: "mask" (the
default) keeps them and scores only the bins below their bandwidth, so the
decoder is never taught that this voice has an empty top band; "drop" leaves
them out; "keep" treats them as full-band.

For a model that reads the source's intonation (`model.pitch_input`), each
clip's contour (pitch.intonation, (3, F)) is cached beside its log-mel in a
file of its own, so the log-mel cache serves both kinds of run.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from .audio import AudioError, load_audio
from .checkpoint import save_checkpoint
from .config import DataConfig, MelConfig, to_dict
from .corpora import Utterance, read_manifest
from .features import MelFrontend, bins_below
from .pitch import INTONATION_CHANNELS, intonation

CACHE_VERSION = 1


@dataclass
class MelCorpus:
    """Log-mels of one split: `mels[i]` is (n_mels, F_i) float16, `speakers[i]` its speaker.

    band_bins[i]: how many mel bins from the bottom hold clip i's signal
    (n_mels for a full-band clip; see `data.band_limited`); empty means all.
    pitch[i]: clip i's intonation (3, F_i) float16, for a pitch_input model; empty otherwise.
    """

    mels: list[torch.Tensor]
    speakers: list[str]
    texts: list[str]
    paths: list[str]
    band_bins: list[int] = field(default_factory=list)
    pitch: list[torch.Tensor] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.band_bins:
            self.band_bins = [m.shape[0] for m in self.mels]

    def __len__(self) -> int:
        return len(self.mels)

    def frames(self) -> int:
        return sum(m.shape[-1] for m in self.mels)


def _cache_key(utts: list[Utterance], mel: MelConfig) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(to_dict(mel), sort_keys=True).encode())
    for u in utts:
        st = u.path.stat()
        h.update(f"{u.path}|{u.speaker}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_corpus(
    manifest: str | Path,
    split: str | None,
    mel_config: MelConfig,
    data_config: DataConfig,
    progress: bool = True,
    pitch: bool = False,
) -> MelCorpus:
    """Log-mels of every clip of `split` in `manifest`, from the cache when it is current.

    Clips shorter than data_config.min_frames are an error naming the file,
    since a clip that short is almost always a broken file, not speech.
    pitch: also each clip's intonation (MelCorpus.pitch), from its own cache.
    """
    corpus, key = _load_mels(manifest, split, mel_config, data_config, progress)
    if pitch:
        cache = Path(data_config.cache_dir) / f"pitch-{Path(manifest).stem}-{split or 'all'}-{key}.pt"
        corpus.pitch = _load_intonation(corpus, cache, mel_config, progress)
    return corpus


def _load_mels(
    manifest: str | Path, split: str | None, mel_config: MelConfig, data_config: DataConfig, progress: bool
) -> tuple[MelCorpus, str]:
    """The corpus and its cache key (the manifest's clips and the mel settings)."""
    utts = read_manifest(manifest, split=split)
    bins = [_band_bins(u, mel_config, data_config.band_limited) for u in utts]
    if data_config.band_limited == "drop":
        utts = [u for u, b in zip(utts, bins) if b == mel_config.n_mels]
        bins = [mel_config.n_mels] * len(utts)
    if not utts:
        raise ValueError(f"{manifest}: no clips in split {split!r}")
    key = _cache_key(utts, mel_config)
    cache = Path(data_config.cache_dir) / f"mels-{Path(manifest).stem}-{split or 'all'}-{key}.pt"
    if cache.is_file():
        data = torch.load(cache, weights_only=True)
        if data.get("version") == CACHE_VERSION:
            return MelCorpus(data["mels"], data["speakers"], data["texts"], data["paths"], bins), key
    frontend = MelFrontend(mel_config)
    mels = []
    for u in tqdm(utts, desc=f"mel cache {split or 'all'}", disable=not progress, leave=False):
        wav = load_audio(u.path, mel_config.sample_rate)
        if wav.abs().max() < 1e-4:
            raise AudioError(f"{u.path}: clip is silent")
        if frontend.num_frames(wav.shape[-1]) < data_config.min_frames:
            raise AudioError(
                f"{u.path}: {wav.shape[-1] / mel_config.sample_rate:.2f} s is shorter than "
                f"data.min_frames={data_config.min_frames} mel frames"
            )
        with torch.no_grad():
            mels.append(frontend(wav).to(torch.float16))
    corpus = MelCorpus(mels, [u.speaker for u in utts], [u.text for u in utts], [str(u.path) for u in utts], bins)
    # Written atomically like a checkpoint, so parallel ranks never read half a file.
    save_checkpoint(
        cache,
        "mel-cache",
        {"version": CACHE_VERSION, "mels": mels, "speakers": corpus.speakers, "texts": corpus.texts, "paths": corpus.paths},
    )
    return corpus, key


def _load_intonation(corpus: MelCorpus, cache: Path, mel_config: MelConfig, progress: bool) -> list[torch.Tensor]:
    """Each clip's intonation (3, F_i) float16, aligned with its cached log-mel; cached in `cache`."""
    if cache.is_file():
        data = torch.load(cache, weights_only=True)
        # A cache from before a row was added to the intonation is stale, not an error.
        current = data.get("version") == CACHE_VERSION and len(data["pitch"]) == len(corpus)
        if current and data["pitch"][0].shape[0] == INTONATION_CHANNELS:  # a corpus is never empty (_load_mels)
            return data["pitch"]
    contours = []
    for path, mel in tqdm(
        list(zip(corpus.paths, corpus.mels)), desc=f"pitch cache {cache.name}", disable=not progress, leave=False
    ):
        wav = load_audio(path, mel_config.sample_rate)
        contours.append(intonation(wav, mel_config.sample_rate, mel.shape[-1], mel_config.hop_length).to(torch.float16))
    save_checkpoint(cache, "pitch-cache", {"version": CACHE_VERSION, "pitch": contours})
    return contours


def _band_bins(u: Utterance, mel: MelConfig, policy: str) -> int:
    value = u.labels.get("bandwidth_hz", "")
    if policy == "keep" or not value:
        return mel.n_mels
    try:
        return bins_below(mel, float(value))
    except ValueError:
        raise ValueError(f"{u.path}: bandwidth_hz {value!r} is not a number") from None


def mel_statistics(corpus: MelCorpus) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-bin mean and standard deviation (n_mels,) over every frame of the corpus.

    A bin above a clip's band (`band_bins`) holds no signal and stays out of
    that bin's statistics.
    """
    total = torch.zeros(corpus.mels[0].shape[0], dtype=torch.float64)
    sq = torch.zeros_like(total)
    n = torch.zeros_like(total)
    for m, bins in zip(corpus.mels, corpus.band_bins):
        m = m[:bins].double()
        total[:bins] += m.sum(-1)
        sq[:bins] += (m**2).sum(-1)
        n[:bins] += m.shape[-1]
    if not bool((n > 0).all()):
        raise ValueError(f"mel bins {int((n > 0).sum())}-{n.numel() - 1} hold no full-band clip; use data.band_limited=keep")
    mean = total / n
    std = (sq / n - mean**2).clamp(min=0).sqrt()
    return mean.float(), std.float()


class SpeakerBalancedBatches:
    """Endless batches (B, n_mels, segment_frames), B = speakers_per_batch * clips_per_speaker.

    Draws from its own torch.Generator, whose state is part of the training
    checkpoint so a resumed run sees the same batches. Clips shorter than the
    segment are padded with the silence floor (log_floor).
    """

    def __init__(self, corpus: MelCorpus, cfg: DataConfig, floor: float, seed: int) -> None:
        self.corpus = corpus
        self.cfg = cfg
        self.floor = floor
        by_speaker: dict[str, list[int]] = {}
        for i, s in enumerate(corpus.speakers):
            by_speaker.setdefault(s, []).append(i)
        self.speakers = sorted(by_speaker)
        self.by_speaker = [by_speaker[s] for s in self.speakers]
        self.generator = torch.Generator().manual_seed(seed)

    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Returns (mels (B, n_mels, segment_frames) float32, speaker indices (B,), band bins (B,), intonation).

        The intonation (B, 3, segment_frames) is the crops' own (zeros where
        padded), when the corpus holds it; else None.
        """
        g = self.generator
        n_spk = min(self.cfg.speakers_per_batch, len(self.speakers))
        chosen = torch.randperm(len(self.speakers), generator=g)[:n_spk]
        seg = self.cfg.segment_frames
        crops, labels, bins, contours = [], [], [], []
        for s in chosen.tolist():
            clips = self.by_speaker[s]
            for _ in range(self.cfg.clips_per_speaker):
                i = clips[int(torch.randint(len(clips), (1,), generator=g))]
                mel = self.corpus.mels[i]
                bins.append(self.corpus.band_bins[i])
                frames = mel.shape[-1]
                start = int(torch.randint(frames - seg + 1, (1,), generator=g)) if frames > seg else 0
                crops.append(torch.nn.functional.pad(mel[:, start : start + seg], (0, max(0, seg - frames)), value=self.floor))
                if self.corpus.pitch:
                    contours.append(
                        torch.nn.functional.pad(self.corpus.pitch[i][:, start : start + seg], (0, max(0, seg - frames)))
                    )
                labels.append(s)
        pitch = torch.stack(contours).float() if contours else None
        return torch.stack(crops).float(), torch.tensor(labels), torch.tensor(bins), pitch

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
