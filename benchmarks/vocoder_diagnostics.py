"""Where a trained vocoder loses to Griffin-Lim, on unseen synthetic voices.

    .venv/bin/python benchmarks/vocoder_diagnostics.py bands --vocoders griffinlim,fast --limit 10 [--signed]
    .venv/bin/python benchmarks/vocoder_diagnostics.py refine --vocoder fast --iters 0,2,4 [--prior]
    .venv/bin/python benchmarks/vocoder_diagnostics.py windows --vocoders griffinlim,fast --limit 10
    .venv/bin/python benchmarks/vocoder_diagnostics.py steady --vocoders griffinlim,fast,hifigan --limit 10
    .venv/bin/python benchmarks/vocoder_diagnostics.py steadiness --vocoders griffinlim,fast --limit 20

bands: mean |log-mel error| per band at Resemblyzer's own analysis (16 kHz,
25 ms window, 10 ms hop, 40 mels), over the loud frames of each clip (within
6 nats of the clip's loudest band), i.e. where the speaker encoder listens.
With --signed, the mean signed error instead: below zero, the band is too quiet.

windows: the same loudness bias at the front end's own analysis with short,
normal and long windows (512, 1024, 2048 samples), on each clip's loud frames
(the top 30% by energy), for the lowest 3/8 of the bands and the rest. Too
quiet in short windows and too loud in long ones means energy spread in time.

steady: each clip's loudest log-mel frame held for 200 frames (a steady
vowel), vocoded. A vocoder that maps the same input frame to the same output
frame, as a convolution at the frame rate does, can only repeat itself every
hop: its output correlates 1.0 with itself one hop later, so it holds only
multiples of rate / hop (86 Hz) and cannot hold the vowel's own pitch.
Printed: that correlation, and the strongest peak below 400 Hz of the output
against the original frame's.

steadiness: does that limit cost anything on speech? The loud frames of
each clip (top 30% by low-band energy) are split into thirds by how much
the input log-mel's lowest 30 bands change over +-2 frames; printed is the
mean signed error of the lowest 15 of 40 bands at a 512-sample window, per
third, from the steadiest to the most changing.

refine: speaker similarity after k Griffin-Lim iterations (momentum 0.99)
started from the trained vocoder's phase, with its predicted magnitude or,
with --prior, the mel-inverse magnitude that Griffin-Lim itself uses.
"""

from __future__ import annotations

import argparse

import librosa
import numpy as np
import torch
from einops import einsum

from voicevae.features import MelFrontend
from voicevae.metrics import SpeakerEncoder
from voicevae.vocoder import VocosVocoder, load_vocoder
from voicevae.vocoder.evaluate import clips_from_source

RATE = 22050


def encoder_logmel(audio: np.ndarray) -> np.ndarray:
    """(T,) at 22.05 kHz -> (40, frames) log-mel as Resemblyzer analyses it."""
    y = librosa.resample(audio, orig_sr=RATE, target_sr=16000)
    return np.log(librosa.feature.melspectrogram(y=y, sr=16000, n_fft=400, hop_length=160, n_mels=40) + 1e-6)


def bands(args: argparse.Namespace, clips, frontend: MelFrontend) -> None:
    for name in args.vocoders.split(","):
        vocoder = load_vocoder(name)
        errors = []
        for clip in clips:
            logmel = frontend(clip.audio[None])
            ref = encoder_logmel(clip.audio[: logmel.shape[-1] * vocoder.hop_length].numpy())
            out = encoder_logmel(vocoder.vocode(logmel)[0].numpy())
            n = min(ref.shape[1], out.shape[1])
            loud = ref[:, :n].max(0) > ref.max() - 6
            error = (out[:, :n] - ref[:, :n])[:, loud]
            errors.append((error if args.signed else np.abs(error)).mean(1))
        per_band = np.mean(errors, 0)
        kind = "signed" if args.signed else "absolute"
        print(f"{name}: mean {kind} {per_band.mean():+.3f}; bands 0-39: " + " ".join(f"{e:+.2f}" for e in per_band))


def windows(args: argparse.Namespace, clips, frontend: MelFrontend) -> None:
    scales = {"512": (512, 128, 40), "1024": None, "2048": (2048, 512, 160)}
    analyses = {k: frontend if v is None else MelFrontend(frontend.config.scaled(*v)) for k, v in scales.items()}
    for name in args.vocoders.split(","):
        vocoder = load_vocoder(name)
        bias: dict[str, list[tuple[float, float]]] = {k: [] for k in analyses}
        for clip in clips:
            logmel = frontend(clip.audio[None])
            out = vocoder.vocode(logmel)
            n = min(out.shape[-1], clip.audio.shape[-1])
            for key, analysis in analyses.items():
                ref, fake = analysis(clip.audio[None, :n])[0], analysis(out[:, :n])[0]  # (n_mels, F)
                energy = ref.exp().sum(0)
                error = (fake - ref)[:, energy >= energy.quantile(0.7)]
                low = ref.shape[0] * 3 // 8
                bias[key].append((float(error[:low].mean()), float(error[low:].mean())))
        cells = [f"{k}: low {np.mean([b[0] for b in v]):+.3f} high {np.mean([b[1] for b in v]):+.3f}" for k, v in bias.items()]
        print(f"{name}, signed log-mel error on loud frames by window; " + "; ".join(cells))


def steady(args: argparse.Namespace, clips, frontend: MelFrontend) -> None:
    hop, n_fft = frontend.config.hop_length, 4096
    freqs = np.fft.rfftfreq(n_fft, 1 / RATE)
    low = freqs < 400

    def low_peak(audio: np.ndarray) -> float:
        spectrum = np.abs(np.fft.rfft(audio[:n_fft] * np.hanning(n_fft)))
        return float(freqs[low][spectrum[low].argmax()])

    for name in args.vocoders.split(","):
        vocoder = load_vocoder(name)
        corr, pitch_error = [], []
        for clip in clips:
            logmel = frontend(clip.audio[None])
            loudest = int(logmel.exp().sum(1).argmax())
            out = vocoder.vocode(logmel[..., loudest : loudest + 1].repeat(1, 1, 200))[0].numpy()
            middle = out[50 * hop : 150 * hop]  # away from the edges
            corr.append(float(np.corrcoef(middle[:-hop], middle[hop:])[0, 1]))
            original = clip.audio.numpy()[max(loudest * hop - n_fft // 2, 0) :]
            pitch_error.append(abs(low_peak(middle) - low_peak(original)))
        print(
            f"{name}: correlation one hop apart {np.mean(corr):.3f} (min {np.min(corr):.3f}); "
            f"|strongest peak below 400 Hz - original's| {np.mean(pitch_error):.1f} Hz"
        )


def steadiness(args: argparse.Namespace, clips, frontend: MelFrontend) -> None:
    short = MelFrontend(frontend.config.scaled(512, frontend.config.hop_length, 40))
    for name in args.vocoders.split(","):
        vocoder = load_vocoder(name)
        change, error = [], []
        for clip in clips:
            logmel = frontend(clip.audio[None])
            n = logmel.shape[-1] * vocoder.hop_length
            ref, fake = short(clip.audio[None, :n])[0], short(vocoder.vocode(logmel)[:, :n])[0]
            frames = min(ref.shape[-1], fake.shape[-1], logmel.shape[-1])
            energy = ref[:15, :frames].exp().sum(0)
            loud = energy >= energy.quantile(0.7)
            step = (logmel[0, :30, 2:] - logmel[0, :30, :-2]).abs().mean(0)
            step = torch.cat([step[:1], step, step[-1:]])[:frames]
            change.append(step[loud])
            error.append((fake[:15, :frames] - ref[:15, :frames]).mean(0)[loud])
        change, error = torch.cat(change).numpy(), torch.cat(error).numpy()
        thirds = np.array_split(error[np.argsort(change)], 3)
        print(
            f"{name}: {len(error)} loud frames, low-band signed error steadiest -> most changing third: "
            + " ".join(f"{t.mean():+.3f}" for t in thirds)
            + f"; correlation with change {np.corrcoef(change, error)[0, 1]:+.3f}"
        )


def refine(args: argparse.Namespace, clips, frontend: MelFrontend) -> None:
    vocoder = load_vocoder(args.vocoder)
    if not isinstance(vocoder, VocosVocoder) or vocoder.head.inverse_fb is None:
        raise SystemExit(f"--vocoder {args.vocoder}: needs a trained vocoder with mel_prior: true")
    iters = [int(k) for k in args.iters.split(",")]
    encoder = SpeakerEncoder()
    scores: dict[int, list[float]] = {k: [] for k in iters}
    alpha = 0.99 / (1 + 0.99)  # the fast Griffin-Lim momentum of torchaudio
    for clip in clips:
        logmel = frontend(clip.audio[None])
        ref = clip.audio[: logmel.shape[-1] * vocoder.hop_length]
        mag, phase = vocoder.polar(logmel)
        if args.prior:
            mag = einsum(vocoder.head.inverse_fb, logmel.exp(), "m k, b m f -> b k f").clamp_min(0)
        for k in iters:
            spec, previous = torch.polar(mag, phase), torch.zeros_like(mag, dtype=torch.complex64)
            for _ in range(k):
                rebuilt = frontend.stft(vocoder.synthesize(spec.abs(), spec.angle()))
                angles = rebuilt - alpha * previous
                previous = rebuilt
                spec = mag * angles / angles.abs().clamp_min(1e-16)
            out = vocoder.synthesize(spec.abs(), spec.angle())[0]
            scores[k].append(encoder.similarity(ref, out, RATE))
    magnitude = "mel-inverse" if args.prior else "predicted"
    for k in iters:
        print(f"{args.vocoder}, {magnitude} magnitude, {k} iterations: speaker sim {np.mean(scores[k]):.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=("bands", "windows", "steady", "steadiness", "refine"))
    parser.add_argument(
        "--vocoders", default="griffinlim,fast", help="bands, windows, steady, steadiness: comma-separated vocoders"
    )
    parser.add_argument("--signed", action="store_true", help="bands: signed error (loudness bias) instead of absolute")
    parser.add_argument("--vocoder", default="fast", help="refine: the trained vocoder")
    parser.add_argument("--iters", default="0,2,4", help="refine: Griffin-Lim iterations to try")
    parser.add_argument("--prior", action="store_true", help="refine: use the mel-inverse magnitude")
    parser.add_argument("--manifest", default="data/synthetic/manifest.csv")
    parser.add_argument("--split", default="test_voice")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clips = clips_from_source(args.manifest, RATE, args.split, args.limit)
    with torch.no_grad():
        {"bands": bands, "windows": windows, "steady": steady, "steadiness": steadiness, "refine": refine}[args.what](
            args, clips, MelFrontend()
        )


if __name__ == "__main__":
    main()
