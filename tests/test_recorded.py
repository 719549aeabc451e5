"""The recorded-speech corpus (voicevae.recorded) on a fake tree shaped like the Debian packages.

Nothing here needs the real packages: every package root the module reads
is pointed at a folder of tiny synthetic clips laid out as the package
installs them.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicevae import recorded
from voicevae.cli import main
from voicevae.corpora import read_manifest
from voicevae.synthetic import SAMPLE_RATE


def voice(rate: int, seconds: float = 0.6, f0: float = 150.0, seed: int = 0) -> np.ndarray:
    """A harmonic buzz with a syllable-like envelope: (T,) float32 that survives condition()'s trimming."""
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 4 if rate <= 8000 else 8))
    env = 0.5 - 0.5 * np.cos(2 * np.pi * 3 * t / seconds)
    noise = 0.002 * np.random.default_rng(seed).standard_normal(t.size)
    return (0.3 * x * env / np.abs(x).max() + noise).astype(np.float32)


def put(path: Path, rate: int, seed: int = 0, channels: int = 1, fmt: str = "WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = voice(rate, f0=120 + 10 * (seed % 7), seed=seed)
    sf.write(
        path,
        np.stack([x] * channels, axis=1) if channels > 1 else x,
        rate,
        format=fmt,
        subtype="VORBIS" if fmt == "OGG" else "PCM_16",
    )
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def fake_packages(root: Path) -> dict[str, Path]:
    """Lay out every package's files under `root`; returns the module attribute -> folder to patch."""
    dirs = {
        "FESTVOX_RU_DIR": root / "festival/voices/russian/msu_ru_nsh_clunits",
        "ASTERISK_SOUNDS_DIR": root / "asterisk/sounds",
        "DOC_DIR": root / "doc",
        "FILLETS_DIR": root / "games/fillets-ng",
        "HEDGEWARS_VOICES_DIR": root / "games/hedgewars/Data/Sounds/voices",
        "CODEC2_DIR": root / "codec2",
    }
    seed = 0

    def nxt() -> int:
        nonlocal seed
        seed += 1
        return seed

    # festvox-ru: 16 kHz WAVs and a festival prompt file whose entries span lines.
    fest = dirs["FESTVOX_RU_DIR"]
    for i in (1, 2, 3):
        put(fest / "wav" / f"ru_000{i}.wav", 16000, nxt())
    write(
        fest / "etc/txt.done.data",
        '( ru_0001 "Она завела, прядь волнистых вол+ос\nза ухо." )\n( ru_0002 "Второе." )\n( ru_0003 "Третье." )\n',
    )

    # Asterisk: 8 kHz prompts, non-speech files, transcripts gzipped in the base package's doc folder.
    sounds, doc = dirs["ASTERISK_SOUNDS_DIR"], dirs["DOC_DIR"]
    for name, v in recorded.ASTERISK_VOICES.items():
        for prompt in ("hello", "digits/1", "letters/dash", "beep", "silence/1", "ascending-2tone"):
            put(sounds / v.folder / f"{prompt}.wav", 8000, nxt())
        if v.transcripts is not None:
            lines = f"; Core Asterisk Sounds ({name})\nhello: Hello {name}.\ndigits/1: one\nletters/dash: dash [-]\n"
            lines += "ascending-2tone: [ascending tones]\n"
            lang = v.transcripts.rsplit("-", 1)[-1]
            # Built from `doc`, never from recorded.DOC_DIR: it is not patched yet and is the real /usr/share/doc.
            tfile = doc / v.transcripts / f"core-sounds-{lang}.txt.gz"
            tfile.parent.mkdir(parents=True, exist_ok=True)
            with gzip.open(tfile, "wt", encoding="utf-8") as f:
                f.write(lines)

    # Fish Fillets: dialogue text in the base package's scripts, sounds per dub.
    fil = dirs["FILLETS_DIR"]
    write(
        fil / "script/elk/dialogs_en.lua",
        'dialogId("deu-l-los", "font_elk", "Ya rusky los.")\ndialogId("deu-l-ja", "font_elk", "Ya los...")\n'
        'dialogId("deu-l-pozalsta", "font_elk", "Pozhalsta.")\ndialogId("deu-m-valka", "font_small", "The war goes on.")\n',
    )
    write(fil / "script/barrel/dialogs_en.lua", 'dialogId("bar-x-gr0", "", "")\n')
    for stem in ("deu-l-los", "deu-l-ja", "deu-l-pozalsta"):
        put(fil / "sound/elk/en" / f"{stem}.ogg", 22050, nxt(), fmt="OGG")
    put(fil / "sound/barrel/en/bar-x-gr0.ogg", 22050, nxt(), fmt="OGG")  # a gurgle: who "x" is an effect
    for lang in ("cs", "nl"):
        lua = ""
        for who, font in (("m", "font_small"), ("v", "font_big")):
            for i in range(3):
                # A multi-line dialogId with its translation, as the real files have them.
                lua += f'dialogId("lev-{who}-line{i}", "{font}",\n"English {who}{i}.")\ndialogStr("{lang} {who}{i}.")\n\n'
                put(fil / f"sound/level/{lang}" / f"lev-{who}-line{i}.ogg", 44100 if who == "v" else 22050, nxt(), fmt="OGG")
        lua += 'dialogId("lev-x-click", "font_darkgrey", "CLICK")\n'
        put(fil / f"sound/level/{lang}/lev-x-click.ogg", 22050, nxt(), fmt="OGG")
        write(fil / f"script/level/dialogs_{lang}.lua", lua)

    # Hedgewars: stereo 44.1 kHz packs; grunts and the robot pack are not speech.
    hw = dirs["HEDGEWARS_VOICES_DIR"]
    for pack in ("Default", "Default_uk", "Robot"):
        for stem in ("Hello", "Incoming", "Victory", "Laugh", "Ow1"):
            put(hw / pack / f"{stem}.ogg", 44100, nxt(), channels=2, fmt="OGG")

    # codec2: headerless 16-bit 8 kHz raw files and WAVs (two at 16 kHz).
    for rel, raw_rate in recorded.CODEC2_RECORDINGS:
        path = dirs["CODEC2_DIR"] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if raw_rate is None:
            put(path, 16000 if "16k" in rel else 8000, nxt())
        else:
            (voice(raw_rate, seed=nxt()) * 32767).astype("<i2").tofile(path)

    for package in {p for s in recorded.SOURCES.values() for p in s.packages}:
        write(doc / package / "copyright", f"Files: *\nLicense: for {package}\n")
    return dirs


@pytest.fixture
def packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    dirs = fake_packages(tmp_path / "usr")
    for name, path in dirs.items():
        monkeypatch.setattr(recorded, name, path)
    # Three clips per fake talker; the real threshold is tested on its own.
    monkeypatch.setattr(recorded, "MIN_TALKER_CLIPS", 2)
    return dirs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The whole fake tree converted once with the default settings; yields the corpus folder."""
    root = tmp_path_factory.mktemp("recorded")
    with pytest.MonkeyPatch.context() as mp:
        for name, path in fake_packages(root / "usr").items():
            mp.setattr(recorded, name, path)
        mp.setattr(recorded, "MIN_TALKER_CLIPS", 2)
        assert main(["make-recorded", str(root / "corpus"), "--jobs", "1"]) == 0
        yield root / "corpus"


def rows(corpus: Path) -> list[dict[str, str]]:
    with (corpus / "manifest.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_manifest_columns_audio_and_texts(corpus: Path):
    with (corpus / "manifest.csv").open(encoding="utf-8") as f:
        header = f.readline().strip().split(",")
    assert header == [
        "path",
        "speaker",
        "text",
        "split",
        "source",
        "talker",
        "language",
        "licence",
        "bandwidth_hz",
        "gender",
        "style",
    ]
    utts = read_manifest(corpus / "manifest.csv")  # every path exists
    assert all(u.speaker == u.labels["talker"] for u in utts)
    for u in utts[::7]:
        info = sf.info(str(u.path))
        assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
        x, _ = sf.read(str(u.path))
        assert abs(np.sqrt(np.mean(x**2)) - 0.05) < 0.02  # levelled like the synthetic corpus
    by_file = {u.path.name: u for u in utts}
    assert by_file["festvox-ru_ru_0001.wav"].text == "Она завела, прядь волнистых волос за ухо."  # stress "+" and newline gone
    assert by_file["festvox-ru_ru_0001.wav"].labels | {} == {
        "source": "festvox-ru",
        "talker": "msu_ru_nsh",
        "language": "ru",
        "licence": "BSD-like (Shmyrev 2005)",
        "bandwidth_hz": "8000",
        "gender": "m",
        "style": "read",
    }
    assert by_file["asterisk-en_letters_dash.wav"].text == "dash"
    assert by_file["asterisk-es_hello.wav"].labels["source"] == "asterisk-core-sounds-es-wav"
    assert by_file["asterisk-it-menardi_hello.wav"].text == ""  # that package ships no transcripts
    assert by_file["fillets-ng-cs_level_lev-m-line0.wav"].text == "cs m0."  # the dub's text, not the English
    assert by_file["fillets-ng_elk_deu-l-los.wav"].labels["language"] == "ru"
    assert {u.labels["licence"] for u in utts if u.labels["source"] == "asterisk-core-sounds-ru-wav"} == {"CC-BY-3.0"}
    # Tones, silence, effects, grunts and the robot voice are not speech.
    names = " ".join(by_file)
    for left_out in ("beep", "silence", "2tone", "bar-x-gr0", "lev-x-click", "Laugh", "Ow1", "Robot", "deu-m-valka"):
        assert left_out not in names
    assert sorted(p.name for p in (corpus / "licences").iterdir()) == sorted(
        f"{p}.copyright" for p in {p for s in recorded.SOURCES.values() for p in s.packages}
    )


def test_talkers_and_bandwidth_labels(corpus: Path):
    rs = rows(corpus)
    talkers = {r["talker"] for r in rs}
    assert {
        "allison_smith",
        "june_wallack",
        "menardi_it",
        "fillets_cs_small",
        "fillets_nl_big",
        "hedgewars_default_uk",
    } <= talkers
    assert "codec2" in talkers  # several voices, no labels: the package is the talker
    # One person, two languages: one speaker.
    assert {r["language"] for r in rs if r["speaker"] == "allison_smith"} == {"en", "es"}
    band = {}
    for r in rs:
        band.setdefault(r["source"], set()).add(r["bandwidth_hz"])
    assert band["asterisk-core-sounds-en-wav"] == {"4000"}  # 8 kHz telephone prompts
    assert band["festvox-ru"] == {"8000"}
    assert band["hedgewars-data"] == {"22050"}
    assert band["fillets-ng-data-cs"] == {"11025", "22050"}  # the fixture's big fish is at 44.1 kHz
    assert band["codec2-examples"] == {"4000", "8000"}  # raw 8 kHz and the 16 kHz WAVs


def test_splits_hold_out_whole_talkers(corpus: Path):
    rs = rows(corpus)
    split_of: dict[str, set[str]] = {}
    for r in rs:
        split_of.setdefault(r["talker"], set()).add(r["split"])
    # The default test talkers, whole; every other talker trains and has held-out clips.
    assert {t for t, s in split_of.items() if "test_voice" in s} == set(recorded.DEFAULT_TEST_TALKERS)
    assert all(split_of[t] == {"test_voice"} for t in recorded.DEFAULT_TEST_TALKERS)
    assert all(s == {"train", "valid"} for t, s in split_of.items() if t not in recorded.DEFAULT_TEST_TALKERS)


def test_test_talkers_option(packages: dict[str, Path], tmp_path: Path):
    out = tmp_path / "c"
    utts, _, summary = recorded.make_recorded(
        out,
        sources=recorded.select_sources("festvox-ru,asterisk-en,asterisk-es,asterisk-fr"),
        test_talkers=["allison_smith"],
        jobs=1,
    )
    assert {u.speaker for u in utts if u.split == "test_voice"} == {"allison_smith"}
    assert {u.labels["language"] for u in utts if u.split == "test_voice"} == {"en", "es"}
    assert summary["asterisk-en"].clips == 3 and summary["asterisk-en"].talkers == {"allison_smith"}
    with pytest.raises(ValueError, match="--test-talkers: nobody not in the selected sources"):
        recorded.make_recorded(tmp_path / "d", sources=recorded.select_sources("festvox-ru"), test_talkers=["nobody"], jobs=1)
    with pytest.raises(ValueError, match="leaves no talker for training"):
        recorded.make_recorded(tmp_path / "e", sources=recorded.select_sources("festvox-ru"), test_talkers=["msu_ru_nsh"], jobs=1)
    # The defaults apply only to talkers present, and never to the only one.
    assert recorded.resolve_test_talkers(["june_wallack"], None) == []
    assert recorded.resolve_test_talkers(["june_wallack", "msu_ru_nsh"], None) == ["june_wallack"]


def test_missing_package_is_named(packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys):
    monkeypatch.setattr(recorded, "FESTVOX_RU_DIR", tmp_path / "nowhere")
    with pytest.raises(recorded.MissingSourceError, match="apt-get install -y --no-install-recommends festvox-ru$"):
        recorded.find_clips(recorded.select_sources("festvox-ru"))
    # Transcripts come in the base package: both are named.
    (packages["DOC_DIR"] / "asterisk-core-sounds-fr/core-sounds-fr.txt.gz").unlink()
    with pytest.raises(recorded.MissingSourceError, match="asterisk-core-sounds-fr-wav asterisk-core-sounds-fr"):
        recorded.find_clips(recorded.select_sources("asterisk-fr"))
    # Several missing at once: one error, one install line with all of them.
    monkeypatch.setattr(recorded, "HEDGEWARS_VOICES_DIR", tmp_path / "nowhere")
    assert main(["make-recorded", str(tmp_path / "out"), "--sources", "festvox-ru,hedgewars,asterisk-en"]) == 1
    err = capsys.readouterr().err
    assert "All at once: apt-get install -y --no-install-recommends festvox-ru hedgewars-data" in err
    assert str(tmp_path / "nowhere") in err
    assert not (tmp_path / "out").exists()
    # A dub without its sound package.
    for ogg in (packages["FILLETS_DIR"] / "sound/level/nl").glob("*.ogg"):
        ogg.unlink()
    with pytest.raises(recorded.MissingSourceError, match="fillets-ng-data-nl fillets-ng-data"):
        recorded.find_clips(recorded.select_sources("fillets-ng-nl"))
    with pytest.raises(ValueError, match="unknown source"):
        recorded.select_sources("festvox-ru,librivox")


def test_refuses_to_overwrite_without_force(packages: dict[str, Path], tmp_path: Path, capsys):
    out = tmp_path / "corpus"
    args = ["make-recorded", str(out), "--sources", "asterisk-it", "--jobs", "1", "--test-talkers", ""]
    assert main(args) == 0
    before = (out / "manifest.csv").read_bytes()
    capsys.readouterr()
    assert main(args) == 1
    assert "already holds a corpus; pass --force" in capsys.readouterr().err
    assert (out / "manifest.csv").read_bytes() == before
    assert main([*args, "--force", "--sources", "asterisk-ru"]) == 0
    assert {r["talker"] for r in rows(out)} == {"ivrvoice_ru"}


def test_duplicates_taken_once_and_small_talkers_left_out(packages: dict[str, Path], monkeypatch: pytest.MonkeyPatch):
    fil = packages["FILLETS_DIR"]
    # Fish Fillets ships some lines byte-identical in two levels.
    (fil / "sound/other/cs").mkdir(parents=True)
    (fil / "sound/other/cs/lev-m-line0.ogg").write_bytes((fil / "sound/level/cs/lev-m-line0.ogg").read_bytes())
    clips, notes = recorded.find_clips(recorded.select_sources("fillets-ng-cs"))
    assert sum(c.path.name == "lev-m-line0.ogg" for c in clips) == 1
    assert any("same bytes as" in n for n in notes)
    monkeypatch.setattr(recorded, "MIN_TALKER_CLIPS", 4)
    clips, notes = recorded.find_clips(recorded.select_sources("fillets-ng-cs,codec2"))
    assert {c.talker for c in clips} == {"codec2"}
    assert any("talker fillets_cs_small: only 3 clip(s)" in n for n in notes)


def test_text_parsers(tmp_path: Path):
    assert recorded.asterisk_text("[ascending tones]") is None
    assert recorded.asterisk_text("<beep ascending>") is None
    assert recorded.asterisk_text("(ahooga)") is None
    assert recorded.asterisk_text("[!] punto esclamativo") == "punto esclamativo"
    assert recorded.asterisk_text("Il [suo] messaggio  è stato salvato.") == "Il suo messaggio è stato salvato."
    lua = write(
        tmp_path / "script/corridor/dialogs_cs.lua",
        'dialogId("ch-m-a", "font_small",\n"First \\"quoted\\" line.")\ndialogStr("Prvn\u00ed.")\n\ndialogId("ch-v-b", "font_big", "Untranslated.")\n',
    )
    assert recorded.read_fillets_dialogs(lua.parents[1], "cs") == {
        ("corridor", "ch-m-a"): ("font_small", "Prvn\u00ed."),
        ("corridor", "ch-v-b"): ("font_big", "Untranslated."),
    }
