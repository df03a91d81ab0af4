"""Every string a person reads comes from the message catalogue: templates hold no bare
Chinese or English text, both languages carry the same keys, and every key a template or
the code asks for exists."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gateway.console.i18n import MESSAGES_DIR, Translator
from gateway.console.render import TEMPLATES

LETTERS = re.compile(r"[A-Za-z\u3400-\u9fff]")
READABLE_ATTRIBUTES = {"title", "alt", "placeholder", "aria-label", "label"}
JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
BODY_CLASS = re.compile(r"\{% block body_class %\}[a-z -]*\{% endblock %\}")
"""The one block that holds CSS class names, not text."""
KEY_CALL = re.compile(r"""\bt\(\s*["']([a-z0-9_.\-]+)["']""")
CONSOLE = Path(TEMPLATES).parent


class _Text(HTMLParser):
    """Text nodes and readable attribute values outside script and style."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in READABLE_ATTRIBUTES and value and LETTERS.search(value):
                self.found.append(f"{tag}[{name}]={value!r}")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and LETTERS.search(data):
            self.found.append(data.strip())


def bare_text(source: str) -> list[str]:
    """Readable text left in a template once its Jinja expressions and tags are removed."""
    parser = _Text()
    parser.feed(JINJA.sub(" ", BODY_CLASS.sub(" ", source)))
    return parser.found


def test_the_check_finds_bare_text() -> None:
    assert bare_text("<p>确认</p>") == ["确认"]
    assert bare_text('<img alt="Snapshot">') == ["img[alt]='Snapshot'"]
    assert bare_text("<p>{{ t('x') }} · {{ n }}</p><button title=\"{{ t('y') }}\"></button>") == []


@pytest.mark.parametrize("template", sorted(p.name for p in Path(TEMPLATES).glob("*.html")))
def test_templates_hold_no_bare_text(template: str) -> None:
    assert bare_text((Path(TEMPLATES) / template).read_text(encoding="utf-8")) == []


def _catalogue(lang: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((MESSAGES_DIR / f"{lang}.json").read_text("utf-8"))
    return data


def test_both_languages_carry_the_same_keys_and_placeholders() -> None:
    zh, en = _catalogue("zh-CN"), _catalogue("en")
    assert zh.keys() == en.keys()
    for key in zh:
        assert set(re.findall(r"\{(\w+)\}", zh[key])) == set(re.findall(r"\{(\w+)\}", en[key])), key


def test_every_key_asked_for_exists() -> None:
    sources = [
        *Path(TEMPLATES).glob("*.html"),
        *(p for p in CONSOLE.glob("*.py") if p.name != "i18n.py"),  # its docstring's example
    ]
    asked = {key for path in sources for key in KEY_CALL.findall(path.read_text("utf-8"))}
    zh = _catalogue("zh-CN")
    # Keys built from a prefix ("action." ~ name) are checked through Translator.label below.
    missing = sorted(k for k in asked if k not in zh and not k.endswith((".", "_")))
    assert missing == []
    assert len(asked) > 50


def test_labels_of_every_category_state_and_severity_exist_in_chinese() -> None:
    from contract import Severity
    from gateway.lifecycle import Action, TicketState
    from gateway.sla import TicketCategory

    t = Translator("zh-CN")
    for prefix, values in (
        ("category", [c.value for c in TicketCategory]),
        ("state", [s.value for s in TicketState]),
        ("severity", [s.value for s in Severity]),
        ("action", [a.value for a in Action]),
        ("audit", [a.value for a in Action]),
    ):
        for value in values:
            assert t.has(f"{prefix}.{value}"), f"{prefix}.{value}"
    assert t.label("category", "fire_lane_blocked") == "消防通道占用"
    assert Translator("en").label("category", "fire_lane_blocked") == "Fire lane blocked"
