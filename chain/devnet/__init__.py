"""The embedded devnet: a small TRON full node over HTTP, enough for tronpy 0.6.2 and for
meterchat's flows (DESIGN.md "Networks"). It holds TRX and one TRC20 USDT token (6
decimals), makes a block every `block_time_s` holding the transactions broadcast since,
counts a block as solidified `solidify_depth` blocks later, and keeps its state in its own
SQLite file so it survives a restart.

- `state.py`: DevnetState, the chain without HTTP (blocks, balances, bandwidth used, the
  broadcast pool, the faucet);
- `contracts.py`: the TRX transfer and the USDT call, checked at broadcast and executed in
  a block, with mainnet's costs; `stake.py`: Stake 2.0 (`stake_api.py` its HTTP answers);
- `node.py`: DevnetNode, the HTTP face tronpy talks to and the block producer;
- `abi.py`: the TRC20 contract's ABI and the encodings the node answers in.
"""

from meterchat.chain.devnet.contracts import (
    ENERGY_PRICE_SUN,
    ENERGY_REVERT,
    ENERGY_TO_FRESH,
    ENERGY_TO_HOLDER,
    Refused,
)
from meterchat.chain.devnet.node import DevnetNode, DevnetSettings
from meterchat.chain.devnet.state import DevnetState

__all__ = [
    "ENERGY_PRICE_SUN",
    "ENERGY_REVERT",
    "ENERGY_TO_FRESH",
    "ENERGY_TO_HOLDER",
    "DevnetNode",
    "DevnetSettings",
    "DevnetState",
    "Refused",
]
