"""The sign-up rules (accounts/rules.py), alone: no server, no database."""

from __future__ import annotations

import pytest

from meterchat.accounts import rules
from meterchat.core.errors import Unprocessable


def code_of(fn, *args) -> str | None:
    try:
        fn(*args)
    except Unprocessable as exc:
        return exc.code
    return None


def test_an_email_is_stored_trimmed_and_lower_case():
    assert rules.normalize_email("  Ann.Lee@Example.COM ") == "ann.lee@example.com"


@pytest.mark.parametrize("email", [
    "", "ann", "ann@example", "ann@@example.com", "ann lee@example.com", "ann@example.c",
    "a" * 65 + "@example.com", "ann@" + "e" * 250 + ".com",
])
def test_what_is_not_an_email(email):
    assert code_of(rules.normalize_email, email) == "invalid_email"


def test_password_length_bounds():
    assert code_of(rules.check_password_rules, "x" * (rules.MIN_PASSWORD_CHARS - 1)) \
        == "weak_password"
    assert code_of(rules.check_password_rules, "x" * rules.MIN_PASSWORD_CHARS) is None
    assert code_of(rules.check_password_rules, "x" * rules.MAX_PASSWORD_CHARS) is None
    assert code_of(rules.check_password_rules, "x" * (rules.MAX_PASSWORD_CHARS + 1)) \
        == "invalid_password"


def test_a_display_name_is_shown_with_single_spaces():
    assert rules.check_display_name("  Sam \t  Big ") == "Sam Big"
    for bad in ("", "   ", "x" * (rules.MAX_DISPLAY_NAME_CHARS + 1)):
        assert code_of(rules.check_display_name, bad) == "invalid_display_name"


def test_roles():
    for role in rules.ROLES:
        assert code_of(rules.check_role, role) is None
    assert code_of(rules.check_role, "root") == "invalid_role"
    assert "admin" not in rules.SELF_REGISTER_ROLES
