"""The input deposits' endpoints read (deposits/routes.py): a TXID (400 invalid_txid) and an
asked amount (422 with a code per reason)."""

from __future__ import annotations

import pytest

from meterchat.core.errors import BadRequest, Unprocessable
from meterchat.deposits import routes


def test_txid_syntax():
    txid = "ab" * 32
    assert routes.parse_txid(f"  0x{txid.upper()} ") == txid
    for bad in ("", "ab" * 31, "zz" * 32, None, 5, ["ab" * 32]):
        with pytest.raises(BadRequest) as err:
            routes.parse_txid(bad)
        assert err.value.code == "invalid_txid"


def test_asked_amounts():
    assert routes.requested_musdt("10", 3_000_000) == 10_000_000
    assert routes.requested_musdt("3.25", 3_000_000) == 3_250_000
    for bad, code in (("2.99", "amount_too_small"), ("10.001", "invalid_amount"),
                      ("NaN", "invalid_amount"), ("2000000", "amount_too_large"),
                      (True, "invalid_amount"), (1.5, "invalid_amount")):
        with pytest.raises(Unprocessable) as err:
            routes.requested_musdt(bad, 3_000_000)
        assert err.value.code == code
