"""The console's message catalogue: one JSON file per language under `messages/`, the same
keys in each (a test checks), looked up by templates as `t("key", name=value)`.

zh-CN is the default; `en` is the switch. A key missing from a language falls back to zh-CN,
then to the key itself, so a missing string shows up as its key rather than as an error page.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from gateway.console.settings import LANGUAGES

MESSAGES_DIR = Path(__file__).parent / "messages"
DEFAULT_LANGUAGE = LANGUAGES[0]


@cache
def catalogue(lang: str) -> dict[str, str]:
    """The messages of `lang` (read once per process)."""
    data = json.loads((MESSAGES_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ValueError(f"{lang}.json must map keys to strings")
    return data


def pick_language(cookie: str | None, accept_language: str | None) -> str:
    """The cookie's choice if it is a known language, else zh-CN (the console is Chinese
    first: a browser's English preference does not switch it, the switch does)."""
    del accept_language  # deliberately not used; see the docstring
    return cookie if cookie in LANGUAGES else DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Translator:
    """`t(key, **values)` for one language."""

    lang: str

    def __call__(self, key: str, **values: Any) -> str:
        text = catalogue(self.lang).get(key) or catalogue(DEFAULT_LANGUAGE).get(key) or key
        return text.format(**values) if values else text

    def has(self, key: str) -> bool:
        """Whether the catalogue knows `key` (for optional labels such as categories)."""
        return key in catalogue(self.lang) or key in catalogue(DEFAULT_LANGUAGE)

    def label(self, prefix: str, value: str | None) -> str:
        """The label of an enum value (`category.litter`), the value itself if unknown."""
        if value is None:
            return self("common.none")
        key = f"{prefix}.{value}"
        return self(key) if self.has(key) else value
