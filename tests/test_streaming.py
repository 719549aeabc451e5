"""Long files block by block: the same samples as the whole-file path, in bounded memory."""

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

import voicevae.batch as batch
from voicevae.api import VoiceConverter
from voicevae.audio import AudioError
from voicevae.config import VAEConfig
from voicevae.model import VAE
from voicevae.streaming import MelStream, Resampler, convert_file
from voicevae.vocoder import load_vocoder


@pytest.fixture(scope="module")
def vc() -> VoiceConverter:
    """A tiny model with the fast vocoder (deterministic), its windows shrunk so a short file spans many."""
    torch.manual_seed(0)
    vc = VoiceConverter(VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4)), None, load_vocoder("fast"))
    vc.chunk_frames, vc.overlap_frames = 128, 32
    vc.vocoder.chunk_frames, vc.vocoder.overlap_frames = 96, 32
    return vc


def speechlike(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.3 * t)) / rate
    w = sum(np.sin(k * phase) / k for k in range(1, 10)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    w = (0.1 * w / np.abs(w).max()).astype(np.float32)
    return np.stack([w, 0.5 * w], axis=1) if channels == 2 else w


@pytest.mark.parametrize(
    ("orig", "new"), [(44100, 22050), (16000, 22050), (22050, 16000), (22050, 22050), (8000, 22050), (48000, 22050)]
)
@pytest.mark.parametrize("sizes", [[5000, 1, 7777, 20000, 3], [2400]])  # mixed, and short blocks from the start
def test_resampler_gives_the_whole_signal_samples(orig, new, sizes):
    x = torch.randn(orig * 3 + 17)
    r, pieces, i = Resampler(orig, new), [], 0
    for size in sizes * 200:
        if i >= x.numel():
            break
        pieces.append(r.feed(x[i : i + size], last=i + size >= x.numel()))
        i += size
    if i < x.numel():
        pieces.append(r.feed(x[i:], last=True))
    torch.testing.assert_close(torch.cat(pieces), AF.resample(x, orig, new), atol=1e-5, rtol=0)


def test_mel_stream_frames_equal_the_frontend(vc):
    x = torch.from_numpy(speechlike(3.0, 22050))
    stream, pieces, i = MelStream(vc), [], 0
    for size in (100, 300, 5000, 1, 20000, 99999):
        pieces.append(stream.feed(x[i : i + size], last=i + size >= x.numel()))
        i += size
    torch.testing.assert_close(torch.cat(pieces, dim=-1), vc.frontend(x), atol=1e-4, rtol=0)


# Inside one window; just over a window, where decode_with_speaker still takes the clip whole
# (172 frames <= chunk 128 + 2 x 32), with blocks that end past a window first; across many.
# With the source's detail added back, each window adds it as the whole-file path does.
@pytest.mark.parametrize(
    ("seconds", "block", "detail"), [(1.0, 0.7, 0.0), (2.0, 0.1, 0.0), (9.0, 0.7, 0.0), (2.0, 0.1, 0.6), (9.0, 0.7, 1.0)]
)
def test_streamed_file_matches_the_whole_file_path(vc, tmp_path, seconds, block, detail):
    src = tmp_path / "src.wav"
    sf.write(src, speechlike(seconds, 44100, channels=2), 44100)
    target = torch.randn(4)
    whole = vc.vocode_many([vc.convert_mel(src, target, strength=0.7, detail=detail)])[0].numpy()
    out = convert_file(vc, src, tmp_path / "out.wav", target, strength=0.7, block_seconds=block, detail=detail)
    got, rate = sf.read(out, dtype="float32")
    assert rate == 22050 and got.shape == whole.shape
    np.testing.assert_allclose(got, whole, atol=1e-4)  # 16-bit rounding of the file
    # An output at another rate is the whole output resampled.
    flac = convert_file(
        vc, src, tmp_path / "out.flac", target, strength=0.7, sample_rate=16000, block_seconds=block, detail=detail
    )
    got16, rate = sf.read(flac, dtype="float32")
    want16 = AF.resample(torch.from_numpy(whole), 22050, 16000).clamp(-1, 1).numpy()
    assert rate == 16000 and got16.shape == want16.shape
    np.testing.assert_allclose(got16, want16, atol=2e-4)


def test_bad_long_input_fails_clearly_and_leaves_nothing(vc, tmp_path):
    src = tmp_path / "silent.wav"
    sf.write(src, np.zeros(22050 * 3, dtype=np.float32), 22050)
    with pytest.raises(AudioError, match="is silent"):
        convert_file(vc, src, tmp_path / "out" / "x.wav", torch.randn(4))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no output, no temp file
    with pytest.raises(FileExistsError):
        convert_file(vc, src, src, torch.randn(4))
    speech = tmp_path / "speech.wav"
    sf.write(speech, speechlike(1.0, 22050), 22050)
    with pytest.raises(ValueError, match=r"detail must be in \[0, 1\]"):
        convert_file(vc, speech, tmp_path / "y.wav", torch.randn(4), detail=1.5)
    with pytest.raises(ValueError, match="detail needs a target voice"):
        convert_file(vc, speech, tmp_path / "y.wav", None, detail=0.5)
    assert not (tmp_path / "y.wav").exists()


def test_convert_files_streams_long_files_and_counts_seconds(vc, tmp_path, monkeypatch):
    src = tmp_path / "long.wav"
    sf.write(src, speechlike(4.0, 22050), 22050)
    monkeypatch.setattr(batch, "STREAM_SECONDS", 2.0)
    calls = []
    real = batch.convert_file
    monkeypatch.setattr(batch, "convert_file", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    report = vc.convert_files([src], tmp_path / "out", target=torch.randn(4), progress=False)
    assert calls == [src] and report.written == [tmp_path / "out" / "long.wav"] and not report.failed
    # Options that need the whole clip take the whole-file path.
    report = vc.convert_files([src], tmp_path / "o2", target=torch.randn(4), progress=False, pitch_shift=1.0)
    assert calls == [src] and len(report.written) == 1
