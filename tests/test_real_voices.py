"""Training on real recorded talkers: band-limited clips, pseudo-speakers, channels, speaker consistency, merged corpora."""

import math
from pathlib import Path

import pytest
import torch
from conftest import edit_manifest, make_tone_corpus, write_train_config

from voicevae.augment import channel, speaker_warp
from voicevae.cli import main
from voicevae.config import ChannelConfig, ConfigError, DataConfig, MelConfig, VAEConfig
from voicevae.corpora import ManifestError, merge_manifests, read_manifest
from voicevae.data import MelCorpus, load_corpus, mel_statistics
from voicevae.features import bins_below
from voicevae.model import VAE
from voicevae.training.elbo import elbo_terms, speaker_consistency_loss
from voicevae.training.state import read_log
from voicevae.training.vae import load_config, train

MEL = MelConfig()
FLOOR = math.log(MEL.log_floor)


def test_bins_below_the_bandwidth():
    assert bins_below(MEL, MEL.f_max) == MEL.n_mels
    phone = bins_below(MEL, 4000)
    assert 50 < phone < 70  # the Slaney scale is linear to 1 kHz, then logarithmic
    assert bins_below(MEL, 2000) < phone


def test_speaker_warp_is_one_factor_per_speaker_and_shrinks_the_band():
    torch.manual_seed(0)
    ramp = torch.arange(80.0)[None, :, None].expand(8, 80, 4).clone()
    speakers = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    out, bins = speaker_warp(ramp, speakers, torch.full((8,), 80), 0.2)
    alpha = out[:, 20, 0] / 20
    torch.testing.assert_close(alpha[0::2], alpha[1::2])  # both clips of a speaker: the same voice
    assert alpha[0::2].std() > 0.01  # the speakers: different voices
    assert alpha.min() >= 1 / 1.2 - 1e-4 and alpha.max() <= 1.2 + 1e-4
    # A factor above 1 reads past the top bin: those bins leave the band.
    for a, b in zip(alpha.tolist(), bins.tolist()):
        assert b == (80 if a <= 1 else math.floor(79 / a) + 1)
    same, kept = speaker_warp(ramp, speakers, torch.full((8,), 80), 0.0)
    assert same is ramp and int(kept.min()) == 80


def test_channel_effects():
    torch.manual_seed(0)
    quiet = torch.full((4, 80, 60), FLOOR + 1.0)
    quiet[:, :, 20] = 0.0  # a loud impulse at frame 20
    assert torch.equal(channel(quiet, ChannelConfig(), MEL, FLOOR), quiet)  # nothing on: unchanged
    band = channel(quiet, ChannelConfig(p_band=1.0, band_hz=(4000.0, 4000.0)), MEL, FLOOR)
    top = bins_below(MEL, 4000)
    assert torch.all(band[:, top:] == FLOOR) and torch.equal(band[:, :top], quiet[:, :top])
    noisy = channel(quiet, ChannelConfig(p_noise=1.0, snr_db=(5.0, 5.0)), MEL, FLOOR)
    assert noisy[:, :, :10].mean() > quiet[:, :, :10].mean() + 1  # the silence gains a noise floor
    room = channel(quiet, ChannelConfig(p_reverb=1.0, rt60_s=(0.5, 0.5)), MEL, FLOOR)
    assert torch.all(room[:, :, 25] > quiet[:, :, 25] + 1)  # the impulse rings on after it
    # Before it only the steady background's own tail: at most twice its power.
    assert float((room[:, :, 10] - quiet[:, :, 10]).max()) <= 0.5 * math.log(2) + 1e-4
    loud = channel(quiet, ChannelConfig(p_gain=1.0, gain_db=6.0), MEL, FLOOR)
    shift = (loud - quiet)[:, 0, 20]
    assert shift.abs().max() <= 6 * math.log(10) / 20 + 1e-5 and shift.abs().min() > 0


def test_band_bins_mask_the_reconstruction_above_the_band():
    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    xn = torch.randn(2, 80, 8)
    mu = torch.randn(2, 80, 8)
    other = mu.clone()
    other[0, 60:] += 5.0  # clip 0 differs only above its band
    bins = torch.tensor([60, 80])
    torch.testing.assert_close(model.log_likelihood(xn, mu, 8, bins), model.log_likelihood(xn, other, 8, bins))
    assert not torch.allclose(model.log_likelihood(xn, mu, 8), model.log_likelihood(xn, other, 8))


def test_mel_statistics_skip_bins_above_each_band():
    full = torch.zeros(80, 10)
    phone = torch.zeros(80, 10)
    phone[60:] = -11.5  # silence floor above 4 kHz
    corpus = MelCorpus([full, phone], ["a", "b"], ["", ""], ["a.wav", "b.wav"], [80, 60])
    mean, std = mel_statistics(corpus)
    assert float(mean.abs().max()) == 0.0 and float(std.max()) == 0.0
    with pytest.raises(ValueError, match="no full-band clip"):
        mel_statistics(MelCorpus([phone], ["b"], [""], ["b.wav"], [60]))


def test_speaker_consistency_prefers_grouped_latents():
    torch.manual_seed(0)
    centres = torch.randn(4, 16) * 3
    speakers = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    grouped = centres[speakers] + 0.1 * torch.randn(8, 16)
    mixed = grouped[torch.tensor([0, 2, 4, 6, 1, 3, 5, 7])]  # pairs now span two speakers
    assert speaker_consistency_loss(grouped, speakers) < 0.5 < speaker_consistency_loss(mixed, speakers)
    alone = speaker_consistency_loss(grouped[:4:2], speakers[:4:2])  # no clip has a partner
    assert float(alone) == 0.0


def _band_limited_corpus(root: Path) -> Path:
    """The tone corpus with a bandwidth_hz column: speaker spk1 is a telephone line."""
    return edit_manifest(make_tone_corpus(root), lambda r: r.update(bandwidth_hz="4000" if r["speaker"] == "spk1" else "11025"))


def test_band_limited_policies(tmp_path):
    manifest = _band_limited_corpus(tmp_path / "c")
    cache = str(tmp_path / "cache")
    masked = load_corpus(manifest, "train", MEL, DataConfig(cache_dir=cache), progress=False)
    phone = bins_below(MEL, 4000)
    assert sorted(set(masked.band_bins)) == [phone, 80]
    assert all(b == phone for b, s in zip(masked.band_bins, masked.speakers) if s == "spk1")
    dropped = load_corpus(manifest, "train", MEL, DataConfig(cache_dir=cache, band_limited="drop"), progress=False)
    assert "spk1" not in dropped.speakers and len(dropped) == len(masked) - 2
    kept = load_corpus(manifest, "train", MEL, DataConfig(cache_dir=cache, band_limited="keep"), progress=False)
    assert set(kept.band_bins) == {80}


def write_config(tmp_path: Path, manifest: Path, **top) -> Path:
    """The training tests' tiny config with every augmentation and the consistency term on."""
    return write_train_config(
        tmp_path,
        manifest,
        steps=4,
        speaker_warp=0.15,
        content_warp=0.3,
        channel={"p_gain": 0.5, "p_noise": 0.5, "p_reverb": 0.5, "p_band": 0.5},
        lambdas={"rec/nll": 1.0, "kl/content": 1.0, "kl/speaker": 1.0, "speaker/consistency": 1.0},
        **top,
    )


def test_training_with_every_augmentation_logs_consistency_and_resumes_exactly(tmp_path):
    manifest = _band_limited_corpus(tmp_path / "c")
    config = write_config(tmp_path, manifest)
    train(load_config(config, [f"out_dir={tmp_path / 'a'}"]), progress=False)
    log = read_log(tmp_path / "a" / "train.csv")
    assert "speaker/consistency" in log[0] and all(math.isfinite(float(r["speaker/consistency"])) for r in log)
    # Interrupted after step 2, resumed with another seed: the augmentation's
    # draws come from the checkpointed RNG, so the weights match exactly.
    train(load_config(config, [f"out_dir={tmp_path / 'b'}"]), progress=False)
    (tmp_path / "b" / "ckpt-0000004.pt").unlink()
    (tmp_path / "b" / "model.pt").unlink()
    train(load_config(config, [f"out_dir={tmp_path / 'b'}", "seed=7"]), resume=True, progress=False)
    a = VAE.load(tmp_path / "a" / "model.pt").state_dict()
    b = VAE.load(tmp_path / "b" / "model.pt").state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.band_limited=cut", "data.band_limited"),
        ("channel.p_noise=1.5", "channel.p_noise"),
        ("channel.snr_db=[30, 5]", "channel.snr_db"),
        ("speaker_warp=1.0", "speaker_warp"),
    ],
)
def test_bad_settings_name_themselves(tmp_path, override, message):
    config = write_config(tmp_path, tmp_path / "m.csv")
    with pytest.raises(ConfigError, match=message):
        load_config(config, [override])


def test_merge_manifests_labels_the_corpus_and_refuses_clashing_speakers(tmp_path):
    a = make_tone_corpus(tmp_path / "alpha")
    b = make_tone_corpus(tmp_path / "beta")
    with pytest.raises(ManifestError, match="spk0.*alpha.*beta"):
        merge_manifests([a, b])
    edit_manifest(b, lambda r: r.update(speaker="b_" + r["speaker"]))
    out = tmp_path / "both" / "manifest.csv"
    assert main(["merge-manifests", str(a), str(b), "-o", str(out)]) == 0
    merged = read_manifest(out)
    assert len(merged) == 18 and {u.labels["corpus"] for u in merged} == {"alpha", "beta"}
    assert all(u.path.is_file() for u in merged)
    assert main(["merge-manifests", str(a), str(b), "-o", str(out)]) == 1  # exists: refused


def test_channel_for_the_content_encoder_alone_leaves_the_speaker_latent_clean():
    torch.manual_seed(0)
    model = VAE(VAEConfig(channels=16, n_blocks=1, content_dim=2, speaker_dim=4))
    mel = torch.randn(4, 80, 16) - 4
    through_a_room = mel + torch.randn(4, 80, 16)
    speakers = torch.tensor([0, 0, 1, 1])

    def terms(**kw):
        torch.manual_seed(1)  # the same posterior samples each time
        return elbo_terms(model, mel, speakers=speakers, **kw)

    clean = terms()
    content_only = terms(encoder_input=through_a_room, channel_speaker=False)
    both = terms(encoder_input=through_a_room)
    # speaker/consistency reads only the speaker posterior: clean with "content", changed with "both".
    assert torch.equal(content_only["speaker/consistency"], clean["speaker/consistency"])
    assert not torch.equal(both["speaker/consistency"], clean["speaker/consistency"])
    assert not torch.equal(content_only["rec/nll"], clean["rec/nll"])  # the content encoder did see the room


@pytest.mark.parametrize(
    ("key", "value", "message"), [("channel.encoders", "speaker", "encoders"), ("channel.p_noise", "1.5", "p_noise")]
)
def test_bad_channel_settings_are_refused_by_name(tmp_path, key, value, message):
    config = write_train_config(tmp_path, make_tone_corpus(tmp_path / "c"))
    with pytest.raises(ConfigError, match=message):
        load_config(config, [f"{key}={value}"])
