"""String catalogues, one JSON file per language under ``i18n/``; Vietnamese first."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "LANG_COOKIE", "Catalogue", "language_of"]

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANG_COOKIE = "loaxa_lang"
CATALOGUE_DIR = Path(__file__).parent / "i18n"


@dataclass(frozen=True)
class Catalogue:
    """Every string of every language; a missing key falls back to Vietnamese, then the key."""

    strings: dict[str, dict[str, str]]

    @classmethod
    def load(cls, folder: Path = CATALOGUE_DIR) -> Catalogue:
        strings: dict[str, dict[str, str]] = {}
        for lang in LANGUAGES:
            data: Any = json.loads((folder / f"{lang}.json").read_text("utf-8"))
            strings[lang] = {str(k): str(v) for k, v in data.items()}
        return cls(strings)

    def text(self, lang: str, key: str, **params: object) -> str:
        raw = self.strings[lang].get(key) or self.strings[DEFAULT_LANGUAGE].get(key) or key
        for name, value in params.items():
            raw = raw.replace("{" + name + "}", str(value))
        return raw

    def for_script(self, lang: str) -> str:
        """The catalogue as JSON for a ``<script type="application/json">`` block."""
        merged = {**self.strings[DEFAULT_LANGUAGE], **self.strings[lang]}
        # "</" must not end the script element early.
        return json.dumps(merged, ensure_ascii=False).replace("</", "<\\/")


def language_of(request: web.Request) -> str:
    chosen = request.cookies.get(LANG_COOKIE, "")
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE
