"""HD keys of the personal deposit addresses (BIP-32/39/44 through bip-utils): TRON's BIP-44
coin type 195, path `m/44'/195'/0'/0/<index>`. Watching needs only the account-level
extended public key (`xpub` of `m/44'/195'/0'`: public derivation of `0/<index>`); signing a
sweep needs the BIP-39 mnemonic, which only the sweeper reads. Pure: no I/O.

Proven against the well-known vector of the "abandon ... about" mnemonic
(tests/test_chain_hd.py): index 0 is TUEZSdKsoDHQMeZwihtdoBiN46zxhGWYdH.

bip-utils (its coins, curves and hashes: a third of a second to import) is loaded by the first
function that needs it, never at import: serving in unique_amount mode derives no HD key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bip_utils import Bip44

# The deepest index BIP-32 allows for a non-hardened child.
MAX_INDEX = 2**31 - 1


class HdKeyError(ValueError):
    """An xpub or mnemonic that cannot be used (the message never echoes the value)."""


def _account_from_xpub(xpub: str) -> Bip44:
    from bip_utils import Bip44, Bip44Coins, Bip44Levels

    try:
        ctx = Bip44.FromExtendedKey(xpub.strip(), Bip44Coins.TRON)
    except Exception:
        raise HdKeyError("not an extended public key (xpub...)") from None
    if ctx.Level() != Bip44Levels.ACCOUNT or not ctx.IsPublicOnly():
        raise HdKeyError("give the account-level xpub of m/44'/195'/0' (public only)")
    return ctx


def check_xpub(xpub: str) -> None:
    """Raise HdKeyError unless `xpub` is an account-level TRON xpub."""
    _account_from_xpub(xpub)


def address_at(xpub: str, index: int) -> str:
    """The TRON address of `m/44'/195'/0'/0/<index>`, from the account xpub alone."""
    if not 0 <= index <= MAX_INDEX:
        raise HdKeyError(f"index must be in 0..{MAX_INDEX}")
    from bip_utils import Bip44Changes

    node = _account_from_xpub(xpub).Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)
    return str(node.PublicKey().ToAddress())


def _account_from_mnemonic(mnemonic: str) -> Bip44:
    from bip_utils import Bip39MnemonicValidator, Bip39SeedGenerator, Bip44, Bip44Coins

    words = " ".join(mnemonic.split())
    if not Bip39MnemonicValidator().IsValid(words):
        raise HdKeyError("not a valid BIP-39 mnemonic")
    seed = Bip39SeedGenerator(words).Generate()
    return Bip44.FromSeed(seed, Bip44Coins.TRON).Purpose().Coin().Account(0)


def xpub_of(mnemonic: str) -> str:
    """The account-level xpub (m/44'/195'/0') of a mnemonic."""
    return str(_account_from_mnemonic(mnemonic).PublicKey().ToExtended())


def private_key_at(mnemonic: str, index: int) -> str:
    """The private key (hex) of `m/44'/195'/0'/0/<index>`; for the sweeper alone."""
    from bip_utils import Bip44Changes

    node = _account_from_mnemonic(mnemonic).Change(Bip44Changes.CHAIN_EXT).AddressIndex(index)
    return str(node.PrivateKey().Raw().ToHex())


def new_mnemonic() -> str:
    """A fresh 24-word BIP-39 mnemonic (the devnet's, generated at its first start)."""
    from bip_utils import Bip39MnemonicGenerator, Bip39WordsNum

    return str(Bip39MnemonicGenerator().FromWordsNumber(Bip39WordsNum.WORDS_NUM_24))
