"""Personal deposit addresses from an HD key: the published vector of the "abandon ... about"
mnemonic (BIP-44, coin type 195, m/44'/195'/0'/0/<index>), watching from the xpub alone,
and refusals that never echo the value."""

from __future__ import annotations

import pytest
from tronpy.keys import PrivateKey

from meterchat.chain import hd

ABANDON = "abandon " * 11 + "about"
# m/44'/195'/0'/0/0..2 of that mnemonic, as published (Ian Coleman's BIP39 tool, Trust
# Wallet, TronLink).
VECTOR = ["TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH", "TSeJkUh4Qv67VNFwY8LaAxERygNdy6NQZK",
          "TYJPRrdB5APNeRs4R7fYZSwW3TcrTKw2gx"]


def test_the_abandon_about_mnemonic_gives_the_published_tron_addresses():
    xpub = hd.xpub_of(ABANDON)
    assert xpub.startswith("xpub")
    assert [hd.address_at(xpub, i) for i in range(3)] == VECTOR


def test_the_private_key_at_an_index_signs_for_the_address_the_xpub_gives():
    xpub = hd.xpub_of(ABANDON)
    for i in (0, 1, 7):
        key = PrivateKey(bytes.fromhex(hd.private_key_at(ABANDON, i)))
        assert key.public_key.to_base58check_address() == hd.address_at(xpub, i)


def test_a_new_mnemonic_is_24_valid_words_with_its_own_addresses():
    m = hd.new_mnemonic()
    assert len(m.split()) == 24
    assert hd.address_at(hd.xpub_of(m), 0) != VECTOR[0]


@pytest.mark.parametrize("bad", ["", "xpubnonsense", "not words at all"])
def test_bad_keys_are_refused_without_echoing_them(bad):
    with pytest.raises(hd.HdKeyError) as err:
        hd.address_at(bad, 0)
    assert bad not in str(err.value) or bad == ""
    with pytest.raises(hd.HdKeyError):
        hd.private_key_at(bad + " zzz", 0)


def test_an_address_level_xpub_is_refused():
    from bip_utils import Bip39SeedGenerator, Bip44, Bip44Changes, Bip44Coins
    deep = (Bip44.FromSeed(Bip39SeedGenerator(ABANDON).Generate(), Bip44Coins.TRON)
            .Purpose().Coin().Account(0).Change(Bip44Changes.CHAIN_EXT).PublicKey().ToExtended())
    with pytest.raises(hd.HdKeyError):
        hd.check_xpub(deep)
