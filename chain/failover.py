"""More than one node behind one ChainGateway: `FailoverGateway` holds one TronClient per
configured endpoint and answers every call from the first node that answers it.

- Reads go to the nodes in their configured order; a node that errs or times out is skipped
  for a growing while (1 s, 2 s, 4 s ... up to `backoff_max_s`), the read goes on to the next
  one, and each failover is one JSON log line (`chain_failover`) and a count the app shows in
  /metrics (`stats()`). When every node is backing off they are all tried anyway, in order: a
  node in backoff is a poorer choice, never no choice.
- One answer is one node's. `get_transaction` and `lookup_transaction` (is this transaction
  in a block, is that block solidified, is it absent through this height) read the
  transaction, its receipt and the solidified height from the same node, and a node that
  fails half-way is asked again from the start on the next node: two nodes at different
  heights would otherwise combine into an answer neither gave ("in block 105" from one,
  "solidified up to 110" from the other, while the first has only solidified up to 100 and
  may still drop block 105). `block_transfers(n)` is answered only by a node that has itself
  shown block n solidified: a lagging node answers an empty list for a block it does not
  have yet, which would be a missed deposit.
- The head height used to bound a transaction's expiry is the highest any node has shown
  (a higher bound only makes the sender wait longer before it counts a transaction as
  never mined; a lower one, from a lagging node, could count one that a block holds).
- A broadcast goes to every node at once (a signed transaction is the same bytes
  everywhere): it succeeds when one node accepts it, and a node that already has it
  (DUP_TRANSACTION_ERROR, typically because another node relayed it first) counts as one
  that accepted it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

from meterchat.chain.client import ClientSettings, TronClient
from meterchat.chain.gateway import (
    AccountResource,
    BlockTransfers,
    BroadcastResult,
    ChainTx,
    ChainUnavailable,
    SignedTransfer,
    TxLookup,
)

log = logging.getLogger("meterchat.chain")

T = TypeVar("T")
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0


def endpoint_label(url: str) -> str:
    """scheme://host[:port] of an endpoint: what logs and metrics name a node by (never a
    path, query or user:password an operator may have put in the URL)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}" if parts.scheme else url


def _event(name: str, level: int = logging.INFO, **fields: object) -> None:
    # The app's JSON formatter (core/logs.py) prints `fields` as keys of the line.
    log.log(level, name, extra={"fields": fields})


@dataclass
class NodeState:
    """What the gateway knows of one node: failures in a row and the backoff they earned."""

    label: str
    client: TronClient
    up: bool = True
    failures: int = 0  # in a row
    skip_until: float = 0.0
    failovers: int = 0  # reads moved away from this node, in all
    errors: int = 0  # failed requests, reads and broadcasts, in all
    solid_seen: int = -1  # the highest solidified block this node has shown


class FailoverGateway:
    """ChainGateway over several nodes (chain/gateway.py)."""

    def __init__(self, clients: Sequence[TronClient], *,
                 backoff_base_s: float = BACKOFF_BASE_S, backoff_max_s: float = BACKOFF_MAX_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not clients:
            raise ValueError("at least one node")
        self.nodes = [NodeState(endpoint_label(c.settings.endpoint), c) for c in clients]
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.clock = clock
        self.head_seen = -1

    @classmethod
    def of_endpoints(cls, endpoints: Sequence[str], usdt_contract: str, timeout_s: float,
                     api_key_env: str = "", backoff_base_s: float = BACKOFF_BASE_S,
                     backoff_max_s: float = BACKOFF_MAX_S,
                     clock: Callable[[], float] = time.monotonic) -> FailoverGateway:
        return cls([TronClient(ClientSettings(e, usdt_contract, timeout_s, api_key_env))
                    for e in endpoints], backoff_base_s=backoff_base_s,
                   backoff_max_s=backoff_max_s, clock=clock)

    def stats(self) -> list[NodeState]:
        return list(self.nodes)

    # -- choosing and marking nodes

    def _order(self) -> list[NodeState]:
        now = self.clock()
        ready = [n for n in self.nodes if n.skip_until <= now]
        waiting = sorted((n for n in self.nodes if n.skip_until > now),
                         key=lambda n: n.skip_until)
        return ready + waiting

    def _ok(self, node: NodeState) -> None:
        if not node.up:
            _event("chain_node_up", endpoint=node.label, after_failures=node.failures)
        node.up, node.failures, node.skip_until = True, 0, 0.0

    def _failed(self, node: NodeState) -> float:
        """Mark a failure; returns how long the node is skipped now."""
        node.up = False
        node.failures += 1
        node.errors += 1
        wait = min(self.backoff_max_s, self.backoff_base_s * 2.0 ** (node.failures - 1))
        node.skip_until = self.clock() + wait
        return wait

    async def _read(self, op: str, fn: Callable[[NodeState], Awaitable[T]]) -> T:
        order = self._order()
        last: BaseException | None = None
        for i, node in enumerate(order):
            try:
                answer = await fn(node)
            except (ChainUnavailable, TimeoutError) as exc:
                last = exc
                wait = self._failed(node)
                nxt = order[i + 1].label if i + 1 < len(order) else None
                if nxt is not None:
                    node.failovers += 1
                _event("chain_failover" if nxt else "chain_node_error", logging.WARNING,
                       op=op, endpoint=node.label, next_endpoint=nxt,
                       error=f"{type(exc).__name__}: {exc}"[:300],
                       failures=node.failures, skipped_for_s=wait)
                continue
            self._ok(node)
            return answer
        raise ChainUnavailable(f"{op}: no node answered ({last})")

    # -- ChainGateway

    async def get_transaction(self, txid: str) -> ChainTx | None:
        return await self._read("get_transaction", lambda n: n.client.get_transaction(txid))

    async def lookup_transaction(self, txid: str) -> TxLookup:
        return await self._read("lookup_transaction",
                                lambda n: n.client.lookup_transaction(txid))

    async def solidified_block_number(self) -> int:
        async def one(node: NodeState) -> int:
            solid = await node.client.solidified_block_number()
            node.solid_seen = max(node.solid_seen, solid)
            return solid
        return await self._read("solidified_block_number", one)

    async def head_block_number(self) -> int:
        head = await self._read("head_block_number", lambda n: n.client.head_block_number())
        self.head_seen = max(self.head_seen, head)
        return self.head_seen

    async def block_transfers(self, block_number: int, contract: str) -> BlockTransfers:
        async def one(node: NodeState) -> BlockTransfers:
            if node.solid_seen < block_number:
                node.solid_seen = max(node.solid_seen,
                                      await node.client.solidified_block_number())
                if node.solid_seen < block_number:
                    raise ChainUnavailable(f"this node has solidified only up to block "
                                           f"{node.solid_seen}, not {block_number}")
            return await node.client.block_transfers(block_number, contract)
        return await self._read("block_transfers", one)

    async def usdt_balance(self, address: str) -> int:
        return await self._read("usdt_balance", lambda n: n.client.usdt_balance(address))

    async def trx_balance_sun(self, address: str) -> int:
        return await self._read("trx_balance_sun", lambda n: n.client.trx_balance_sun(address))

    async def usdt_transfer_energy(self, owner: str, to_address: str, amount_musdt: int) -> int:
        return await self._read("usdt_transfer_energy", lambda n: n.client.usdt_transfer_energy(
            owner, to_address, amount_musdt))

    async def energy_price_sun(self) -> int:
        return await self._read("energy_price_sun", lambda n: n.client.energy_price_sun())

    async def bandwidth_price_sun(self) -> int:
        return await self._read("bandwidth_price_sun", lambda n: n.client.bandwidth_price_sun())

    async def account_exists(self, address: str) -> bool:
        return await self._read("account_exists", lambda n: n.client.account_exists(address))

    async def build_trx_transfer(self, private_key_hex: str, to_address: str,
                                 amount_sun: int) -> SignedTransfer:
        return await self._read("build_trx_transfer", lambda n: n.client.build_trx_transfer(
            private_key_hex, to_address, amount_sun))

    async def build_usdt_transfer(
        self, private_key_hex: str, to_address: str, amount_musdt: int, fee_limit_sun: int
    ) -> SignedTransfer:
        return await self._read("build_usdt_transfer", lambda n: n.client.build_usdt_transfer(
            private_key_hex, to_address, amount_musdt, fee_limit_sun))

    async def account_resource(self, address: str) -> AccountResource:
        return await self._read("account_resource",
                                lambda n: n.client.account_resource(address))

    async def delegatable_sun(self, owner: str, resource: str) -> int:
        return await self._read("delegatable_sun",
                                lambda n: n.client.delegatable_sun(owner, resource))

    async def build_delegation(self, private_key_hex: str, receiver: str, balance_sun: int,
                               resource: str, undelegate: bool = False) -> SignedTransfer:
        return await self._read("build_delegation", lambda n: n.client.build_delegation(
            private_key_hex, receiver, balance_sun, resource, undelegate))

    async def broadcast(self, signed_json: str) -> BroadcastResult:
        async def one(node: NodeState) -> BroadcastResult | BaseException:
            try:
                answer = await node.client.broadcast(signed_json)
            except (ChainUnavailable, TimeoutError) as exc:
                self._failed(node)
                _event("chain_node_error", logging.WARNING, op="broadcast",
                       endpoint=node.label, error=f"{type(exc).__name__}: {exc}"[:300],
                       failures=node.failures)
                return exc
            self._ok(node)
            return answer

        answers = await asyncio.gather(*(one(n) for n in self.nodes))
        results = [a for a in answers if isinstance(a, BroadcastResult)]
        if not results:
            raise ChainUnavailable(f"broadcast: no node answered ({answers[0]})")
        accepted = next((r for r in results if r.ok), None)
        return accepted or next((r for r in results if r.duplicate), results[0])

    async def close(self) -> None:
        for node in self.nodes:
            await node.client.close()
