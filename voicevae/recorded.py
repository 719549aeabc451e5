"""Real recorded human speech from Debian packages, as a corpus (`voicevae make-recorded`).

Several packages in Debian main ship recordings of people speaking, under
licences that allow redistribution: a Russian unit-selection database
(festvox-ru), the Asterisk telephone prompts in five languages plus a second
Italian voice, the spoken dialogue of the game Fish Fillets (Czech and Dutch
dubs, and a few international lines), the Hedgewars voice packs, and the
codec2 test recordings. Nothing is downloaded beyond `apt-get install`.

`find_clips` lists what each installed package holds (one `Clip` per
recording, with its transcript where the package ships one); `make_recorded`
converts them the way `voicevae.synthetic` conditions its clips (22050 Hz
mono, silence-trimmed, RMS-levelled: `synthetic.condition`) into
OUT_DIR/wavs/<talker>/ and writes OUT_DIR/manifest.csv with the labels
source (the Debian package), talker, language, licence, bandwidth_hz (half
the original sample rate: an 8 kHz telephone prompt holds nothing above
4 kHz), gender (only where the package says) and style. The `speaker`
column is the talker: one id per person, across languages (Allison Smith
recorded both the English and the Spanish prompts). recipes/recorded/README.md
describes the sources and the measured corpus.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import re
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import AudioError, load_audio, save_audio
from .corpora import SPLITS, Utterance, assign_splits, write_manifest
from .synthetic import SAMPLE_RATE, condition, map_clips

# Where the packages install their files. Module-level so that tests can
# point them at a fixture tree (monkeypatch); every finder reads them when
# called, never at import.
FESTVOX_RU_DIR = Path("/usr/share/festival/voices/russian/msu_ru_nsh_clunits")
ASTERISK_SOUNDS_DIR = Path("/usr/share/asterisk/sounds")
DOC_DIR = Path("/usr/share/doc")  # Asterisk transcripts and every package's copyright file
FILLETS_DIR = Path("/usr/share/games/fillets-ng")
HEDGEWARS_VOICES_DIR = Path("/usr/share/games/hedgewars/Data/Sounds/voices")
CODEC2_DIR = Path("/usr/share/codec2")

# A talker with fewer clips than this is left out: speaker-balanced batches
# would show its few clips over and over, and it cannot give a valid split.
MIN_TALKER_CLIPS = 5

# Held out entirely (split test_voice) by default: one telephone-band female
# voice and one wideband male voice, each with 20+ minutes, so the cloning
# protocol can draw 30-180 s of reference audio, while training keeps voices
# of both kinds (Allison Smith, IvrvoiceRU, Menardi; festvox-ru, the Dutch
# big fish).
DEFAULT_TEST_TALKERS = ("june_wallack", "fillets_cs_big")


class MissingSourceError(FileNotFoundError):
    """A source's files are not on this machine; the message names the Debian package(s) to install."""


@dataclass(frozen=True)
class Source:
    """One corpus source.

    name: the name --sources takes. packages: the Debian packages it needs,
    the one holding the audio first (its name is the manifest's `source`
    label). licence: the audio's licence as the package's copyright file
    states it. find: lists the clips; raises MissingSourceError.
    """

    name: str
    packages: tuple[str, ...]
    licence: str
    find: Callable[[Source], list[Clip]]

    def missing(self, path: Path) -> MissingSourceError:
        return MissingSourceError(
            f"source {self.name}: {path} not found; install it with: "
            f"apt-get install -y --no-install-recommends {' '.join(self.packages)}"
        )


@dataclass(frozen=True)
class Clip:
    """One recording found on disk, before conversion.

    source: the Source's name. path: the audio file. talker: one id per
    distinct voice (the manifest's speaker). text: transcript, "" when the
    package ships none. language: ISO 639-1 code, "" when unknown. gender:
    "f"/"m" where the package says so, else "". style: "read", "prompt",
    "acted" or "codec-test". key: a name for the output file, unique within
    the source. raw_rate: sample rate of a headerless 16-bit little-endian
    mono file, None for files with a header.
    """

    source: str
    path: Path
    talker: str
    text: str
    language: str
    gender: str
    style: str
    key: str
    raw_rate: int | None = None


def _clean(text: str) -> str:
    return " ".join(text.split())


# ---------------------------------------------------------------- festvox-ru


def _read_festival_prompts(path: Path) -> dict[str, str]:
    """Parse festival's txt.done.data: `( utt_id "text" )` entries, which may span lines -> {id: text}."""
    entries = re.finditer(r'\(\s*(\S+)\s+"((?:[^"\\]|\\.)*)"\s*\)', path.read_text(encoding="utf-8"), re.DOTALL)
    # "+" marks the stressed vowel for the voice's letter-to-sound rules
    # (README.Debian: "Stress placement: +"); it is not spoken text.
    return {m[1]: _clean(m[2].replace('\\"', '"').replace("+", "")) for m in entries}


def find_festvox_ru(src: Source) -> list[Clip]:
    """msu_ru_nsh_clunits: 620 read Russian sentences at 16 kHz, one male speaker (wav/ru_NNNN.wav)."""
    wav_dir, prompts = FESTVOX_RU_DIR / "wav", FESTVOX_RU_DIR / "etc" / "txt.done.data"
    for path in (wav_dir, prompts):
        if not path.exists():
            raise src.missing(path)
    text = _read_festival_prompts(prompts)
    # One voice: the database is a single-speaker unit-selection recording
    # (README.Debian: "Russian male voice").
    return [
        Clip(src.name, wav, "msu_ru_nsh", text.get(wav.stem, ""), "ru", "m", "read", wav.stem)
        for wav in sorted(wav_dir.glob("*.wav"))
    ]


# ---------------------------------------------------------------- Asterisk prompts

# Prompts that are tones, jingles or effects, not speech. The transcript
# files mostly describe them in brackets ("[ascending tones]", "<beep
# ascending>", "(beep)"), but some languages ship them without a transcript
# line or describe them in plain words (fr spy-jingle: "tintement").
ASTERISK_NON_SPEECH = frozenset(
    {"beep", "beeperr", "ascending-2tone", "descending-2tone", "tt-monkeys", "confbridge-join", "confbridge-leave", "spy-jingle"}
)
ASTERISK_NON_SPEECH_DIRS = frozenset({"silence"})  # silence/1.wav ... silence/10.wav


@dataclass(frozen=True)
class AsteriskVoice:
    """One Asterisk prompt set: its folder under ASTERISK_SOUNDS_DIR and who recorded it."""

    folder: str
    talker: str
    language: str
    gender: str
    transcripts: str | None  # package shipping core-sounds-<lang>.txt.gz in its doc folder, or None


# Each prompt set is one credited voice (the copyright file's CREDITS, the
# folder name's f/m; the median F0 of 20 clips each is consistent with one
# voice per set). The IvrvoiceRU voice's own name is not given ("Provided
# by: Maxim Topal, http://www.ivrvoice.ru"); the Menardi prompts are
# "Copyright Marco Menardi e Paola Dal Zot", made "by me and my wife", and
# the folder says female, so the voice is presumably Paola Dal Zot's.
ASTERISK_VOICES: dict[str, AsteriskVoice] = {
    "asterisk-en": AsteriskVoice("en_US_f_Allison", "allison_smith", "en", "f", "asterisk-core-sounds-en"),
    "asterisk-es": AsteriskVoice("es_MX_f_Allison", "allison_smith", "es", "f", "asterisk-core-sounds-es"),
    "asterisk-fr": AsteriskVoice("fr_CA_f_June", "june_wallack", "fr", "f", "asterisk-core-sounds-fr"),
    "asterisk-it": AsteriskVoice("it_IT_m_Carlo", "carlo_flora", "it", "m", "asterisk-core-sounds-it"),
    "asterisk-ru": AsteriskVoice("ru_RU_f_IvrvoiceRU", "ivrvoice_ru", "ru", "f", "asterisk-core-sounds-ru"),
    "asterisk-it-menardi": AsteriskVoice("it_IT_f_Menardi", "menardi_it", "it", "f", None),
}


def _asterisk_transcript_file(package: str) -> Path:
    lang = package.rsplit("-", 1)[-1]
    return DOC_DIR / package / f"core-sounds-{lang}.txt.gz"


def read_asterisk_transcripts(path: Path) -> dict[str, str]:
    """Parse core-sounds-<lang>.txt(.gz): `name: text` lines, ';' comments -> {name: raw text}."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        lines = f.read().splitlines()
    out: dict[str, str] = {}
    for line in lines:
        name, sep, text = line.partition(":")
        if line.startswith(";") or not sep or not name.strip():
            continue
        out[name.strip()] = text.strip()
    return out


def asterisk_text(raw: str) -> str | None:
    """A transcript line -> the spoken text, or None when it describes a non-speech sound.

    A text wholly in brackets of any kind describes a sound ("[ascending
    tones]", "(ahooga)");
    bracketed symbols name what a letter prompt stands for ("dash [-]") and
    are dropped. Bracketed words inside a sentence ("Il [suo] messaggio")
    are kept without the brackets: the files do not say whether they are
    spoken, and only a handful of prompts have them (1 es, 4 it).
    """
    if re.fullmatch(r"\s*(\[[^\]]*\]|<[^>]*>|\([^)]*\))\s*", raw):
        return None
    text = re.sub(r"\[([^\]]*)\]", lambda m: m[1] if re.search(r"\w", m[1]) else " ", raw)
    return _clean(text)


def find_asterisk(src: Source) -> list[Clip]:
    voice = ASTERISK_VOICES[src.name]
    root = ASTERISK_SOUNDS_DIR / voice.folder
    if not root.is_dir():
        raise src.missing(root)
    transcripts: dict[str, str] = {}
    if voice.transcripts is not None:
        tfile = _asterisk_transcript_file(voice.transcripts)
        if not tfile.is_file():
            raise src.missing(tfile)
        transcripts = read_asterisk_transcripts(tfile)
    # Some names differ only in case between the file and the transcript
    # list (it: letters/o vs letters/O; es: digits/1F vs digits/1f).
    folded = {k.casefold(): v for k, v in transcripts.items()}
    out = []
    for wav in sorted(root.rglob("*.wav")):
        name = wav.relative_to(root).with_suffix("").as_posix()
        if name in ASTERISK_NON_SPEECH or name.split("/")[0] in ASTERISK_NON_SPEECH_DIRS:
            continue
        raw = transcripts.get(name, folded.get(name.casefold()))
        if raw is not None and raw.startswith(f"{name}:"):  # ru conf-adminmenu repeats its own name
            raw = raw[len(name) + 1 :]
        text = "" if raw is None else asterisk_text(raw)
        if text is None:
            continue
        out.append(Clip(src.name, wav, voice.talker, text, voice.language, voice.gender, "prompt", name.replace("/", "_")))
    return out


# ---------------------------------------------------------------- Fish Fillets

# A dialogue line is dialogId("id", "font", "English text"), in a translated
# file followed by dialogStr("translation"); its sound is
# sound/<level>/<lang>/<id>.ogg (or sound/share/<group>/<lang>/<id>.ogg).
_LUA_STRING = r'"((?:[^"\\]|\\.)*)"'
_DIALOG = re.compile(
    rf"dialogId\(\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*,\s*{_LUA_STRING}\s*\)(?:\s*dialogStr\(\s*{_LUA_STRING}\s*\))?",
    re.DOTALL,
)

# Fonts named after a colour are reused across levels for different
# characters (the boss's briefing is font_white in one level, a door's
# "CLICK" font_darkgrey in another), so within a colour font the level
# tells the characters apart. Every other font is one character (small
# fish, big fish, parrot, statue, vikings 1-8, ...).
FILLETS_COLOUR_FONTS = frozenset(
    {"white", "darkgrey", "lightgrey", "green", "yellow", "cyan", "magenta", "brown", "pink", "both"}
)

# fillets-ng-data's own sound/*/en folders hold the sounds every dub shares:
# effects, and the elk's Russian and the parrot's German lines in one level.
# Only those two characters speak there.
FILLETS_INTERNATIONAL = {"elk": "ru", "parrot": "de"}


@dataclass(frozen=True)
class FilletsDub:
    lang: str  # folder name under sound/<level>/ and suffix of dialogs_<lang>.lua
    language: str  # what is spoken ("" where it depends on the character)


FILLETS_DUBS = {
    "fillets-ng": FilletsDub("en", ""),
    "fillets-ng-cs": FilletsDub("cs", "cs"),
    "fillets-ng-nl": FilletsDub("nl", "nl"),
}


def _lua_unescape(s: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": " ", "t": " "}.get(m[1], m[1]), s)


def read_fillets_dialogs(script_dir: Path, lang: str) -> dict[tuple[str, str], tuple[str, str]]:
    """Every dialogue line of one language -> {(level, id): (font, text)}.

    Reads script/<level>/*dialogs_<lang>.lua; `level` is the script folder's
    name ("share" for the shared jokes and intros). The text is the
    translation (dialogStr) where there is one, else the dialogId's own text.
    """
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for lua in sorted(script_dir.glob(f"*/*dialogs_{lang}.lua")):
        for m in _DIALOG.finditer(lua.read_text(encoding="utf-8", errors="replace")):
            text = m[4] if m[4] is not None else m[3]
            out[(lua.parent.name, m[1])] = (m[2], _clean(_lua_unescape(text)))
    return out


def find_fillets(src: Source) -> list[Clip]:
    dub = FILLETS_DUBS[src.name]
    sound_dir, script_dir = FILLETS_DIR / "sound", FILLETS_DIR / "script"
    # The dubs' sounds come in their own package; the dialogue text always
    # comes with fillets-ng-data.
    if not script_dir.is_dir():
        raise src.missing(script_dir)
    files = sorted(sound_dir.glob(f"*/{dub.lang}/*.ogg")) + sorted(sound_dir.glob(f"share/*/{dub.lang}/*.ogg"))
    if not files:
        raise src.missing(sound_dir / "*" / dub.lang)
    dialogs = read_fillets_dialogs(script_dir, dub.lang)
    by_id = {key[1]: value for key, value in sorted(dialogs.items())}
    out = []
    for ogg in files:
        level = ogg.parents[1].name if ogg.parents[2] == sound_dir else "share"
        entry = dialogs.get((level, ogg.stem), by_id.get(ogg.stem))
        parts = ogg.stem.split("-")
        # Ids are <level>-<who>-<name>; who "x" is a sound effect (gurgles,
        # clicks, the virus's noise). Lines with no entry or no font have
        # no known speaker.
        if entry is None or (len(parts) >= 3 and parts[1] == "x") or not entry[0].startswith("font_"):
            continue
        font, text = entry
        character = font.removeprefix("font_")
        if character in FILLETS_COLOUR_FONTS:
            character = f"{level}_{character}"
        if dub.lang == "en":
            if character not in FILLETS_INTERNATIONAL:
                continue
            talker, language = f"fillets_{character}", FILLETS_INTERNATIONAL[character]
        else:
            talker, language = f"fillets_{dub.lang}_{character}", dub.language
        out.append(Clip(src.name, ogg, talker, text, language, "", "acted", f"{ogg.parents[1].name}_{ogg.stem}"))
    return out


# ---------------------------------------------------------------- Hedgewars

# Grunts, coughs, laughs and jump/punch shouts are voice but not speech.
HEDGEWARS_NON_SPEECH = re.compile(r"^(Firepunch\d*|Jump\d*|Ooff\d*|Ow\d*|Laugh|PoisonCough|PoisonMoan|Hmm)$")
# The Robot pack's pitch is flat (pYIN: 0.3-0.5 semitones of spread over a
# line, against 1-4 for the other packs): a robot effect over the voice.
HEDGEWARS_PROCESSED_PACKS = frozenset({"Robot"})
# Default_<locale> is the default voice dubbed for that locale; the other
# packs are English character voices. "Russian" and "Russian_pl" are accent
# characters whose language was not checked, so they get "".
HEDGEWARS_LANGUAGE = {
    "Default_es": "es",
    "Default_pl": "pl",
    "Default_ru": "ru",
    "Default_uk": "uk",
    "Russian": "",
    "Russian_pl": "",
}


def find_hedgewars(src: Source) -> list[Clip]:
    """One talker per voice pack (the packs credit no actors; a pack is one character's voice). No transcripts."""
    if not HEDGEWARS_VOICES_DIR.is_dir():
        raise src.missing(HEDGEWARS_VOICES_DIR)
    out = []
    for pack in sorted(p for p in HEDGEWARS_VOICES_DIR.iterdir() if p.is_dir()):
        if pack.name in HEDGEWARS_PROCESSED_PACKS:
            continue
        language = HEDGEWARS_LANGUAGE.get(pack.name, "en")
        for ogg in sorted(pack.glob("*.ogg")):
            if HEDGEWARS_NON_SPEECH.match(ogg.stem):
                continue
            # The file names name the game event (Firstblood, Takecover), not
            # the words, which the actors varied: no transcript.
            out.append(
                Clip(src.name, ogg, f"hedgewars_{pack.name.lower()}", "", language, "", "acted", f"{pack.name}_{ogg.stem}")
            )
    return out


# ---------------------------------------------------------------- codec2 samples

# The speech recordings among codec2's test signals, each taken once. Left
# out: all.wav (a concatenation of others), hts1a/hts2a and ve9qrp_10s (the
# start of hts1/hts2/ve9qrp), f2400/m2400 (forig/morig after a 2400 bit/s
# codec), david4, vk2tpm_004, 700d_end_over, test_datac*, testframes_700d
# (FreeDV modem signals: tones near 1-2 kHz, no pitch) and the sine files.
# (path under CODEC2_DIR, rate of a headerless raw file or None for WAV)
CODEC2_RECORDINGS: tuple[tuple[str, int | None], ...] = (
    ("raw/hts1.raw", 8000),
    ("raw/hts2.raw", 8000),
    ("wav/forig.wav", None),
    ("wav/morig.wav", None),
    ("wav/big_dog.wav", None),
    ("wav/cross.wav", None),
    ("wav/mmt1.wav", None),
    ("raw/kristoff.raw", 8000),
    ("raw/cq_ref.raw", 8000),
    ("raw/g3plx.raw", 8000),
    ("wav/vk5qi.wav", None),
    ("wav/ve9qrp.wav", None),
    ("raw/speech_orig_16k.wav", None),
    ("wav/wia_16kHz.wav", None),
)


def find_codec2(src: Source) -> list[Clip]:
    """codec2-examples' speech samples: 8 kHz (two at 16 kHz), several voices, some off-air HF radio."""
    out = []
    for rel, raw_rate in CODEC2_RECORDINGS:
        path = CODEC2_DIR / rel
        if not path.is_file():
            raise src.missing(path)
        # Several speakers (male and female by pitch; the radio files are
        # named after the operators' callsigns) but no speaker labels, so
        # the package is one talker. Its speaker vector is a mixture: use it
        # for bandwidth and channel variety, not as a voice.
        # The language of every sample was not checked: "".
        out.append(Clip(src.name, path, "codec2", "", "", "", "codec-test", Path(rel).stem, raw_rate))
    return out


# ---------------------------------------------------------------- registry


def _sources() -> dict[str, Source]:
    asterisk_pkgs = {
        name: (f"asterisk-core-sounds-{name[-2:]}-wav", f"asterisk-core-sounds-{name[-2:]}")
        for name in ("asterisk-en", "asterisk-es", "asterisk-fr", "asterisk-it", "asterisk-ru")
    }
    asterisk_licence = {"asterisk-en": "CC-BY-SA-3.0", "asterisk-es": "CC-BY-SA-3.0", "asterisk-fr": "CC-BY-SA-3.0"}
    sources = [Source("festvox-ru", ("festvox-ru",), "BSD-like (Shmyrev 2005)", find_festvox_ru)]
    sources += [Source(n, p, asterisk_licence.get(n, "CC-BY-3.0"), find_asterisk) for n, p in asterisk_pkgs.items()]
    sources += [
        Source("asterisk-it-menardi", ("asterisk-prompt-it-menardi-wav",), "CC-BY-SA-3.0-IT", find_asterisk),
        Source("fillets-ng", ("fillets-ng-data",), "GPL-2", find_fillets),
        Source("fillets-ng-cs", ("fillets-ng-data-cs", "fillets-ng-data"), "GPL-2", find_fillets),
        Source("fillets-ng-nl", ("fillets-ng-data-nl", "fillets-ng-data"), "GPL-2", find_fillets),
        Source("hedgewars", ("hedgewars-data",), "GFDL-1.3", find_hedgewars),
        Source("codec2", ("codec2-examples",), "LGPL-2.1", find_codec2),
    ]
    return {s.name: s for s in sources}


SOURCES: dict[str, Source] = _sources()


def select_sources(spec: str) -> list[Source]:
    """'all' or a comma list of source names -> Sources, in the order given."""
    if spec == "all":
        return list(SOURCES.values())
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SOURCES]
    if unknown or not names:
        raise ValueError(f"--sources: unknown source(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(SOURCES)}")
    return [SOURCES[n] for n in dict.fromkeys(names)]


def _digest(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def find_clips(sources: Sequence[Source]) -> tuple[list[Clip], list[str]]:
    """Every usable clip of `sources`. Returns (clips, notes on what was left out).

    Byte-identical files are taken once (Fish Fillets ships some lines in two
    levels); talkers with fewer than MIN_TALKER_CLIPS clips are left out.
    Raises MissingSourceError naming every missing package at once.
    """
    clips: list[Clip] = []
    missing: list[tuple[Source, MissingSourceError]] = []
    for src in sources:
        try:
            found = src.find(src)
        except MissingSourceError as e:
            missing.append((src, e))
            continue
        if not found:
            missing.append(
                (src, MissingSourceError(f"source {src.name}: no usable clips found in packages {', '.join(src.packages)}"))
            )
        clips += found
    if missing:
        message = "; ".join(str(e) for _, e in missing)
        if len(missing) > 1:
            packages = dict.fromkeys(p for src, _ in missing for p in src.packages)
            message += f". All at once: apt-get install -y --no-install-recommends {' '.join(packages)}"
        raise MissingSourceError(message)
    notes: list[str] = []
    seen: dict[str, Path] = {}
    unique = []
    for clip in clips:
        digest = _digest(clip.path)
        if digest in seen:
            notes.append(f"{clip.path}: same bytes as {seen[digest]}; taken once")
            continue
        seen[digest] = clip.path
        unique.append(clip)
    count = Counter(c.talker for c in unique)
    small = sorted(t for t, n in count.items() if n < MIN_TALKER_CLIPS)
    notes += [f"talker {t}: only {count[t]} clip(s), fewer than {MIN_TALKER_CLIPS}; left out" for t in small]
    return [c for c in unique if c.talker not in small], notes


# ---------------------------------------------------------------- conversion


@dataclass(frozen=True)
class _Job:
    clip: Clip
    out: Path
    overwrite: bool


def _run_job(job: _Job) -> tuple[float, int] | str:
    """Convert one clip. Returns (duration of the written clip in s, original sample rate) or an error message."""
    clip = job.clip
    try:
        if clip.raw_rate is not None:
            samples = np.fromfile(clip.path, dtype="<i2").astype(np.float32) / 32768.0
            if samples.size == 0:
                raise AudioError(f"{clip.path}: file holds no samples")
            rate = clip.raw_rate
            x = condition(samples, rate, str(clip.path))
        else:
            rate = sf.info(str(clip.path)).samplerate
            x = condition(load_audio(clip.path, SAMPLE_RATE).numpy(), SAMPLE_RATE, str(clip.path))
        save_audio(job.out, x, SAMPLE_RATE, overwrite=job.overwrite)
        return len(x) / SAMPLE_RATE, rate
    except (AudioError, OSError, RuntimeError) as e:
        # load_audio's and condition's messages already start with the path.
        return str(e) if str(e).startswith(str(clip.path)) else f"{clip.path}: {e}"


@dataclass
class SourceSummary:
    """What one source contributed: clips written, clips that failed, talkers, seconds of audio written."""

    clips: int = 0
    failed: int = 0
    talkers: set[str] = field(default_factory=set)
    seconds: float = 0.0


def resolve_test_talkers(talkers: Iterable[str], requested: Sequence[str] | None) -> list[str]:
    """The talkers to hold out as test_voice.

    `requested` None means DEFAULT_TEST_TALKERS, restricted to those present
    (a corpus of some sources may hold none of them) and dropped altogether
    if no talker would be left for training. Given names must all be present
    and leave at least one talker for training, else ValueError naming
    --test-talkers.
    """
    present = sorted(set(talkers))
    if requested is None:
        held = [t for t in DEFAULT_TEST_TALKERS if t in present]
        return held if len(held) < len(present) else []
    unknown = sorted(set(requested) - set(present))
    if unknown:
        raise ValueError(f"--test-talkers: {', '.join(unknown)} not in the selected sources; talkers: {', '.join(present)}")
    if set(present) <= set(requested):
        raise ValueError(f"--test-talkers: holding out {', '.join(requested)} leaves no talker for training")
    return list(dict.fromkeys(requested))


def make_recorded(
    out_dir: str | os.PathLike,
    *,
    sources: Sequence[Source] | None = None,
    test_talkers: Sequence[str] | None = None,
    valid_fraction: float = 0.05,
    jobs: int = 2,
    seed: int = 0,
    force: bool = False,
    progress: bool = True,
) -> tuple[list[Utterance], list[str], dict[str, SourceSummary]]:
    """Convert the recordings of `sources` (default: all) into out_dir/wavs/<talker>/ and write out_dir/manifest.csv.

    Clips are 16-bit WAV, mono, 22050 Hz, conditioned by `synthetic.condition`.
    Splits: every clip of a talker in `test_talkers` (see
    `resolve_test_talkers`) is test_voice; of the others, `valid_fraction`
    of each talker's clips are valid (`corpora.assign_splits`). The copyright
    files of the packages used are copied to out_dir/licences/ (CC-BY and
    CC-BY-SA require the licence to travel with copies). Returns
    (utterances written, notes on clips left out or failed, per-source summary).
    """
    out_dir = Path(out_dir)
    manifest = out_dir / "manifest.csv"
    if (manifest.exists() or (out_dir / "wavs").exists()) and not force:
        raise FileExistsError(f"{out_dir}: already holds a corpus; pass --force to overwrite it")
    if jobs < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    sources = list(SOURCES.values()) if sources is None else list(sources)
    clips, notes = find_clips(sources)
    held = resolve_test_talkers((c.talker for c in clips), test_talkers)
    work, names = [], set()
    for clip in clips:
        name = f"{clip.source}_{clip.key}"
        n = 1
        while (clip.talker, name) in names:
            n += 1
            name = f"{clip.source}_{clip.key}_{n}"
        names.add((clip.talker, name))
        work.append(_Job(clip, out_dir / "wavs" / clip.talker / f"{name}.wav", force))
    results = map_clips(_run_job, work, jobs, "make-recorded", chunksize=16, progress=progress)
    by_name = {s.name: s for s in sources}
    summary = {s.name: SourceSummary() for s in sources}
    utterances = []
    for job, result in zip(work, results):
        clip, src = job.clip, by_name[job.clip.source]
        if isinstance(result, str):
            notes.append(f"failed: {result}")
            summary[src.name].failed += 1
            continue
        seconds, rate = result
        labels = {
            "source": src.packages[0],
            "talker": clip.talker,
            "language": clip.language,
            "licence": src.licence,
            "bandwidth_hz": str(rate // 2),
            "gender": clip.gender,
            "style": clip.style,
        }
        utterances.append(Utterance(job.out.resolve(), clip.talker, clip.text, "train", labels))
        s = summary[src.name]
        s.clips, s.seconds = s.clips + 1, s.seconds + seconds
        s.talkers.add(clip.talker)
    if not utterances:
        raise AudioError(f"every clip failed; first error: {notes[-1] if notes else 'none'}")
    utterances = assign_splits(utterances, valid_fraction, [t for t in held if t in {u.speaker for u in utterances}], seed)
    licences = out_dir / "licences"
    licences.mkdir(parents=True, exist_ok=True)
    for package in dict.fromkeys(p for s in sources for p in s.packages):
        copyright_file = DOC_DIR / package / "copyright"
        if copyright_file.is_file():
            shutil.copyfile(copyright_file, licences / f"{package}.copyright")
    write_manifest(manifest, utterances, overwrite=force)
    return utterances, notes, summary


# ---------------------------------------------------------------- command line


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out_dir", type=Path, help="folder for wavs/, licences/ and manifest.csv")
    parser.add_argument("--sources", default="all", help=f"'all' or a comma list of: {', '.join(SOURCES)}")
    parser.add_argument(
        "--test-talkers",
        default=None,
        help=f"comma list of talkers held out entirely (split test_voice); '' for none; default: {','.join(DEFAULT_TEST_TALKERS)} "
        "(those present)",
    )
    parser.add_argument(
        "--valid-fraction", type=float, default=0.05, help="fraction of each training talker's clips held out as 'valid'"
    )
    parser.add_argument("--jobs", type=int, default=2, help="conversion processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-f", "--force", action="store_true", help="overwrite an existing corpus")
    parser.add_argument("-v", "--verbose", action="store_true", help="list every clip left out, not just the count")


def run(args: argparse.Namespace) -> int:
    sources = select_sources(args.sources)
    test_talkers = None if args.test_talkers is None else [t.strip() for t in args.test_talkers.split(",") if t.strip()]
    start = time.perf_counter()
    utterances, notes, summary = make_recorded(
        args.out_dir,
        sources=sources,
        test_talkers=test_talkers,
        valid_fraction=args.valid_fraction,
        jobs=args.jobs,
        seed=args.seed,
        force=args.force,
    )
    shown = notes if args.verbose else [n for n in notes if not n.endswith("taken once")]
    for note in shown:
        print(f"note: {note}", file=sys.stderr)
    if len(shown) < len(notes):
        print(f"note: {len(notes) - len(shown)} duplicate file(s) taken once (--verbose lists them)", file=sys.stderr)
    print(f"{'source':22s} {'clips':>6s} {'failed':>6s} {'talkers':>7s} {'hours':>6s}", file=sys.stderr)
    for name, s in summary.items():
        print(f"{name:22s} {s.clips:6d} {s.failed:6d} {len(s.talkers):7d} {s.seconds / 3600:6.2f}", file=sys.stderr)
    counts = {split: sum(u.split == split for u in utterances) for split in SPLITS}
    held = sorted({u.speaker for u in utterances if u.split == "test_voice"})
    print(
        f"{args.out_dir / 'manifest.csv'}: {len(utterances)} clips, {len({u.speaker for u in utterances})} talkers, "
        f"{sum(s.seconds for s in summary.values()) / 3600:.2f} h, "
        + ", ".join(f"{k} {v}" for k, v in counts.items())
        + f" (test_voice talkers: {', '.join(held) or 'none'}); {time.perf_counter() - start:.0f} s",
        file=sys.stderr,
    )
    return 0
