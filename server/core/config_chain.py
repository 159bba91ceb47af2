"""Config sections of the money moving over TRON: `[chain]` (nodes, keys, addresses), the
embedded `[devnet]`, `[deposits]`, `[withdrawals]` and `[sweeps]` of personal deposit
addresses. USDT amounts are Decimal keys exposed in integer µUSDT by properties.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from meterchat.core.config_keys import key
from meterchat.core.units import usdt_to_musdt

NETWORKS = ("devnet", "nile", "shasta", "mainnet")


@dataclass(frozen=True)
class ChainConfig:
    network: str = key("devnet", "TRON network", choices=NETWORKS)
    endpoint: str = key("", "full node HTTP API; empty = the network's public default (or the "
                        "embedded devnet); ignored when endpoints is set")
    endpoints: list[str] = key(
        [], "full nodes' HTTP APIs, tried in this order (reads fail over to the next, "
        "broadcasts go to all); set, it takes precedence over endpoint")
    node_backoff_s: float = key(
        1.0, "a node that failed is skipped this long, doubled at each failure in a row",
        min=0)
    node_backoff_max_s: float = key(60.0, "the longest a failed node is skipped", min=0)
    api_key_env: str = key("TRONGRID_API_KEY", "environment variable holding the TronGrid API key")
    usdt_contract: str = key("", "USDT TRC20 contract; empty = the network's USDT")
    deposit_address: str = key("", "platform deposit address; empty on devnet = a generated one")
    hot_wallet_key_file: str = key(
        "", "file holding the hot wallet's private key (hex); relative to the config file"
    )
    hot_wallet_key_env: str = key("", "environment variable holding the hot wallet's private key")
    deposit_xpub: str = key(
        "", "account-level extended public key (xpub of m/44'/195'/0') the personal deposit "
        "addresses derive from (m/44'/195'/0'/0/<index>) when deposits.mode = "
        "\"address_per_user\"; watching needs nothing else; empty on devnet = a generated one"
    )
    deposit_seed_file: str = key(
        "", "file holding the BIP-39 mnemonic of deposit_xpub, read by the sweeper alone "
        "(never put the mnemonic in this file); relative to the config file"
    )
    deposit_seed_env: str = key(
        "", "environment variable holding that mnemonic (instead of deposit_seed_file)"
    )
    request_timeout_s: float = key(10.0, "timeout of one request to the node", min=0.1)


@dataclass(frozen=True)
class DevnetConfig:
    host: str = key("127.0.0.1", "address the embedded devnet node listens on")
    port: int = key(8090, "port of the embedded devnet node (0 = any free port)", min=0, max=65535)
    block_time_s: float = key(3.0, "seconds between devnet blocks", min=0.05)
    solidify_depth: int = key(19, "blocks on top before a block counts as solidified", min=0)
    path: Path = key(Path("data/devnet.sqlite3"), "devnet state file; relative to the config file")


@dataclass(frozen=True)
class DepositsConfig:
    mode: str = key(
        "unique_amount", "how a transfer finds its buyer: unique_amount = one shared address, "
        "each top-up an exact amount asked for first; address_per_user = each buyer's own "
        "address (HD-derived from chain.deposit_xpub), any amount credited, swept to the hot "
        "wallet ([sweeps])", choices=("unique_amount", "address_per_user"))
    min_usdt: Decimal = key(Decimal(3), "smallest top-up in USDT", min=Decimal("0.000001"))
    intent_ttl_minutes: int = key(60, "minutes a deposit intent stays open", min=1)
    watcher_interval_s: float = key(3.0, "seconds between deposit watcher passes", min=0.05)
    max_open_intents_per_user: int = key(
        5, "open (unexpired, unpaid) top-up intents one account may hold; more is 429 "
        "too_many_intents", min=1
    )
    claims_per_user_per_hour: int = key(
        60, "TXID claims one account may make per hour (each reads the node; the wallet page "
        "asks every 3 s until its transfer is final)", min=1
    )
    claims_per_ip_per_hour: int = key(
        180, "TXID claims from one client address (IPv6: one /64) per hour", min=1
    )

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)



@dataclass(frozen=True)
class WithdrawalsConfig:
    min_usdt: Decimal = key(Decimal(3), "smallest withdrawal in USDT", min=Decimal("0.000001"))
    fee_usdt: Decimal = key(Decimal("0.5"), "platform fee per withdrawal, USDT", min=Decimal(0))
    network_fee_usdt: Decimal | str = key(
        Decimal("1.0"), "charged per withdrawal for the TRX burned for energy, USDT; \"auto\" = "
        "the energy the transfer needs (triggerconstantcontract) times the chain's energy price "
        "(getchainparameters), converted at trx_usdt_price", min=Decimal(0), words=("auto",)
    )
    quotes_per_user_per_minute: int = key(
        60, "withdrawal quotes one account may ask for per minute while the network fee is "
        "\"auto\" (each may read the node); more is 429", min=1)
    trx_usdt_price: Decimal = key(
        Decimal("0.25"), "USDT per TRX, to convert the TRX an \"auto\" network fee burns "
        "into the USDT charged", min=Decimal("0.000001"))
    fee_limit_trx: int = key(40, "fee_limit of a USDT transfer, TRX", min=1)
    manual_review_above_usdt: Decimal = key(
        Decimal(200), "withdrawals above this wait for an operator, USDT", min=Decimal(0)
    )
    daily_limit_usdt: Decimal = key(
        Decimal(1000), "per user per day; past it withdrawals wait for an operator", min=Decimal(0)
    )
    buyer_withdrawals: bool = key(False, "let buyers withdraw too (never bonus tokens)")
    sender_interval_s: float = key(5.0, "seconds between withdrawal sender passes", min=0.05)
    expiry_margin_s: float = key(
        30.0, "seconds past a transaction's expiration (by this server's clock) before its "
        "absence from the solidified chain counts; covers clock skew", min=0)
    new_address_hold_hours: float = key(
        24.0, "hours a withdrawal to an address the user never withdrew to waits in queued "
        "(reason new_address_hold; the user is mailed and may cancel it); 0 = off", min=0)
    hold_after_security_change: bool = key(
        True, "hold every withdrawal for new_address_hold_hours after a password reset or a "
        "2FA change (a thief who took over the account cannot cash out at once)")
    require_verified_email: bool = key(
        True, "a user's email must be verified before their first withdrawal")

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)

    @property
    def fee_musdt(self) -> int:
        return usdt_to_musdt(self.fee_usdt)

    @property
    def network_fee_auto(self) -> bool:
        return self.network_fee_usdt == "auto"

    @property
    def network_fee_musdt(self) -> int:
        """The fixed network fee; 0 when it is "auto" (read from the chain per request)."""
        fee = self.network_fee_usdt
        return 0 if isinstance(fee, str) else usdt_to_musdt(fee)

    @property
    def manual_review_above_musdt(self) -> int:
        return usdt_to_musdt(self.manual_review_above_usdt)

    @property
    def daily_limit_musdt(self) -> int:
        return usdt_to_musdt(self.daily_limit_usdt)


@dataclass(frozen=True)
class SweepsConfig:
    min_usdt: Decimal = key(
        Decimal(10), "a personal deposit address holding at least this much USDT is swept to "
        "the hot wallet", min=Decimal("0.000001"))
    interval_s: float = key(60.0, "seconds between sweeper passes", min=0.05)
    max_trx_per_sweep: Decimal = key(
        Decimal(20), "most TRX one sweep may cost (the TRX sent for its energy and "
        "bandwidth, an activation); a dearer sweep waits, saying why; also its fee_limit",
        min=Decimal("0.000001"))
    energy_price_sun: int = key(
        100, "no longer read (kept so older configs load): a sweep's energy and its price "
        "are the chain's own (triggerconstantcontract, getchainparameters' getEnergyFee)",
        min=1)
    energy: str = key(
        "burn", "how a sweep pays its energy: burn = the hot wallet sends the address the TRX "
        "to burn; delegate = the hot wallet lends it energy from its Stake 2.0 stake "
        "(delegateresource before the sweep, undelegateresource after; stake TRX for "
        "ENERGY with freezebalancev2 first)", choices=("burn", "delegate"))
    keep_trx_for_withdrawals: Decimal = key(
        Decimal(50), "TRX the hot wallet keeps for withdrawals' energy: a sweep's top-up that "
        "would leave less waits, saying why (0: no floor)", min=Decimal(0))
    expiry_margin_s: float = key(
        30.0, "seconds past a sweep transaction's expiration before its absence from the "
        "solidified chain counts", min=0)

    @property
    def min_musdt(self) -> int:
        return usdt_to_musdt(self.min_usdt)

    @property
    def max_sun(self) -> int:
        return usdt_to_musdt(self.max_trx_per_sweep)  # TRX has 6 decimals too

    @property
    def keep_sun(self) -> int:
        return usdt_to_musdt(self.keep_trx_for_withdrawals)
