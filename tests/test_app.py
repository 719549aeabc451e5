"""The Gradio demo's handlers, called directly with file paths as Gradio passes them."""

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.api import VoiceConverter
from voicevae.corpora import read_manifest
from voicevae.demo import (
    MAX_ATTRIBUTE_SLIDERS,
    TARGET_CLIPS,
    TARGET_RANDOM,
    TARGET_SPEAKER,
    Demo,
    DemoConfig,
    find_models,
    mel_image,
)

RATE = 22050


@pytest.fixture(scope="module")
def demo(model_dir, tmp_path_factory) -> Demo:
    empty = tmp_path_factory.mktemp("models")
    return Demo(
        DemoConfig(models_dir=empty, model=model_dir, vocoder="griffinlim", device="cpu", max_upload_mb=1.0, max_seconds=3.0)
    )


def harmonic(path: Path, seconds: float = 1.0, f0: float = 140.0, amp: float = 0.3) -> Path:
    """A voiced-sounding clip: five harmonics with slow vibrato."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * f0 * (t + 0.02 * np.sin(2 * np.pi * 4 * t) / (2 * np.pi * 4))
    wav = sum(np.sin(k * phase) / k for k in range(1, 6))
    sf.write(path, (amp * wav / np.abs(wav).max()).astype(np.float32), RATE)
    return path


@pytest.fixture
def clip(tmp_path) -> Path:
    return harmonic(tmp_path / "voice.wav")


def convert(demo: Demo, source, mode=TARGET_SPEAKER, speaker="spk1", refs=None, seed=0, strength=1.0, amounts=()):
    model = demo.default_model
    sliders = list(amounts) + [0.0] * (MAX_ATTRIBUTE_SLIDERS - len(amounts))
    return demo.on_convert(str(source) if source else None, mode, speaker, refs, seed, strength, model, "griffinlim", *sliders)


def test_model_list_offers_extra_default_and_models_dir(tmp_path, model_dir):
    for name in ("b", "a"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.pt").touch()
    (tmp_path / "notes").mkdir()  # no model.pt: not offered
    models = find_models(tmp_path, model_dir)
    assert next(iter(models)) == model_dir.name
    assert [k for k in models if k in ("a", "b", "notes")] == ["a", "b"]
    assert models["a"] == tmp_path / "a"


def test_missing_model_folder_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model.pt"):
        Demo(DemoConfig(models_dir=tmp_path, model=tmp_path / "nothing", vocoder="griffinlim"))


def test_launcher_reports_bad_arguments_without_a_traceback(tmp_path):
    app = Path(__file__).resolve().parent.parent / "app.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, str(app), "--model", str(tmp_path / "nothing")], capture_output=True, text=True, env=env, timeout=60
    )
    assert run.returncode == 2 and run.stderr.startswith("app.py: ") and "no model.pt" in run.stderr
    assert "Traceback" not in run.stderr


def test_convert_returns_audio_spectrograms_and_score(demo, clip):
    path, src_img, out_img, score, status = convert(demo, clip)
    assert status.startswith("Converted 1.0 s to **spk1**"), status
    out, rate = sf.read(path)
    assert rate == RATE and out.ndim == 1 and np.isfinite(out).all()
    inp, _ = sf.read(clip)
    assert out.shape != inp.shape or not np.allclose(out, inp, atol=1e-3)
    assert Path(path).parent == demo.out_dir and "voice_to_spk1" in Path(path).name
    # 80 mel bins drawn 3 px high; ~87 frames drawn 9 px wide to fill the panel.
    assert src_img.dtype == np.uint8 and src_img.shape[0] == 240 and src_img.shape[2] == 3
    assert out_img.shape[0] == 240 and 720 <= src_img.shape[1] <= 810 and abs(out_img.shape[1] - src_img.shape[1]) <= 9
    assert "likelihood ratio" in score


def test_few_shot_and_random_targets(demo, clip, tone_corpus):
    refs = [str(u.path) for u in read_manifest(tone_corpus) if u.speaker == "spk2"][:2]
    path, *_, status = convert(demo, clip, mode=TARGET_CLIPS, refs=refs)
    assert path and "to **clone**" in status
    seed, mode = demo.on_random_voice()
    assert mode == TARGET_RANDOM and 0 <= seed < 2**31
    a, *_ = convert(demo, clip, mode=TARGET_RANDOM, seed=7)
    b, *_ = convert(demo, clip, mode=TARGET_RANDOM, seed=7)
    c, *_, status = convert(demo, clip, mode=TARGET_RANDOM, seed=8)
    assert "random8" in status
    # Griffin-Lim starts from a fixed phase, so the same seed gives the same audio.
    np.testing.assert_allclose(sf.read(a)[0], sf.read(b)[0], atol=1e-4)
    assert not np.allclose(sf.read(a)[0], sf.read(c)[0], atol=1e-3)


def test_attribute_sliders_follow_the_model_and_move_the_voice(demo, clip):
    vc = demo.converter(demo.default_model, "griffinlim")
    speaker_update, *sliders, status = demo.on_model_change(demo.default_model, "griffinlim")
    assert speaker_update["choices"] == vc.speakers and speaker_update["value"] == "spk0"
    attrs = vc.attributes
    assert [s["label"] for s in sliders[: len(attrs)]] == attrs and all(s["visible"] for s in sliders[: len(attrs)])
    assert not any(s["visible"] for s in sliders[len(attrs) :])
    assert f"{len(attrs)} attributes" in status
    plain, *_ = convert(demo, clip, strength=0.0)
    moved, *_ = convert(demo, clip, strength=0.0, amounts=[2.0])
    assert not np.allclose(sf.read(plain)[0], sf.read(moved)[0], atol=1e-3)


def test_anomaly_note_only_below_threshold(demo, clip, monkeypatch):
    vc = demo.converter(demo.default_model, "griffinlim")
    wav = vc.load_audio(clip)
    monkeypatch.setattr(VoiceConverter, "anomaly_threshold", property(lambda self: 1e9))
    note = demo._score_note(vc, wav)
    assert "unlike the speech the model was trained on" in note and "may sound poor" in note
    monkeypatch.setattr(VoiceConverter, "anomaly_threshold", property(lambda self: -1e9))
    assert "may sound poor" not in demo._score_note(vc, wav)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: sf.write(p, np.zeros(RATE, np.float32), RATE), "voice.wav: is silent"),
        (lambda p: p.write_text("not audio at all"), "voice.wav: cannot read audio"),
        (lambda p: sf.write(p, np.zeros(300, np.float32) + 0.1, RATE), "too short"),
        (lambda p: harmonic(p, seconds=4.0), "is 4.0 s long; the limit is 3 s"),
        (lambda p: p.write_bytes(b"\0" * 1_100_000), "is 1.1 MB; the limit is 1 MB"),
    ],
    ids=["silent", "unreadable", "too-short", "too-long", "over-size"],
)
def test_bad_source_gives_a_message_not_a_crash(demo, tmp_path, make, message):
    path = tmp_path / "voice.wav"
    make(path)
    out, src_img, out_img, _, status = convert(demo, path)
    assert out is None and src_img is None and out_img is None
    assert status.startswith("**Error:**") and message in status, status
    # Only the uploaded name is shown, not the server's temp folder.
    assert str(tmp_path) not in status


def test_detail_control_reaches_the_conversion(demo, clip):
    sliders = [0.0] * MAX_ATTRIBUTE_SLIDERS
    args = (str(clip), TARGET_SPEAKER, "spk1", None, 0, 1.0, demo.default_model, "griffinlim", *sliders)
    plain, detailed = demo.on_convert(*args, 0.0, 0.0, False, 0.0), demo.on_convert(*args, 0.0, 0.0, False, 1.0)
    assert plain[-1].startswith("Converted") and detailed[-1].startswith("Converted"), detailed[-1]
    assert not np.allclose(sf.read(plain[0])[0], sf.read(detailed[0])[0])
    assert "detail must be in [0, 1]" in demo.on_convert(*args, 0.0, 0.0, False, 1.5)[-1]


def test_postfilter_control_reaches_the_conversion_and_leaves_the_shared_converter_alone(demo, clip):
    sliders = [0.0] * MAX_ATTRIBUTE_SLIDERS
    args = (str(clip), TARGET_SPEAKER, "spk1", None, 0, 1.0, demo.default_model, "griffinlim", *sliders, 0.0, 0.0, False, 0.0)
    plain, sharp = demo.on_convert(*args, 0.0), demo.on_convert(*args, 0.8)
    assert sharp[-1].startswith("Converted"), sharp[-1]
    assert not np.allclose(sf.read(plain[0])[0], sf.read(sharp[0])[0])
    assert demo.converter(demo.default_model, "griffinlim").postfilter == 0.0  # a copy took the setting
    assert "postfilter must be in [0, 2]" in demo.on_convert(*args, 5.0)[-1]


def test_missing_inputs_give_messages(demo, clip):
    assert "upload or record a source clip" in convert(demo, None)[-1]
    assert "upload one or more reference clips" in convert(demo, clip, mode=TARGET_CLIPS, refs=[])[-1]
    assert "choose a target speaker" in convert(demo, clip, speaker=None)[-1]
    status = demo.on_convert(
        str(clip), TARGET_SPEAKER, "spk1", None, 0, 1.0, "no-such-model", "griffinlim", *[0.0] * MAX_ATTRIBUTE_SLIDERS
    )[-1]
    assert "unknown model 'no-such-model'" in status


def test_batch_zips_good_clips_and_lists_bad_ones(demo, tmp_path):
    good = [harmonic(tmp_path / "a.wav", f0=120), harmonic(tmp_path / "b.wav", f0=200)]
    bad = tmp_path / "quiet.wav"
    sf.write(bad, np.zeros(RATE, np.float32), RATE)
    sliders = [0.0] * MAX_ATTRIBUTE_SLIDERS
    path, status = demo.on_batch(
        [str(p) for p in [*good, bad]], TARGET_SPEAKER, "spk2", None, 0, 1.0, demo.default_model, "griffinlim", *sliders
    )
    assert "Converted 2 of 3 clips to **spk2**" in status and "- quiet.wav: quiet.wav: is silent" in status
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["001_a_to_spk2.wav", "002_b_to_spk2.wav"]
        assert all(zf.read(n)[:4] == b"RIFF" for n in zf.namelist())
    path, status = demo.on_batch([str(bad)], TARGET_SPEAKER, "spk2", None, 0, 1.0, demo.default_model, "griffinlim", *sliders)
    assert path is None and status.startswith("**Error:** no clip could be converted")
    assert demo.on_batch([], TARGET_SPEAKER, "spk2", None, 0, 1.0, demo.default_model, "griffinlim", *sliders)[0] is None


def test_batch_writes_what_convert_files_writes(demo, tmp_path):
    # The batch tab runs voicevae.batch, as convert_files does; same-named uploads stay apart.
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
    clips = [harmonic(tmp_path / "one" / "a.wav", f0=120), harmonic(tmp_path / "two" / "a.wav", f0=200)]
    sliders = [0.0] * MAX_ATTRIBUTE_SLIDERS
    path, status = demo.on_batch(
        [str(p) for p in clips], TARGET_SPEAKER, "spk2", None, 0, 1.0, demo.default_model, "griffinlim", *sliders
    )
    vc = demo.converter(demo.default_model, "griffinlim")
    report = vc.convert_files(clips, tmp_path / "out", target="spk2", root=tmp_path, progress=False)
    with zipfile.ZipFile(path) as zf:
        assert zf.namelist() == ["001_a_to_spk2.wav", "002_a_to_spk2.wav"]
        assert [zf.read(n) for n in zf.namelist()] == [p.read_bytes() for p in report.written]


def test_rescan_finds_new_model_folders(demo):
    (demo.config.models_dir / "fresh").mkdir()
    (demo.config.models_dir / "fresh" / "model.pt").touch()
    update = demo.on_rescan(demo.default_model)
    assert "fresh" in update["choices"] and update["value"] == demo.default_model
    # A broken model file is reported, not raised.
    assert "cannot load model 'fresh'" in demo.on_model_change("fresh", "griffinlim")[-1]
    # The working model is still served afterwards.
    assert demo.on_model_change(demo.default_model, "griffinlim")[-1].startswith("Loaded")


def test_old_outputs_are_deleted(demo, clip):
    stale = demo.out_dir / "00000_stale.wav"
    stale.write_bytes(b"x")
    old = time.time() - demo.config.keep_outputs_s - 1
    os.utime(stale, (old, old))
    path, *_ = convert(demo, clip)
    assert Path(path).is_file() and not stale.exists()


def test_page_offers_example_clips(model_dir, tmp_path):
    examples = tmp_path / "examples"
    examples.mkdir()
    harmonic(examples / "slt.wav")
    harmonic(examples / "awb.wav", f0=100)
    config = DemoConfig(models_dir=tmp_path, model=model_dir, vocoder="griffinlim", device="cpu", examples_dir=examples)
    blocks = Demo(config).build()
    datasets = [c for c in blocks.config["components"] if c["type"] == "dataset"]
    assert len(datasets) == 1 and datasets[0]["props"]["sample_labels"] == ["awb", "slt"]


def test_mel_image_has_axes_and_puts_low_frequencies_at_the_bottom():
    from voicevae.config import MelConfig

    low, high = torch.full((80, 200), -10.0), torch.full((80, 200), -10.0)
    low[:10], high[-10:] = 0.0, 0.0  # loud lowest or highest bins
    a, b = mel_image(low, MelConfig()), mel_image(high, MelConfig())
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3 and a.shape[0] > 150 and a.shape[1] > 500
    h, w = a.shape[:2]
    plot = slice(int(0.3 * w), int(0.6 * w))  # inside the axes, left of the colour bar
    bottom, top = slice(int(0.72 * h), int(0.76 * h)), slice(int(0.05 * h), int(0.1 * h))  # lowest and highest bins
    # Bright (pale yellow) where the energy is, dark elsewhere.
    assert a[bottom, plot].mean() > a[top, plot].mean() + 50
    assert b[top, plot].mean() > b[bottom, plot].mean() + 50


def test_adapt_makes_a_new_model_whose_voice_is_the_target(demo, tmp_path):
    recordings = [str(harmonic(tmp_path / f"rec{i}.wav", seconds=2.8, f0=290 + 5 * i)) for i in range(4)]
    model_update, speaker_update, status = demo.on_adapt(recordings, "newvoice", demo.default_model, "griffinlim")
    assert status.startswith("Adapted **newvoice**"), status
    assert model_update["value"] == "newvoice" and speaker_update["value"] == "newvoice"
    assert (demo.config.models_dir / "newvoice" / "model.pt").is_file()
    # Loading the new model keeps the new voice selected; retrieval and pitch controls reach the conversion.
    assert demo.on_model_change("newvoice", "griffinlim", "newvoice")[0]["value"] == "newvoice"
    sliders = [0.0] * MAX_ATTRIBUTE_SLIDERS
    source = harmonic(tmp_path / "src.wav", f0=150)
    plain = demo.on_convert(str(source), TARGET_SPEAKER, "newvoice", None, 0, 1.0, "newvoice", "griffinlim", *sliders)
    blended = demo.on_convert(
        str(source), TARGET_SPEAKER, "newvoice", None, 0, 1.0, "newvoice", "griffinlim", *sliders, 1.0, 0.0, False
    )
    assert plain[-1].startswith("Converted") and blended[-1].startswith("Converted"), blended[-1]
    assert not np.array_equal(sf.read(plain[0])[0], sf.read(blended[0])[0])
    # The old model has no matching set for its named voices: a clear message, no traceback.
    status = demo.on_convert(
        str(source), TARGET_SPEAKER, "spk1", None, 0, 1.0, demo.default_model, "griffinlim", *sliders, 0.5, 0.0, False
    )[-1]
    assert "has no matching set" in status
    # Content norm reaches the conversion (the sixth control, after the postfilter).
    normed = demo.on_convert(
        str(source), TARGET_SPEAKER, "newvoice", None, 0, 1.0, "newvoice", "griffinlim", *sliders, 0.0, 0.0, False, 0.0, 0.0, 1.0
    )
    assert normed[-1].startswith("Converted"), normed[-1]
    assert not np.array_equal(sf.read(plain[0])[0], sf.read(normed[0])[0])
    # A named voice of the old model has no matching set, but its content statistics are in the vector file.
    controls = (*sliders, 0.0, 0.0, False, 0.0, 0.0)
    named = [
        demo.on_convert(str(source), TARGET_SPEAKER, "spk1", None, 0, 1.0, demo.default_model, "griffinlim", *controls, c)
        for c in (0.0, 1.0)
    ]
    assert named[1][-1].startswith("Converted"), named[1][-1]
    assert not np.array_equal(sf.read(named[0][0])[0], sf.read(named[1][0])[0])
    # The F0 spread (the seventh control) reaches the conversion too: this model has no melody input to scale.
    spread = demo.on_convert(
        str(source), TARGET_SPEAKER, "newvoice", None, 0, 1.0, "newvoice", "griffinlim", *controls, 0.0, 1.0
    )[-1]
    assert "f0_spread needs a model with a pitch input" in spread
    # A taken name, a bad name, or nothing uploaded: refused with a message.
    assert "exists already" in demo.on_adapt(recordings, "newvoice", demo.default_model, "griffinlim")[-1]
    assert "a name of letters" in demo.on_adapt(recordings, "new voice", demo.default_model, "griffinlim")[-1]
    assert "upload recordings" in demo.on_adapt([], "other", demo.default_model, "griffinlim")[-1]
    assert "too little speech" in demo.on_adapt(recordings[:1], "short", demo.default_model, "griffinlim")[-1]


def test_target_controls_follow_the_mode_and_the_default_target_is_a_clear_voice():
    from voicevae.demo import TARGET_CLIPS, TARGET_RANDOM, TARGET_SPEAKER, default_target

    for mode, shown in ((TARGET_SPEAKER, 0), (TARGET_CLIPS, 1), (TARGET_RANDOM, 2)):
        updates = Demo.on_mode_change(mode)
        assert [u["visible"] for u in updates] == [i == shown for i in range(3)]
    assert default_target(["espeak_gb_f1", "flite_rms", "flite_slt"]) == "flite_slt"
    assert default_target(["a", "b"]) == "a" and default_target([]) is None


def test_live_chunks_come_back_converted_through_one_stream(demo, tmp_path):
    wav, rate = sf.read(harmonic(tmp_path / "mic.wav", seconds=2.0), dtype="float32")
    pcm = (wav * 32767).astype(np.int16)
    session, outs = None, []
    step = rate // 10  # Gradio sends a chunk every 0.1 s
    for i in range(0, pcm.size, step):
        out, session, status = demo.on_live_chunk((rate, pcm[i : i + step]), session, "spk1", demo.default_model, "griffinlim")
        assert "Live to **spk1**" in status and "fast vocoder" in status
        if out is not None:
            assert out[0] == RATE and out[1].dtype == np.int16
            outs.append(out[1])
    first = session
    # The stream carried over: the output is the input length minus what waits in the stream.
    total = sum(o.size for o in outs)
    assert pcm.size - 2 * first.stream.block <= total <= pcm.size
    # Another target changes the voice of the same stream; a stopped recording forgets it.
    _, session, status = demo.on_live_chunk((rate, pcm[:step]), session, "spk2", demo.default_model, "griffinlim")
    assert session is first and session.speaker == "spk2" and "Live to **spk2**" in status
    assert torch.allclose(session.stream.speaker[0], demo.converter(demo.default_model, "griffinlim").target_vector("spk2"))
    # The source detail slider reaches the same stream too.
    assert session.stream.detail == 0.0
    _, session, _ = demo.on_live_chunk((rate, pcm[:step]), session, "spk2", demo.default_model, "griffinlim", 0.5)
    assert session is first and session.stream.detail == 0.5
    # The sharper formants slider is fixed in a stream's graphs: a new value starts a new stream.
    assert session.stream.postfilter == 0.0
    _, session, _ = demo.on_live_chunk((rate, pcm[:step]), session, "spk2", demo.default_model, "griffinlim", 0.5, 0.4)
    assert session is not first and session.stream.postfilter == 0.4
    _, broken, status = demo.on_live_chunk((rate, pcm[:step]), session, "spk2", demo.default_model, "griffinlim", 0.5, -1)
    assert broken is None and "postfilter" in status
    assert demo.on_live_stop() == (None, "")


def test_live_without_a_target_speaker_says_so(demo):
    chunk = (RATE, np.zeros(2205, np.int16))
    out, session, status = demo.on_live_chunk(chunk, None, None, demo.default_model, "griffinlim")
    assert out is None and session is None and "choose a target speaker" in status
    # Stereo chunks at 44.1 kHz (other browsers' formats), float or int16, are scaled alike.
    t = np.arange(44100) / 44100
    tone = 0.25 * np.sin(2 * np.pi * 220 * t)
    fed = {}
    for name, samples in (("float", tone.astype(np.float32)), ("int16", (tone * 32768).astype(np.int16))):
        stereo = np.stack([samples, samples], axis=1)
        _, session, status = demo.on_live_chunk((44100, stereo), None, "spk1", demo.default_model, "griffinlim")
        assert session is not None and session.seconds == pytest.approx(1.0)
        fed[name] = session.stream.pending.abs().max().item() or session.stream.mels.peak
    assert fed["int16"] == pytest.approx(fed["float"], rel=1e-3) and fed["float"] == pytest.approx(0.25, rel=0.05)
