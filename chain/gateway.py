"""The one interface the domain uses to reach TRON (deposits, watcher, withdrawals): a small
async Protocol and the frozen dataclasses it answers with. Devnet and mainnet are the same
code behind it (chain/client.py implements it over tronpy).

Amounts are integers in the token's base units: for USDT (6 decimals) that is µUSDT, for TRX
it is sun. Addresses are base58 `T...` strings. Times are integer ms.

Errors: `ChainUnavailable` when the node cannot be reached, times out or answers garbage;
nothing here raises for a transaction that failed on chain (that is data: `result`), nor for
a broadcast the node refused (that is a `BroadcastResult` with its code).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

# keccak256("Transfer(address,address,uint256)"), the first topic of every ERC/TRC20 Transfer.
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"

# The bytes of bandwidth a signed USDT transfer uses (what a node burns 1,000 sun a byte
# for once the owner's free points are spent): the withdrawals' fee and the sweeps count it.
USDT_TRANSFER_BYTES = 345
RESULT_SUCCESS = "SUCCESS"
RESULT_REVERT = "REVERT"
RESULT_OUT_OF_ENERGY = "OUT_OF_ENERGY"

BROADCAST_OK = "SUCCESS"
BROADCAST_DUP = "DUP_TRANSACTION_ERROR"


class ChainError(Exception):
    """Something about the chain we could not do."""


class ChainUnavailable(ChainError):
    """The node did not answer usefully (connection refused, timeout, HTTP error, bad JSON).
    Never proof that a transaction failed or is absent."""


class BadTransaction(ChainError):
    """A transaction we were asked to build or broadcast cannot be made (bad key, address,
    stored JSON)."""


@dataclass(frozen=True)
class TransferLog:
    """One TRC20 `Transfer(from, to, value)` event log of a transaction."""

    txid: str
    log_index: int  # position of the log in the transaction's receipt
    contract: str  # the token contract that emitted the log
    from_address: str
    to_address: str
    amount: int  # in the token's base units (µUSDT for USDT)


@dataclass(frozen=True)
class ChainTx:
    """A transaction and its receipt as the node sees it now."""

    txid: str
    contract_type: str  # "TriggerSmartContract", "TransferContract", ...
    owner_address: str | None
    called_contract: str | None  # for TriggerSmartContract
    trx_to_address: str | None  # for TransferContract
    trx_amount_sun: int  # for TransferContract
    in_block: bool  # False: known to the node, not yet in a block (no receipt yet)
    result: str | None  # SUCCESS, REVERT, OUT_OF_ENERGY, ... (None while not in a block)
    block_number: int | None
    block_time_ms: int | None
    solidified: bool
    fee_sun: int = 0
    energy_used: int = 0
    transfers: tuple[TransferLog, ...] = field(default=())

    @property
    def succeeded(self) -> bool:
        return self.result == RESULT_SUCCESS

    def transfers_of(self, contract: str) -> tuple[TransferLog, ...]:
        """Transfer logs emitted by `contract` (logs of other tokens never count)."""
        return tuple(t for t in self.transfers if t.contract == contract)


@dataclass(frozen=True)
class TxLookup:
    """One node's whole answer about a transaction: the transaction (None: the node does not
    have it) and that node's solidified height, read before the transaction. Absent with
    `solidified_block` >= n means: not in any block up to n on that node."""

    tx: ChainTx | None
    solidified_block: int


@dataclass(frozen=True)
class BlockTransfers:
    """The Transfer logs of one token in one block, for the watcher."""

    block_number: int
    block_time_ms: int | None  # None for a block with no transactions at all
    transfers: tuple[TransferLog, ...]


@dataclass(frozen=True)
class SignedTransfer:
    """A signed USDT transfer, ready to store and then broadcast (maybe many times)."""

    txid: str
    expiration_ms: int
    signed_json: str  # the transaction JSON tronpy broadcasts: txID, raw_data, signature


@dataclass(frozen=True)
class AccountResource:
    """getaccountresource: what an account can spend without burning TRX, and the network's
    energy totals that turn a stake into energy (Stake 2.0)."""

    energy_limit: int = 0
    energy_used: int = 0
    net_limit: int = 0  # bandwidth from stake
    net_used: int = 0
    free_net_limit: int = 0
    free_net_used: int = 0
    total_energy_limit: int = 0
    total_energy_weight: int = 0

    @property
    def energy_left(self) -> int:
        return max(0, self.energy_limit - self.energy_used)

    @property
    def net_left(self) -> int:
        """Bandwidth points left: staked, then free."""
        return (max(0, self.net_limit - self.net_used)
                + max(0, self.free_net_limit - self.free_net_used))

    def stake_sun_for(self, energy: int) -> int:
        """Sun of staked TRX that, lent to an account, gives it at least `energy` more
        (whole TRX, one more for the rounding of both sides; at least 1 TRX)."""
        if energy <= 0:
            return 0
        if self.total_energy_limit <= 0:
            raise ValueError("the node answered no TotalEnergyLimit")
        trx = -(-energy * self.total_energy_weight // self.total_energy_limit) + 1
        return max(1, trx) * 1_000_000


@dataclass(frozen=True)
class BroadcastResult:
    ok: bool
    code: str  # SUCCESS, DUP_TRANSACTION_ERROR, SIGERROR, TAPOS_ERROR, ...
    message: str = ""

    @property
    def duplicate(self) -> bool:
        """The node already has this TXID: as good as ok for a re-broadcast."""
        return self.code == BROADCAST_DUP


@runtime_checkable
class ChainGateway(Protocol):
    async def get_transaction(self, txid: str) -> ChainTx | None:
        """The transaction with its receipt, or None when the node does not know the TXID."""
        ...

    async def lookup_transaction(self, txid: str) -> TxLookup:
        """The transaction and the solidified height, both from one node."""
        ...

    async def solidified_block_number(self) -> int: ...

    async def head_block_number(self) -> int: ...

    async def block_transfers(self, block_number: int, contract: str) -> BlockTransfers:
        """Every successful Transfer log of `contract` in a solidified block."""
        ...

    async def usdt_balance(self, address: str) -> int:
        """µUSDT held by `address` (balanceOf of the configured USDT contract)."""
        ...

    async def trx_balance_sun(self, address: str) -> int: ...

    async def usdt_transfer_energy(self, owner: str, to_address: str, amount_musdt: int) -> int:
        """The energy a USDT transfer from `owner` would burn now (triggerconstantcontract)."""
        ...

    async def energy_price_sun(self) -> int:
        """Sun per unit of energy (getchainparameters' getEnergyFee)."""
        ...

    async def bandwidth_price_sun(self) -> int:
        """Sun per byte of bandwidth burned (getchainparameters' getTransactionFee)."""
        ...

    async def account_exists(self, address: str) -> bool:
        """Activated on chain (it has received TRX); an address holding only a TRC20 token
        is not, and cannot own a transaction until it is."""
        ...

    async def build_trx_transfer(self, private_key_hex: str, to_address: str,
                                 amount_sun: int) -> SignedTransfer:
        """Build and sign (not broadcast) a TRX transfer (activating `to_address` when it
        does not exist yet, at the sender's cost)."""
        ...

    async def build_usdt_transfer(
        self, private_key_hex: str, to_address: str, amount_musdt: int, fee_limit_sun: int
    ) -> SignedTransfer:
        """Build and sign (not broadcast) a USDT transfer with an explicit fee_limit."""
        ...

    async def account_resource(self, address: str) -> AccountResource:
        """getaccountresource (all zeros for an account that does not exist)."""
        ...

    async def delegatable_sun(self, owner: str, resource: str) -> int:
        """getcandelegatedmaxsize: the most sun of `owner`'s stake for ENERGY or BANDWIDTH it
        can lend now."""
        ...

    async def build_delegation(self, private_key_hex: str, receiver: str, balance_sun: int,
                               resource: str, undelegate: bool = False) -> SignedTransfer:
        """Build and sign (not broadcast) a Stake 2.0 DelegateResource (or, with
        `undelegate`, UnDelegateResource) of `balance_sun` of staked TRX to `receiver`."""
        ...

    async def broadcast(self, signed_json: str) -> BroadcastResult:
        """Broadcast a stored signed transaction. Refusals are answers, not exceptions;
        only an unreachable node raises ChainUnavailable."""
        ...

    async def close(self) -> None: ...
