"""Python API for conversion and batch resynthesis, in a few verbs.

    import voicevae
    vc = voicevae.load()                       # the shipped default model
    target = vc.speaker_vector(["ref1.wav", "ref2.wav"])  # few-shot cloning
    wav = vc.convert("source.wav", target=target, strength=1.0)
    vc.convert_files(paths, "out/", target="slt")          # batch, with a progress bar

Conversion is latent arithmetic on the utterance-level speaker latent z_s:

    z_s' = z_s + strength * (v_target - v_source) + sum_a amount_a * d_a

where v_source is the source clip's own latent (or a named speaker's vector),
v_target a speaker vector or the mean latent of reference clips, and d_a
attribute directions. strength 0 leaves the voice alone, 1 moves the source
to the target (z_s - v_source + v_target, as SEED.md's arithmetic), other
values interpolate or extrapolate. The content latent is kept; the decoder
makes a log-mel and the vocoder makes audio.

The "stats" method instead maps each latent dimension's position within the
source distribution onto the target's (speaker-statistics transfer):
z_s' = v_target + (z_s - v_source) * std_target / std_source.
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from .audio import AudioError, load_audio
from .batch import BatchReport
from .batch import convert_files as _convert_files
from .complexity import stationary_log_likelihood
from .config import AdaptConfig
from .content_stats import ContentStats, content_affine, speech_latents
from .features import MelFrontend
from .matching import DEFAULT_SPACE, MatchingSet, parse_space
from .model import DEFAULT_MODEL as DEFAULT_MODEL  # re-exported: tests and scripts import it from here
from .model import SHIPPED_MODELS, VAE
from .pitch import f0_stats, intonation, intonation_spread, median_f0, melody_spread, scale_melody, semitones_between
from .pitch import pitch_shift as shift_pitch
from .postfilter import DEFAULT_POSTFILTER
from .postfilter import check as check_postfilter
from .realtime import StreamingConverter
from .streaming import check_blend_options
from .vectors import UnknownName, VectorSet, unknown_message
from .vocoder import check_compatible, load_vocoder

METHODS = ("arithmetic", "stats")  # see the module docstring

# The vocoder `load()`, the CLI and the demo use unless told otherwise. Chosen
# by measurement: the fast vocoder keeps speaker similarity level with
# HiFi-GAN and Griffin-Lim in copy synthesis (0.973 against 0.97, 270 unseen-
# voice clips), keeps more of the voice than Griffin-Lim through the VAE, and
# runs 159x faster than HiFi-GAN (README, benchmarks/convert_rtf.py).
DEFAULT_VOCODER = "fast"


def check_method(method: str) -> None:
    """Refuse a conversion method other than those in METHODS."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


ASSETS = Path(__file__).parent / "assets"

Source = str | Path | torch.Tensor


# f0_spread scales a source's melody by at most this factor either way.
MAX_MELODY_SCALE = 4.0


def needs_clips(
    retrieval: float = 0.0, content_norm: float = 0.0, f0_spread: float = 0.0, match_pitch: bool = False, **other: Any
) -> bool:
    """Whether these `convert` options need a target's reference clips themselves, not only their
    mean latent (the CLI and the demo then keep the clips as the target); the `other` options do not."""
    return bool(retrieval or content_norm or f0_spread or match_pitch)


class VoiceConverter:
    """A VAE, its speaker/attribute vectors and a vocoder, on one device.

    Audio in and out is (T,) float32 mono at `sample_rate`: inputs are paths
    or tensors, outputs torch.Tensors on `device`.
    """

    # Content chunks for long inputs, in mel frames (~24 s), with overlap on each
    # side larger than the encoder + decoder receptive field.
    chunk_frames = 2048
    overlap_frames = 64
    # match_pitch corrects an output's median F0 only when it is further than this from the target's.
    match_pitch_tolerance = 1.0  # semitones

    def __init__(
        self,
        model: VAE,
        vectors: VectorSet | None,
        vocoder,
        device: str | torch.device = "cpu",
        model_dir: Path | None = None,
        postfilter: float = DEFAULT_POSTFILTER,
    ) -> None:
        check_compatible(vocoder.mel_config, model.mel_config)
        check_postfilter(postfilter)
        # Formant sharpening of every decoded log-mel (postfilter.py), on every path: offline,
        # streamed files, live, export. An attribute, so a caller may change it between calls.
        self.postfilter = postfilter
        # A model folder may hold matching sets of its adapted voices (matching/<name>.pt).
        self.model_dir = model_dir
        self._clip_matching: dict[tuple[str, ...], MatchingSet] = {}  # per list of reference clips
        self._voice_matching: dict[str, MatchingSet] = {}  # per named (adapted) voice
        # Per matching set (by id; the set is kept beside its statistics so the id stays its own).
        self._content_stats: dict[int, tuple[MatchingSet, ContentStats]] = {}
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.vectors = vectors
        self.vocoder = vocoder.to(self.device).eval()
        self.frontend = MelFrontend(model.mel_config).to(self.device)
        # The shortest clip that yields a whole latent frame, plus some margin
        # so the speaker statistics are not computed from one frame.
        self.min_samples = model.mel_config.n_fft + 4 * model.config.downsample * model.mel_config.hop_length

    def with_postfilter(self, postfilter: float) -> VoiceConverter:
        """This converter at another postfilter: a shallow copy sharing the weights and caches (self when equal).

        For callers that serve several settings from one loaded model (the
        demo), where changing `postfilter` in place would reach other callers.
        """
        if postfilter == self.postfilter:
            return self
        check_postfilter(postfilter)
        other = copy.copy(self)
        other.postfilter = postfilter
        return other

    # ----- properties -----------------------------------------------------------------

    @property
    def sample_rate(self) -> int:
        return self.model.mel_config.sample_rate

    @property
    def speakers(self) -> list[str]:
        return self.vectors.speakers if self.vectors is not None else []

    @property
    def attributes(self) -> list[str]:
        return sorted(self.vectors.directions) if self.vectors is not None else []

    @property
    def anomaly_threshold(self) -> float:
        """`likelihood_ratio` below which a clip is unlike the training data (-inf: no vector file, or one without it)."""
        return self.vectors.anomaly_threshold() if self.vectors is not None else -math.inf

    # ----- audio in -------------------------------------------------------------------

    def load_audio(self, path: str | Path) -> torch.Tensor:
        """Read a file as (T,) mono float32 at the model rate, checked for use."""
        return self._check(load_audio(path, self.sample_rate), str(path))

    def _check(self, wav: torch.Tensor, name: str) -> torch.Tensor:
        if wav.ndim != 1:
            raise AudioError(f"{name}: expected (T,) mono audio at {self.sample_rate} Hz, got shape {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise AudioError(f"{name}: contains NaN or infinite samples")
        if wav.shape[0] < self.min_samples:
            raise AudioError(
                f"{name}: {wav.shape[0] / self.sample_rate:.3f} s is too short; need at least {self.min_samples / self.sample_rate:.3f} s"
            )
        if wav.abs().max() < 1e-4:
            raise AudioError(f"{name}: is silent")
        return wav

    def _audio(self, src: Source, name: str = "audio") -> torch.Tensor:
        if isinstance(src, torch.Tensor):
            return self._check(src.float(), name)
        return self.load_audio(src)

    def mel(self, wav: Source) -> torch.Tensor:
        """Log-mel (n_mels, F) of a clip (analysed in chunks when long)."""
        with torch.inference_mode():
            return self.frontend.chunked(self._audio(wav).to(self.device), self.chunk_frames)

    def _speaker_of_mel(self, mel: torch.Tensor) -> torch.Tensor:
        """Speaker latent (Ds,) of log-mel (n_mels, F): the frame-weighted mean over chunks when long."""
        total, frames = torch.zeros(self.model.config.speaker_dim, device=mel.device), 0
        for start in range(0, mel.shape[-1], self.chunk_frames):
            piece = mel[:, start : start + self.chunk_frames]
            if frames and piece.shape[-1] < self.chunk_frames // 4:
                break  # a short tail would be a noisy estimate; the chunks before it suffice
            total = total + self.model.encode(piece.unsqueeze(0)).speaker.mu[0] * piece.shape[-1]
            frames += piece.shape[-1]
        return total / frames

    # ----- latents --------------------------------------------------------------------

    def encode_speaker(self, wav: Source) -> torch.Tensor:
        """Speaker latent (posterior mean) of one clip, (Ds,)."""
        return self._speaker_of_mel(self.mel(wav))

    def speaker_vector(self, clips: Sequence[Source] | Source) -> torch.Tensor:
        """Few-shot cloning: the mean speaker latent of 1..N reference clips, (Ds,)."""
        if isinstance(clips, (str, Path, torch.Tensor)):
            clips = [clips]
        if len(clips) == 0:
            raise ValueError("speaker_vector needs at least one reference clip")
        return torch.stack([self.encode_speaker(c) for c in clips]).mean(0)

    def target_vector(self, target: str | torch.Tensor | Sequence[Source]) -> torch.Tensor:
        """A conversion target as a speaker latent (Ds,): a speaker name, a (Ds,) vector, or reference clips."""
        if isinstance(target, str):
            if self.vectors is None:
                raise ValueError("this model has no speaker-vector file; give reference clips or a vector")
            return self.vectors.speaker(target).to(self.device)
        if isinstance(target, torch.Tensor) and target.ndim == 1 and target.shape[0] == self.model.config.speaker_dim:
            return target.to(self.device)
        return self.speaker_vector(target)

    def interpolate(self, a: str | torch.Tensor, b: str | torch.Tensor, t: float) -> torch.Tensor:
        """(1 - t) v_a + t v_b: a voice between two others, (Ds,)."""
        return (1 - t) * self.target_vector(a) + t * self.target_vector(b)

    def random_voice(self, seed: int | None = None, components: int = 3) -> torch.Tensor:
        """A new voice, (Ds,): a random convex mix of draws from the aggregated posterior.

        Draws from q(z) = 1/N sum_i q(z|x_i) stay where the decoder was trained;
        mixing a few of them with Dirichlet weights gives voices between the
        training speakers rather than copies of one of them.
        """
        if self.vectors is None:
            raise ValueError("this model has no speaker-vector file to sample voices from")
        g = torch.Generator().manual_seed(seed if seed is not None else int(torch.randint(2**31, (1,))))
        draws = self.vectors.aggregated_posterior().sample(components, generator=g)
        weights = _dirichlet(components, g)
        return (weights[:, None] * draws).sum(0).to(self.device)

    def _speaker_std(self, name: str | None) -> torch.Tensor:
        """Spread of a named speaker's utterance latents, else the pooled within-speaker spread."""
        if self.vectors is None:
            raise ValueError("method='stats' needs the model's vector file")
        stats = self.vectors.labels["speaker"]
        if name is not None and stats.counts.get(name, 0) > 1:
            return stats.stds[name].to(self.device)
        return self.vectors.within_speaker_std.to(self.device)

    def _speaker_latent(
        self,
        z_s: torch.Tensor,
        target: str | torch.Tensor | Sequence[Source],
        strength: float,
        attributes: dict[str, float] | None,
        method: str,
        source_speaker: str | None,
    ) -> torch.Tensor:
        check_method(method)
        v_target = self.target_vector(target)
        v_source = self.target_vector(source_speaker) if source_speaker else z_s
        if method == "arithmetic":
            out = z_s + strength * (v_target - v_source)
        else:  # "stats"
            if self.vectors is None:
                raise ValueError("method='stats' needs the model's vector file")
            std_t = self._speaker_std(target if isinstance(target, str) else None)
            std_s = self._speaker_std(source_speaker)
            mapped = v_target + (z_s - v_source) * std_t / std_s.clamp(min=1e-4)
            out = z_s + strength * (mapped - z_s)
        for name, amount in (attributes or {}).items():
            if self.vectors is None or name not in self.vectors.directions:
                raise UnknownName(unknown_message("attribute", name, self.attributes, "voicevae voices --attributes"))
            out = out + amount * self.vectors.directions[name].to(self.device)
        return out

    # ----- conversion -----------------------------------------------------------------

    def intonation(self, wav: torch.Tensor, frames: int) -> torch.Tensor | None:
        """The decoder's pitch input (1, 3, frames) for audio (T,), on the device; None for a model without one."""
        if not self.model.config.pitch_input:
            return None
        return intonation(wav, self.sample_rate, frames, self.model.mel_config.hop_length).unsqueeze(0).to(self.device)

    @torch.inference_mode()
    def decode_with_speaker(
        self,
        mel: torch.Tensor,
        speaker: torch.Tensor,
        pitch: torch.Tensor | None = None,
        own_register: bool = False,
        content_affine: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Keep the content of log-mel (n_mels, F), decode with speaker latent (Ds,): -> (n_mels, F).

        pitch (1, 3, F): the source's intonation, for a pitch_input model (`intonation`);
        own_register: at the source's register, not the speaker latent's (VAE.convert);
        content_affine: (scale, shift) of the content latents (content_stats.py), found
        once for the whole clip so every chunk gets the same.
        Long inputs are converted in overlapping chunks so memory stays bounded.
        """
        spans = self._chunk_spans(mel.shape[-1])
        if len(spans) == 1:
            return self.model.convert(mel.unsqueeze(0), speaker, pitch, own_register, self.postfilter, content_affine)[0]
        out = torch.empty_like(mel)
        for lo, hi, start, stop in spans:
            contour = None if pitch is None else pitch[..., lo:hi]
            piece = self.model.convert(
                mel[:, lo:hi].unsqueeze(0), speaker, contour, own_register, self.postfilter, content_affine
            )[0]
            out[:, start:stop] = piece[:, start - lo : stop - lo]
        return out

    def _chunk_spans(self, frames: int) -> list[tuple[int, int, int, int]]:
        """The chunks a clip of `frames` mel frames is decoded in: (lo, hi, start, stop) each.

        Frames lo:hi go in; start:stop of them are kept (the overlaps beyond
        belong to the neighbours). A clip short enough is one chunk, all kept.
        """
        if frames <= self.chunk_frames + 2 * self.overlap_frames:
            return [(0, frames, 0, frames)]
        step, pad = self.chunk_frames, self.overlap_frames
        return [
            (max(0, start - pad), min(frames, start + step + pad), start, min(frames, start + step))
            for start in range(0, frames, step)
        ]

    @torch.inference_mode()
    def convert(
        self,
        wav: Source,
        target: str | torch.Tensor | Sequence[Source],
        strength: float = 1.0,
        attributes: dict[str, float] | None = None,
        method: str = "arithmetic",
        source_speaker: str | None = None,
        *,
        retrieval: float = 0.0,
        matching: MatchingSet | None = None,
        detail: float = 0.0,
        content_norm: float = 0.0,
        f0_spread: float = 0.0,
        target_spread: float | None = None,
        pitch_shift: float = 0.0,
        match_pitch: bool = False,
        target_hz: float | None = None,
    ) -> torch.Tensor:
        """Convert a clip to the target voice: (T,) audio -> (T',) audio, T' = F * hop.

        Returns a torch.Tensor of float32 samples at `sample_rate` on `device`
        (`.cpu().numpy()` gives a NumPy array; `save_audio` writes a file).

        retrieval R in [0, 1]: blend each output frame with the target's own
        nearest frames (matching.py); needs a named voice with a matching set
        (an adapted one) or reference clips as the target; `matching` stands
        in for that set (another key space, say: MatchingSet.respace).
        detail D in [0, 1]: add back D times what the VAE loses of the source
        (its log-mel minus its own resynthesis), so the source's fine detail,
        its words with it, rides on the converted voice (`convert_mel`).
        f0_spread S in [0, 1]: move the range of the source's melody S of the
        way (in log ratio) to the target's (`convert_mel`); target_spread
        stands in for the target's measured spread.
        match_pitch: move the output's median F0 to the target's (the target's
        F0 statistics: a named voice in the vector file, or the clips).
        pitch_shift: semitones added on top (after match_pitch when both).
        target_hz: the target's median F0 when already known, in place of its statistics.
        Both act on the converted audio (`adjust_pitch`): the decoder sets the
        pitch register from the speaker latent, so shifting its input barely
        moves the output's pitch.
        """
        mel = self.convert_mel(
            wav,
            target,
            strength,
            attributes,
            method,
            source_speaker,
            retrieval=retrieval,
            matching=matching,
            detail=detail,
            content_norm=content_norm,
            f0_spread=f0_spread,
            target_spread=target_spread,
        )
        return self.adjust_pitch(self.vocode_many([mel])[0], target, pitch_shift, match_pitch, target_hz)

    def stream(
        self,
        target: str | torch.Tensor | Sequence[Source],
        block_ms: float = 35.0,
        strength: float = 1.0,
        attributes: dict[str, float] | None = None,
        method: str = "arithmetic",
        source: str | torch.Tensor | Sequence[Source] | None = None,
        detail: float = 0.0,
        **settings: Any,
    ) -> StreamingConverter:
        """A live converter to `target`: `process(block)` -> converted block, at a fixed delay (realtime.py).

        block_ms is rounded to whole mel frames (11.6 ms at the defaults);
        `latency_ms` of the result states the algorithmic latency. The speaker
        latent is fixed for the stream. At strength 1 it is the target's
        vector plus `attributes`; any other strength mixes in the source's own
        voice, which a stream cannot know in advance: give it as `source` (a
        voice name, a vector or clips of the person speaking). detail D: as
        `convert`, block by block; the speaker's own latent is `source`'s
        when given, else estimated from the stream as it comes (a second
        decode per block). `settings` are StreamingConverter's history,
        lookahead and extend frames, and `frozen`.
        """
        check_method(method)
        hop_ms = 1000.0 * self.model.mel_config.hop_length / self.sample_rate
        if not hop_ms <= block_ms <= 1000.0:
            raise ValueError(f"block_ms must be between one mel frame ({hop_ms:.1f} ms) and 1000 ms, got {block_ms:g}")
        if strength != 1.0 and source is None:
            raise ValueError(
                f"a stream at strength {strength:g} needs the speaker's own voice as `source` (a voice name, vector or clips)"
            )
        check_blend_options(target, detail=detail)
        z_source = self.target_vector(source) if source is not None else torch.zeros(self.model.config.speaker_dim)
        speaker = self._speaker_latent(z_source.to(self.device), target, strength, attributes, method, None)
        own = z_source if source is not None else None
        blocks = max(1, round(block_ms / hop_ms))
        return StreamingConverter(self, speaker, block_frames=blocks, detail=detail, own=own, **settings)

    @torch.inference_mode()
    def resynthesize(self, wav: Source) -> torch.Tensor:
        """Encode, decode and vocode with the clip's own latents: (T,) -> (T',)."""
        return self.vocode_many([self.convert_mel(wav, None)])[0]

    @torch.inference_mode()
    def score(self, wav: Source, n_samples: int = 32) -> float:
        """Importance-sampled log p(x) per mel frame (nats).

        On its own it is a poor anomaly score (noise scores like speech); use
        `likelihood_ratio`, which `anomaly_threshold` applies to.
        """
        audio = self._audio(wav)
        return self._log_px(audio, self.mel(audio), n_samples)

    @torch.inference_mode()
    def likelihood_ratio(self, wav: Source, n_samples: int = 32) -> float:
        """log p(x) per frame minus the clip's log-likelihood under its own stationary model (complexity.py).

        Low values mean unlike the training data; clips under `anomaly_threshold` are flagged.
        """
        return self.scores(wav, n_samples)[1]

    @torch.inference_mode()
    def scores(self, wav: Source, n_samples: int = 32) -> tuple[float, float]:
        """(log p(x), likelihood ratio) per frame from one importance-sampling pass."""
        audio = self._audio(wav)
        mel = self.mel(audio)
        log_px = self._log_px(audio, mel, n_samples)
        return log_px, log_px - stationary_log_likelihood(mel)

    def _log_px(self, audio: torch.Tensor, mel: torch.Tensor, n_samples: int) -> float:
        """(T,) audio and its (n_mels, F) mel -> log p(x) per frame."""
        pitch = self.intonation(audio, mel.shape[-1])
        scores: list[tuple[float, int]] = []
        # Long clips are scored in chunks and averaged per frame (bounded memory).
        for start in range(0, mel.shape[-1], self.chunk_frames):
            piece = mel[:, start : start + self.chunk_frames]
            if piece.shape[-1] < self.model.config.downsample * 4 and scores:
                break
            contour = None if pitch is None else pitch[..., start : start + self.chunk_frames]
            scores.append((float(self.model.log_px(piece.unsqueeze(0), n_samples=n_samples, pitch=contour)[0]), piece.shape[-1]))
        return sum(s for s, _ in scores) / sum(n for _, n in scores)

    @torch.inference_mode()
    def convert_mel(
        self,
        wav: Source,
        target: str | torch.Tensor | Sequence[Source] | None,
        strength: float = 1.0,
        attributes: dict[str, float] | None = None,
        method: str = "arithmetic",
        source_speaker: str | None = None,
        *,
        retrieval: float = 0.0,
        matching: MatchingSet | None = None,
        detail: float = 0.0,
        content_norm: float = 0.0,
        f0_spread: float = 0.0,
        target_spread: float | None = None,
    ) -> torch.Tensor:
        """The converted log-mel (n_mels, F) before vocoding; target=None resynthesizes (see `convert`).

        matching, when given, stands in for the target's matching set (a
        batch finds it once for all its clips); retrieval reads it, and
        content_norm takes the statistics of its frames (`content_stats_for`).
        detail D: out = conversion + D * (source mel - source resynthesized).
        The decoder renders an unheard voice's clip smoothed and with words
        blurred, and renders the conversion with the same losses; the
        difference of its two decodes is the change of voice alone, so adding
        it to the source's own log-mel (D = 1) keeps everything the decoder
        would have lost. The price: what the VAE misses of the source voice
        stays too.
        content_norm C: move the source's content latents C of the way to the
        target's per-channel mean and spread (content_stats.py).
        f0_spread S: scale the melody the decoder follows (the source's
        intonation about its own mean) by (target spread / source spread)^S,
        so a monotonous source reads with a lively target's intonation and
        the other way round. The speaker latent sets the register but not the
        melody's range, which comes from the source, and a range that is the
        source's is part of what makes a conversion sound like the source
        (README, "Melody range"). The target's spread: stored for a named
        voice, measured for clips, or given as `target_spread` (octaves,
        `pitch.melody_spread`).
        """
        check_blend_options(target, retrieval=retrieval, detail=detail, content_norm=content_norm, f0_spread=f0_spread)
        audio = self._audio(wav)
        mel = self.mel(audio)
        own = self._speaker_of_mel(mel)
        source_pitch = pitch = self.intonation(audio, mel.shape[-1])
        if f0_spread:
            assert target is not None
            pitch = self._spread_melody(pitch, target, f0_spread, target_spread)
        z_s = own if target is None else self._speaker_latent(own, target, strength, attributes, method, source_speaker)
        affine = None
        if content_norm:
            assert target is not None
            target_stats = self.content_stats_for(target, matching)
            affine = content_affine(self._content_stats_of(mel), target_stats, content_norm)
        # Resynthesis keeps the clip's own pitch register; a conversion takes the target's.
        out = self.decode_with_speaker(mel, z_s, pitch, own_register=target is None, content_affine=affine)
        if retrieval:
            assert target is not None
            out = (matching or self.matching_for(target)).blend(self.model, out, retrieval)
        if detail:
            # What the VAE loses of the source as it is, with its own melody.
            out = out + detail * self.source_detail(mel, own, source_pitch)
        return out

    def source_detail(self, mel: torch.Tensor, own: torch.Tensor, pitch: torch.Tensor | None = None) -> torch.Tensor:
        """What the VAE loses of log-mel (n_mels, F): mel minus its resynthesis with its own speaker latent (Ds,).

        `detail` adds D times this to a conversion, here and in each window
        of a streamed file (streaming.convert_file), so the two agree; live
        streams (realtime.StreamingConverter._convert) and exported graphs
        (export.ExportableConverter) compute the same inside their graphs.
        """
        return mel - self.decode_with_speaker(mel, own, pitch, own_register=True)

    # ----- retrieval and pitch --------------------------------------------------------

    def matching_set(self, clips: Sequence[Source] | Source, space: str = DEFAULT_SPACE) -> MatchingSet:
        """The matching set of reference clips: every frame's key and log-mel (cached per clip list and space).

        space: the key space, "content" or "mfcc", optionally with context
        frames ("mfcc:2"); see matching.py.
        """
        keyed = parse_space(space)
        if isinstance(clips, (str, Path, torch.Tensor)):
            clips = [clips]
        if any(isinstance(c, torch.Tensor) for c in clips):  # no stable key for tensors: not cached
            return MatchingSet.from_mels(self.model, [self.mel(c) for c in clips], *keyed)
        key = (*(str(Path(c).resolve()) for c in clips), space)  # type: ignore[arg-type]
        if key not in self._clip_matching:
            if len(self._clip_matching) >= 8:  # a long-running demo sees many clip sets; keep the newest few
                del self._clip_matching[next(iter(self._clip_matching))]
            self._clip_matching[key] = MatchingSet.from_mels(self.model, [self.mel(c) for c in clips], *keyed)
        return self._clip_matching[key]

    def matching_for(self, target: str | torch.Tensor | Sequence[Source], purpose: str = "retrieval") -> MatchingSet:
        """A named voice's stored matching set (written by `adapt`), or that of reference clips.

        purpose: the option that needs it, named in the error when there is none.
        """
        if isinstance(target, str):
            if target in self._voice_matching:
                return self._voice_matching[target]
            path = self.model_dir / "matching" / f"{target}.pt" if self.model_dir is not None else None
            if path is None or not path.is_file():
                # content_norm reads a named voice's statistics from the vector file; only an old one lacks them.
                stats = (
                    "; or store its content statistics: make the vector file again with this version "
                    "(voicevae vectors; an adapted voice: adapt again)"
                )
                raise ValueError(
                    f"{purpose}: voice {target!r} has no matching set in this model folder; "
                    "adapt to the voice (voicevae adapt) or give its reference clips as the target"
                    + (stats if purpose == "content_norm" else "")
                )
            self._voice_matching[target] = MatchingSet.load(path)
            return self._voice_matching[target]
        if isinstance(target, torch.Tensor) and target.ndim == 1:
            raise ValueError(f"{purpose} needs the target's frames: give a named adapted voice or reference clips, not a vector")
        return self.matching_set(target)

    def _content_stats_of(self, mel: torch.Tensor) -> ContentStats:
        """A source log-mel's (n_mels, F) content statistics, from the latents `decode_with_speaker` decodes.

        A long clip is encoded in the same chunks (so in bounded memory), each
        chunk's latents normalised by the encoder on their own: the statistics
        are those of the latents the affine map will be applied to.
        """
        down = self.model.config.downsample
        pieces = []
        for lo, hi, start, stop in self._chunk_spans(mel.shape[-1]):
            z_c = self.model.content_means(mel[:, lo:hi].unsqueeze(0))[0]  # (Dc, L)
            speech = speech_latents(mel[:, lo:hi], z_c.shape[-1], down)
            # Only the latents of the frames this chunk keeps.
            first, last = (start - lo) // down, -(-(stop - lo) // down)
            pieces.append((z_c[:, first:last], speech[first:last]))
        return ContentStats.of_latents(pieces)

    def stored_content_stats(self, target: str | torch.Tensor | Sequence[Source]) -> ContentStats | None:
        """A named voice's content statistics from the vector file (`voicevae vectors`, `adapt`); None for clips,
        vectors and voices of files made before them."""
        if isinstance(target, str) and self.vectors is not None:
            return self.vectors.content.get(target)
        return None

    def content_stats_for(
        self, target: str | torch.Tensor | Sequence[Source], matching: MatchingSet | None = None
    ) -> ContentStats:
        """The target's content statistics (content_norm), on this converter's device: those of the frames
        of `matching` when given, else a named voice's stored ones, else those of its matching set's frames."""
        if self.model.config.content_latent != "gaussian":
            # Moved codebook vectors leave the codebook: inputs the decoder never saw.
            raise ValueError(f"content_norm needs a Gaussian content latent; this model's is {self.model.config.content_latent}")
        stored = self.stored_content_stats(target) if matching is None else None
        if stored is not None:  # the vector file is read onto the CPU
            return ContentStats(stored.mean.to(self.device), stored.sd.to(self.device))
        found = matching or self.matching_for(target, purpose="content_norm")
        key = id(found)
        if key not in self._content_stats:
            if len(self._content_stats) >= 8:  # as the clip matching sets: keep the newest few
                del self._content_stats[next(iter(self._content_stats))]
            self._content_stats[key] = (found, ContentStats.of_mels(self.model, found.clip_mels()))
        return self._content_stats[key][1]

    def adjust_pitch(
        self,
        audio: torch.Tensor,
        target: str | torch.Tensor | Sequence[Source] | None,
        pitch_shift: float = 0.0,
        match_pitch: bool = False,
        target_hz: float | None = None,
    ) -> torch.Tensor:
        """Shift converted audio (T,) so its median F0 is the target's (match_pitch), then by pitch_shift semitones.

        target_hz, when given, stands in for the target's median F0 (a batch
        finds it once). The shift scales every frequency (librosa's time
        stretch and resample), so large shifts move the formants too, and any
        shift costs some quality: match_pitch leaves alone an output already
        within `match_pitch_tolerance` semitones of the target (an adapted
        voice usually is; `voicevae evaluate --cloning` measured a 0.2-0.4 st
        gain cost 0.07 similarity and 15 points of WER when shifted anyway).
        """
        semitones = pitch_shift
        if match_pitch:
            if target_hz is None:
                if target is None:
                    raise ValueError("match_pitch needs a target voice")
                target_hz = self.target_f0(target)["median_hz"]
            out_hz = median_f0(audio, self.sample_rate)
            if not math.isfinite(out_hz):
                # Nothing voiced to measure (whisper, noise): no pitch to move; pitch_shift still applies.
                warnings.warn("match_pitch: the converted clip has no voiced frames; its pitch is left as it is", stacklevel=2)
            else:
                off = semitones_between(out_hz, target_hz)
                if abs(off) > self.match_pitch_tolerance:
                    semitones += off
        return shift_pitch(audio, self.sample_rate, semitones) if semitones else audio

    def check_melody_input(self) -> None:
        """Refuse f0_spread up front for a model whose decoder takes no melody (batches, protocols)."""
        if not self.model.config.pitch_input:
            raise ValueError("f0_spread needs a model with a pitch input (model.pitch_input); this one has none")

    def _spread_melody(
        self, pitch: torch.Tensor | None, target: str | torch.Tensor | Sequence[Source], amount: float, wanted: float | None
    ) -> torch.Tensor | None:
        """The source's intonation (1, 3, F) with its melody moved `amount` of the way to the target's spread."""
        self.check_melody_input()
        assert pitch is not None
        own = intonation_spread(pitch)
        if own is None or own == 0.0:
            # A whisper or a monotone: no melody to scale.
            warnings.warn("f0_spread: the source has too few voiced frames; its melody is left as it is", stacklevel=3)
            return pitch
        if wanted is None:
            wanted = self.target_spread(target)
        elif not (math.isfinite(wanted) and wanted > 0):
            raise ValueError(f"target_spread must be a spread in octaves above 0, got {wanted:g}")
        # A near-monotone source's few cents of wobble (tracker jitter, mostly) must not be blown up into
        # a melody; the benchmark's targets spread 0.34-3.1 times as widely as its sources.
        ratio = min(max(wanted / own, 1 / MAX_MELODY_SCALE), MAX_MELODY_SCALE)
        return scale_melody(pitch, ratio**amount)

    def target_spread(self, target: str | torch.Tensor | Sequence[Source]) -> float:
        """The target's melody spread (octaves, `pitch.melody_spread`): stored for a named voice, measured for clips."""
        if isinstance(target, str):
            self.target_vector(target)  # an unknown name is refused as everywhere else, with suggestions
            assert self.vectors is not None
            if target not in self.vectors.f0:
                raise ValueError(
                    f"f0_spread: voice {target!r} has no F0 statistics in the vector file (too little voiced "
                    "speech in its clips to measure); give reference clips"
                )
            stored = self.vectors.f0[target].get("melody_octaves", math.nan)
            if not math.isfinite(stored):
                raise ValueError(
                    f"f0_spread: no melody spread for voice {target!r} in the vector file (one made before f0_spread, "
                    "or too little voiced speech); recompute it with `voicevae vectors` (an adapted voice: adapt again), "
                    "or give reference clips"
                )
            return stored
        if isinstance(target, torch.Tensor) and target.ndim == 1 and target.shape[0] == self.model.config.speaker_dim:
            raise ValueError("f0_spread needs the target's melody: give a named voice or reference clips, not a vector")
        clips = [target] if isinstance(target, (str, Path, torch.Tensor)) else list(target)
        try:
            return melody_spread([self._audio(c) for c in clips], self.sample_rate)
        except ValueError as e:
            raise ValueError(f"f0_spread: the reference clips: {e}") from None

    def target_f0(self, target: str | torch.Tensor | Sequence[Source]) -> dict[str, float]:
        """F0 statistics of a target (pitch.f0_stats): stored for a named voice, measured for clips."""
        if isinstance(target, str):
            if self.vectors is None or target not in self.vectors.f0:
                raise ValueError(
                    f"match_pitch: no F0 statistics for voice {target!r} in the vector file "
                    "(recompute it with `voicevae vectors`, or give reference clips)"
                )
            return self.vectors.f0[target]
        if isinstance(target, torch.Tensor) and target.ndim == 1:
            raise ValueError("match_pitch needs the target's pitch: give a named voice or reference clips, not a vector")
        clips = [target] if isinstance(target, (str, Path, torch.Tensor)) else list(target)
        return f0_stats([self._audio(c) for c in clips], self.sample_rate)

    # ----- adaptation -----------------------------------------------------------------

    def adapt(
        self,
        clips: Sequence[Source] | Source,
        name: str,
        out_dir: str | Path | None = None,
        config: AdaptConfig | None = None,
        progress: bool = True,
        max_minutes: float | None = None,
        force: bool = False,
    ) -> VoiceConverter:
        """Fine-tune to one speaker's recordings (training/adapt.py); returns a converter with voice `name`.

        With out_dir the adapted model folder is written there (model.pt,
        vectors.pt, matching/<name>.pt), for `voicevae.load(out_dir)`.
        """
        # The training package builds on this API's parts; the API calls into it only here.
        from .training.adapt import adapt, check_output_folder, save_adapted

        if self.vectors is None:
            raise ValueError("adaptation needs the model's vector file (the other voices it must keep)")
        if isinstance(clips, (str, Path, torch.Tensor)):
            clips = [clips]
        if out_dir is not None:
            check_output_folder(Path(out_dir), self.model_dir, force)  # before minutes of fine-tuning
        config = config or AdaptConfig()
        adapted = adapt(
            self.model, self.vectors, list(clips), name, config, progress=progress, max_minutes=max_minutes, force=force
        )
        new = VoiceConverter(
            adapted.model, adapted.vectors, self.vocoder, self.device, model_dir=self.model_dir, postfilter=self.postfilter
        )
        new._voice_matching[name] = adapted.matching
        if out_dir is not None:
            new.model_dir = save_adapted(adapted, out_dir, self.model_dir, config, force=force)
        return new

    def vocode_many(self, mels: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Vocode log-mels (n_mels, F_i) in one batch: -> [(F_i * hop,)] on the CPU.

        Shorter mels are padded on the right with the silence floor, and every
        mel gets at least the vocoder's `batch_tail_frames` of it; each output
        is cut back to its own length. With that tail (the fast vocoder's) the
        end of a clip sees the same silence whichever clips share its batch,
        so `convert`, `resynthesize` and `convert_files` at any batch size give
        the same audio. HiFi-GAN and Griffin-Lim take no tail (it would cost
        HiFi-GAN a third of a second per clip on a CPU): batched, a clip's last
        frames can differ slightly from the clip vocoded alone.
        """
        if not mels:
            return []
        hop = self.vocoder.hop_length
        frames = [m.shape[-1] for m in mels]
        width = max(frames) + self.vocoder.batch_tail_frames
        batch = torch.full((len(mels), mels[0].shape[0], width), self.model.floor, device=self.device)
        for i, m in enumerate(mels):
            batch[i, :, : frames[i]] = m
        audio = self.vocoder.vocode(batch).cpu()
        return [audio[i, : f * hop] for i, f in enumerate(frames)]

    def convert_files(
        self,
        paths: Iterable[str | Path],
        out_dir: str | Path,
        target: str | torch.Tensor | Sequence[Source] | None = None,
        strength: float = 1.0,
        attributes: dict[str, float] | None = None,
        method: str = "arithmetic",
        root: str | Path | None = None,
        force: bool = False,
        progress: bool = True,
        batch_size: int | None = None,
        *,
        retrieval: float = 0.0,
        pitch_shift: float = 0.0,
        match_pitch: bool = False,
        detail: float = 0.0,
        content_norm: float = 0.0,
        f0_spread: float = 0.0,
        fmt: str = "wav",
        sample_rate: int | None = None,
    ) -> BatchReport:
        """Convert (or, with target=None, resynthesize) many files into out_dir.

        Output paths mirror the inputs' paths relative to `root` (default: flat
        names), written as `fmt` (wav, flac, ogg) at `sample_rate` (default
        the model's). Existing outputs are refused unless force=True; a file that
        fails is reported and the rest still run. The vocoder runs
        `batch_size` clips at once (default 16 on a GPU, 1 on the CPU). The
        work is `voicevae.batch.convert_files`, which the CLI and the demo's
        batch tab share.
        """
        return _convert_files(
            self,
            paths,
            out_dir,
            target,
            strength,
            attributes,
            method,
            root=root,
            force=force,
            progress=progress,
            batch_size=batch_size,
            retrieval=retrieval,
            pitch_shift=pitch_shift,
            match_pitch=match_pitch,
            detail=detail,
            content_norm=content_norm,
            f0_spread=f0_spread,
            fmt=fmt,
            sample_rate=sample_rate,
        )


def _dirichlet(k: int, generator: torch.Generator) -> torch.Tensor:
    """Dirichlet(1, ..., 1) weights from a seeded generator (normalised exponentials)."""
    e = -torch.log(torch.rand(k, generator=generator).clamp(min=1e-12))
    return e / e.sum()


def load(
    path_or_name: str | Path | None = None,
    vocoder: str = DEFAULT_VOCODER,
    device: str | torch.device | None = None,
    vectors: str | Path | None = None,
    postfilter: float = DEFAULT_POSTFILTER,
) -> VoiceConverter:
    """Load a model: a model.pt path, a folder holding model.pt and vectors.pt, or a shipped one by name
    (None or 'default'; 'synthetic', the previous default, trained on synthetic voices only).

    The vector file is looked up next to the model as vectors.pt unless given.
    postfilter: formant sharpening of decoded log-mels, 0 (off) to 2 (postfilter.py).
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if path_or_name is None or path_or_name in SHIPPED_MODELS:
        path = SHIPPED_MODELS[str(path_or_name or "default")]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the shipped model {path_or_name or 'default'!r} is missing from this installation")
    else:
        path = Path(path_or_name)
        if path.is_dir():
            path = path / "model.pt"
    model = VAE.load(path)
    vec_path = Path(vectors) if vectors is not None else path.parent / "vectors.pt"
    vecs = VectorSet.load(vec_path, model) if vec_path.is_file() else None
    if vectors is not None and vecs is None:
        raise FileNotFoundError(f"{vec_path}: vector file not found")
    vocoder_net = load_vocoder(vocoder, device=str(device))
    return VoiceConverter(model, vecs, vocoder_net, device, model_dir=path.parent, postfilter=postfilter)
