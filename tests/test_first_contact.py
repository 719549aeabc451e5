"""What a new user meets first: clear errors for bad names and inputs, output formats, file modes, listing voices."""

import os
import stat
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.api import DEFAULT_VOCODER, VoiceConverter
from voicevae.audio import AudioError, save_audio
from voicevae.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from voicevae.cli import main
from voicevae.model import VAE
from voicevae.vectors import UnknownName, VectorSet
from voicevae.vocoder import load_vocoder


@pytest.fixture(scope="module")
def vc(model_dir) -> VoiceConverter:
    model = VAE.load(model_dir / "model.pt")
    return VoiceConverter(model, VectorSet.load(model_dir / "vectors.pt", model), load_vocoder("griffinlim"))


def _convert(model_dir, inputs, out, *extra):
    return main(
        ["convert", *map(str, inputs), "--model", str(model_dir), "--vocoder", "griffinlim", "-o", str(out), "--quiet", *extra]
    )


def test_default_vocoder_is_the_fast_one():
    assert DEFAULT_VOCODER == "fast"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "SPK1"], "unknown voice 'SPK1'; did you mean 'spk1'"),
        (["--target", "nobody"], "unknown voice 'nobody'; known voices: spk0, spk1, spk2"),
        (["--target", "spk1", "--attribute", "gender=x=0.5"], "unknown attribute 'gender=x'; did you mean"),
    ],
)
def test_unknown_names_fail_in_one_line_with_suggestions(model_dir, tone_corpus, tmp_path, capsys, extra, message):
    assert _convert(model_dir, [tone_corpus.parent / "spk0" / "clip0.wav"], tmp_path / "out", *extra) == 1
    err = capsys.readouterr().err
    assert message in err and "voicevae voices" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any file


def test_unknown_voice_in_the_api_is_a_value_error(vc):
    with pytest.raises(UnknownName, match="did you mean 'spk0'"):
        vc.convert(torch.randn(22050) * 0.1, target="Spk0 ")
    with pytest.raises(ValueError, match="unknown attribute"):
        vc.convert(torch.randn(22050) * 0.1, target="spk0", attributes={"gender=x": 1.0})


def test_same_stem_inputs_are_refused_naming_both(model_dir, tone_corpus, tmp_path, capsys):
    wav, rate = sf.read(tone_corpus.parent / "spk0" / "clip0.wav")
    sf.write(tmp_path / "src.flac", wav, rate)
    sf.write(tmp_path / "src.ogg", wav, rate)
    assert (
        _convert(model_dir, [tmp_path / "src.flac", tmp_path / "src.ogg"], tmp_path / "out", "--target", "spk1", "--force") == 1
    )
    err = capsys.readouterr().err
    assert "src.flac" in err and "src.ogg" in err and "both be written to" in err
    assert not (tmp_path / "out").exists()


def test_output_format_rate_and_notes_on_downmix_and_resampling(model_dir, tone_corpus, tmp_path, capsys):
    wav, rate = sf.read(tone_corpus.parent / "spk0" / "clip0.wav")
    stereo = tmp_path / "stereo.wav"
    sf.write(stereo, np.stack([wav, wav], axis=1), 44100)
    out = tmp_path / "out"
    assert _convert(model_dir, [stereo], out, "--target", "spk1", "--format", "flac", "--sample-rate", "16000") == 0
    err = capsys.readouterr().err
    assert f"note: {stereo}: 2 channels mixed down to mono, 44100 Hz resampled to 22050 Hz" in err
    info = sf.info(out / "stereo.flac")
    assert info.format == "FLAC" and info.samplerate == 16000 and info.channels == 1
    assert _convert(model_dir, [tone_corpus.parent / "spk0" / "clip0.wav"], tmp_path / "o2", "--target", "spk1") == 0
    assert "note:" not in capsys.readouterr().err  # a mono file at the model rate: nothing to say
    assert _convert(model_dir, [stereo], out, "--target", "spk1", "--sample-rate", "100") == 1
    assert "100 Hz" in capsys.readouterr().err


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_written_files_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        audio = save_audio(tmp_path / "a.wav", torch.zeros(100), 22050)
        ckpt = save_checkpoint(tmp_path / "c.pt", "test", {"x": 1})
    finally:
        os.umask(old)
    for path in (audio, ckpt):
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_save_audio_refuses_unknown_suffix(tmp_path):
    with pytest.raises(AudioError, match="choose .wav, .flac, .ogg"):
        save_audio(tmp_path / "a.mp4", torch.zeros(100), 22050)


def test_a_folder_given_as_one_clip_says_so(vc, tmp_path):
    with pytest.raises(AudioError, match="is a folder"):
        vc.convert(tmp_path, target="spk0")


def test_a_pickled_checkpoint_is_refused_without_unsafe_advice(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("x")}, path)  # a Python object weights_only loading refuses
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path, "vae")
    assert "weights_only" not in str(info.value) and "could run code" in str(info.value)


def test_voices_lists_voices_and_attributes(model_dir, capsys):
    assert main(["voices", "--model", str(model_dir), "--attributes"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in out if line.startswith("spk")] == ["spk0", "spk1", "spk2"]
    assert "gender=f" in out and "gender=m" in out


def test_version_and_options_only_where_they_act(model_dir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("voicevae ")
    with pytest.raises(SystemExit) as exit_:
        main(["score", "x.wav", "--vocoder", "fast"])  # scoring makes no audio
    assert exit_.value.code == 2
