"""The content path's phonetic term: espeak-ng phones, the CTC head, exact resume, the random stream, refusals."""

import json
import shutil

import pytest
import torch
from conftest import interrupted_and_straight
from conftest import write_train_config as write_config

from voicevae import phonemes
from voicevae.cli import main
from voicevae.config import ConfigError, PhoneticConfig
from voicevae.data import load_corpus
from voicevae.model import VAE
from voicevae.phonemes import PhonemizerError, phone_symbols, phonemize, phonemize_all
from voicevae.training.phonetic import Phonetic
from voicevae.training.state import read_log
from voicevae.training.vae import load_config, train

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")

# The tiny config has no lambdas section, so an override names every weight.
WEIGHTS = ["lambdas.rec/nll=1.0", "lambdas.kl/content=1.0", "lambdas.kl/speaker=1.0"]
PHONES = [*WEIGHTS, "lambdas.phone/ctc=1.0", "phonetic.clips=2"]


def test_phone_symbols_keep_letters_and_marks_only():
    # espeak-ng's language switches, stress, spaces and stray punctuation go; length and palatalisation stay.
    assert phone_symbols('(en)ˈastə(ru) mʲinʲˈu" ˌaː') == list("astəmʲinʲuaː")


@needs_espeak
def test_phonemize_speaks_the_language_and_the_cache_is_reused(tmp_path, monkeypatch):
    en = phonemize("The soup needs salt.", "en")
    assert "s" in en and "uː" in en
    assert phonemize("dobrý den", "cs") != phonemize("dobrý den", "en")
    cache = tmp_path / "phonemes.json"
    first = phonemize_all([("en", "a cat"), ("en", "a dog"), ("en", "a cat")], cache, progress=False)
    assert set(first) == {("en", "a cat"), ("en", "a dog")}

    def fail(text: str, language: str) -> str:
        raise AssertionError(f"phonemised {text!r} again")

    monkeypatch.setattr(phonemes, "phonemize", fail)
    assert phonemize_all([("en", "a dog")], cache, progress=False) == {("en", "a dog"): first[("en", "a dog")]}


def test_a_missing_espeak_is_named(monkeypatch):
    monkeypatch.setattr(phonemes.shutil, "which", lambda name: None)
    with pytest.raises(PhonemizerError, match="espeak-ng is not installed"):
        phonemize("hello", "en")


def test_train_without_espeak_says_so_without_a_traceback(tmp_path, tone_corpus, monkeypatch, capsys):
    monkeypatch.setattr(phonemes.shutil, "which", lambda name: None)
    config = write_config(tmp_path, tone_corpus)
    sets = [a for w in PHONES for a in ("--set", w)]
    assert main(["train", "--config", str(config), "--quiet", *sets]) == 1
    assert "voicevae train: error: espeak-ng is not installed" in capsys.readouterr().err


@needs_espeak
def test_the_term_trains_the_content_encoder_and_its_head_learns(tmp_path, tone_corpus):
    cfg = load_config(write_config(tmp_path, tone_corpus), PHONES)
    corpus = load_corpus(cfg.data.manifest, "train", cfg.mel, cfg.data, progress=False)
    torch.manual_seed(0)
    model = VAE(cfg.model, cfg.mel)
    term = Phonetic(
        PhoneticConfig(clips=4, lr=1e-2), corpus, cfg.data.manifest, "train", model, cfg.data.cache_dir, progress=False
    )
    assert len(term.clips) == len(corpus)  # every clip has a transcript ("clip N") short enough to align
    batch = term.next(0.0, None, cfg.mel, model)
    loss = term.term(model, batch)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    assert any(g is not None and float(g.abs().sum()) > 0 for n, g in grads.items() if n.startswith("content_encoder."))
    assert all(g is None for n, g in grads.items() if not n.startswith("content_encoder."))
    # A few steps of the encoder and the head on the same clips: the phones become readable.
    encoder = torch.optim.Adam(model.content_encoder.parameters(), lr=1e-2)
    first = float(loss.detach())
    for _ in range(40):
        encoder.zero_grad()
        term.term(model, batch).backward()
        encoder.step()
        term.step()
    assert float(term.term(model, batch).detach()) < 0.5 * first


def _no_seeding(next_batch, monkeypatch, seed):
    def guarded(*args, **kwargs):
        def refuse(*a, **k):
            raise AssertionError("Phonetic.next set a global seed")

        monkeypatch.setattr(torch, "manual_seed", refuse)
        try:
            return next_batch(*args, **kwargs)
        finally:
            monkeypatch.setattr(torch, "manual_seed", seed)

    return guarded


@needs_espeak
def test_a_run_with_the_term_draws_the_same_batches_and_noise(tmp_path, tone_corpus, monkeypatch):
    # With the voice warp and the channel on, whose draws the term makes too.
    config = write_config(tmp_path, tone_corpus, steps=2, content_warp=0.3, channel={"p_noise": 1.0, "p_reverb": 1.0})
    train(load_config(config, [f"out_dir={tmp_path / 'plain'}", *WEIGHTS]), progress=False)
    # No global seeding either: on CUDA torch.manual_seed would reseed the device stream of the ELBO's noise.
    seed = torch.manual_seed
    monkeypatch.setattr(Phonetic, "next", _no_seeding(Phonetic.next, monkeypatch, seed))
    train(load_config(config, [f"out_dir={tmp_path / 'phones'}", *PHONES]), progress=False)
    plain = read_log(tmp_path / "plain" / "train.csv")
    phones = read_log(tmp_path / "phones" / "train.csv")
    # Step 1 starts from the same weights: with the same crops and noise its ELBO terms are equal.
    for name in ("rec/nll", "kl/content", "kl/speaker"):
        assert float(plain[0][name]) == pytest.approx(float(phones[0][name]), rel=1e-6), name
    assert float(phones[0]["phone/ctc"]) > 0 and plain[0].get("phone/ctc", "") == ""
    # And the weights differ: the phonetic term moved the content encoder.
    a, b = (VAE.load(tmp_path / run / "model.pt").state_dict() for run in ("plain", "phones"))
    assert any(not torch.equal(a[k], b[k]) for k in a if k.startswith("content_encoder."))


@needs_espeak
def test_resume_with_the_term_is_exact_and_dropping_it_is_refused(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus, steps=4, ckpt_every=2)
    a, b = interrupted_and_straight(tmp_path, config, PHONES)
    for k in a["model"]:
        torch.testing.assert_close(a["model"][k], b["model"][k], rtol=0, atol=0, msg=k)
    # The head resumed too: a fresh one (or other clips) would give other weights.
    for k in a["phonetic"]["head"]:
        torch.testing.assert_close(a["phonetic"]["head"][k], b["phonetic"]["head"][k], rtol=0, atol=0, msg=k)
    assert all("phones" in r for r in a["ranks"])  # each rank's clip generator
    with pytest.raises(ValueError, match="trained with the phonetic term, but this config gives lambdas.phone/ctc no weight"):
        train(load_config(config, [f"out_dir={tmp_path / 'a'}", "steps=6", *WEIGHTS]), resume=True, progress=False)


def test_refusals_name_the_setting(tmp_path, tone_corpus):
    config = write_config(tmp_path, tone_corpus)
    with pytest.raises(ConfigError, match="lambdas.phone/ctc: the phonetic term needs the Gaussian content latent"):
        load_config(config, [*PHONES, "model.content_latent=categorical", "lambdas.sf/reinforce=1.0"])
    with pytest.raises(ConfigError, match="phonetic.clips: must be >= 1"):
        load_config(config, [*PHONES, "phonetic.clips=0"])
    with pytest.raises(ConfigError, match="phonetic.default_language"):
        load_config(config, [*PHONES, "phonetic.default_language="])


@needs_espeak
def test_a_corpus_without_transcripts_is_refused(tmp_path, tone_corpus):
    text = tone_corpus.read_text().splitlines()
    header = text[0].split(",")
    col = header.index("text")
    rows = [line.split(",") for line in text[1:]]
    for r in rows:
        r[col] = ""
    manifest = tone_corpus.parent / "no_text.csv"
    manifest.write_text("\n".join([",".join(header), *(",".join(r) for r in rows)]) + "\n")
    cfg = load_config(write_config(tmp_path, manifest), PHONES)
    corpus = load_corpus(cfg.data.manifest, "train", cfg.mel, cfg.data, progress=False)
    with pytest.raises(ValueError, match="no training clip has a transcript"):
        Phonetic(cfg.phonetic, corpus, manifest, "train", VAE(cfg.model, cfg.mel), cfg.data.cache_dir, progress=False)


@needs_espeak
def test_each_clip_is_phonemised_in_its_own_language(tmp_path, tone_corpus):
    lines = tone_corpus.read_text().splitlines()
    rows = [line + (",language" if i == 0 else (",cs" if "spk1" in line else ",")) for i, line in enumerate(lines)]
    manifest = tone_corpus.parent / "languages.csv"
    manifest.write_text("\n".join(rows) + "\n")
    cfg = load_config(write_config(tmp_path, manifest), PHONES)
    corpus = load_corpus(cfg.data.manifest, "train", cfg.mel, cfg.data, progress=False)
    Phonetic(cfg.phonetic, corpus, manifest, "train", VAE(cfg.model, cfg.mel), cfg.data.cache_dir, progress=False)
    cached = json.loads((tmp_path / "cache" / "phonemes.json").read_text())
    assert "cs\tclip 0" in cached and "en\tclip 0" in cached
    assert cached["cs\tclip 0"] != cached["en\tclip 0"]


@needs_espeak
def test_phones_outside_a_checkpoints_inventory_are_refused_for_training(tmp_path, tone_corpus):
    cfg = load_config(write_config(tmp_path, tone_corpus), PHONES)
    corpus = load_corpus(cfg.data.manifest, "train", cfg.mel, cfg.data, progress=False)
    model = VAE(cfg.model, cfg.mel)
    args = (cfg.phonetic, corpus, tone_corpus, "train", model, cfg.data.cache_dir)
    full = Phonetic(*args, progress=False).inventory
    fewer = [s for s in full if s != "k"]  # "clip" starts with k
    with pytest.raises(ValueError, match="phones 'k' are not in the checkpoint's inventory"):
        Phonetic(*args, inventory=fewer, progress=False)
    # Scoring another split with a trained head leaves them out instead.
    scored = Phonetic(*args, inventory=fewer, progress=False, drop_unknown=True)
    assert all(len(scored.targets[i]) == len(Phonetic(*args, progress=False).targets[i]) - 1 for i in scored.clips)
