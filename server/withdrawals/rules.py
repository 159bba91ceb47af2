"""The pure rules of a withdrawal, no I/O: the statuses and ledger kinds, the address check,
the fee quote (fees and the net that goes on chain; the "auto" network fee from the
chain's readings, and the check that a request is charged the fee it was shown), why a request waits for review, and who
may withdraw. Each refusal is a domain error (core/errors.py).

Money flow (µUSDT):
- request:   user:available -> clearing:withdrawals          (kind `withdrawal`)
- confirmed: clearing:withdrawals -> chain:withdrawals (net) + revenue:withdrawal_fees (fee)
- returned:  clearing:withdrawals -> user:available          (kind `withdrawal_return`)

Status: queued | review -> signed -> sent -> confirmed, or failed (on chain; the operator
retries -> queued, or rejects -> rejected, tokens returned).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from meterchat.chain.address import is_valid_address
from meterchat.chain.gateway import USDT_TRANSFER_BYTES
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import Conflict, Forbidden, Unprocessable
from meterchat.core.units import musdt_to_tokens_str, musdt_to_usdt_str

STATUSES = ("queued", "review", "signed", "sent", "confirmed", "failed", "rejected")
IN_FLIGHT = ("signed", "sent")
# Not final: a restored backup holds these for the operator (requests.hold_restored_tx).
NOT_FINAL = ("queued", "review", "signed", "sent", "failed")
# Far below SQLite's integer range and any real balance; keeps sums of amounts exact.
MAX_WITHDRAWAL_MUSDT = 10**15

KIND_REQUEST = "withdrawal"
KIND_RETURN = "withdrawal_return"
KIND_SENT = "withdrawal_sent"

REVIEW_ABOVE_THRESHOLD = "above_review_threshold"
REVIEW_DAILY_LIMIT = "daily_limit"
REVIEW_ACCOUNT_BANNED = "account_banned"  # set by a ban (operator/moderation.py)
# Set by a restore from backup (operator/backup.py) on every withdrawal that was not final in
# the backup: it may have been paid on chain since, so only the operator moves it on.
REVIEW_RESTORED = "restored_from_backup"


def check_address(value: object, platform_addresses: frozenset[str] | set[str]) -> str:
    """A base58check TRON address (`T...`) that is not one of the platform's own."""
    if not isinstance(value, str):
        raise Unprocessable("address must be a TRON address (T..., 34 characters)",
                            "invalid_address")
    address = value.strip()
    if not is_valid_address(address):
        raise Unprocessable("address is not a valid TRON address: it has 34 characters, "
                            "starts with T and its checksum must match", "invalid_address")
    if address in platform_addresses:
        raise Unprocessable("address is one of the platform's own addresses; give your own "
                            "wallet's address", "platform_address")
    return address


# A transfer's bytes of bandwidth (chain/gateway.py): the hot wallet's 600 free points a day
# pay for one transfer at most, so every other one burns them: the fee always counts them.


@dataclass(frozen=True)
class NetworkFee:
    """The network fee of one withdrawal: fixed by config, or "auto" from the chain's
    readings (the energy the transfer needs, the price of energy and of bandwidth in sun)."""

    musdt: int
    energy: int | None = None
    energy_price_sun: int | None = None
    bandwidth_price_sun: int | None = None

    @property
    def trx_sun(self) -> int | None:
        if self.energy is None or self.energy_price_sun is None:
            return None
        return (self.energy * self.energy_price_sun
                + USDT_TRANSFER_BYTES * (self.bandwidth_price_sun or 0))


def auto_network_fee(energy: int, energy_price_sun: int, trx_usdt_price: Decimal,
                     bandwidth_price_sun: int = 0) -> NetworkFee:
    """What a transfer burning `energy` at `energy_price_sun`, and its bytes of bandwidth at
    `bandwidth_price_sun`, costs in µUSDT at `trx_usdt_price` USDT per TRX, rounded up to
    the µUSDT. Sun and µUSDT are both millionths, so µUSDT = sun x price. 64,285 energy x
    100 sun + 345 bytes x 1,000 sun = 6,773,500 sun; x 0.25 = 1,693,375 µUSDT."""
    fee = NetworkFee(0, energy, energy_price_sun, bandwidth_price_sun)
    sun = fee.trx_sun or 0
    musdt = int((Decimal(sun) * trx_usdt_price).to_integral_value(rounding=ROUND_CEILING))
    return NetworkFee(musdt, energy, energy_price_sun, bandwidth_price_sun)


def network_fee(cfg: WithdrawalsConfig, auto: NetworkFee | None = None) -> NetworkFee:
    """The configured fixed fee, or the "auto" one the caller read from the chain."""
    if cfg.network_fee_auto:
        if auto is None:
            raise ValueError('network_fee_usdt is "auto": read the fee from the chain first')
        return auto
    return NetworkFee(cfg.network_fee_musdt)


def fee_musdt(cfg: WithdrawalsConfig, auto: NetworkFee | None = None) -> int:
    """The platform fee plus the network fee (the TRX burned for energy), per withdrawal."""
    return cfg.fee_musdt + network_fee(cfg, auto).musdt


@dataclass(frozen=True)
class Quote:
    amount_musdt: int
    fee_musdt: int
    net_musdt: int
    network: NetworkFee | None = None

    def view(self, cfg: WithdrawalsConfig) -> dict[str, object]:
        """The quote as the seller sees it before confirming (GET /api/withdrawals/quote)."""
        network = self.network or NetworkFee(self.fee_musdt - cfg.fee_musdt)
        trx = network.trx_sun
        return {
            "tokens": musdt_to_tokens_str(self.amount_musdt),
            "fee_tokens": musdt_to_tokens_str(self.fee_musdt),
            "net_tokens": musdt_to_tokens_str(self.net_musdt),
            "amount_usdt": musdt_to_usdt_str(self.amount_musdt),
            "fee_usdt": musdt_to_usdt_str(self.fee_musdt),
            "net_usdt": musdt_to_usdt_str(self.net_musdt),
            "platform_fee_usdt": musdt_to_usdt_str(cfg.fee_musdt),
            "network_fee_usdt": musdt_to_usdt_str(network.musdt),
            "network_fee_mode": "auto" if cfg.network_fee_auto else "fixed",
            "energy": network.energy,
            "energy_price_sun": network.energy_price_sun,
            "bandwidth_bytes": USDT_TRANSFER_BYTES if network.energy is not None else None,
            "bandwidth_price_sun": network.bandwidth_price_sun,
            "network_fee_trx": None if trx is None else musdt_to_usdt_str(trx),
            "trx_usdt_price": str(cfg.trx_usdt_price) if cfg.network_fee_auto else None,
        }


def quote(amount_musdt: int, cfg: WithdrawalsConfig, auto: NetworkFee | None = None) -> Quote:
    """Fees and the net that goes on chain; refuses amounts below the minimum or that the
    fees would eat whole. 400 tokens (4 USDT) -> 2.5 USDT with the default fees."""
    if amount_musdt < cfg.min_musdt:
        raise Unprocessable(
            f"the smallest withdrawal is {musdt_to_usdt_str(cfg.min_musdt)} USDT "
            f"({musdt_to_tokens_str(cfg.min_musdt)} tokens)", "below_minimum")
    network = network_fee(cfg, auto)
    fee = cfg.fee_musdt + network.musdt
    net = amount_musdt - fee
    if net <= 0:
        raise Unprocessable(
            f"the fees of {musdt_to_usdt_str(fee)} USDT would take the whole amount",
            "below_minimum")
    return Quote(amount_musdt=amount_musdt, fee_musdt=fee, net_musdt=net,
                 network=network if cfg.network_fee_auto else None)


def check_fee_shown(q: Quote, shown_fee_musdt: int | None) -> None:
    """A request that says which fee it was shown is refused when the fee is another now
    (409 fee_changed, nothing moves): the seller confirms the fee they are charged. The
    fee is always the server's own figure; the one sent is only compared with it."""
    if shown_fee_musdt is not None and shown_fee_musdt != q.fee_musdt:
        raise Conflict(
            f"the fee is now {musdt_to_tokens_str(q.fee_musdt)} tokens "
            f"({musdt_to_usdt_str(q.fee_musdt)} USDT), not the "
            f"{musdt_to_tokens_str(shown_fee_musdt)} you were shown: look at the new quote "
            "and confirm again", "fee_changed")


def review_reason(amount_musdt: int, withdrawn_last_day_musdt: int,
                  cfg: WithdrawalsConfig) -> str | None:
    """Why a request waits for an operator, or None when the sender may take it."""
    if amount_musdt > cfg.manual_review_above_musdt:
        return REVIEW_ABOVE_THRESHOLD
    if withdrawn_last_day_musdt + amount_musdt > cfg.daily_limit_musdt:
        return REVIEW_DAILY_LIMIT
    return None


def check_role(role: str, cfg: WithdrawalsConfig) -> None:
    if role == "seller" or (role == "buyer" and cfg.buyer_withdrawals):
        return
    if role == "buyer":
        raise Forbidden("buyers cannot withdraw on this server; tokens are spent on calls",
                        "withdrawals_not_allowed")
    raise Forbidden("only sellers withdraw", "withdrawals_not_allowed")


def status_reason(status: str, review: str | None, wait: str | None,
                  failure: str | None) -> str | None:
    """The one line a user or operator needs to see about where a withdrawal stands."""
    if status == "review":
        if review == REVIEW_ACCOUNT_BANNED:
            return "the account was banned: withdrawals wait for the operator's review"
        if review == REVIEW_DAILY_LIMIT:
            return "past the daily limit: an operator reviews it"
        if review == REVIEW_RESTORED:
            return ("the server was restored from a backup taken before this withdrawal "
                    "was final: an operator checks the chain before it moves on")
        return "a large withdrawal: an operator reviews it"
    if status == "failed":
        return failure
    if status in ("queued", "signed", "sent"):
        return wait
    if status == "rejected":
        return failure or "rejected by the operator; the tokens were returned"
    return None
