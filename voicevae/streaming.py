"""Long files in constant memory: read, convert and write block by block.

`convert_file` gives the samples of `VoiceConverter.convert` on the whole
file (to float rounding; tests/test_streaming.py) while holding only a few
seconds of audio and mel at a time, whatever the file's length:

    file --(soundfile blocks)--> Resampler --> MelStream --> VAE windows --> vocoder windows --> file

Every stage reproduces the windows of the whole-file path exactly:
- `Resampler` cuts the input into pieces with enough context on each side
  that torchaudio's sinc kernel never sees a piece edge, so each output
  sample is the one resampling the whole signal gives;
- `MelStream` frames the samples as `MelFrontend` does, reflect padding
  included at both ends of the file;
- the speaker latent is the frame-weighted mean over the same chunks as
  `VoiceConverter._speaker_of_mel`, found in a first pass over the file;
- the VAE converts the same overlapping windows as `decode_with_speaker`,
  and the vocoder runs the same windows and crossfades as `Vocoder._chunked`
  (with its silent tail after the last frame, as `vocode_many` adds).

A pitch_input model's intonation is the exception: the first pass tracks
F0 in stretches with context on each side (`pitch.F0Stream`), which RAPT on
the whole file matches at nearly every frame but not bit for bit, so such a
model's samples agree with the whole-file path closely rather than exactly.

The output is written to a temporary file beside the target and renamed over
it at the end, so an interrupted run leaves no half-written output.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .audio import MAX_RATE, MIN_RATE, AudioError, output_format
from .checkpoint import atomic_write
from .pitch import F0Stream, contour

if TYPE_CHECKING:
    from .api import Source, VoiceConverter

BLOCK_SECONDS = 10.0  # read and write this much audio at a time


class Resampler:
    """Streaming `torchaudio.functional.resample(x, orig, new)`: feed pieces, get the same samples."""

    def __init__(self, orig: int, new: int) -> None:
        g = math.gcd(orig, new)
        self.orig, self.new = orig, new
        self.o, self.n = orig // g, new // g
        # Input samples of context kept on each side: torchaudio's kernel reaches
        # lowpass_filter_width (6) zero crossings, a few samples; 1024 is ample.
        self.context = self.o * math.ceil(1024 / self.o)
        self.buffer = torch.zeros(0)  # [held samples of left context][samples not yet resampled]
        self.held = 0  # a multiple of o, so the buffer starts on the output grid
        self.consumed = 0  # input samples whose output is out (a multiple of o)
        self.emitted = 0

    def feed(self, x: torch.Tensor, last: bool = False) -> torch.Tensor:
        if self.orig == self.new:
            return x
        self.buffer = torch.cat([self.buffer, x])
        start = self.held * self.n // self.o  # output index of the first new sample
        if last:
            # Everything left: the end is the signal's end, zero-padded as the whole-signal call pads it.
            total = math.ceil((self.consumed + self.buffer.numel() - self.held) * self.n / self.o)
            return AF.resample(self.buffer, self.orig, self.new)[start:][: total - self.emitted]
        # Resample what has `context` samples after it, in whole periods of o input samples.
        usable = (self.buffer.numel() - self.held - self.context) // self.o * self.o
        if usable <= 0:
            return torch.zeros(0)
        piece = AF.resample(self.buffer, self.orig, self.new)[start : start + usable * self.n // self.o]
        behind = self.held + usable  # samples now behind the next new one
        self.held = min(self.context, behind)
        self.buffer = self.buffer[behind - self.held :]
        self.consumed += usable
        self.emitted += piece.numel()
        return piece


def read_blocks(path: Path, rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[tuple[torch.Tensor, bool]]:
    """(mono float32 samples at `rate`, is_last) for the whole file, a block at a time."""
    try:
        f = sf.SoundFile(str(path))
    except Exception as e:  # soundfile raises several types for corrupt input
        raise AudioError(f"{path}: cannot read audio ({e})") from e
    with f:
        if not MIN_RATE <= f.samplerate <= MAX_RATE:
            raise AudioError(f"{path}: sample rate {f.samplerate} Hz outside {MIN_RATE}..{MAX_RATE} Hz")
        resampler = Resampler(f.samplerate, rate)
        block = max(1, int(block_seconds * f.samplerate))
        while True:
            try:
                data = f.read(block, dtype="float32", always_2d=True)
            except RuntimeError as e:  # libsndfile's error mid-file
                raise AudioError(f"{path}: cannot read audio ({e})") from e
            last = f.tell() >= f.frames or data.shape[0] < block
            x = torch.from_numpy(data).mean(dim=1)
            if not torch.isfinite(x).all():
                raise AudioError(f"{path}: contains NaN or infinite samples")
            yield resampler.feed(x, last), last
            if last:
                return


class MelStream:
    """Log-mel frames of a sample stream, equal to `MelFrontend` on the whole signal."""

    def __init__(self, vc: VoiceConverter) -> None:
        self.frontend = vc.frontend
        c = vc.model.mel_config
        self.hop, self.n_fft, self.pad = c.hop_length, c.n_fft, self.frontend.pad
        self.floor = c.log_floor
        self.raw = torch.zeros(0)  # samples held back until reflect padding can be made
        self.buffer: torch.Tensor | None = None  # padded samples from the next frame's start on
        self.total = 0  # samples seen
        self.peak = 0.0

    def feed(self, x: torch.Tensor, last: bool) -> torch.Tensor:
        """The next complete frames (n_mels, f), possibly none."""
        self.total += x.numel()
        if x.numel():
            self.peak = max(self.peak, float(x.abs().max()))
        if self.buffer is None:
            self.raw = torch.cat([self.raw, x])
            if self.raw.numel() <= self.pad:  # reflect padding needs pad + 1 samples
                if last:
                    raise AudioError(f"audio of {self.raw.numel()} samples is too short for n_fft={self.n_fft}")
                return self._empty()
            # The left reflect padding, as F.pad(mode="reflect") makes it.
            self.buffer = torch.cat([self.raw[1 : self.pad + 1].flip(0), self.raw])
            self.raw = torch.zeros(0)
        else:
            self.buffer = torch.cat([self.buffer, x])
        if last:
            self.buffer = torch.cat([self.buffer, self.buffer[-self.pad - 1 : -1].flip(0)])
        n = self.buffer.numel()
        frames = (n - self.n_fft) // self.hop + 1 if n >= self.n_fft else 0
        if frames <= 0:
            return self._empty()
        with torch.inference_mode():
            window = self.frontend.mel.spectrogram.window
            mel = self.frontend.mel(self.buffer[: (frames - 1) * self.hop + self.n_fft].to(window.device))
            mel = torch.log(torch.clamp(mel, min=self.floor)).cpu()
        self.buffer = self.buffer[frames * self.hop :]
        return mel

    def _empty(self) -> torch.Tensor:
        return torch.zeros(self.frontend.config.n_mels, 0)


def mel_blocks(
    vc: VoiceConverter, path: Path, block_seconds: float = BLOCK_SECONDS, track: F0Stream | None = None
) -> Iterator[tuple[torch.Tensor, bool, int]]:
    """(log-mel frames, is_last, samples read so far) of a file, a block at a time.

    The checks `VoiceConverter.load_audio` makes of a whole clip are made at
    the end: too short to convert, or silent. `track` is fed the same samples.
    """
    stream = MelStream(vc)
    for x, last in read_blocks(path, vc.sample_rate, block_seconds):
        if track is not None:
            track.feed(x, last)
        mel = stream.feed(x, last)
        if last:
            if stream.total < vc.min_samples:
                raise AudioError(
                    f"{path}: {stream.total / vc.sample_rate:.3f} s is too short; need at least {vc.min_samples / vc.sample_rate:.3f} s"
                )
            if stream.peak < 1e-4:
                raise AudioError(f"{path}: is silent")
        yield mel, last, stream.total


class FrameBuffer:
    """Mel frames from some absolute index on; old frames are dropped once no window needs them."""

    def __init__(self, n_mels: int) -> None:
        self.data = torch.zeros(n_mels, 0)
        self.offset = 0  # absolute index of data[:, 0]

    @property
    def end(self) -> int:
        return self.offset + self.data.shape[-1]

    def push(self, frames: torch.Tensor) -> None:
        self.data = torch.cat([self.data, frames.to(self.data)], dim=-1)

    def window(self, lo: int, hi: int) -> torch.Tensor:
        return self.data[:, lo - self.offset : hi - self.offset]

    def drop_before(self, index: int) -> None:
        if index > self.offset:
            self.data = self.data[:, index - self.offset :]
            self.offset = index


def speaker_latent(
    vc: VoiceConverter, path: Path, block_seconds: float = BLOCK_SECONDS, track: F0Stream | None = None
) -> torch.Tensor:
    """The source's speaker latent as `_speaker_of_mel` finds it on the whole file (Ds,), in one streaming pass.

    track: also fed the file's samples in that pass (a pitch_input model's contour).
    """
    chunk = vc.chunk_frames
    total, frames = torch.zeros(vc.model.config.speaker_dim, device=vc.device), 0
    buf = FrameBuffer(vc.model.config.n_mels)

    def take(piece: torch.Tensor) -> None:
        nonlocal total, frames
        if frames and piece.shape[-1] < chunk // 4:
            return  # the whole-file path skips a short tail
        with torch.inference_mode():
            mu = vc.model.encode(piece.to(vc.device).unsqueeze(0)).speaker.mu[0]
        total, frames = total + mu * piece.shape[-1], frames + piece.shape[-1]

    for mel, last, _ in mel_blocks(vc, path, block_seconds, track):
        buf.push(mel)
        while buf.end - buf.offset >= chunk:
            take(buf.window(buf.offset, buf.offset + chunk))
            buf.drop_before(buf.offset + chunk)
        if last and buf.end > buf.offset:
            take(buf.window(buf.offset, buf.end))
    if frames == 0:
        raise AudioError(f"{path}: too short to convert")
    return total / frames


class VocoderStream:
    """`Vocoder._chunked` over a stream of frames: the same windows and crossfades, audio out once final."""

    def __init__(self, vc: VoiceConverter) -> None:
        self.vocoder = vc.vocoder
        self.hop = vc.vocoder.hop_length
        self.chunk, self.overlap = vc.vocoder.chunk_frames, vc.vocoder.overlap_frames
        self.step = self.chunk - self.overlap
        self.skip = self.overlap // 4
        self.fade_len = (self.overlap - 2 * self.skip) * self.hop
        self.fade_in = (torch.arange(self.fade_len) + 0.5) / max(self.fade_len, 1)
        self.tail, self.floor = vc.vocoder.batch_tail_frames, vc.model.floor
        self.frames = FrameBuffer(vc.model.config.n_mels)
        self.start = 0  # the next window's first frame
        self.pending = torch.zeros(0)  # audio from sample `done` on that a later window may still change
        self.done = 0  # samples handed out

    def _run(self, lo: int, hi: int) -> torch.Tensor:
        x = self.frames.window(lo, hi).unsqueeze(0).to(self.vocoder.device, torch.float32)
        with torch.inference_mode():
            return self.vocoder._fit(self.vocoder(x), (hi - lo) * self.hop)[0].cpu()

    def _place(self, start: int, stop: int) -> None:
        """Run window [start, stop) into `pending`, crossfaded with the window before as _chunked does."""
        y = self._run(start, stop)
        if start == 0:
            self.pending = y
            return
        a = (start + self.skip) * self.hop - self.done  # 0: everything before it was handed out
        y = y[self.skip * self.hop :]
        fade = self.pending[a : a + self.fade_len] * (1 - self.fade_in) + y[: self.fade_len] * self.fade_in
        self.pending = torch.cat([self.pending[:a], fade, y[self.fade_len :]])

    def _hand_out(self, upto: int) -> torch.Tensor:
        out, self.pending = self.pending[: upto - self.done], self.pending[upto - self.done :]
        self.done += out.numel()
        return out.clamp(-1.0, 1.0)  # vocode clamps the crossfaded whole

    def feed(self, frames: torch.Tensor, last: bool) -> torch.Tensor:
        """Audio (T,) that no later frame can change; on the last call, everything left."""
        self.frames.push(frames)
        real = self.frames.end  # frames of the clip itself
        pieces = []
        while not last and self.start + self.chunk <= self.frames.end:
            self._place(self.start, self.start + self.chunk)
            self.start += self.step
            # The next window's crossfade starts at its skip: everything before is final.
            pieces.append(self._hand_out((self.start + self.skip) * self.hop))
            self.frames.drop_before(self.start)
        if last:
            if self.tail:  # the silence vocode_many puts after every clip
                self.frames.push(torch.full((frames.shape[0], self.tail), self.floor))
            n = self.frames.end
            if self.start == 0 and n <= self.chunk:
                self.pending = self._run(0, n)
            else:
                while self.start < n - self.overlap:
                    self._place(self.start, min(self.start + self.chunk, n))
                    self.start += self.step
            pieces.append(self._hand_out(real * self.hop))
        return torch.cat(pieces) if pieces else torch.zeros(0)


def _window_ready(start: int, end: int, chunk: int, pad: int, last: bool) -> bool:
    """Whether the VAE window [start - pad, start + chunk + pad) can run with `end` frames in.

    It needs its right context; the first one also needs the file to be known
    too long for decode_with_speaker's single window (chunk + 2 pad frames).
    """
    if last:
        return True
    return start + chunk + pad <= end and (start > 0 or end > chunk + 2 * pad)


def check_fraction(value: float, name: str) -> None:
    """Refuse a fraction outside [0, 1] by the setting's name ("detail", "--detail", ...)."""
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value:g}")


def check_blend_options(target: object, **values: float) -> None:
    """Each of retrieval, detail, ...: a fraction in [0, 1], and only with a target voice (resynthesis has none)."""
    for name, value in values.items():
        check_fraction(value, name)
        if value and target is None:
            raise ValueError(f"{name} needs a target voice")


def convert_file(
    vc: VoiceConverter,
    path: str | Path,
    out: str | Path,
    target: str | torch.Tensor | list[Source] | None,
    strength: float = 1.0,
    attributes: dict[str, float] | None = None,
    method: str = "arithmetic",
    sample_rate: int | None = None,
    overwrite: bool = False,
    on_progress: Callable[[float], None] | None = None,
    block_seconds: float = BLOCK_SECONDS,
    detail: float = 0.0,
) -> Path:
    """Convert (target=None: resynthesize) one file to `out` block by block; returns `out`.

    on_progress(seconds): called with the seconds of input converted since
    the last call, so a progress bar can count audio, not files.
    detail: as VoiceConverter.convert_mel, window by window (the same windows).
    """
    check_blend_options(target, detail=detail)
    path, out = Path(path), Path(out)
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: exists; pass --force to overwrite")
    fmt = output_format(out)
    out_rate = sample_rate or vc.sample_rate
    # A pitch_input model reads the file's intonation: tracked in the first pass
    # (a float per 10 ms, so the whole file's contour is small beside its audio).
    track = F0Stream(vc.sample_rate) if vc.model.config.pitch_input else None
    own = speaker_latent(vc, path, block_seconds, track)
    z_s = own if target is None else vc._speaker_latent(own, target, strength, attributes, method, None)
    pitch = None
    if track is not None:
        c = vc.model.mel_config
        pitch = contour(track.final, vc.frontend.num_frames(track.seen), c.sample_rate, c.hop_length).unsqueeze(0).to(vc.device)
    chunk, pad = vc.chunk_frames, vc.overlap_frames
    mels = FrameBuffer(vc.model.config.n_mels)
    vocoder = VocoderStream(vc)
    resample_out = Resampler(vc.sample_rate, out_rate)
    next_start = 0  # next VAE window's first output frame
    reported = 0.0
    with atomic_write(out, out.suffix) as tmp, sf.SoundFile(tmp, "w", samplerate=out_rate, channels=1, **fmt) as sink:
        for mel, last, seen in mel_blocks(vc, path, block_seconds):
            mels.push(mel)
            converted = []
            if last and next_start == 0 and mels.end <= chunk + 2 * pad:
                chunk = mels.end  # short enough that decode_with_speaker takes it whole
            while next_start < mels.end and _window_ready(next_start, mels.end, chunk, pad, last):
                lo, hi = max(0, next_start - pad), min(mels.end, next_start + chunk + pad)
                with torch.inference_mode():
                    window = mels.window(lo, hi).to(vc.device)
                    melody = None if pitch is None else pitch[..., lo:hi]
                    # Resynthesis keeps the file's own register, as VoiceConverter.convert_mel does.
                    # A window is never longer than decode_with_speaker takes whole: the same decode as offline.
                    piece = vc.decode_with_speaker(window, z_s, melody, own_register=target is None)
                    if detail:
                        piece = piece + detail * vc.source_detail(window, own, melody)
                    piece = piece.cpu()
                stop = min(mels.end, next_start + chunk)
                converted.append(piece[:, next_start - lo : stop - lo])
                next_start = stop
                mels.drop_before(next_start - pad)
            frames = torch.cat(converted, dim=-1) if converted else torch.zeros(mel.shape[0], 0)
            audio = vocoder.feed(frames, last)
            sink.write(resample_out.feed(audio, last).clamp(-1.0, 1.0).numpy().astype(np.float32))
            if on_progress is not None:
                now = seen / vc.sample_rate
                on_progress(now - reported)
                reported = now
    return out
