"""Phone symbols of transcripts, from espeak-ng's IPA: the targets of the content path's phonetic term.

The content latent is meant to carry the words, but the ELBO only asks it to
help reconstruct the clip; on voices it never heard it keeps too little of
them (README, "Voices it has never heard"). Most training clips come with a
transcript, in ten languages, and espeak-ng (a Debian package the synthetic
corpus already needs) turns each into phones offline. `training/phonetic.py`
asks the content latent to spell those phones out (CTC).

A phone here is one IPA character of espeak-ng's output: stress marks,
spaces, punctuation and its language-switch markers such as "(en)" are
dropped, length and palatalisation marks stay symbols of their own. The transcripts of a
corpus are phonemised once, in parallel, and kept in a JSON cache beside
the mel cache.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from .checkpoint import atomic_write

# espeak-ng voice for a manifest's language code; a code not listed is used as is.
ESPEAK_VOICES = {"en": "en-us"}
_DROPPED = re.compile(r"\([a-z-]+\)|[ˈˌ\s]")


class PhonemizerError(ValueError):
    """espeak-ng is missing or refused a transcript (a ValueError, so the CLI shows the message, not a traceback)."""


def espeak_voice(language: str) -> str:
    return ESPEAK_VOICES.get(language, language)


def phonemize(text: str, language: str) -> str:
    """espeak-ng's IPA for `text` in `language` (a manifest code such as "en" or "cs"), one line."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise PhonemizerError("espeak-ng is not installed (apt-get install espeak-ng); the phonetic term needs it")
    # The text goes on stdin, so one starting with "-" is never read as an option.
    done = subprocess.run(
        [exe, "-q", "--ipa", "-v", espeak_voice(language)], input=text, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise PhonemizerError(f"espeak-ng -v {espeak_voice(language)} failed on {text!r}: {done.stderr.strip()}")
    # espeak-ng writes one line per clause.
    return " ".join(done.stdout.split())


def phone_symbols(ipa: str) -> list[str]:
    """The phones of an IPA line: its letters and marks, without stress, spaces, punctuation or language markers."""
    # Letters (L*, which takes in the length mark and palatalisation) and combining marks (M*).
    return [c for c in _DROPPED.sub("", ipa) if unicodedata.category(c)[0] in "LM"]


def phonemize_all(
    items: Iterable[tuple[str, str]], cache: str | Path, jobs: int = 2, progress: bool = True
) -> dict[tuple[str, str], str]:
    """{(language, text): IPA} for every pair, from and into the JSON cache `cache`.

    Only pairs missing from the cache are phonemised (`jobs` espeak-ng
    processes at a time); the cache is rewritten atomically when it grew.
    """
    path = Path(cache)
    known: dict[str, str] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    wanted = sorted(set(items))
    missing = [(lang, text) for lang, text in wanted if f"{lang}\t{text}" not in known]
    if missing:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            done = pool.map(lambda item: phonemize(item[1], item[0]), missing)
            for (lang, text), ipa in tqdm(zip(missing, done), total=len(missing), desc="phonemes", disable=not progress):
                known[f"{lang}\t{text}"] = ipa
        with atomic_write(path, ".tmp") as tmp:
            Path(tmp).write_text(json.dumps(known, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    return {(lang, text): known[f"{lang}\t{text}"] for lang, text in wanted}
