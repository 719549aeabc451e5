"""Mel front end against the HiFi-GAN analysis, and the audio boundary."""

import librosa
import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.audio import AudioError, load_audio, save_audio, to_model_audio
from voicevae.config import ConfigError, MelConfig, from_dict
from voicevae.features import MelFrontend


def hifigan_reference_mel(wav: np.ndarray) -> np.ndarray:
    """The analysis of jik876/hifi-gan's meldataset.py, written with librosa/numpy."""
    pad = (1024 - 256) // 2
    y = np.pad(wav, (pad, pad), mode="reflect")
    spec = np.abs(librosa.stft(y, n_fft=1024, hop_length=256, win_length=1024, window="hann", center=False))
    basis = librosa.filters.mel(sr=22050, n_fft=1024, n_mels=80, fmin=0, fmax=8000)
    return np.log(np.clip(basis @ spec, 1e-5, None))


def test_log_mel_matches_hifigan_analysis():
    rng = np.random.default_rng(0)
    t = np.arange(22050) / 22050
    wav = (0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    ours = MelFrontend()(torch.from_numpy(wav)).numpy()
    ref = hifigan_reference_mel(wav)
    assert ours.shape == ref.shape == (80, 22050 // 256)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_batch_and_frame_count():
    fe = MelFrontend(n_mels=40, f_max=7000.0)
    out = fe(torch.randn(3, 5000))
    assert out.shape == (3, 40, 5000 // 256) == (3, 40, fe.num_frames(5000))
    assert torch.isfinite(out).all() and out.min() >= fe.floor - 1e-6


def test_chunked_analysis_equals_whole():
    fe = MelFrontend()
    audio = torch.randn(256 * 100 + 77) * 0.1
    torch.testing.assert_close(fe.chunked(audio, chunk_frames=17), fe(audio), atol=1e-5, rtol=0)


def test_bad_mel_settings_are_named():
    with pytest.raises(ConfigError, match="f_max"):
        from_dict(MelConfig, {"f_max": 20000.0}, "model.yaml: mel")


def test_to_model_audio_downmixes_and_resamples():
    stereo = np.stack([np.ones(16000), -np.ones(16000) * 0.5], axis=1).astype(np.float32)  # (T, C)
    out = to_model_audio(stereo, 16000, 22050)
    assert out.ndim == 1 and abs(out.shape[0] - 22050) <= 1
    assert torch.allclose(out[1000:-1000], torch.full((out.shape[0] - 2000,), 0.25), atol=1e-3)


def test_load_audio_errors_name_the_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: no such file"):
        load_audio(tmp_path / "missing.wav", 22050)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....not audio")
    with pytest.raises(AudioError, match="bad.wav: cannot read audio"):
        load_audio(bad, 22050)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(100, np.nan, dtype=np.float32), 22050, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: contains NaN"):
        load_audio(nan, 22050)


def test_save_audio_refuses_to_overwrite(tmp_path):
    path = save_audio(tmp_path / "a.wav", torch.zeros(100), 22050)
    with pytest.raises(FileExistsError, match="a.wav: exists"):
        save_audio(path, torch.ones(100) * 0.5, 22050)
    assert np.all(sf.read(path)[0] == 0)  # untouched
    save_audio(path, torch.ones(100) * 0.5, 22050, overwrite=True)
    assert np.allclose(sf.read(path)[0], 0.5, atol=1e-4)
