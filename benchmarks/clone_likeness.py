"""Where an adapted clone loses its likeness: the judge's ceiling, stage by stage, and two output-side corrections.

    python benchmarks/clone_likeness.py --manifest data/combined/manifest.csv --budget 60 --sources 2

The cloning protocol's setting (evaluate_cloning.py, one budget): each
held-out voice T of the manifest's test_voice split is adapted on its first
clips making `--budget` seconds (default AdaptConfig); the judge's reference
for T is the mean Resemblyzer embedding of its last 8 clips, which nothing
else uses; the sources are `--sources` clips of each other held-out voice.

Part 1, the ceiling, stage by stage. T's own clips that neither its
adaptation nor its judge reference holds (up to `--own` per voice) are
scored for similarity to T's reference and for word errors:

- the recordings themselves (what the judge gives a genuine clip of T);
- vocoded from their log-mel (the vocoder alone);
- resynthesised by the shipped model (their own latents);
- resynthesised by the adapted model;
- converted by the adapted model to T (the adapted speaker vector: the
  decoder input every cross conversion gets, here with T's own content).

Each row is paired clip by clip with the row above it. The gap from the
last row to the cross conversions of part 2 is what the source's content
brings of the source voice; the gaps between rows are what each stage loses.

Part 2, corrections applied to the adapted cross conversions, each paired
conversion by conversion with the plain adapted conversion:

- gv A (global variance): per mel band, the converted log-mel's deviations
  from its speech-frame mean scaled by (sd_T / sd_out) ** A, sd_T over the
  speech frames of T's adaptation clips. Decoders average, so their output
  spreads less than speech does (the printed ratio says by how much).
- vtln W (vocal tract length): the source's log-mel warped along frequency
  by alpha ** W before conversion, alpha in 0.80..1.25 the warp that best
  matches the source's long-term average spectrum to T's clips'. If the
  content path lets the source's formant positions through, moving them
  toward T's first should help.
- content mean / norm / quantile: the source's content latents moved, per
  channel, to the statistics of T's before decoding: shifted to T's mean
  (over the speech frames of T's adaptation clips), shifted and scaled to
  T's mean and sd (the product's `content_norm=1`, content_stats.py, with
  T's statistics from the adapted vector file: the adaptation's cleaned clips), or
  mapped quantile to quantile; "wct" whitens the source's frames with
  their covariance across channels and colours them with T's (the
  whitening and colouring transform of style transfer: what content norm
  does per channel, done for the channels jointly). A test of how much of
  the source voice rides in the content latents' statistics. With norm
  among them, every other matching is paired with norm as well.
- with `--retrieval R`: adapted + retrieval R, and `content_norm=1` with
  retrieval R (paired with retrieval R alone);
- with `--zero-shot`: the shipped model's conversion to T's adaptation
  clips (their mean latent), alone and with `content_norm=1`.
- with `--rate`: the source's log-mel and intonation stretched in time by
  the ratio of the source's speaking rate to T's (voiced onsets per second
  of speech, `speaking_rate`; the stretch kept within 2/3..3/2), so the
  conversion keeps T's tempo, alone and on top of content norm + f0 spread.
  After the melody's range (`f0_spread`), the next part of prosody a
  conversion takes from its source.
- with `--melody`: what the source's melody (the decoder's intonation
  input) carries of the source voice. "flat" sets the melody to the
  register (a monotone, voicing kept); "smooth" low-passes it with a
  Gaussian of MELODY_SMOOTH_S standard deviation (movements faster than
  about 2 Hz removed: jitter, creak, the quicker syllable-rate moves);
  "unit" takes both content and melody from T: each speech latent frame is
  replaced by its single nearest T frame (as "knn" with k = 1, row
  "content knn1") and its `downsample` mel frames of melody and voicing by
  that T frame's, a conversion every speech frame's input of which is T's
  own (silence keeps the source's).

- with `--prematched W`: T is adapted a second time with the prematched
  term at weight W (`rec/prematched`, training/adapt.py: each crop also
  rebuilt from its content spliced out of T's other clips, kNN-VC's
  prematching), and its plain conversion ("prematched") and its conversion
  from content matched to T's frames ("prematched + content knn", the
  benchmark's "knn" matching) are scored, with "adapted + content knn" for
  the same matching on the plain adaptation.

Part 3 (`--parts voices`), the judge between voices: each held-out voice's
genuine clips (its sources and up to `--own` of its first clips) scored
against every held-out voice's reference. The off-diagonal is what the judge
gives another talker at all, the floor against which a conversion's
similarity to its source shows how much of the source voice is left.

Part 1 needs `--parts ceiling`; `--parts corrections` runs part 2 alone.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import dataclass, field

import librosa
import numpy as np
import torch
from einops import rearrange
from scipy.ndimage import gaussian_filter1d
from tqdm import tqdm

import voicevae
from voicevae.api import VoiceConverter
from voicevae.config import AdaptConfig, MelConfig
from voicevae.content_stats import content_affine, speech_content, speech_frames, speech_latents
from voicevae.corpora import Utterance, read_manifest
from voicevae.evaluate_cloning import JUDGE_CLIPS, budget_clips, difference_cell
from voicevae.metrics import SpeakerEncoder, Transcriber, paired_difference, word_errors
from voicevae.pitch import intonation_spread, scale_melody

KNN = 4  # neighbours averaged by the "knn" content matchings, as kNN-VC's k
MELODY_SMOOTH_S = 0.1  # "smooth" melody: the Gaussian's standard deviation in seconds (half power near 2 Hz)
WARPS = np.exp(np.linspace(math.log(0.8), math.log(1.25), 21))  # VTLN's candidate alphas, log-spaced


@dataclass
class Rows:
    """Per clip or conversion, in the same order in every row: the judges' scores, and what each row is paired with."""

    to_target: dict[str, list[float]] = field(default_factory=dict)
    to_source: dict[str, list[float]] = field(default_factory=dict)
    wer: dict[str, list[float]] = field(default_factory=dict)
    base: dict[str, str | None] = field(default_factory=dict)

    def add(self, row: str, to_target: float, wer: float, to_source: float = math.nan, base: str | None = None) -> None:
        self.to_target.setdefault(row, []).append(to_target)
        self.to_source.setdefault(row, []).append(to_source)
        self.wer.setdefault(row, []).append(wer)
        self.base[row] = base


def band_spread(mels: list[torch.Tensor]) -> torch.Tensor:
    """(n_mels,) standard deviation of each band over the speech frames of all `mels`."""
    return torch.cat([m[:, speech_frames(m)] for m in mels], dim=1).std(dim=1)


def global_variance(mel: torch.Tensor, target_sd: torch.Tensor, power: float, floor: float) -> torch.Tensor:
    """Scale each band's deviations from its speech-frame mean toward the target's spread."""
    speech = mel[:, speech_frames(mel)]
    mean, sd = speech.mean(dim=1, keepdim=True), speech.std(dim=1, keepdim=True)
    scale = (target_sd[:, None] / sd.clamp_min(1e-3)) ** power
    return (mean + (mel - mean) * scale).clamp_min(floor)


def long_term_spectrum(mels: list[torch.Tensor]) -> torch.Tensor:
    """(n_mels,) mean log-mel over speech frames, level removed: the voice's average spectral shape."""
    ltas = torch.cat([m[:, speech_frames(m)] for m in mels], dim=1).mean(dim=1)
    return ltas - ltas.mean()


def content_latents(vc: VoiceConverter, mel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_mels, F) log-mel -> the content latent means (1, Dc, L) and (L,) bool: which of them are speech."""
    z_c, speech = speech_content(vc.model, mel)
    return z_c.unsqueeze(0), speech


def content_frames(vc: VoiceConverter, mels: list[torch.Tensor]) -> torch.Tensor:
    """(Dc, N): the content latent means of the speech frames of all `mels`."""
    return torch.cat([z[0][:, speech] for z, speech in (content_latents(vc, m) for m in mels)], dim=1)


def standardised(z: torch.Tensor) -> torch.Tensor:
    """(Dc, N) latents -> each channel at zero mean and unit spread over the N frames."""
    return (z - z.mean(dim=1, keepdim=True)) / z.std(dim=1, keepdim=True).clamp_min(1e-4)


def nearest_frames(own: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """(Dc, n) source frames, (Dc, N) target frames -> (n, k) indices of each source frame's k nearest target frames.

    Each side is standardised with its own statistics first, so frames match
    on what they say rather than on whose voice they are in.
    """
    query, keys = standardised(own), standardised(target)
    return torch.cdist(query.T, keys.T).topk(k, dim=-1, largest=False).indices


def match_content(z_c: torch.Tensor, speech: torch.Tensor, target: torch.Tensor, how: str) -> torch.Tensor:
    """Content latents (1, Dc, F') moved, per channel, to the statistics of the target's frames (Dc, N).

    how: "mean" shifts to the target's mean; "quantile" maps each value
    through the source clip's distribution (its speech frames) to the
    target's value at the same quantile; "knn" / "knn50" replace / half-blend each speech
    frame with the mean of its KNN nearest target frames ("knn1": its nearest alone); "wct" maps the mean and the full
    covariance across channels (whitening, then colouring). ("norm", the mean and the sd, is
    the product's `content_norm`: content_stats.py.)
    """
    own = z_c[0][:, speech]
    if how == "mean":
        return z_c - own.mean(dim=1, keepdim=True) + target.mean(dim=1, keepdim=True)
    if how == "wct":
        m_s, m_t = own.mean(dim=1, keepdim=True), target.mean(dim=1, keepdim=True)
        # C_T^(1/2) C_S^(-1/2); a floor on the eigenvalues keeps a flat direction from being stretched without limit.
        w_s, v_s = torch.linalg.eigh(torch.cov(own))
        w_t, v_t = torch.linalg.eigh(torch.cov(target))
        whiten = v_s @ torch.diag(w_s.clamp_min(1e-4).rsqrt()) @ v_s.T
        colour = v_t @ torch.diag(w_t.clamp_min(0).sqrt()) @ v_t.T
        return (colour @ whiten @ (z_c[0] - m_s) + m_t).unsqueeze(0)
    if how.startswith("knn"):
        # kNN-VC in the content latent: each speech frame replaced by (knn) or
        # blended half way with (knn50) the mean of its K nearest target frames.
        ratio = 0.5 if how == "knn50" else 1.0
        nearest = nearest_frames(own, target, 1 if how == "knn1" else KNN)
        out = z_c.clone()
        out[0][:, speech] = (1 - ratio) * own + ratio * target[:, nearest].mean(dim=-1)
        return out
    if how == "quantile":
        out = torch.empty_like(z_c)
        for k in range(z_c.shape[1]):
            src, tgt = own[k].sort().values.numpy(), target[k].sort().values.numpy()
            rank = np.interp(z_c[0, k].numpy(), src, np.linspace(0, 1, len(src)))
            out[0, k] = torch.from_numpy(np.interp(rank, np.linspace(0, 1, len(tgt)), tgt))
        return out
    raise ValueError(f"unknown content matching {how!r}")


def melody_blocks(pitch: torch.Tensor, latent_frames: int, downsample: int) -> torch.Tensor:
    """Intonation (1, 3, F) -> (L, 3, downsample): the mel frames each content latent frame covers."""
    padded = torch.nn.functional.pad(pitch[0], (0, latent_frames * downsample - pitch.shape[-1]))
    return rearrange(padded, "c (l d) -> l c d", d=downsample)


def unit_melody(pitch: torch.Tensor, speech: torch.Tensor, nearest: torch.Tensor, target_blocks: torch.Tensor) -> torch.Tensor:
    """The source's intonation (1, 3, F) with each speech latent frame's melody and voicing taken from its
    nearest target frame: speech (L,) bool, nearest (n_speech,), target_blocks (N, 3, downsample)."""
    blocks = melody_blocks(pitch, speech.numel(), target_blocks.shape[-1]).clone()
    blocks[speech, :2] = target_blocks[nearest, :2]
    return rearrange(blocks, "l c d -> c (l d)")[None, :, : pitch.shape[-1]]


def smooth_melody(pitch: torch.Tensor, frames_sd: float) -> torch.Tensor:
    """Intonation (1, 3, F) with its melody row low-passed by a Gaussian of `frames_sd` frames (row 0 is
    already carried across unvoiced gaps, so the filter sees a continuous line)."""
    out = pitch.clone()
    smooth = gaussian_filter1d(pitch[0, 0].cpu().numpy(), frames_sd, mode="nearest")
    out[0, 0] = torch.from_numpy(smooth).to(out.device)
    return out


def decode_content(
    vc: VoiceConverter, z_c: torch.Tensor, speaker: torch.Tensor, frames: int, pitch: torch.Tensor | None
) -> torch.Tensor:
    """What VAE.convert decodes, from given content latents (1, Dc, F'): -> (n_mels, frames)."""
    speaker = speaker.unsqueeze(0)
    return vc.model.decode(z_c, speaker, frames, vc.model.with_register(pitch, speaker))[0]


VOICED_RUN = 3  # mel frames (35 ms): shorter voiced runs are tracker blips, not syllables
PAUSE_FRAMES = 26  # an unvoiced gap this long (0.3 s) is a pause, not speech
RATE_STRETCH = (2 / 3, 3 / 2)


def speaking_rate(pitches: list[torch.Tensor], frame_s: float) -> float:
    """Voiced onsets per second of speech over intonations (1, 3, F): a syllable-rate proxy.

    Speech is every voiced frame and every unvoiced gap shorter than a pause;
    each voiced run of at least VOICED_RUN frames counts as one onset.
    """
    onsets, speech = 0, 0
    for p in pitches:
        voiced = (p[0, 1] > 0.5).tolist()
        runs: list[tuple[bool, int]] = []  # (voiced, length) in order
        for v in voiced:
            if runs and runs[-1][0] == v:
                runs[-1] = (v, runs[-1][1] + 1)
            else:
                runs.append((v, 1))
        first = next((i for i, (v, _) in enumerate(runs) if v), len(runs))
        last = max((i for i, (v, _) in enumerate(runs) if v), default=-1)
        for v, n in runs[first : last + 1]:
            if v:
                onsets += n >= VOICED_RUN
                speech += n
            elif n < PAUSE_FRAMES:
                speech += n
    return onsets / max(speech * frame_s, 1e-6)


def stretch(x: torch.Tensor, factor: float) -> torch.Tensor:
    """(..., C, F) -> (..., C, round(F * factor)), linear in time (an intonation's voicing row then needs
    thresholding back to 0/1)."""
    frames = max(1, round(x.shape[-1] * factor))
    flat = x.reshape(1, -1, x.shape[-1])
    out = torch.nn.functional.interpolate(flat, size=frames, mode="linear", align_corners=True)
    return out.reshape(*x.shape[:-1], frames)


class Warper:
    """Frequency warping of log-mels: band k takes the value at centre frequency f_k / alpha."""

    def __init__(self, cfg: MelConfig) -> None:
        self.centres = librosa.mel_frequencies(n_mels=cfg.n_mels + 2, fmin=cfg.f_min, fmax=cfg.f_max)[1:-1]

    def __call__(self, mel: torch.Tensor, alpha: float) -> torch.Tensor:
        n = len(self.centres)
        pos = torch.as_tensor(np.interp(self.centres / alpha, self.centres, np.arange(n)), dtype=mel.dtype)
        lo = pos.floor().long().clamp(max=n - 1)
        hi = (lo + 1).clamp(max=n - 1)
        frac = (pos - lo)[:, None]
        return mel[lo] * (1 - frac) + mel[hi] * frac

    def best_alpha(self, mel: torch.Tensor, target_ltas: torch.Tensor) -> float:
        errors = [float(((long_term_spectrum([self(mel, a)]) - target_ltas) ** 2).sum()) for a in WARPS]
        return float(WARPS[int(np.argmin(errors))])


def judge(
    enc: SpeakerEncoder, asr: Transcriber, audio: torch.Tensor, text: str, rate: int, ref: np.ndarray
) -> tuple[float, float]:
    """(similarity to the reference embedding, word error rate of this clip)."""
    errors, words = word_errors(text, asr.transcribe(audio, rate))
    return float(enc.embed(audio, rate) @ ref), errors / max(words, 1)


def print_table(rows: Rows, title: str) -> None:
    """Means per row, and each row against the row it is paired with, per clip."""
    names = list(rows.to_target)
    print(f"\n{title} ({len(rows.to_target[names[0]])} per row)")
    print("| row | similarity to target | WER (mean per clip) | paired with | similarity | WER per clip |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        base = rows.base[name]
        cells = ["", ""]
        if base is not None:
            cells = [difference_cell(paired_difference(m[name], m[base])) for m in (rows.to_target, rows.wer)]
        closer = ""
        if not all(math.isnan(s) for s in rows.to_source[name]):
            share = np.mean([float(t > s) for t, s in zip(rows.to_target[name], rows.to_source[name])])
            closer = f", {share:.3f} closer"
        similarity, wer = np.mean(rows.to_target[name]), np.mean(rows.wer[name])
        print(f"| {name} | {similarity:.3f}{closer} | {wer:.3f} | {base or ''} | {cells[0]} | {cells[1]} |")


def judge_between_voices(
    enc: SpeakerEncoder, vc: VoiceConverter, voices: list[str], clips: dict[str, list[Utterance]], ref: dict[str, np.ndarray]
) -> None:
    """Print the judge's mean similarity of each voice's genuine clips to every voice's reference."""
    print("\nPart 3: genuine clips (rows) against each voice's reference (columns)")
    print("| voice | " + " | ".join(voices) + " |")
    print("| --- |" + " --- |" * len(voices))
    others = []
    for v in voices:
        emb = enc.embed_many([vc.load_audio(u.path) for u in clips[v]], vc.sample_rate)
        sims = {w: float((emb @ ref[w]).mean()) for w in voices}
        others += [sims[w] for w in voices if w != v]
        print(f"| {v} | " + " | ".join(f"{sims[w]:.3f}" for w in voices) + " |")
    print(f"Another voice's reference: mean {np.mean(others):.3f}, range {min(others):.3f}-{max(others):.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--manifest", required=True)
    ap.add_argument("--model", default=None, help="model folder (default: the shipped default)")
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of each target's clips to adapt on")
    ap.add_argument("--sources", type=int, default=2, help="source clips per other held-out voice")
    ap.add_argument("--parts", default="ceiling,corrections", help="which parts to run")
    ap.add_argument("--own", type=int, default=6, help="each target's own unseen clips for the ceiling")
    ap.add_argument("--gv", default="0.5,1", help="global-variance powers A ('' for none)")
    ap.add_argument("--vtln", default="0.5,1", help="VTLN warp fractions W ('' for none)")
    ap.add_argument(
        "--content", default="mean,norm", help="content matchings: mean, norm, quantile, wct, knn, knn50 ('' for none)"
    )
    ap.add_argument("--retrieval", default="", help="retrieval ratios, each alone and after content norm")
    ap.add_argument(
        "--f0-spread",
        action="store_true",
        help="also the source's melody scaled to the target's F0 spread, alone and after content norm",
    )
    ap.add_argument("--zero-shot", action="store_true", help="also zero-shot conversion, alone and with content norm")
    ap.add_argument(
        "--rate",
        action="store_true",
        help="also the source stretched to the target's speaking rate, alone and after content norm + f0 spread",
    )
    ap.add_argument(
        "--melody", default="", help="melody variants: flat, smooth, unit (content and melody from T's nearest frames)"
    )
    ap.add_argument("--prematched", type=float, default=0.0, help="also adapt with rec/prematched at this weight (0: not)")
    ap.add_argument("--json", default=None, help="also write every score here")
    args = ap.parse_args()
    parts = set(args.parts.split(","))
    gv_powers = [float(a) for a in args.gv.split(",") if a]
    vtln_fractions = [float(w) for w in args.vtln.split(",") if w]
    matchings = [m for m in args.content.split(",") if m]
    ratios = [float(r) for r in args.retrieval.split(",") if r]
    melodies = [m for m in args.melody.split(",") if m]
    if unknown := set(melodies) - {"flat", "smooth", "unit"}:
        raise SystemExit(f"--melody: unknown variant(s) {', '.join(sorted(unknown))}; choose from flat, smooth, unit")

    vc = voicevae.load(args.model, vocoder="fast")
    rate, floor = vc.sample_rate, vc.model.floor
    by_voice: dict[str, list[Utterance]] = {}
    for u in read_manifest(args.manifest, split="test_voice"):
        by_voice.setdefault(u.speaker, []).append(u)
    voices = sorted(by_voice)
    if len(voices) < 2:
        raise SystemExit(f"{args.manifest}: needs at least 2 held-out voices (test_voice split), found {len(voices)}")
    enc, asr = SpeakerEncoder(), Transcriber()
    ref: dict[str, np.ndarray] = {}
    for v in voices:
        e = enc.embed_many([vc.load_audio(u.path) for u in by_voice[v][-JUDGE_CLIPS:]], rate).mean(0)
        ref[v] = e / np.linalg.norm(e)
    sources = {v: by_voice[v][-JUDGE_CLIPS - args.sources : -JUDGE_CLIPS] for v in voices}
    pool = {v: by_voice[v][: -JUDGE_CLIPS - args.sources] for v in voices}
    warp = Warper(vc.model.mel_config)

    if "voices" in parts:
        judge_between_voices(enc, vc, voices, {v: sources[v] + pool[v][: args.own] for v in voices}, ref)

    ceiling, corrections = Rows(), Rows()
    spread_ratio: list[float] = []
    alphas: list[float] = []
    f0_ratios: list[float] = []  # the target's F0 spread over each source's
    stored_ratios: list[float] = []  # the stored (pYIN) spread over the measured (RAPT) one
    stretches: list[float] = []  # the speaking-rate stretch of each conversion
    frame_s = vc.model.mel_config.hop_length / rate
    down = vc.model.config.downsample
    for t in tqdm(voices if parts & {"ceiling", "corrections"} else (), desc="targets"):
        clips = budget_clips(pool[t], args.budget)
        own = (sources[t] + pool[t][len(clips) :])[: args.own]
        name = f"{t}_adapted"
        adapted = vc.adapt([u.path for u in clips], name, progress=False)
        if args.prematched:
            config = AdaptConfig()
            config.lambdas["rec/prematched"] = args.prematched
            prematched = vc.adapt([u.path for u in clips], name, config=config, progress=False)
        with torch.no_grad():
            z_t = adapted.target_vector(name)
            target_mels = [vc.mel(vc.load_audio(u.path)) for u in clips]
            target_sd, target_ltas = band_spread(target_mels), long_term_spectrum(target_mels)
            target_content = content_frames(adapted, target_mels)
            if "unit" in melodies:
                # T's melody and voicing per content latent frame, in target_content's order.
                target_blocks = torch.cat(
                    [
                        melody_blocks(adapted.intonation(vc.load_audio(u.path), m.shape[-1]), len(speech), down)[speech]
                        for u, m in zip(clips, target_mels)
                        # The speech frames content_frames kept (L = ceil(F / downsample)), without encoding again.
                        for speech in [speech_latents(m, math.ceil(m.shape[-1] / down), down)]
                    ]
                )
            matching = adapted.matching_for(name)
            if args.f0_spread:
                # T's melody spread (octaves) as f0_spread reads it (RAPT, stored by the adaptation),
                # and pYIN's pooled spread, which the vector file also stores.
                target_spread = adapted.target_spread(name)
                stored_spread = adapted.target_f0(name)["std_semitones"] / 12
                stored_ratios.append(stored_spread / target_spread)
            if args.rate:
                target_rate = speaking_rate(
                    [adapted.intonation(vc.load_audio(u.path), m.shape[-1]) for u, m in zip(clips, target_mels)], frame_s
                )

            for u in own if "ceiling" in parts else ():
                audio = vc.load_audio(u.path)
                outputs = {
                    "recordings": audio,
                    "vocoded": vc.vocode_many([vc.mel(audio)])[0],
                    "shipped model, resynthesised": vc.resynthesize(audio),
                    "adapted model, resynthesised": adapted.resynthesize(audio),
                    "adapted model, converted to T": adapted.convert(audio, name),
                }
                previous = None
                for row, out in outputs.items():
                    ceiling.add(row, *judge(enc, asr, out, u.text, rate, ref[t]), base=previous)
                    previous = row

            for u in (u for v in voices if v != t for u in sources[v]) if "corrections" in parts else ():
                audio = vc.load_audio(u.path)
                mel = vc.mel(audio)
                frames = mel.shape[-1]
                pitch = adapted.intonation(audio, frames)
                converted = adapted.decode_with_speaker(mel, z_t, pitch)
                spread_ratio.append(float((target_sd / band_spread([converted])).mean()))
                alpha = warp.best_alpha(mel, target_ltas)
                alphas.append(alpha)
                # row -> (its log-mel, the row it is paired with)
                mels: dict[str, tuple[torch.Tensor, str | None]] = {"adapted": (converted, None)}
                for a in gv_powers:
                    mels[f"adapted + gv {a:g}"] = (global_variance(converted, target_sd, a, floor), "adapted")
                for w in vtln_fractions:
                    mels[f"adapted + vtln {w:g}"] = (adapted.decode_with_speaker(warp(mel, alpha**w), z_t, pitch), "adapted")
                z_c, speech = content_latents(adapted, mel)
                for how in matchings:
                    if how == "norm":  # the product's content_norm, T's statistics from its cleaned clips
                        normed = adapted.convert_mel(audio, name, content_norm=1.0)
                    else:
                        normed = decode_content(adapted, match_content(z_c, speech, target_content, how), z_t, frames, pitch)
                    mels[f"adapted + content {how}"] = (normed, "adapted")
                for r in ratios:
                    mels[f"adapted + retrieval {r:g}"] = (matching.blend(adapted.model, converted, r), "adapted")
                    mels[f"adapted + content norm + retrieval {r:g}"] = (
                        adapted.convert_mel(audio, name, retrieval=r, content_norm=1.0),
                        f"adapted + retrieval {r:g}",
                    )
                if args.f0_spread:
                    source_spread = max(intonation_spread(pitch) or 0.0, 1e-3)
                    f0_ratios.append(target_spread / source_spread)
                    mels["adapted + f0 spread"] = (adapted.convert_mel(audio, name, f0_spread=1.0), "adapted")
                    stored = scale_melody(pitch, stored_spread / source_spread)
                    mels["adapted + f0 spread, stored"] = (adapted.decode_with_speaker(mel, z_t, stored), "adapted + f0 spread")
                    mels["adapted + content norm + f0 spread"] = (
                        adapted.convert_mel(audio, name, content_norm=1.0, f0_spread=1.0),
                        "adapted + content norm",
                    )
                if args.rate:
                    factor = speaking_rate([pitch], frame_s) / target_rate
                    factor = min(max(factor, RATE_STRETCH[0]), RATE_STRETCH[1])
                    stretches.append(factor)
                    mel_s, pitch_s = stretch(mel, factor), stretch(pitch, factor)
                    pitch_s[0, 1] = (pitch_s[0, 1] > 0.5).float()
                    mels["adapted + rate"] = (adapted.decode_with_speaker(mel_s, z_t, pitch_s), "adapted")
                    affine = content_affine(adapted._content_stats_of(mel_s), adapted.content_stats_for(name), 1.0)
                    pitch_s = adapted._spread_melody(pitch_s, name, 1.0, None)  # as f0_spread=1 does it
                    mels["adapted + content norm + f0 spread + rate"] = (
                        adapted.decode_with_speaker(mel_s, z_t, pitch_s, content_affine=affine),
                        "adapted + content norm + f0 spread" if args.f0_spread else "adapted + rate",
                    )
                for how in melodies:
                    if how == "flat":
                        flat = pitch.clone()
                        flat[0, 0] = 0.0
                        mels["adapted + melody flat"] = (adapted.decode_with_speaker(mel, z_t, flat), "adapted")
                    elif how == "smooth":
                        smooth = smooth_melody(pitch, MELODY_SMOOTH_S / frame_s)
                        mels["adapted + melody smooth"] = (adapted.decode_with_speaker(mel, z_t, smooth), "adapted")
                    else:
                        nearest = nearest_frames(z_c[0][:, speech], target_content, 1)[:, 0]
                        unit = z_c.clone()
                        unit[0][:, speech] = target_content[:, nearest]
                        mels["adapted + content knn1"] = (decode_content(adapted, unit, z_t, frames, pitch), "adapted")
                        mels["adapted + content knn1 + melody"] = (
                            decode_content(adapted, unit, z_t, frames, unit_melody(pitch, speech, nearest, target_blocks)),
                            "adapted + content knn1",
                        )
                if args.prematched:
                    knn = match_content(z_c, speech, target_content, "knn")
                    mels["adapted + content knn"] = (decode_content(adapted, knn, z_t, frames, pitch), "adapted")
                    z_p = prematched.target_vector(name)
                    mels["prematched"] = (prematched.decode_with_speaker(mel, z_p, pitch), "adapted")
                    mels["prematched + content knn"] = (decode_content(prematched, knn, z_p, frames, pitch), "prematched")
                if args.zero_shot:
                    clip_paths = [u.path for u in clips]
                    mels["zero-shot"] = (vc.convert_mel(audio, clip_paths), None)
                    mels["zero-shot + content norm"] = (vc.convert_mel(audio, clip_paths, content_norm=1.0), "zero-shot")
                outs = adapted.vocode_many([m for m, _ in mels.values()])
                for (row, (_, base)), out in zip(mels.items(), outs):
                    to_t, wer = judge(enc, asr, out, u.text, rate, ref[t])
                    to_s = float(enc.embed(out, rate) @ ref[u.speaker])
                    corrections.add(row, to_t, wer, to_s, base=base)
                    if row == "prematched + content knn":  # the same matching, on the two adaptations
                        corrections.add(f"{row} (vs adapted)", to_t, wer, to_s, base="adapted + content knn")
                    how = row.removeprefix("adapted + content ")
                    if how in matchings and how != "norm" and "norm" in matchings:
                        # The same scores again, paired with the product's content_norm.
                        corrections.add(f"{row} (vs norm)", to_t, wer, to_s, base="adapted + content norm")

    if "ceiling" in parts:
        print_table(ceiling, f"Part 1: each target's own unseen clips, {args.budget:g} s adaptation")
    if "corrections" in parts:
        print_table(corrections, "Part 2: cross conversions and corrections")
        print(
            f"\nT's band spread over the plain conversion's: {np.mean(spread_ratio):.3f} (mean over bands and conversions); "
            f"VTLN alphas chosen: median {np.median(alphas):.3f}, range {min(alphas):.3f}-{max(alphas):.3f}"
        )
        if f0_ratios:
            print(
                f"T's F0 spread over the source's: median {np.median(f0_ratios):.2f}, range {min(f0_ratios):.2f}-{max(f0_ratios):.2f}"
            )
            print(f"T's stored (pYIN) F0 spread over its RAPT one, per target: {', '.join(f'{r:.2f}' for r in stored_ratios)}")
        if stretches:
            print(
                f"Speaking-rate stretch (source's rate over T's): median {np.median(stretches):.2f}, "
                f"range {min(stretches):.2f}-{max(stretches):.2f}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"ceiling": ceiling.__dict__, "corrections": corrections.__dict__, "alphas": alphas}, f, indent=1)


if __name__ == "__main__":
    main()
