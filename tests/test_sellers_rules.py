"""The sellers' rules (sellers/rules.py), alone: labels and the rate's bounds."""

from __future__ import annotations

import pytest

from meterchat.core.errors import Unprocessable
from meterchat.sellers import rules


def test_labels_are_kept_as_typed_single_spaced_and_each_once_and_searched_lower_case():
    assert rules.label("  Late   Night ") == "late night"
    assert rules.shown_label("  Late   Night ") == "Late Night"
    assert rules.clean_labels(["Chess", " chess ", "Go", "LATE  night", "Ελληνικά"], "tags") == [
        "Chess", "Go", "LATE night", "Ελληνικά"]
    assert rules.clean_labels(None, "tags") == []


def test_an_empty_label_is_refused():
    with pytest.raises(Unprocessable) as exc:
        rules.clean_labels(["ok", "   "], "languages")
    assert exc.value.code == "invalid_value" and "languages" in exc.value.message


@pytest.mark.parametrize(("rate", "ok"), [(0, False), (1, True), (600, True), (10_000, True),
                                          (10_001, False)])
def test_the_rate_stays_within_the_operators_bounds(rate, ok):
    if ok:
        rules.check_rate(rate, 1, 10_000)
    else:
        with pytest.raises(Unprocessable) as exc:
            rules.check_rate(rate, 1, 10_000)
        assert exc.value.code == "rate_out_of_range"
