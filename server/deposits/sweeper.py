"""The sweeper: an apscheduler job (deposits.mode = "address_per_user"), one pass at a time,
that moves the USDT of each personal deposit address holding at least `sweeps.min_usdt` to
the hot wallet, exactly once, as the withdrawal sender pays (sign, store the signed bytes,
broadcast, broadcast the same bytes again, confirm on a solidified SUCCESS receipt; a new
transaction only once the stored one is proven expired). sweeps.py holds the states.

One pass:
1. Follow every open sweep by its stored TXID (the TRX top-up while `funding`, the USDT
   transfer while `signed` / `sent`); a `funded` one is signed.
2. Every address the database says holds at least sweeps.min_usdt and has no open sweep
   (and no sweep failed on chain in the last day) is read on chain; at the minimum it gets a
   sweep: the cost is estimated (sweep_rules.py) from the chain's own figures (the energy of
   this transfer by triggerconstantcontract, the energy price by getchainparameters, through
   the app's one chain/prices.py cache); a sweep too dear, or a hot wallet short of TRX once
   `sweeps.keep_trx_for_withdrawals` is kept for withdrawals, waits saying why; else the hot wallet sends the TRX the address lacks (stored before
   broadcast), and once that top-up is solidified the address signs its transfer.

With `sweeps.energy = "delegate"` a sweep's energy is lent by the hot wallet's Stake 2.0
stake instead of burnt (delegator.py: the delegation before the sweep is signed, the
undelegation once it is final; a pass also follows every final sweep whose stake is still
lent, and opens no new sweep of that address meanwhile).

Only the sweeper reads the deposit seed (a BIP-39 mnemonic, `Secret`), deriving the
address's key at signing; neither is logged. A timeout or an unreachable node proves
nothing: the sweep stays where it is. `hook(point)` is called at the crash points tests
simulate ("topup_signed", "topup_broadcast", "signed", "broadcast", and "delegate_" /
"undelegate_" + "signed" / "broadcast": stored but not broadcast, broadcast but the answer
not recorded).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.chain import hd
from meterchat.chain.gateway import BadTransaction, ChainGateway, ChainTx
from meterchat.chain.prices import ChainPrices
from meterchat.chain_ctx import CHAIN_INFO, CHAIN_PRICES, DEVNET, GATEWAY, load_deposit_seed
from meterchat.core.config import Secret, SweepsConfig
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.logs import event
from meterchat.core.retrying import RetryingJob
from meterchat.core.units import DAY_MS, musdt_to_usdt_str
from meterchat.deposits import delegator, personal, sweep_rules, sweeps
from meterchat.deposits.sweeps import Sweep

log = logging.getLogger("meterchat.deposits.sweeper")

# The crash point after broadcasting each kind of stored transaction (the hook's name).
BROADCAST_POINTS = {"topup": "topup_broadcast", "sweep": "broadcast",
                    "delegate": "delegate_broadcast", "undelegate": "undelegate_broadcast"}
NO_SEED_REASON = ("no deposit seed is configured (chain.deposit_seed_file or "
                  "chain.deposit_seed_env): the address cannot sign its sweep")
NO_KEY_REASON = ("no hot wallet key is configured: it can neither receive a sweep's top-up "
                 "nor pay for it")


class Sweeper(RetryingJob):
    def __init__(self, db: Database, gateway: ChainGateway, usdt_contract: str,
                 seed: Secret | None, hot_wallet_key: Secret | None,
                 hot_wallet_address: str | None, cfg: SweepsConfig,
                 hook: Callable[[str], None] | None = None,
                 prices: ChainPrices | None = None) -> None:
        self.db = db
        self.prices = prices if prices is not None else ChainPrices()
        self.gateway = gateway
        self.usdt_contract = usdt_contract
        self._seed = seed
        self._hot_key = hot_wallet_key
        self.hot_wallet_address = hot_wallet_address
        self.cfg = cfg
        self.expiry_margin_ms = int(cfg.expiry_margin_s * 1000)
        self.hook = hook
        super().__init__("sweeper", "sweeper_error", cfg.interval_s, log)
        # The hot wallet's TRX not yet promised to a top-up of this pass (read once a pass).
        self._hot_trx_left: int | None = None
        # The hot wallet's energy stake it can still lend this pass (delegate mode).
        self._stake_left: int | None = None

    @property
    def hot_key(self) -> Secret | None:
        return self._hot_key

    @property
    def has_seed(self) -> bool:
        return self._seed is not None

    async def run_once(self) -> None:
        """One pass. Never raises: node trouble backs off and is retried (core/retrying.py)."""
        await self.run_guarded(self._pass)

    def at(self, point: str) -> None:
        if self.hook is not None:
            self.hook(point)

    async def _pass(self) -> None:
        self._hot_trx_left = None
        self._stake_left = None
        busy = set()
        for s in await self.db.read(sweeps.open_sweeps):
            busy.add(s.address)
            await self._advance(s)
        for s in await self.db.read(sweeps.to_reclaim):
            busy.add(s.address)  # no new sweep before its lent energy is back
            await delegator.reclaim(self, s)
        since = now_ms() - DAY_MS
        for address, held in await self.db.read(personal.owed_at_addresses):
            if held < self.cfg.min_musdt or address in busy:
                continue
            if await self.db.read(sweeps.failed_since, address, since):
                continue
            balance = await self.gateway.usdt_balance(address)
            if balance < self.cfg.min_musdt:
                continue
            sweep_id = await self.db.tx(sweeps.open_tx, address, balance, now_ms(),
                                        self.cfg.energy)
            opened: Sweep | None = await self.db.read(sweeps.sweep, sweep_id)
            if opened is not None:
                event(log, "sweep_opened", sweep_id=opened.id, address=address,
                      usdt_musdt=balance)
                await self._advance(opened)

    async def _advance(self, s: Sweep) -> None:
        if s.status == "waiting":
            await (delegator.start(self, s) if s.energy_mode == "delegate"
                   else self._start(s))
        elif s.status == "funded" and s.energy_mode == "delegate" \
                and s.delegation_status != "delegated":
            if s.delegation_status == "delegating" and s.delegate_txid:
                await self.follow(s, s.delegate_txid)
            else:
                await delegator.delegate(self, s)
        elif s.status == "funded":
            await self.sign(s)
        elif s.status in ("funding", "signed", "sent") and s.txid:
            await self.follow(s, s.txid)

    # -- starting: the cost, the top-up

    async def wait(self, s: Sweep, reason: str) -> None:
        if s.wait_reason != reason:
            event(log, "sweep_waiting", sweep_id=s.id, address=s.address, reason=reason)
        await self.db.tx(sweeps.set_wait_reason_tx, s.id, reason, now_ms())

    async def _start(self, s: Sweep) -> None:
        if self._seed is None:
            await self.wait(s, NO_SEED_REASON)
            return
        if self._hot_key is None or not self.hot_wallet_address:
            await self.wait(s, NO_KEY_REASON)
            return
        hot = self.hot_wallet_address
        cost = sweep_rules.estimate(
            await self.prices.usdt_transfer_energy(self.gateway, s.address, hot),
            await self.prices.energy_price_sun(self.gateway),
            await self.gateway.trx_balance_sun(s.address),
            await self.gateway.account_exists(s.address))
        if cost.topup_sun and self._hot_trx_left is None:
            self._hot_trx_left = await self.gateway.trx_balance_sun(hot)
        reason = sweep_rules.wait_reason(cost, self.cfg.max_sun,
                                         self._hot_trx_left if cost.topup_sun else None,
                                         self.cfg.keep_sun)
        if reason is not None:
            await self.wait(s, reason)
            return
        if not cost.topup_sun:
            await self.sign(s)
            return
        await self.send_topup(s, cost)

    async def send_topup(self, s: Sweep, cost: sweep_rules.SweepCost) -> None:
        """Sign the TRX the address lacks, store it, broadcast it (waiting -> funding)."""
        assert self._hot_key is not None
        try:
            signed = await self.gateway.build_trx_transfer(self._hot_key.reveal(), s.address,
                                                           cost.topup_sun)
        except BadTransaction as exc:
            await self.wait(s, f"cannot build the TRX top-up: {exc}")
            return
        if not await self.db.tx(sweeps.store_topup_tx, s.id, signed, cost.topup_sun,
                                now_ms()):
            return
        if self._hot_trx_left is not None:
            self._hot_trx_left -= cost.topup_sun + cost.topup_fee_sun
        event(log, "sweep_topup_signed", sweep_id=s.id, txid=signed.txid,
              topup_sun=cost.topup_sun, activation=cost.activation)
        self.at("topup_signed")
        await self.broadcast(s.id, signed.txid, signed.signed_json, "topup_broadcast")

    # -- the sweep itself

    async def sign(self, s: Sweep) -> None:
        if self._seed is None or not self.hot_wallet_address:
            await self.wait(s, NO_SEED_REASON if self._seed is None else NO_KEY_REASON)
            return
        amount = await self.gateway.usdt_balance(s.address)
        if amount <= 0:
            await self.wait(s, "the address holds no USDT on chain")
            return
        try:
            key = hd.private_key_at(self._seed.reveal(), s.index)
            signed = await self.gateway.build_usdt_transfer(
                key, self.hot_wallet_address, amount, self.cfg.max_sun)
        except (BadTransaction, hd.HdKeyError) as exc:
            await self.wait(s, f"cannot build the sweep: {exc}")
            return
        if not await self.db.tx(sweeps.store_sweep_tx, s.id, signed, amount, now_ms()):
            return
        event(log, "sweep_signed", sweep_id=s.id, txid=signed.txid, usdt_musdt=amount)
        self.at("signed")
        await self.broadcast(s.id, signed.txid, signed.signed_json, "broadcast")

    async def broadcast(self, sweep_id: int, txid: str, signed_json: str, point: str) -> None:
        answer = await self.gateway.broadcast(signed_json)
        self.at(point)
        accepted = answer.ok or answer.duplicate
        reason = None if accepted else (
            f"the node refused the transaction ({answer.code}: {answer.message[:200]}); "
            "it is broadcast again until it expires")
        await self.db.tx(sweeps.note_broadcast_tx, sweep_id, txid, answer.code, accepted,
                         reason, now_ms())
        event(log, "sweep_broadcast", sweep_id=sweep_id, txid=txid, code=answer.code)

    # -- following what was signed

    async def follow(self, s: Sweep, txid: str) -> None:
        stored = await self.db.read(sweeps.stored_tx, txid)
        if stored is None:
            return
        tx = await self.gateway.get_transaction(txid)
        if tx is not None and tx.in_block:
            await self._settle(s, txid, tx)
            return
        now = now_ms()
        if now < stored.expiration_ms:
            point = BROADCAST_POINTS[stored.kind]
            await self.broadcast(s.id, txid, stored.signed_json, point)
            return
        if stored.dead_after_block is None:
            if now >= stored.expiration_ms + self.expiry_margin_ms:
                head = await self.gateway.head_block_number()
                await self.db.tx(sweeps.set_dead_after_tx, txid, head + 1)
            return
        solid = await self.gateway.solidified_block_number()
        if solid < stored.dead_after_block:
            return
        tx = await self.gateway.get_transaction(txid)
        if tx is not None and tx.in_block:
            await self._settle(s, txid, tx)
            return
        if await self.db.tx(sweeps.expire_tx, s.id, txid, now_ms()):
            event(log, "sweep_tx_expired", sweep_id=s.id, txid=txid, solidified_block=solid)

    async def _settle(self, s: Sweep, txid: str, tx: ChainTx) -> None:
        if s.status == "signed":
            await self.db.tx(sweeps.mark_in_block_tx, s.id, txid, now_ms())
        if not tx.solidified:
            return
        stored = await self.db.read(sweeps.stored_tx, txid)
        if stored is not None and stored.kind in ("delegate", "undelegate"):
            await delegator.settle(self, s, txid, tx, stored.kind)
            return
        if s.status == "funding":
            ok = tx.succeeded
            reason = None if ok else f"the TRX top-up failed on chain ({tx.result}); retried"
        else:
            paid = any(t.to_address == self.hot_wallet_address and t.from_address == s.address
                       for t in tx.transfers_of(self.usdt_contract))
            ok = tx.succeeded and paid
            reason = None if ok else (
                f"the sweep failed on chain ({tx.result or 'FAILED'}, "
                f"{sweep_rules.trx(tx.fee_sun)} TRX burned); retried in a day")
        if await self.db.tx(sweeps.settle_tx, s.id, txid, ok, tx.result or "FAILED",
                            tx.fee_sun, tx.block_number or 0, reason, now_ms()):
            name = ("sweep_funded" if s.status == "funding" else
                    "sweep_confirmed" if ok else "sweep_failed")
            event(log, name, logging.INFO if ok else logging.WARNING, sweep_id=s.id,
                  txid=txid, fee_sun=tx.fee_sun, block=tx.block_number,
                  usdt=musdt_to_usdt_str(s.amount_musdt))
        if ok and s.status == "funding":
            fresh: Sweep | None = await self.db.read(sweeps.sweep, s.id)
            if fresh is not None and fresh.status == "funded":
                await self._advance(fresh)


SWEEPER = web.AppKey("sweeper", Sweeper)


def sweeper_from_app(app: web.Application,
                     hook: Callable[[str], None] | None = None) -> Sweeper:
    info = app[CHAIN_INFO]
    config = app[CONFIG]
    seed = load_deposit_seed(config, app.get(DEVNET))
    return Sweeper(app[DB], app[GATEWAY], info.usdt_contract, seed, info.hot_wallet_key,
                   info.hot_wallet_address, config.sweeps, hook, app[CHAIN_PRICES])


async def sweeper_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the sweeper job every sweeps.interval_s, in address_per_user mode only."""
    if app[CONFIG].deposits.mode != "address_per_user":
        yield
        return
    sweeper = sweeper_from_app(app)
    app[SWEEPER] = sweeper
    async with interval_job(app, sweeper.run_once, app[CONFIG].sweeps.interval_s, "sweeper",
                            sweeper.stop):
        yield
