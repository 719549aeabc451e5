"""`voicevae export`: the converter as one TorchScript or ONNX graph that runs without voicevae.

    voicevae export --model M --vocoder fast --format torchscript -o voice.ts
    voicevae export --model M --vocoder fast --format onnx -o voice.onnx
    voicevae export --format onnx --detail 0.5 -o voice.onnx     # the source's detail, fixed in the graph

The graph is `ExportableConverter`:

    audio (1, T), target (1, Ds), strength (1,) -> audio (1, F * hop),  F = T // hop

and for a model that reads the source's intonation (`model.pitch_input`) a
fourth input, `pitch` (1, 3, F): F0 tracking (RAPT, a dynamic programme in
C) is not a graph operation, so the caller computes it, with
`voicevae.pitch.intonation(audio, sample_rate, F, hop_length)` or the few
lines of pysptk the JSON file's "pitch" entry spells out.

front end (reflect padding, STFT, mel filterbank, log) -> speaker and content
encoders -> z = z_source + strength * (target - z_source) -> decoder -> fast
vocoder, with the silent tail `vocode_many` adds. `--detail D` adds D times
the source's log-mel minus its resynthesis before the vocoder, as
`convert(..., detail=D)` does: a second decode, so D is fixed when exporting
and a graph without it pays nothing. Beside the graph goes a
JSON file (OUT.json, e.g. voice.onnx.json) with the sample rate, the latent size and every
voice's vector, so a caller needs only torch or onnxruntime:

    net = torch.jit.load("voice.ts")
    out = net(audio, torch.tensor([voices["flite_slt"]]), torch.tensor([1.0]))

    sess = onnxruntime.InferenceSession("voice.onnx")
    out, = sess.run(None, {"audio": audio, "target": target, "strength": strength})

The STFT and the vocoder's inverse STFT are written as convolutions with
fixed Fourier bases here, not torch.stft / torch.fft, because ONNX export and
onnxruntime do not take complex tensors; they agree with the FFT path to
float rounding (tests/test_export.py). For clips up to the converter's
windows (about 5 s for the vocoder) the graph gives `VoiceConverter.convert`'s
samples; longer clips run in one piece where `convert` runs in windows.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import atomic_write
from .features import MelFrontend
from .model import VAE
from .pitch import INTONATION_CHANNELS
from .postfilter import add_argument as add_postfilter_argument
from .postfilter import check as check_postfilter
from .postfilter import sharpen
from .streaming import check_fraction
from .vocoder import VocosVocoder

FORMATS = ("torchscript", "onnx")
ONNX_OPSET = 18


def fourier_basis(n_fft: int, window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Windowed real DFT as convolution weights: (n_freqs, 1, n_fft) cosines and (negated) sines."""
    n = torch.arange(n_fft, dtype=torch.float64)
    k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
    angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft
    w = window.double()[None, :]
    return (torch.cos(angle) * w)[:, None].float(), (-torch.sin(angle) * w)[:, None].float()


class ConvLogMel(nn.Module):
    """`MelFrontend` as real convolutions: audio (B, T) -> log-mel (B, n_mels, T // hop)."""

    basis: torch.Tensor  # buffers, declared for the type checker
    fb: torch.Tensor

    def __init__(self, frontend: MelFrontend) -> None:
        super().__init__()
        c = frontend.config
        self.pad, self.hop, self.floor = frontend.pad, c.hop_length, c.log_floor
        window = frontend.mel.spectrogram.window
        if window.numel() != c.n_fft:
            raise ValueError(f"export needs win_length == n_fft, got {window.numel()} and {c.n_fft}")
        cos, sin = fourier_basis(c.n_fft, window)
        self.register_buffer("basis", torch.cat([cos, sin]), persistent=False)  # (2 * n_freqs, 1, n_fft)
        self.register_buffer("fb", frontend.mel.mel_scale.fb.T.contiguous(), persistent=False)  # (n_mels, n_freqs)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = F.pad(audio.unsqueeze(1), (self.pad, self.pad), mode="reflect")
        real, imag = F.conv1d(x, self.basis, stride=self.hop).chunk(2, dim=1)  # (B, n_freqs, F) each
        mel = torch.matmul(self.fb, torch.sqrt(real * real + imag * imag))
        return torch.log(torch.clamp(mel, min=self.floor))


class ConvISTFT(nn.Module):
    """The Vocos head's inverse STFT (vocoder/vocos.py) as a transposed convolution.

    magnitude, phase (B, n_freqs, F) -> audio (B, F * hop). irfft's weights
    (1/N for the DC and Nyquist bins, 2/N for the rest; the sine basis is zero
    at those two, so their imaginary parts drop out as in irfft) and the
    synthesis window are folded into the basis.
    """

    basis: torch.Tensor  # buffers, declared for the type checker
    window_sq: torch.Tensor

    def __init__(self, n_fft: int, hop: int, window: torch.Tensor) -> None:
        super().__init__()
        cos, sin = fourier_basis(n_fft, window)
        weight = torch.full((n_fft // 2 + 1, 1, 1), 2.0 / n_fft)
        weight[0], weight[-1] = 1.0 / n_fft, 1.0 / n_fft
        self.register_buffer("basis", torch.cat([cos * weight, sin * weight]), persistent=False)
        self.register_buffer("window_sq", window.square()[None, None, :].float(), persistent=False)  # (1, 1, n_fft)
        self.n_fft, self.hop, self.pad = n_fft, hop, (n_fft - hop) // 2

    def forward(self, mag: torch.Tensor, phase: torch.Tensor) -> torch.Tensor:
        spec = torch.cat([mag * torch.cos(phase), mag * torch.sin(phase)], dim=1)
        audio = F.conv_transpose1d(spec, self.basis, stride=self.hop)[:, 0]
        # The overlap-added squared window, which torch.istft divides by too.
        envelope = F.conv_transpose1d(torch.ones_like(mag[:1, :1]), self.window_sq, stride=self.hop)[0, 0]
        frames = mag.shape[-1]
        stop = self.pad + frames * self.hop
        return audio[:, self.pad : stop] / envelope[self.pad : stop].clamp_min(1e-11)


class ExportableConverter(nn.Module):
    """audio (1, T), target (1, Ds), strength (1,) -> converted audio (1, F * hop); see the module docstring."""

    def __init__(
        self, model: VAE, vocoder: VocosVocoder, frontend: MelFrontend, detail: float = 0.0, postfilter: float = 0.0
    ) -> None:
        super().__init__()
        check_fraction(detail, "detail")
        self.detail = detail
        check_postfilter(postfilter)
        self.postfilter = postfilter
        if not isinstance(vocoder, VocosVocoder):
            raise ValueError(f"export takes the fast vocoder (or a Vocos checkpoint), not {type(vocoder).__name__}")
        self.frontend = ConvLogMel(frontend)
        self.model = model.eval()
        self.vocoder = vocoder.eval()
        self.istft = ConvISTFT(model.mel_config.n_fft, model.mel_config.hop_length, vocoder.head.istft.window)
        self.tail = vocoder.batch_tail_frames
        self.hop = model.mel_config.hop_length

    def forward(
        self, audio: torch.Tensor, target: torch.Tensor, strength: torch.Tensor, pitch: torch.Tensor | None = None
    ) -> torch.Tensor:
        m = self.model
        mel = self.frontend(audio)
        xn, frames = m.prepare(mel)
        z_source = m.speaker_encoder(xn).mu
        z = z_source + strength[:, None] * (target - z_source)
        if pitch is not None:
            # Unvoiced frames past the end, a fixed number: the decoder crops the contour to its
            # padded length, a slice a traced graph keeps dynamic (a pad it computed would be frozen).
            pitch = F.pad(pitch, (0, m.config.downsample))
        # A harmonic source speaks the source's melody at the converted voice's register, as VAE.convert does.
        content = m._point_content(m.content_encoder(xn))
        converted = sharpen(m.decode(content, z, frames, m.with_register(pitch, z)), self.postfilter)
        if self.detail:
            # What the VAE loses of the source, at its own latent and register (VoiceConverter.source_detail).
            own = sharpen(m.decode(content, z_source, frames, pitch), self.postfilter)
            converted = converted + self.detail * (mel - own)
        # The silence vocode_many puts after a clip, so its end is vocoded as offline.
        padded = F.pad(converted, (0, self.tail), value=self.model.floor)
        mag, phase = self.vocoder.polar(padded)
        out = self.istft(mag, phase)[:, : frames * self.hop]
        return out.clamp(-1.0, 1.0)


def example_inputs(vc, seconds: float = 2.0) -> tuple[torch.Tensor, ...]:
    """A speech-length input for tracing: (1, T) noise, (1, Ds) zeros, (1,) ones[, (1, 3, F) a voiced contour]."""
    generator = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(1, int(seconds * vc.sample_rate), generator=generator)
    inputs: tuple[torch.Tensor, ...] = (audio, torch.zeros(1, vc.model.config.speaker_dim), torch.ones(1))
    if vc.model.config.pitch_input:
        frames = audio.shape[-1] // vc.model.mel_config.hop_length
        pitch = torch.zeros(1, INTONATION_CHANNELS, frames)
        pitch[:, 1], pitch[:, 2] = 1.0, 7.0  # voiced at 128 Hz, so the harmonic source is in the traced graph
        inputs = (*inputs, pitch)
    return inputs


# How a caller without voicevae makes the `pitch` input (pitch.intonation, in words and code).
# Row 2 is read only by a graph that keeps the source's detail (it decodes the source at its own register).
REGISTER_ROW = {
    False: "row 2: that mean (any value: the graph replaces it with the target's register)",
    True: "row 2: that mean (read: this graph keeps the source's detail, decoding the source at its own register)",
}


def pitch_recipe(detail: bool) -> str:
    return (
        "pitch (1, 3, F), F = T // hop_length, row 0: log2 F0 minus its mean over the voiced frames (octaves), "
        f"linearly interpolated across unvoiced frames; row 1: 1 where voiced, else 0; {REGISTER_ROW[detail]}. "
        "F0: pysptk.rapt(x16k * 32767, fs=16000, hopsize=160, "
        "min=50, max=600, otype='f0') on the audio resampled to 16 kHz (frame j at j * 10 ms, 0 = unvoiced); "
        "mel frame f is at (f + 0.5) * hop_length / sample_rate seconds; row 0 = numpy.interp(mel times, voiced "
        "track times, log2 F0 - mean); row 1 = numpy.interp(mel times, track times, voiced) > 0.5"
    )


def export(vc, out: str | Path, fmt: str, force: bool = False, detail: float = 0.0) -> tuple[Path, Path]:
    """Write the converter graph to `out` and its voices to `out`.json; returns both paths.

    detail: the source detail the graph keeps (convert's `detail`), fixed in it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    sidecar = out.with_name(out.name + ".json")
    for path in (out, sidecar):
        if path.exists() and not force:
            raise FileExistsError(f"{path}: exists; pass --force to overwrite")
    # Copies on the CPU: the caller's converter stays where it is.
    model, vocoder = copy.deepcopy(vc.model).cpu(), copy.deepcopy(vc.vocoder).cpu()
    net = ExportableConverter(model, vocoder, MelFrontend(vc.model.mel_config), detail, vc.postfilter).eval()
    inputs = example_inputs(vc)
    with torch.no_grad(), warnings.catch_warnings(), atomic_write(out, out.suffix) as tmp:
        # Tracing warns about every shape-dependent Python value; those were checked by hand (tests/test_export.py).
        warnings.simplefilter("ignore")
        if fmt == "torchscript":
            traced = torch.jit.trace(net, inputs, check_trace=False)
            torch.jit.save(traced, str(tmp))
        else:
            _onnx(net, inputs, Path(tmp))
    voices = {name: vc.vectors.speaker(name).tolist() for name in vc.speakers} if vc.vectors is not None else {}
    meta = {
        "format": fmt,
        "sample_rate": vc.sample_rate,
        "hop_length": vc.model.mel_config.hop_length,
        "speaker_dim": vc.model.config.speaker_dim,
        "detail": detail,
        "postfilter": vc.postfilter,
        "inputs": {"audio": "(1, T) float32 mono", "target": "(1, speaker_dim) float32", "strength": "(1,) float32"}
        | ({"pitch": pitch_recipe(bool(detail))} if vc.model.config.pitch_input else {}),
        "output": "(1, (T // hop_length) * hop_length) float32 in [-1, 1]",
        "voices": voices,
    }
    with atomic_write(sidecar, ".json") as tmp:
        Path(tmp).write_text(json.dumps(meta, indent=1))
    return out, sidecar


def _onnx(net: nn.Module, inputs: tuple[torch.Tensor, ...], path: Path) -> None:
    try:
        import onnx  # noqa: F401  (torch's exporter writes the file with it)
    except ImportError as e:
        raise ValueError("ONNX export needs the onnx package: pip install 'voicevae[export]'") from e
    # The TorchScript-based exporter (dynamo=False) takes the traced graph's
    # dynamic lengths as they are and needs no onnxscript.
    torch.onnx.export(
        net,
        inputs,
        str(path),
        input_names=["audio", "target", "strength", "pitch"][: len(inputs)],
        output_names=["converted"],
        dynamic_axes={"audio": {1: "samples"}, "pitch": {2: "frames"}, "converted": {1: "out_samples"}}
        if len(inputs) == 4
        else {"audio": {1: "samples"}, "converted": {1: "out_samples"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="model.pt or a model folder (default: the shipped model)")
    p.add_argument("--vocoder", default="fast", help="fast or a Vocos-style vocoder checkpoint (default fast)")
    p.add_argument("--format", choices=FORMATS, required=True)
    p.add_argument("-o", "--out", required=True, help="the graph file; its voices go beside it in OUT.json")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--detail", type=float, default=0.0, help="0..1: keep this much of the source's detail (fixed in the graph)")
    add_postfilter_argument(p)


def run(args: argparse.Namespace) -> int:
    from .api import load

    # Settings first, before seconds of loading the model.
    check_fraction(args.detail, "--detail")
    check_postfilter(args.postfilter, "--postfilter")
    if args.vocoder in ("hifigan", "griffinlim"):
        raise ValueError(f"--vocoder {args.vocoder}: export takes the fast vocoder or a Vocos checkpoint")
    vc = load(args.model, vocoder=args.vocoder, device="cpu", postfilter=args.postfilter)
    graph, sidecar = export(vc, args.out, args.format, force=args.force, detail=args.detail)
    print(f"wrote {graph} and {sidecar} ({len(vc.speakers)} voices)")
    return 0
