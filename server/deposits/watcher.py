"""The deposit watcher: an apscheduler job that follows solidified blocks from a stored cursor,
records every USDT Transfer to the deposit address (crediting the intent it matches, else
`unmatched` for the operator), every USDT Transfer to a personal deposit address (credited
to its owner, summed while below deposits.min_usdt: deposits/personal.py; one dict lookup
per log in `PersonalAddresses`; transfers out of a deposit address, i.e. sweeps, ignored)
and every USDT Transfer out of the hot wallet (for reconcile), and moves the cursor in the
same SQLite transaction as the block's records, so no block is skipped and none is credited
twice across restarts.

Node errors and timeouts never stop it: the pass logs why and backs off (doubling up to a
minute), then resumes from the cursor.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator

from aiohttp import web

from meterchat.appkeys import CONFIG, DB
from meterchat.chain.gateway import ChainGateway, TransferLog
from meterchat.chain_ctx import CHAIN_INFO, DEVNET, GATEWAY
from meterchat.core.db import Database, now_ms
from meterchat.core.jobs import interval_job
from meterchat.core.logs import event
from meterchat.core.retrying import RetryingJob
from meterchat.deposits import credits as deposits
from meterchat.deposits import personal as personal_deposits
from meterchat.deposits.addresses import PersonalAddress, PersonalAddresses, all_addresses
from meterchat.events import outbox as events
from meterchat.events import rules as event_rules
from meterchat.operator import reconcile
from meterchat.web.metrics import METRICS, Metrics

log = logging.getLogger("meterchat.deposits.watcher")
# One line per pass and per node request would drown the log; our own events say what
# happened (deposit_recorded, watcher_node_error).
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_BLOCKS_PER_PASS = 2_000


class DepositWatcher(RetryingJob):
    def __init__(self, db: Database, gateway: ChainGateway, usdt_contract: str,
                 deposit_address: str, interval_s: float, metrics: Metrics | None = None,
                 hot_wallet_address: str | None = None, lag_alert_blocks: int = 0,
                 personal: PersonalAddresses | None = None, min_musdt: int = 0) -> None:
        self.db = db
        self.lag_alert_blocks = lag_alert_blocks
        self.lag_blocks: int | None = None
        self._lagging: bool | None = None  # as last written (None: not known yet)
        self.personal = personal if personal is not None else PersonalAddresses()
        self.min_musdt = min_musdt
        self.hot_wallet_address = hot_wallet_address
        self.gateway = gateway
        self.usdt_contract = usdt_contract
        self.deposit_address = deposit_address
        self.interval_s = interval_s
        self.metrics = metrics
        super().__init__("deposit watcher", "watcher_node_error", interval_s, log,
                         recovered_event="watcher_recovered")

    async def run_once(self) -> int:
        """One pass: read every solidified block past the cursor (up to a limit). Returns
        the number of blocks recorded. Never raises for node trouble (core/retrying.py);
        whether the watcher lags is looked at after every pass, failed or not."""
        done = await self.run_guarded(self._pass, after=self._observe_lag)
        return done or 0

    async def _observe_lag(self) -> None:
        """watcher.lagging: written only when the condition crosses (the stored state is
        read once, then kept here)."""
        lagging = event_rules.watcher_lagging(self.lag_blocks, self.failures,
                                              self.lag_alert_blocks)
        if lagging == self._lagging:
            return
        try:
            await self.db.tx(events.threshold_tx, event_rules.WATCHER_LAGGING, lagging, {
                "lag_blocks": self.lag_blocks, "failed_passes": self.failures,
                "threshold_blocks": self.lag_alert_blocks,
                "error": self.last_error[:300] if self.last_error else None}, now_ms())
        except Exception:  # the database is what fails: the next pass tries again
            log.exception("watcher.lagging could not be written")
            return
        self._lagging = lagging

    async def _pass(self) -> int:
        solid = await self.gateway.solidified_block_number()
        at = await self.db.read(deposits.cursor)
        if at is None:
            # First start: follow from the current solidified block on (history before
            # meterchat existed holds no intents).
            await self.db.tx(deposits.set_cursor_tx, solid, now_ms())
            event(log, "watcher_cursor_initialised", block=solid)
            at = solid
        done = 0
        while at < solid and done < MAX_BLOCKS_PER_PASS:
            n = at + 1
            bt = await self.gateway.block_transfers(n, self.usdt_contract)
            ours = tuple(t for t in bt.transfers
                         if t.to_address == self.deposit_address and t.amount > 0)
            out = tuple(t for t in bt.transfers
                        if self.hot_wallet_address and t.from_address == self.hot_wallet_address)
            mine = self._personal(bt.transfers)
            recorded, personal = await self.db.tx(record_block_tx, n, bt.block_time_ms, ours,
                                                  mine, out, self.min_musdt, now_ms())
            for r in recorded:
                if r.fresh:
                    event(log, "deposit_recorded", txid=r.txid, log_index=r.log_index,
                          status=r.status, amount_musdt=r.amount_musdt, block=n)
            for p in personal:
                if p.fresh:
                    event(log, "deposit_recorded", txid=p.txid, log_index=p.log_index,
                          status=p.status, amount_musdt=p.amount_musdt, block=n,
                          user_id=p.user_id, credited_musdt=p.credited_musdt)
            at = n
            done += 1
        self.lag_blocks = max(0, solid - at)
        if self.metrics is not None:
            self.metrics.watcher_lag_blocks.set(self.lag_blocks)
        return done


    def _personal(self, transfers: tuple[TransferLog, ...]
                  ) -> tuple[tuple[TransferLog, PersonalAddress], ...]:
        """The logs paying a personal address (a dict lookup each), not from a deposit
        address (a sweep, or one buyer's address paying another's)."""
        if not self.personal:
            return ()
        out = []
        for t in transfers:
            owner = self.personal.get(t.to_address)
            if owner is None or t.amount <= 0 or t.from_address in self.personal \
                    or t.from_address == self.deposit_address:
                continue
            out.append((t, owner))
        return tuple(out)


def record_block_tx(conn: sqlite3.Connection, block_number: int, block_time_ms: int | None,
                    ours: tuple[TransferLog, ...],
                    mine: tuple[tuple[TransferLog, PersonalAddress], ...],
                    out: tuple[TransferLog, ...], min_musdt: int, at_ms: int
                    ) -> tuple[list[deposits.Recorded], list[personal_deposits.PersonalRecorded]]:
    """One block in one transaction: its deposits (to the shared address and to personal
    ones), its transfers out of the hot wallet, the cursor."""
    recorded = personal_deposits.record_block_tx(conn, block_number, block_time_ms, ours, mine,
                                                 min_musdt, at_ms)
    reconcile.record_outgoing_tx(conn, block_number, block_time_ms, out, at_ms)
    return recorded


WATCHER = web.AppKey("deposit_watcher", DepositWatcher)
# The personal deposit addresses (address_per_user), shared by the watcher, the routes that
# allocate them and the sweeper.
ADDRESSES = web.AppKey("personal_addresses", PersonalAddresses)


async def watcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the watcher job, first pass at once, then every watcher_interval_s."""
    config = app[CONFIG]
    info = app[CHAIN_INFO]
    devnet = app.get(DEVNET)
    personal = PersonalAddresses(await app[DB].read(all_addresses))
    app[ADDRESSES] = personal
    watcher = DepositWatcher(
        app[DB], app[GATEWAY], info.usdt_contract, info.deposit_address,
        config.deposits.watcher_interval_s, app.get(METRICS),
        info.hot_wallet_address or (devnet.hot_wallet_address if devnet else None),
        lag_alert_blocks=config.events.watcher_lag_blocks,
        personal=personal, min_musdt=config.deposits.min_musdt,
    )
    app[WATCHER] = watcher
    async with interval_job(app, watcher.run_once, config.deposits.watcher_interval_s,
                            "deposit_watcher", watcher.stop):
        yield
