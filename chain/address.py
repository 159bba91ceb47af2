"""TRON address rules, pure and without I/O: base58check validation that answers False
instead of raising (tronpy's `is_address` raises on a bad checksum), conversions between
the base58 `T...` form and the 21-byte / hex forms, and the address of a private key.

Without tronpy: importing any part of tronpy loads all of it (its contracts, eth_utils,
pydantic, httpx; a third of a second), and serving reads addresses long before, if ever, it
signs. The address of a key is TRON's rule itself: keccak-256 of the uncompressed secp256k1
public key, its last 20 bytes after the 0x41 prefix (tests/test_chain_rules.py checks it
against tronpy's)."""

from __future__ import annotations

import base58

ADDRESS_PREFIX = 0x41
_B58_ALPHABET = set("123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz")


def is_valid_address(value: object) -> bool:
    """True for a well-formed base58check TRON address (`T...`, 34 characters, right
    checksum, 0x41 prefix). Never raises."""
    if not isinstance(value, str) or len(value) != 34 or not value.startswith("T"):
        return False
    if not set(value) <= _B58_ALPHABET:
        return False
    try:
        raw = base58.b58decode_check(value)
    except ValueError:
        return False
    return len(raw) == 21 and raw[0] == ADDRESS_PREFIX


def to_base58(address: str | bytes) -> str:
    """Any of: base58 `T...`, hex with 41 prefix (42 chars), bare 20-byte hex (40 chars, as
    in event topics or visible=false log addresses), 21 or 20 raw bytes -> base58 `T...`.
    Raises ValueError on anything else."""
    if isinstance(address, bytes | bytearray):
        raw = bytes(address)
    elif isinstance(address, str):
        if address.startswith("T"):
            if not is_valid_address(address):
                raise ValueError("not a valid TRON address")
            return address
        text = address[2:] if address.startswith("0x") else address
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raise ValueError("not a valid TRON address") from None
    else:
        raise ValueError("not a valid TRON address")
    if len(raw) == 32:  # an event topic: 12 zero bytes then the 20-byte address
        raw = raw[12:]
    if len(raw) == 20:
        raw = bytes([ADDRESS_PREFIX]) + raw
    if len(raw) != 21 or raw[0] != ADDRESS_PREFIX:
        raise ValueError("not a valid TRON address")
    return base58.b58encode_check(raw).decode()


def to_hex41(address: str) -> str:
    """base58 `T...` -> hex with the 41 prefix, as tronpy puts in raw_data."""
    return base58.b58decode_check(to_base58(address)).hex()


def to_raw20(address: str) -> bytes:
    """The 20 bytes the TVM uses (ABI words, event topics)."""
    return base58.b58decode_check(to_base58(address))[1:]


# The order of secp256k1: a private key is an integer in 1..N-1.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def address_of_key(private_key_hex: str) -> str:
    """The base58 address of a hex private key (32 bytes). ValueError for anything else."""
    # Only a key's owner needs these (the hot wallet, the devnet's keys): loaded here.
    from coincurve import PrivateKey
    from Crypto.Hash import keccak

    raw = bytes.fromhex(private_key_hex)
    if len(raw) != 32 or not 0 < int.from_bytes(raw, "big") < SECP256K1_N:
        raise ValueError("a private key is 32 bytes in 1..N-1 of secp256k1")
    public = PrivateKey(raw).public_key.format(compressed=False)[1:]  # x || y, 64 bytes
    digest = keccak.new(digest_bits=256, data=public).digest()
    return base58.b58encode_check(bytes([ADDRESS_PREFIX]) + digest[-20:]).decode()
