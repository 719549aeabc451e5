"""Attribute vectors, conversion by latent arithmetic, batch resynthesis and their CLI."""

import numpy as np
import pytest
import soundfile as sf
import torch

from voicevae.api import VoiceConverter
from voicevae.audio import AudioError
from voicevae.checkpoint import CheckpointError
from voicevae.cli import main
from voicevae.config import VAEConfig
from voicevae.corpora import read_manifest
from voicevae.model import VAE
from voicevae.vectors import VectorSet, attribute_directions
from voicevae.vocoder import load_vocoder


@pytest.fixture(scope="module")
def vc(model_dir) -> VoiceConverter:
    model = VAE.load(model_dir / "model.pt")
    return VoiceConverter(model, VectorSet.load(model_dir / "vectors.pt", model), load_vocoder("griffinlim"))


def test_speaker_vectors_are_mean_latents(vc, tone_corpus):
    utts = read_manifest(tone_corpus)
    for spk in ("spk0", "spk2"):
        latents = torch.stack([vc.encode_speaker(u.path) for u in utts if u.speaker == spk])
        torch.testing.assert_close(vc.vectors.speaker(spk), latents.mean(0), atol=1e-5, rtol=0)
    assert vc.vectors.labels["speaker"].counts["spk1"] == 3
    assert vc.speakers == ["spk0", "spk1", "spk2"]
    assert "gender=f" in vc.attributes and "gender=m" in vc.attributes


def test_attribute_direction_is_difference_of_means():
    z = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    d = attribute_directions(z, "gender", ["f", "f", "m"])
    torch.testing.assert_close(d["gender=f"], torch.tensor([2.0, -2.0]))
    torch.testing.assert_close(d["gender=m"], torch.tensor([-2.0, 2.0]))
    # An unknown (empty) label is on neither side and makes no direction of its own.
    z4 = torch.cat([z, torch.tensor([[100.0, 100.0]])])
    d4 = attribute_directions(z4, "gender", ["f", "f", "m", ""])
    assert set(d4) == {"gender=f", "gender=m"}
    torch.testing.assert_close(d4["gender=f"], torch.tensor([2.0, -2.0]))


def test_vectors_of_another_model_are_refused(model_dir):
    other = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    with pytest.raises(CheckpointError, match=r"vectors.pt: vectors were made for model"):
        VectorSet.load(model_dir / "vectors.pt", other)


def test_latent_arithmetic(vc):
    z = torch.randn(4)
    target = vc.vectors.speaker("spk1")
    torch.testing.assert_close(vc._speaker_latent(z, "spk1", 0.0, None, "arithmetic", None), z)
    torch.testing.assert_close(vc._speaker_latent(z, "spk1", 1.0, None, "arithmetic", None), target)
    # z - v_source + v_target with a named source speaker (SEED.md arithmetic)
    expect = z - vc.vectors.speaker("spk0") + target
    torch.testing.assert_close(vc._speaker_latent(z, "spk1", 1.0, None, "arithmetic", "spk0"), expect)
    shifted = vc._speaker_latent(z, "spk1", 0.0, {"gender=f": 2.0}, "arithmetic", None)
    torch.testing.assert_close(shifted, z + 2.0 * vc.vectors.directions["gender=f"])
    with pytest.raises(ValueError, match="unknown attribute"):
        vc._speaker_latent(z, "spk1", 1.0, {"age=old": 1.0}, "arithmetic", None)
    with pytest.raises(ValueError, match="unknown voice 'nobody'"):
        vc.convert(torch.randn(22050) * 0.1, target="nobody")


def test_interpolation_and_random_voices(vc):
    a, b = vc.vectors.speaker("spk0"), vc.vectors.speaker("spk2")
    torch.testing.assert_close(vc.interpolate("spk0", "spk2", 0.25), 0.75 * a + 0.25 * b)
    v1, v2 = vc.random_voice(seed=3), vc.random_voice(seed=3)
    torch.testing.assert_close(v1, v2)
    assert not torch.equal(v1, vc.random_voice(seed=4))


def test_convert_shapes_and_few_shot_target(vc, tone_corpus):
    utts = read_manifest(tone_corpus)
    out = vc.convert(utts[0].path, target=[utts[3].path, utts[4].path], strength=0.5)
    frames = vc.mel(utts[0].path).shape[-1]
    assert out.ndim == 1 and abs(out.shape[0] - frames * 256) <= 256
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
def test_any_rate_and_stereo_are_accepted(vc, tmp_path, rate):
    t = np.arange(rate) / rate
    stereo = np.stack([np.sin(2 * np.pi * 200 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.3
    path = tmp_path / f"s{rate}.wav"
    sf.write(path, stereo.astype(np.float32), rate)
    assert abs(vc.load_audio(path).shape[0] - 22050) <= 2


def test_bad_audio_is_refused_clearly(vc):
    with pytest.raises(AudioError, match="silent"):
        vc.convert(torch.zeros(22050), target="spk0")
    with pytest.raises(AudioError, match="too short"):
        vc.convert(torch.randn(300) * 0.1, target="spk0")
    with pytest.raises(AudioError, match="NaN"):
        vc.score(torch.full((22050,), float("nan")))


def test_chunked_conversion_matches_whole(vc, tone_corpus):
    mel = vc.mel(read_manifest(tone_corpus)[0].path)
    mel = torch.cat([mel] * 6, dim=-1)  # ~400 frames
    z = vc.vectors.speaker("spk1")
    whole = vc.model.convert(mel.unsqueeze(0), z)[0]
    vc.chunk_frames, vc.overlap_frames = 128, 32
    try:
        chunked = vc.decode_with_speaker(mel, z)
    finally:
        vc.chunk_frames, vc.overlap_frames = VoiceConverter.chunk_frames, VoiceConverter.overlap_frames
    assert chunked.shape == whole.shape
    # Instance norm sees chunk statistics instead of the whole clip's: close, not equal.
    assert (chunked - whole).abs().mean() < 0.1 * whole.std()


def test_cli_convert_mirrors_tree_refuses_overwrite_and_reports_failures(model_dir, tone_corpus, tmp_path, capsys):
    src = tone_corpus.parent
    (src / "spk0" / "broken.wav").write_bytes(b"not audio")
    try:
        out = tmp_path / "out"
        args = [
            "convert",
            str(src),
            "--model",
            str(model_dir),
            "--vocoder",
            "griffinlim",
            "--target",
            "spk1",
            "-o",
            str(out),
            "--quiet",
        ]
        assert main(args) == 1  # one file failed ...
        err = capsys.readouterr().err
        assert "broken.wav: cannot read audio" in err
        assert (out / "spk0" / "clip0.wav").is_file() and (out / "spk2" / "clip2.wav").is_file()  # ... the rest ran
        before = (out / "spk0" / "clip0.wav").read_bytes()
        assert main(args) == 1
        assert "exists; pass --force" in capsys.readouterr().err
        assert (out / "spk0" / "clip0.wav").read_bytes() == before
    finally:
        (src / "spk0" / "broken.wav").unlink()


def test_cli_score_prints_a_line_per_clip(model_dir, tone_corpus, capsys, monkeypatch):
    assert main(["score", str(tone_corpus.parent / "spk1"), "--model", str(model_dir), "--samples", "2"]) == 0
    out = capsys.readouterr().out
    threshold = float(out.splitlines()[0].rsplit(" ", 1)[1])
    lines = [line.split("\t") for line in out.splitlines() if line.endswith(("ok", "training data"))]
    assert len(lines) == 3 and all(np.isfinite(float(lp)) and np.isfinite(float(r)) for _, lp, r, _ in lines)
    assert all((verdict == "ok") == (float(r) >= threshold) for _, _, r, verdict in lines)
    # The verdict is the likelihood ratio's against the threshold, not log p(x)'s.
    for log_px, ratio, verdict in ((-1e6, 1e6, "ok"), (1e6, -1e6, "unlike training data")):
        monkeypatch.setattr(VoiceConverter, "scores", lambda self, wav, n_samples=32, pair=(log_px, ratio): pair)
        assert main(["score", str(tone_corpus.parent / "spk1"), "--model", str(model_dir)]) == 0
        rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()[2:]]
        assert len(rows) == 3 and all(row[3] == verdict for row in rows)


def test_batched_files_match_one_by_one(vc, tone_corpus, tmp_path):
    # The shipped fast vocoder: deterministic and local, unlike Griffin-Lim,
    # whose iterations can settle on another phase per batch.
    fast = load_vocoder("fast")
    # Small chunks, so that clips and the batch are vocoded in several.
    fast.chunk_frames = 96
    vc = VoiceConverter(vc.model, vc.vectors, fast)
    # Every length from 40 to 100 frames beside a longer clip: some batch chunks
    # then start just before a clip's end, where too short a tail lets them
    # crossfade into it (a 32-frame tail is off by ~1e-3 here).
    torch.manual_seed(0)
    for n in range(40, 100, 3):
        mels = [torch.randn(80, n) - 5, torch.randn(80, 200) - 5]
        torch.testing.assert_close(vc.vocode_many(mels)[0], vc.vocode_many(mels[:1])[0], atol=1e-5, rtol=0)
    # Clips of different lengths, so a batch holds padding.
    root = tmp_path / "in"
    paths = []
    for i, src in enumerate(sorted(tone_corpus.parent.rglob("*.wav"))[:5]):
        wav, rate = sf.read(src)
        paths.append(root / src.parent.name / f"{i}.wav")
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        sf.write(paths[-1], wav[: int(rate * (0.35 + 0.1 * i))], rate)
    one = vc.convert_files(paths, tmp_path / "one", target="spk1", root=root, progress=False, batch_size=1)
    many = vc.convert_files(
        paths + [root / "missing.wav"], tmp_path / "many", target="spk1", root=root, progress=False, batch_size=3
    )
    assert len(one.written) == len(many.written) == len(paths)
    assert [p for p, _ in many.failed] == [root / "missing.wav"]  # reported, the rest ran
    for a in sorted(one.written):
        x, _ = sf.read(a)
        y, _ = sf.read(tmp_path / "many" / a.relative_to(tmp_path / "one"))
        assert x.shape == y.shape
        # The silence tail makes a clip's audio independent of its batch, to the last sample
        # (up to the 16-bit files' rounding).
        np.testing.assert_allclose(x, y, atol=1e-4)
    # convert() of one clip gives the same audio as convert_files.
    alone = vc.convert(paths[0], target="spk1").numpy()
    x, _ = sf.read(tmp_path / "one" / paths[0].relative_to(root))
    np.testing.assert_allclose(alone, x, atol=1e-4)


def test_vectors_for_chosen_label_columns(model_dir, tone_corpus):
    from voicevae.vectors import compute_vectors

    model = VAE.load(model_dir / "model.pt")
    utts = read_manifest(tone_corpus, split="train")
    assert compute_vectors(model, utts, is_samples=2, progress=False, f0_clips=0, label_columns=[]).directions == {}
    chosen = compute_vectors(model, utts, is_samples=2, progress=False, f0_clips=0, label_columns=["gender"])
    assert set(chosen.directions) == {"gender=f", "gender=m"}
    with pytest.raises(ValueError, match="accent not a label column"):
        compute_vectors(model, utts, is_samples=2, progress=False, f0_clips=0, label_columns=["accent"])
