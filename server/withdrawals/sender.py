"""The withdrawal sender: an apscheduler job, one pass at a time, that pays queued
withdrawals from the hot wallet exactly once and follows them to a final receipt.

One pass:
1. Follow every `signed` / `sent` withdrawal by its stored TXID:
   - in a solidified block with a SUCCESS receipt paying the net to the address ->
     `confirmed` (ledger: clearing -> chain:withdrawals + revenue:withdrawal_fees);
   - in a solidified block with any other result (REVERT, OUT_OF_ENERGY...) -> `failed`,
     the reason kept; the operator retries or returns the tokens;
   - in a block not yet solidified -> wait;
   - not in a block and not expired -> broadcast the same stored signed bytes again (the
     node answers DUP_TRANSACTION_ERROR when it already has them);
   - not in a block, expired (with `expiry_margin_s` for clock skew), and the solidified
     chain has passed the first block made after that moment without it -> it can never
     land: only then is the withdrawal queued for a new transaction.
   A timeout or an unreachable node proves nothing: the withdrawal stays where it is.
2. For each `queued` withdrawal: check the hot wallet holds the USDT and the TRX for the
   fee_limit (else wait, saying why), build and sign the transfer with fee_limit =
   `fee_limit_trx`, store it (`signed`) BEFORE broadcasting, broadcast (`sent`).

Without a hot-wallet key, queued withdrawals wait for the operator. The key is never
logged. `hook(point)` is called at the crash points tests simulate ("built": signed but
not stored; "signed": stored but not broadcast; "broadcast": broadcast but the answer not
recorded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.chain.gateway import BadTransaction, ChainGateway, ChainTx, ChainUnavailable
from meterchat.chain_ctx import CHAIN_INFO, GATEWAY
from meterchat.core.config import EventsConfig, Secret, WithdrawalsConfig
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.logs import event
from meterchat.core.retrying import RetryingJob
from meterchat.core.units import SUN_PER_TRX, musdt_to_usdt_str
from meterchat.events import outbox as events
from meterchat.events import rules as event_rules
from meterchat.withdrawals import requests
from meterchat.withdrawals import sending as wd
from meterchat.withdrawals.rules import REVIEW_RESTORED
from meterchat.withdrawals.store import Withdrawal

log = logging.getLogger("meterchat.withdrawals.sender")

NO_KEY_REASON = ("no hot wallet key is configured (chain.hot_wallet_key_file or "
                 "chain.hot_wallet_key_env): waiting for the operator")


class WithdrawalSender(RetryingJob):
    def __init__(self, db: Database, gateway: ChainGateway, usdt_contract: str,
                 hot_wallet_key: Secret | None, hot_wallet_address: str | None,
                 cfg: WithdrawalsConfig, hook: Callable[[str], None] | None = None,
                 events_cfg: EventsConfig | None = None) -> None:
        self.db = db
        self.events_cfg = events_cfg
        self._wallet_read_at = float("-inf")
        self._wallet_low: bool | None = None  # as last written (None: not known yet)
        self.gateway = gateway
        self.usdt_contract = usdt_contract
        self._key = hot_wallet_key
        self.hot_wallet_address = hot_wallet_address
        self.cfg = cfg
        self.fee_limit_sun = cfg.fee_limit_trx * SUN_PER_TRX
        self.expiry_margin_ms = int(cfg.expiry_margin_s * 1000)
        self.hook = hook
        super().__init__("withdrawal sender", "withdrawal_sender_error",
                         cfg.sender_interval_s, log)

    async def run_once(self) -> None:
        """One pass. Never raises: node trouble backs off and is retried (core/retrying.py)."""
        await self.run_guarded(self._pass)

    def _at(self, point: str) -> None:
        if self.hook is not None:
            self.hook(point)

    async def _pass(self) -> None:
        for item in await self.db.read(wd.in_flight):
            await self._follow(item)
        waiting = await self.db.read(wd.queued)
        if waiting:
            await self._send(waiting)
        await self._observe_hot_wallet()

    async def _observe_hot_wallet(self) -> None:
        """hot_wallet.low: the balances read at most every events.hot_wallet_check_s; an
        event only when the condition crosses (the stored state read once, then kept)."""
        cfg = self.events_cfg
        if cfg is None or not self.hot_wallet_address or (
                cfg.hot_wallet_low_sun == 0 and cfg.hot_wallet_low_musdt == 0):
            return
        if time.monotonic() - self._wallet_read_at < cfg.hot_wallet_check_s:
            return
        self._wallet_read_at = time.monotonic()
        try:
            trx_sun = await self.gateway.trx_balance_sun(self.hot_wallet_address)
            usdt_musdt = await self.gateway.usdt_balance(self.hot_wallet_address)
        except ChainUnavailable:
            return  # the watcher's watcher.lagging tells of a node that is gone
        low = event_rules.hot_wallet_low(trx_sun, usdt_musdt, cfg.hot_wallet_low_sun,
                                         cfg.hot_wallet_low_musdt)
        if low == self._wallet_low:
            return
        await self.db.tx(events.threshold_tx, event_rules.HOT_WALLET_LOW, low, {
            "address": self.hot_wallet_address, "trx": str(Decimal(trx_sun) / SUN_PER_TRX),
            "usdt": musdt_to_usdt_str(usdt_musdt), "min_trx": str(cfg.hot_wallet_low_trx),
            "min_usdt": str(cfg.hot_wallet_low_usdt)}, now_ms())
        self._wallet_low = low

    # -- following what was signed

    async def _follow(self, item: wd.InFlight) -> None:
        w = item.withdrawal
        txid = w.txid or ""
        tx = await self.gateway.get_transaction(txid)
        if tx is not None and tx.in_block:
            await self._settle(item, tx)
            return
        now = now_ms()
        if now < item.expiration_ms:
            await self._broadcast(w.id, txid, item.signed_json)
            return
        # Expired by our clock: it may still sit in a block we have not seen solidify.
        if item.dead_after_block is None:
            if now >= item.expiration_ms + self.expiry_margin_ms:
                head = await self.gateway.head_block_number()
                await self.db.tx(wd.set_dead_after_tx, txid, head + 1)
            return
        # One node's whole answer (chain/failover.py): its solidified height and, read after
        # it, the transaction; absence counts only from a node solidified past the bound.
        seen = await self.gateway.lookup_transaction(txid)
        if seen.tx is not None and seen.tx.in_block:
            await self._settle(item, seen.tx)
            return
        solid = seen.solidified_block
        if solid < item.dead_after_block:
            return
        if await self.db.tx(wd.expire_tx, w.id, txid, now_ms()):
            event(log, "withdrawal_tx_expired", withdrawal_id=w.id, txid=txid,
                  solidified_block=solid)

    async def _settle(self, item: wd.InFlight, tx: ChainTx) -> None:
        w = item.withdrawal
        txid = w.txid or ""
        if w.status == "signed":
            await self.db.tx(wd.mark_seen_in_block_tx, w.id, txid, now_ms())
        if not tx.solidified:
            return
        paid = any(t.to_address == w.address and t.amount == w.net_musdt
                   for t in tx.transfers_of(self.usdt_contract))
        spent = wd.Spent(tx.fee_sun, tx.energy_used, tx.block_time_ms)
        if tx.succeeded and paid:
            if await self.db.tx(wd.confirm_tx, w.id, txid, tx.block_number or 0, now_ms(),
                                spent):
                event(log, "withdrawal_confirmed", withdrawal_id=w.id, txid=txid,
                      block=tx.block_number, net_musdt=w.net_musdt)
            return
        result = tx.result or "FAILED"
        if tx.succeeded:
            reason = "the transaction succeeded without paying the address; check it on chain"
        else:
            reason = (f"the transfer failed on chain ({result}, {tx.fee_sun / SUN_PER_TRX:g} "
                      "TRX burned): retry it or return the tokens")
        if await self.db.tx(wd.fail_tx, w.id, txid, result, reason, now_ms(), spent):
            event(log, "withdrawal_failed", logging.WARNING, withdrawal_id=w.id, txid=txid,
                  result=result, block=tx.block_number)

    async def _broadcast(self, withdrawal_id: int, txid: str, signed_json: str) -> None:
        answer = await self.gateway.broadcast(signed_json)
        self._at("broadcast")
        accepted = answer.ok or answer.duplicate
        reason = None if accepted else (
            f"the node refused the transaction ({answer.code}: {answer.message[:200]}); "
            "it is broadcast again until it expires")
        await self.db.tx(wd.note_broadcast_tx, withdrawal_id, txid, answer.code, accepted,
                         reason, now_ms())
        event(log, "withdrawal_broadcast", withdrawal_id=withdrawal_id, txid=txid,
              code=answer.code)

    # -- sending what is queued

    async def _send(self, waiting: list[Withdrawal]) -> None:
        if self._key is None or not self.hot_wallet_address:
            for w in waiting:
                await self.db.tx(wd.set_wait_reason_tx, w.id, NO_KEY_REASON, now_ms())
            return
        # What signed-but-unconfirmed transfers may still take from the hot wallet.
        pending = await self.db.read(wd.in_flight)
        usdt_left = (await self.gateway.usdt_balance(self.hot_wallet_address)
                     - sum(p.withdrawal.net_musdt for p in pending))
        trx_left = (await self.gateway.trx_balance_sun(self.hot_wallet_address)
                    - sum(p.fee_limit_sun for p in pending))
        for w in waiting:
            if usdt_left < w.net_musdt:
                await self._wait(w, f"the hot wallet holds too little USDT for "
                                    f"{musdt_to_usdt_str(w.net_musdt)} USDT: waiting for the "
                                    "operator to top it up")
                continue
            if trx_left < self.fee_limit_sun:
                await self._wait(w, f"the hot wallet holds too little TRX for the energy "
                                    f"(fee limit {self.cfg.fee_limit_trx} TRX): waiting for "
                                    "the operator to top it up")
                continue
            try:
                signed = await self.gateway.build_usdt_transfer(
                    self._key.reveal(), w.address, w.net_musdt, self.fee_limit_sun)
            except BadTransaction as exc:
                await self._wait(w, f"cannot build the transfer: {exc}")
                continue
            self._at("built")
            if not await self.db.tx(wd.store_signed_tx, w.id, signed, self.fee_limit_sun,
                                    now_ms()):
                continue  # rejected meanwhile: the signed bytes are dropped, never sent
            event(log, "withdrawal_signed", withdrawal_id=w.id, txid=signed.txid,
                  expiration_ms=signed.expiration_ms, net_musdt=w.net_musdt)
            usdt_left -= w.net_musdt
            trx_left -= self.fee_limit_sun
            self._at("signed")
            await self._broadcast(w.id, signed.txid, signed.signed_json)

    async def _wait(self, w: Withdrawal, reason: str) -> None:
        if w.wait_reason != reason:
            event(log, "withdrawal_waiting", withdrawal_id=w.id, reason=reason)
        await self.db.tx(wd.set_wait_reason_tx, w.id, reason, now_ms())


SENDER = web.AppKey("withdrawal_sender", WithdrawalSender)


def sender_from_app(app: web.Application,
                    hook: Callable[[str], None] | None = None) -> WithdrawalSender:
    info = app[CHAIN_INFO]
    return WithdrawalSender(app[DB], app[GATEWAY], info.usdt_contract, info.hot_wallet_key,
                            info.hot_wallet_address, app[CONFIG].withdrawals, hook,
                            app[CONFIG].events)


async def sender_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sender job, every sender_interval_s, never two passes at once. First,
    a database that is a backup put back by hand holds its not-final withdrawals for the
    operator (as `meterchat restore` does), before the sender can see them."""
    for wid in await app[DB].tx(requests.hold_if_restored_tx, now_ms()):
        event(log, "withdrawal_held_after_restore", logging.WARNING, withdrawal_id=wid,
              reason=REVIEW_RESTORED)
    sender = sender_from_app(app)
    app[SENDER] = sender
    async with interval_job(app, sender.run_once, app[CONFIG].withdrawals.sender_interval_s,
                            "withdrawal_sender", sender.stop):
        yield
