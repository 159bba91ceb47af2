"""The devnet's USDT contract as the outside sees it: the TRC20 ABI `getcontract` serves, the
token's name, symbol and decimals, and the encodings the node answers in (32-byte ABI words,
ABI strings, java-tron's hex-encoded messages). Pure: no state, no I/O."""

from __future__ import annotations

from typing import Any

USDT_NAME = "Tether USD"
USDT_SYMBOL = "USDT"
USDT_DECIMALS = 6
# The first four bytes of keccak256("transfer(address,uint256)").
SELECTOR_TRANSFER = "a9059cbb"

TRC20_ABI: list[dict[str, Any]] = [
    {"type": "function", "name": "name", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "symbol", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "string"}]},
    {"type": "function", "name": "decimals", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "uint8"}]},
    {"type": "function", "name": "totalSupply", "stateMutability": "View", "inputs": [],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "balanceOf", "stateMutability": "View",
     "inputs": [{"name": "who", "type": "address"}],
     "outputs": [{"name": "", "type": "uint256"}]},
    {"type": "function", "name": "transfer", "stateMutability": "Nonpayable",
     "inputs": [{"name": "_to", "type": "address"}, {"name": "_value", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
    {"type": "event", "name": "Transfer", "anonymous": False,
     "inputs": [{"indexed": True, "name": "from", "type": "address"},
                {"indexed": True, "name": "to", "type": "address"},
                {"indexed": False, "name": "value", "type": "uint256"}]},
]


def word(value: int) -> str:
    """One 32-byte ABI word (uint256), as 64 hex digits."""
    return f"{value:064x}"


def address_word(raw20: bytes) -> str:
    """An address as an ABI word or event topic: its 20 bytes, left-padded."""
    return raw20.hex().rjust(64, "0")


def abi_string(text: str) -> str:
    """An ABI-encoded `string` return value: offset, length, padded bytes."""
    data = text.encode()
    padded = data.hex().ljust(((len(data) + 31) // 32) * 64, "0")
    return word(32) + word(len(data)) + padded


def transfer_call_data(to_raw20: bytes, amount: int) -> str:
    """The call data of `transfer(to, amount)`."""
    return SELECTOR_TRANSFER + address_word(to_raw20) + word(amount)


def hexmsg(text: str) -> str:
    """A message as java-tron puts it in its answers: UTF-8 bytes in hex."""
    return text.encode().hex()
