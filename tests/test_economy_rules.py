"""The economy's pure rules (economy/rules.py), without a server or a database: bonus tiers
and their rounding, bonus spent last and never withdrawable, limits (lowering at once,
raising later), the call's effective cap and the caps fitted to a lowered limit, the tip
window, UTC periods; the pure views of stats.py (per-period sums, the SVG chart); and the
reading of tip tokens, percents and times in routes.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meterchat.core.config import ConfigError, config_from_dict, parse_bonus_tiers
from meterchat.core.errors import ApiError
from meterchat.core.units import DAY_MS, HOUR_MS
from meterchat.economy import routes, stats
from meterchat.economy import rules as e

TOKEN = 10_000
USDT = 1_000_000
DAY = DAY_MS


@pytest.mark.parametrize("value,expected", [(50, 50), ("50", 50), ("50.0", 50), (1, 1)])
def test_whole_tokens_accepts_whole_numbers(value, expected):
    assert routes.whole_tokens(value) == expected


@pytest.mark.parametrize("value,code", [
    ("50.5", "whole_tokens_only"), (50.5, "whole_tokens_only"), (0, "invalid_value"),
    (-3, "invalid_value"), ("abc", "invalid_value"), (True, "invalid_type"),
    (None, "invalid_type"), ([5], "invalid_type"), ("NaN", "whole_tokens_only"),
])
def test_whole_tokens_refuses_the_rest_with_a_code(value, code):
    with pytest.raises(ApiError) as err:
        routes.whole_tokens(value)
    assert err.value.code == code and err.value.status == 422


def test_highest_tier_reached_applies():
    tiers = parse_bonus_tiers(["100:10", "50:5"])
    assert tiers == [(50 * USDT, 50_000), (100 * USDT, 100_000)]
    assert e.tier_ppm_for(49_999_999, tiers) == 0
    assert e.tier_ppm_for(50 * USDT, tiers) == 50_000
    assert e.tier_ppm_for(100 * USDT + 317, tiers) == 100_000
    assert e.tier_ppm_for(10 ** 12, tiers) == 100_000


def test_bonus_is_whole_tokens_rounded_down_per_part():
    # 100.000317 USDT at 10 %: 1,000.0031 tokens -> 1,000; a 5 % promotion adds 500.
    assert e.bonus_parts(100 * USDT + 317, 100_000, 50_000) == (1000 * TOKEN, 500 * TOKEN)
    assert e.bonus_parts(3 * USDT, 10_000, 0) == (3 * TOKEN, 0)  # 1 % of 300 tokens
    assert e.bonus_parts(1 * USDT, 5_000, 0) == (0, 0)  # half a token rounds to nothing


@pytest.mark.parametrize("tiers", [["100"], ["x:5"], ["100:0"], ["100:101"], ["0:5"],
                                   ["100:5", "100:7"], ["100:1.00001"], ["1e400:5"]])
def test_bad_tiers_stop_start_up_naming_the_key(tmp_path, tiers):
    with pytest.raises(ConfigError, match="economy.bonus_tiers"):
        config_from_dict({"economy": {"bonus_tiers": tiers}}, tmp_path)


def test_tip_commission_is_minus_one_or_a_percent(tmp_path):
    with pytest.raises(ConfigError, match="tip_commission_percent"):
        config_from_dict({"economy": {"tip_commission_percent": -0.5}}, tmp_path)
    cfg = config_from_dict({"economy": {"tip_commission_percent": 10}}, tmp_path)
    assert cfg.economy.tip_commission_percent == 10


def test_percent_ppm():
    assert routes.percent_ppm("12.5") == 125_000 and routes.percent_ppm("100") == 1_000_000
    for bad in ("0", "100.01", "-1", "1.00001", "x", None):
        with pytest.raises(ApiError):
            routes.percent_ppm(bad)


def test_bonus_is_spent_last_and_never_withdrawable():
    # 10,000 paid + 1,000 bonus.
    assert e.withdrawable_musdt(11_000 * TOKEN, 0, 1_000 * TOKEN) == 10_000 * TOKEN
    # 600 held for a call comes out of paid tokens first.
    assert e.withdrawable_musdt(10_400 * TOKEN, 600 * TOKEN, 1_000 * TOKEN) == 9_400 * TOKEN
    # Spent down to 300: what is left is bonus, nothing withdrawable.
    assert e.unspent_bonus_musdt(1_000 * TOKEN, 300 * TOKEN, 0) == 300 * TOKEN
    assert e.withdrawable_musdt(300 * TOKEN, 0, 1_000 * TOKEN) == 0
    # A later top-up keeps only what was left of the old bonus.
    assert e.bonus_after_topup(1_000 * TOKEN, 300 * TOKEN, 500 * TOKEN) == 800 * TOKEN
    assert e.bonus_after_topup(1_000 * TOKEN, 5_000 * TOKEN, 0) == 1_000 * TOKEN


amounts = st.integers(min_value=0, max_value=10 ** 12)


@given(available=amounts, held=amounts, bonus=amounts)
def test_withdrawable_never_includes_unspent_bonus(available, held, bonus):
    w = e.withdrawable_musdt(available, held, bonus)
    unspent = e.unspent_bonus_musdt(bonus, available, held)
    assert 0 <= w <= available
    assert w + unspent <= available + held
    assert unspent <= bonus
    if bonus == 0:
        assert w == available


@given(bonus=amounts, before=amounts, new=amounts)
def test_bonus_figure_after_topup_never_exceeds_balance(bonus, before, new):
    assert e.bonus_after_topup(bonus, before, new) <= before + new


def test_lowering_a_limit_is_at_once_raising_waits():
    now, delay = 1_000 * DAY, DAY
    # First limit: at once.
    assert e.change_limit(None, None, None, 100, now, delay) == (100, None, None)
    # Lower: at once.
    assert e.change_limit(100, None, None, 50, now, delay) == (50, None, None)
    # Raise: the old one stays, the new one waits a day.
    lim, pend, frm = e.change_limit(50, None, None, 200, now, delay)
    assert (lim, pend, frm) == (50, 200, now + delay)
    assert e.effective_limit(lim, pend, frm, now + delay - 1) == 50
    assert e.effective_limit(lim, pend, frm, now + delay) == 200
    # Removing the limit is a raise too.
    assert e.change_limit(50, None, None, None, now, delay) == (50, None, now + delay)
    # Lowering while a raise waits cancels the raise.
    assert e.change_limit(50, 200, now + delay, 40, now + 5, delay) == (40, None, None)
    # A raise that has matured is the limit now.
    assert e.change_limit(50, 200, now, 150, now + 1, delay) == (150, None, None)


def test_effective_cap_is_the_smallest_of_cap_and_what_is_left():
    assert e.effective_cap(None, None, None) is None
    assert e.effective_cap(500, None, 300) == 300
    assert e.effective_cap(None, 120, 300) == 120
    assert e.effective_cap(90, 120, 300) == 90
    assert e.left_of(100, 130) == 0 and e.left_of(None, 5) is None


def test_tip_window_and_only_calls_that_went_live():
    window = 24 * HOUR_MS
    assert e.tip_open("ringing", None, 0, window, False) == "call_not_started"
    for state in ("declined", "missed", "cancelled"):
        assert e.tip_open(state, 1, 2, window, False) == "call_not_taken_place"
    for state in ("connecting", "live", "paused"):
        assert e.tip_open(state, None, 10 ** 12, window, True) is None
    assert e.tip_open("connecting", None, 0, window, False) == "call_not_live"
    assert e.tip_open("ended", 0, window, window, True) is None
    assert e.tip_open("ended", 0, window, window, False) == "call_not_taken_place"
    assert e.tip_open("ended", 0, window + 1, window, True) == "tip_window_closed"


def test_caps_fitted_to_a_lowered_limit_share_what_is_left_in_call_order():
    call = e.CallUnderWay
    # No limit: nothing changes, a call without a cap keeps none.
    calls = [call(1, None, 100, 50), call(2, 700, 0, 0)]
    assert e.fitted_caps(calls, [(None, 0)]) == {1: None, 2: 700}
    # 1,000 allowed, 200 spent, 50 held already: 750 to share, the first call first.
    assert e.fitted_caps(calls, [(1_000, 200)]) == {1: 900, 2: 0}
    # A cap is never raised, and what is left goes on to the next call.
    calls = [call(1, 300, 100, 50), call(2, None, 0, 0)]
    assert e.fitted_caps(calls, [(1_000, 200)]) == {1: 300, 2: 600}
    # Nothing left: each call keeps what it charged and holds, no less.
    assert e.fitted_caps(calls, [(100, 200)]) == {1: 150, 2: 0}
    # Two limits: the tighter one wins.
    assert e.fitted_caps(calls, [(1_000, 200), (500, 200)]) == {1: 300, 2: 100}


def test_percent_text():
    assert e.percent_text(125_000) == "12.5" and e.percent_text(1_000_000) == "100"
    assert e.percent_text(331_557) == "33.1557" and e.percent_text(0) == "0"


def test_what_a_call_under_way_may_still_take():
    assert e.may_still_take(700_000, 300_000, 300_000, 5_000_000) == 400_000
    assert e.may_still_take(700_000, 600_000, 300_000, 0) == 300_000  # never below its hold
    assert e.may_still_take(None, 0, 600_000, 1_000_000) == 1_600_000  # no cap: everything


def test_days_and_months_are_utc():
    t = routes.parse_iso_ms("2025-03-31T23:59:59Z", "t")
    assert e.day_key(t) == "2025-03-31" and e.month_key(t) == "2025-03"
    assert e.day_start_ms(t) == routes.parse_iso_ms("2025-03-31T00:00:00", "t")
    assert e.month_start_ms(t) == routes.parse_iso_ms("2025-03-01T00:00:00+00:00", "t")
    assert e.week_key(t) == "2025-03-31"  # a Monday
    assert routes.parse_iso_ms("2025-04-01T01:00:00+02:00", "t") == t + 1000 - 3600_000  # 23:00 UTC
    for bad in ("yesterday", 5, None):
        with pytest.raises(ApiError):
            routes.parse_iso_ms(bad, "t")


def test_buckets_sum_per_day_week_and_month_with_zeros():
    now = routes.parse_iso_ms("2025-03-31T12:00:00Z", "t")
    entries = [(now, 450_000), (now - 3600_000, 50_000), (now - 2 * DAY, 100_000),
               (now - 40 * DAY, 70_000)]
    b = stats.buckets(entries, now)
    assert len(b["per_day"]) == 30 and len(b["per_week"]) == 12 and len(b["per_month"]) == 12
    assert b["per_day"][-1] == {"day": "2025-03-31", "earned": "50"}
    assert b["per_day"][-3] == {"day": "2025-03-29", "earned": "10"}
    assert b["per_day"][-2]["earned"] == "0"
    assert b["per_week"][-1] == {"week_of": "2025-03-31", "earned": "50"}
    assert b["per_month"][-1] == {"month": "2025-03", "earned": "60"}
    assert b["per_month"][-2] == {"month": "2025-02", "earned": "7"}


def test_chart_is_a_standalone_svg_with_a_bar_per_day():
    svg = stats.chart_svg("Earnings <per> day", [("03-01", 0), ("03-02", 450_000), ("03-03", 5)])
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    bars = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find(
        "{http://www.w3.org/2000/svg}title") is not None]
    assert len(bars) == 3
    heights = [float(r.get("height")) for r in bars]
    assert heights[0] == 0 and heights[1] > heights[2] > 0
    assert "<script" not in svg and "http://" not in svg.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert "Earnings &lt;per&gt; day" in svg
