"""The browser client's message catalogues (static/i18n/*.json): every language has exactly
the keys of English with the same {placeholders}, every key the pages ask t() for exists, and
every error code the server can answer has its words (the page shows them in place of the
server's English message)."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
I18N = ROOT / "static" / "i18n"
JS = ROOT / "static" / "js"
SERVER = ROOT / "server"
ERRORS = ("BadRequest|Unauthorized|PaymentRequired|Forbidden|NotFound|Conflict|PayloadTooLarge"
          "|UnsupportedMediaType|Unprocessable|TooManyRequests|Unavailable|ApiError")


def catalogue(lang: str) -> dict[str, str | dict[str, str]]:
    data = json.loads((I18N / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def forms(value: str | dict[str, str]) -> list[str]:
    return list(value.values()) if isinstance(value, dict) else [value]


def placeholders(value: str | dict[str, str]) -> set[str]:
    return {name for text in forms(value) for name in re.findall(r"\{(\w+)\}", text)}


def languages() -> list[str]:
    return sorted(p.stem for p in I18N.glob("*.json"))


def test_there_is_english_and_a_second_complete_language():
    assert "en" in languages() and "es" in languages()
    js = (JS / "i18n.js").read_text(encoding="utf-8")
    listed = re.search(r"LANGUAGES = \{([^}]*)\}", js)
    assert listed and set(re.findall(r"(\w+):", listed.group(1))) == set(languages())


def test_every_language_has_exactly_the_keys_and_placeholders_of_english():
    en = catalogue("en")
    for lang in languages():
        other = catalogue(lang)
        assert sorted(set(en) - set(other)) == [], f"{lang} lacks these keys"
        assert sorted(set(other) - set(en)) == [], f"{lang} has keys English lacks"
        wrong = {k: (placeholders(en[k]), placeholders(other[k]))
                 for k in en if placeholders(en[k]) != placeholders(other[k])}
        assert wrong == {}, f"{lang}: placeholders differ from English"
        empty = [k for k, v in other.items() if any(not f.strip() for f in forms(v))]
        assert empty == [], f"{lang}: empty texts"


def test_plural_entries_have_the_forms_their_language_needs():
    # Intl.PluralRules: English and Spanish choose between "one" and "other".
    for lang in languages():
        for key, value in catalogue(lang).items():
            if isinstance(value, dict):
                assert {"one", "other"} <= set(value), (lang, key)
                assert "{count}" in " ".join(value.values()), (lang, key)


def used_keys() -> dict[str, str]:
    """Every literal key the pages pass to t() (or plural(), whose key is a catalogue key
    with a dot), with the file it is in."""
    found: dict[str, str] = {}
    for path in sorted(p for p in JS.rglob("*.js") if p.name != "i18n.js"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(r"\bt\(\s*\"([^\"]+)\"", text):
            found.setdefault(m.group(1), path.name)
        for m in re.finditer(r"\bplural\([^,()]+,\s*\"([a-z_]+\.[a-z_.]+)\"", text):
            found.setdefault(m.group(1), path.name)
    return found


def test_every_key_the_pages_use_is_in_the_catalogue():
    en = catalogue("en")
    used = used_keys()
    assert len(used) > 400
    assert {k: f for k, f in used.items() if k not in en} == {}


def test_the_keys_built_from_a_prefix_exist_for_every_value():
    # t(`nav.${name}`): every route the menus name.
    en = catalogue("en")
    app = (JS / "app.js").read_text(encoding="utf-8")
    menus = re.search(r"const NAV = \{(.*?)\n\};", app, re.S)
    assert menus
    names = set(re.findall(r"\"(\w+)\"", menus.group(1)))
    assert names and {n for n in names if f"nav.{n}" not in en} == set()
    titles = set(re.findall(r"title: \"([\w.]+)\" \}", app))
    assert titles and titles - set(en) == set()


def server_error_codes() -> set[str]:
    """Every code a domain error is raised with (a literal second argument or code=), the
    classes' default codes, and the HTTP layer's own codes."""
    codes: set[str] = set()
    for path in SERVER.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for m in re.finditer(rf"\b({ERRORS})\(", text):
            depth, i = 1, m.end()
            while depth and i < len(text):
                depth += {"(": 1, ")": -1}.get(text[i], 0)
                i += 1
            call = " ".join(text[m.end():i - 1].split())
            code = (re.search(r"code\s*=\s*\"([a-z0-9_]+)\"", call)
                    or re.search(r",\s*\"([a-z0-9_]+)\"\s*,?\s*$", call))
            if code:
                codes.add(code.group(1))
        codes |= set(re.findall(r"^    code = \"([a-z0-9_]+)\"", text, re.M))
    app = (SERVER / "app.py").read_text(encoding="utf-8")
    codes |= set(re.findall(r"^\s+\d{3}: \"([a-z_]+)\",", app, re.M))
    codes |= set(re.findall(r"error_json\(\d+, \"([a-z_]+)\"", app))
    # rules.tip_open's refusals are raised with the reason as the code (economy/tips.py).
    tips = (SERVER / "economy" / "tips.py").read_text(encoding="utf-8")
    block = re.search(r"def _not_open_message.*?\}\[why\]", tips, re.S)
    assert block
    codes |= set(re.findall(r"\"([a-z_]+)\": ", block.group(0)))
    return codes


def test_every_error_code_the_server_answers_has_words_in_the_catalogue():
    codes = server_error_codes()
    assert {"insufficient_funds", "invalid_credentials", "seller_busy", "tip_window_closed",
            "internal_error", "not_found"} <= codes
    en = catalogue("en")
    assert sorted(c for c in codes if f"error.{c}" not in en) == []
    # The client's own code for an unreachable server (api.js).
    assert "error.network" in en
