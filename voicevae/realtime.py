"""Live conversion: blocks of input samples in, blocks of converted samples out, at a fixed delay.

    stream = vc.stream(target="flite_slt", block_ms=35)
    out = stream.process(block)      # as many samples as went in, in whole blocks
    tail = stream.flush()            # at the end: what is still owed, `delay` samples and any partial block

Each block runs the stages of `VoiceConverter.convert` on a sliding window:

    samples --MelStream--> log-mel history --VAE window--> converted history --vocoder window--> samples

Why windows and not cached convolution states: the content encoder and the
decoder normalise each channel over time (instance norm, AdaIN), so every
activation depends on the whole window; a cached state would be stale one
block later. What is held is the input each stage needs instead: the last
`history` frames of log-mel and of converted log-mel, recomputed each block.
Both networks look ahead too (their convolutions are centred: about 25 frames
for the VAE and 27 for the fast vocoder), which a live path cannot wait for.
The stream gives each only `lookahead` frames of the future and pads the rest
by repeating its last frame, so the newest frames are estimates that offline
conversion computes with full context; tests/test_realtime.py bounds how far
the two differ, and benchmarks/realtime_latency.py measures it per setting.

Timing (all in samples at the model rate, `hop` samples per mel frame):
- the log-mel frame f covers samples [f * hop, (f + 1) * hop) but its analysis
  window reaches (n_fft - hop) / 2 samples further: 2 frames at the defaults;
- the VAE emits frame f once frames up to f + vae_lookahead are in;
- the vocoder emits the samples of frame f once converted frames up to
  f + vocoder_lookahead are in.
So output sample n is input sample n - delay, delay = (2 + vae_lookahead +
vocoder_lookahead) * hop, and the algorithmic latency (what a listener waits
beyond compute) is a block plus that delay: `latency_ms`.

A model that reads the source's intonation (`model.pitch_input`) gets it
from F0 tracked as the samples come (`pitch.F0Stream`: RAPT over the recent
samples, each frame settled once half a second after it is in). The melody
is relative to the mean F0 of the stream so far, where offline conversion
uses the whole clip's: the first second or so of a stream is measured
against a mean still moving, and the harmonic source follows it.
"""

from __future__ import annotations

import math
import warnings
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .pitch import INTONATION_CHANNELS, F0Stream, contour
from .streaming import FrameBuffer, MelStream, check_fraction

if TYPE_CHECKING:
    from .api import VoiceConverter
    from .model import VAE


class StreamingConverter:
    """Block-by-block conversion to one fixed speaker latent; see the module docstring.

    speaker: the decoder's speaker latent (Ds,), fixed for the stream.
    block_frames: mel frames per block (block = block_frames * hop samples).
    vae_history / vocoder_history: frames of past context each network sees.
    vae_lookahead / vocoder_lookahead: frames of future each waits for.
    extend: frames appended past the newest one (copies of it) before each
    network runs, so their zero padding is further from the frames kept.
    detail: as VoiceConverter.convert_mel (source_detail), per window: each
    block adds D times what the VAE loses of its input window (a second
    decode, with the speaker's own latent and register).
    own: that latent (1, Ds) or (Ds,); None estimates it from the stream as
    it comes, while the detail is on: the mean of the speaker encoder over
    spans of `vae_history` frames (0.74 s at the defaults; offline conversion
    encodes a clip whole, or in 24 s chunks), and until the first span, the
    window so far.
    """

    def __init__(
        self,
        vc: VoiceConverter,
        speaker: torch.Tensor,
        block_frames: int = 3,
        vae_history: int = 64,
        vocoder_history: int = 40,
        vae_lookahead: int = 1,
        vocoder_lookahead: int = 1,
        extend: int = 4,
        frozen: bool = True,
        detail: float = 0.0,
        own: torch.Tensor | None = None,
    ) -> None:
        for name, value, low in (
            ("block_frames", block_frames, 1),
            ("vae_history", vae_history, 8),
            ("vocoder_history", vocoder_history, 8),
            ("vae_lookahead", vae_lookahead, 0),
            ("vocoder_lookahead", vocoder_lookahead, 0),
            ("extend", extend, 0),
        ):
            if not isinstance(value, int) or value < low:
                raise ValueError(f"stream: {name} must be an integer >= {low}, got {value!r}")
        self.vc = vc
        # The speaker's own latent, for the detail: given, or estimated from the stream as it comes.
        self.fixed_own = None if own is None else own.to(vc.device).reshape(1, -1)
        self.speaker = speaker.to(vc.device).reshape(1, -1)
        self.hop = vc.model.mel_config.hop_length
        self.block = block_frames * self.hop
        self.vae_history, self.vocoder_history = vae_history, vocoder_history
        self.vae_lookahead, self.vocoder_lookahead = vae_lookahead, vocoder_lookahead
        self.extend = extend
        # Per block the networks run on windows of about 70 frames, where PyTorch's
        # per-operator overhead is a large share; traced and frozen graphs
        # (oneDNN convolutions on the CPU) take about a quarter less time.
        self.postfilter = vc.postfilter  # fixed for the stream, as its frozen graphs fix it
        self.networks = frozen_networks(vc) if frozen else None
        # Traced now, not when a detail is first raised mid-stream: tracing takes longer than a block.
        self.own_network = frozen_convert(vc, True, self.postfilter) if frozen else None
        self.set_detail(detail)
        # Frames the analysis window reaches past a frame's own samples, in whole frames.
        self.mel_lookahead = math.ceil(vc.frontend.pad / self.hop)
        self.delay = (self.mel_lookahead + vae_lookahead + vocoder_lookahead) * self.hop
        self.reset()

    # ----- what a caller needs to know ------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.vc.sample_rate

    @property
    def block_ms(self) -> float:
        return 1000.0 * self.block / self.sample_rate

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: filling a block plus the lookahead delay (compute time not included)."""
        return 1000.0 * (self.block + self.delay) / self.sample_rate

    def reset(self) -> None:
        """Forget the input so far (a new utterance or a new microphone session)."""
        n_mels = self.vc.model.config.n_mels
        self.mels = MelStream(self.vc)
        # A pitch_input model reads the source's intonation: F0 tracked as the samples come
        # (a few seconds kept, more than any window reaches back).
        self.track = F0Stream(self.sample_rate, keep=10.0) if self.vc.model.config.pitch_input else None
        self.inputs = FrameBuffer(n_mels)  # input log-mel, from some frame on
        self.converted = FrameBuffer(n_mels)  # converted log-mel, from some frame on
        self.pending = torch.zeros(0)  # input samples not yet a whole block
        self.out = torch.zeros(self.delay)  # output samples not yet handed out; starts with the delay
        self.voiced = 0  # frames of audio made (output frame index)
        self.flushed = False
        # The running estimate of the speaker's own latent (detail without `own`):
        # the frame-weighted sum of the speaker means of whole spans of input so far.
        self.own_sum = torch.zeros(1, self.vc.model.config.speaker_dim, device=self.vc.device)
        self.own_frames = 0
        self.own_next = 0  # first input frame not yet in the estimate

    def set_speaker(self, speaker: torch.Tensor) -> None:
        """Change the voice mid-stream (Ds,): frames converted from now on take it; nothing is dropped."""
        self.speaker = speaker.to(self.vc.device).reshape(1, -1)

    def set_detail(self, detail: float) -> None:
        """Change the source detail mid-stream (0..1): blocks converted from now on take it."""
        check_fraction(detail, "stream: detail")
        self.detail = detail

    # ----- processing -----------------------------------------------------------------

    def process(self, block: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Input samples (T,) at `sample_rate` -> output samples, as many as whole blocks went in.

        A caller that always passes `block` samples (an audio callback) gets
        `block` samples back from every call. Samples short of a whole block
        are kept for the next call.
        """
        if self.flushed:
            raise ValueError("stream: flushed at the end of its input; call reset() to start a new one")
        x = torch.as_tensor(block).reshape(-1).cpu()
        if not x.is_floating_point():
            raise ValueError(f"stream: expects float samples in [-1, 1], got {x.dtype} (scale integer PCM first)")
        x = x.float()
        if not torch.isfinite(x).all():
            raise ValueError("stream: input block contains NaN or infinite samples")
        self.pending = torch.cat([self.pending, x])
        pieces = []
        while self.pending.numel() >= self.block:
            step, self.pending = self.pending[: self.block], self.pending[self.block :]
            self._step(step, last=False)
            pieces.append(self._take(self.block))
        return torch.cat(pieces) if pieces else torch.zeros(0)

    def flush(self) -> torch.Tensor:
        """Everything still owed at the end of the input, computed with the end known.

        Over the whole stream the output is the input delayed by `delay`
        samples: output sample n is input sample n - delay, up to the input's
        last whole frame. Call `reset` to reuse the stream.
        """
        if self.flushed:
            raise ValueError("stream: already flushed; call reset() to start a new one")
        self.flushed = True
        if self.mels.buffer is not None or self.mels.raw.numel() + self.pending.numel() > self.mels.pad:
            self._step(self.pending, last=True)
        self.pending = torch.zeros(0)
        out, self.out = self.out, torch.zeros(0)
        return out

    def _take(self, n: int) -> torch.Tensor:
        out, self.out = self.out[:n], self.out[n:]
        return out

    def _step(self, x: torch.Tensor, last: bool) -> None:
        if self.track is not None:
            self.track.feed(x, last)
        self.inputs.push(self.mels.feed(x, last))
        self._convert(last)
        self._vocode(last)

    def _extended(self, frames: torch.Tensor, last: bool) -> torch.Tensor:
        """(C, F) -> (1, C, F + e): the newest frame repeated, unless the input has ended.

        e is `extend`, or one more where that makes whole latent frames, so the
        VAE never pads the repeated frames with silence.
        """
        if last:
            return frames.unsqueeze(0)
        extra = self.extend + (frames.shape[-1] + self.extend) % self.vc.model.config.downsample
        return F.pad(frames.unsqueeze(0), (0, extra), mode="replicate") if extra else frames.unsqueeze(0)

    def _convert(self, last: bool) -> None:
        """Converted frames for every input frame `vae_lookahead` frames behind the newest."""
        upto = self.inputs.end if last else self.inputs.end - self.vae_lookahead
        done = self.converted.end
        if upto <= done:
            return
        # Windows start on the latent grid (every `downsample` frames from frame 0), as
        # offline, and never after the first frame still owed (a block longer than the history).
        down = self.vc.model.config.downsample
        lo = min(max(0, self.inputs.end - self.vae_history), done) // down * down
        window = self.inputs.window(lo, self.inputs.end)
        with torch.inference_mode():
            x = self._extended(window, last).to(self.vc.device)
            melody = None if self.track is None else self._melody(lo, last)
            eager = self.networks is None or last
            mel = self._decode(x, self.speaker, melody, own_register=False, eager=eager)
            if self.detail:
                # Counted only while it is needed: a stream at detail 0 pays nothing for it, and a detail
                # raised later counts at once the span its history still holds.
                self._count_own_spans()
                own = self._own_latent(window)
                mel = mel + self.detail * (x - self._decode(x, own, melody, own_register=True, eager=eager))
            mel = mel[0].cpu()
        self.converted.push(mel[:, done - lo : upto - lo])
        self.inputs.drop_before(lo)

    def _decode(
        self, x: torch.Tensor, speaker: torch.Tensor, melody: torch.Tensor | None, own_register: bool, eager: bool
    ) -> torch.Tensor:
        """VAE.convert of a window (1, n_mels, F), eager or through the frozen graph for that register."""
        if eager:
            return self.vc.model.convert(x, speaker, melody, own_register=own_register, postfilter=self.postfilter)
        assert self.networks is not None and self.own_network is not None  # built together when frozen
        network = self.own_network if own_register else self.networks[0]
        inputs = (x, speaker) if melody is None else (x, speaker, melody)
        return network(*inputs)

    def _count_own_spans(self) -> None:
        """Add every whole span of input not yet counted to the running estimate of the speaker's own latent.

        Spans are counted before the history drops them (a block longer than
        the history skips what is already gone); one encode per span.
        """
        if self.fixed_own is not None:
            return
        span = self.vae_history
        self.own_next = max(self.own_next, self.inputs.offset)
        while self.inputs.end - self.own_next >= span:
            piece = self.inputs.window(self.own_next, self.own_next + span).unsqueeze(0).to(self.vc.device)
            self.own_sum = self.own_sum + self.vc.model.encode(piece).speaker.mu * span
            self.own_frames += span
            self.own_next += span

    def _own_latent(self, window: torch.Tensor) -> torch.Tensor:
        """The speaker's own latent (1, Ds): given, the running estimate, or before its first span the window's."""
        if self.fixed_own is not None:
            return self.fixed_own
        if self.own_frames:
            return self.own_sum / self.own_frames
        return self.vc.model.encode(window.unsqueeze(0).to(self.vc.device)).speaker.mu

    def _melody(self, lo: int, last: bool) -> torch.Tensor:
        """The intonation (1, 3, F + e) of input frames lo .. end, extended as the mel window is.

        Its reference is the mean log F0 of the stream's settled voiced frames
        so far (offline: the whole clip's), and its newest frames come from F0
        tracked without right context, so they are estimates as the newest
        mel frames are. The register row is the target's (VAE.convert).
        """
        assert self.track is not None
        track = self.track
        f0 = np.concatenate([track.final, track.provisional()])
        c = self.vc.model.mel_config
        # Before the first settled voiced frame (None), contour measures against the voiced frames given.
        melody = contour(
            f0,
            self.inputs.end - lo,
            c.sample_rate,
            c.hop_length,
            first_frame=lo,
            f0_start=track.final_start,
            mean=track.mean_log_f0,
        )
        return self._extended(melody, last).to(self.vc.device)

    def _vocode(self, last: bool) -> None:
        """Audio for every converted frame `vocoder_lookahead` frames behind the newest."""
        upto = self.converted.end if last else self.converted.end - self.vocoder_lookahead
        if upto <= self.voiced:
            return
        lo = max(self.converted.offset, min(self.converted.end - self.vocoder_history, self.voiced))
        window = self.converted.window(lo, self.converted.end)
        if last:
            # Offline vocoding puts silence after a clip (VoiceConverter.vocode_many).
            tail = self.vc.vocoder.batch_tail_frames
            window = F.pad(window, (0, tail), value=self.vc.model.floor)
        vocoder = self.vc.vocoder
        with torch.inference_mode():
            x = self._extended(window, last).to(vocoder.device, torch.float32)
            net = vocoder if self.networks is None or last else self.networks[1]
            audio = vocoder._fit(net(x), x.shape[-1] * self.hop)[0].clamp(-1.0, 1.0).cpu()
        self.out = torch.cat([self.out, audio[(self.voiced - lo) * self.hop : (upto - lo) * self.hop]])
        self.voiced = upto
        self.converted.drop_before(min(self.converted.end - self.vocoder_history, self.voiced))


class _Convert(nn.Module):
    """VAE.convert as a module to trace: log-mel (1, n_mels, F), F a multiple of downsample, (1, Ds), and a
    pitch_input model's intonation (1, 3, F); own_register and postfilter as VAE.convert's (fixed in the graph)."""

    def __init__(self, model: VAE, own_register: bool = False, postfilter: float = 0.0) -> None:
        super().__init__()
        self.model, self.own_register, self.postfilter = model, own_register, postfilter

    def forward(self, x: torch.Tensor, speaker: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.convert(x, speaker, pitch, own_register=self.own_register, postfilter=self.postfilter)


def _example_inputs(vc: VoiceConverter) -> tuple[torch.Tensor, ...]:
    """Inputs to trace the VAE's convert with: a silent window of 32 latent frames, a zero latent[, a flat contour]."""
    n_mels, down = vc.model.config.n_mels, vc.model.config.downsample
    x = torch.full((1, n_mels, 32 * down), vc.model.floor, device=vc.device)
    speaker = torch.zeros(1, vc.model.config.speaker_dim, device=vc.device)
    if vc.model.config.pitch_input:
        return (x, speaker, torch.zeros(1, INTONATION_CHANNELS, x.shape[-1], device=vc.device))
    return (x, speaker)


def _freeze(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> Callable[..., torch.Tensor]:
    """A traced, frozen TorchScript graph of module (lengths stay dynamic)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing warns about each shape-dependent Python value
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(module.eval(), inputs)))


# Traced graphs, built once and shared by every stream on them: the VAE's convert per model and
# (register, postfilter), the vocoder per vocoder.
_FROZEN_VAE: weakref.WeakKeyDictionary[nn.Module, dict[tuple[bool, float], Callable[..., torch.Tensor]]] = (
    weakref.WeakKeyDictionary()
)
_FROZEN_VOCODER: weakref.WeakKeyDictionary[nn.Module, Callable[..., torch.Tensor]] = weakref.WeakKeyDictionary()


def frozen_convert(vc: VoiceConverter, own_register: bool, postfilter: float) -> Callable[..., torch.Tensor]:
    """The VAE's convert (at the source's own register when own_register) with a postfilter, as a frozen graph."""
    graphs = _FROZEN_VAE.setdefault(vc.model, {})
    if (own_register, postfilter) not in graphs:
        graphs[own_register, postfilter] = _freeze(_Convert(vc.model, own_register, postfilter), _example_inputs(vc))
    return graphs[own_register, postfilter]


def frozen_networks(vc: VoiceConverter) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """The VAE's convert and the vocoder as traced, frozen TorchScript graphs (lengths stay dynamic)."""
    if vc.vocoder not in _FROZEN_VOCODER:
        _FROZEN_VOCODER[vc.vocoder] = _freeze(vc.vocoder, _example_inputs(vc)[:1])
    return frozen_convert(vc, False, vc.postfilter), _FROZEN_VOCODER[vc.vocoder]
