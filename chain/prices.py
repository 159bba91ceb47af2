"""The chain's own prices, read and cached once per app for every room that pays for energy
(withdrawals' "auto" network fee, the sweeper's estimate): the prices of energy and of
bandwidth (getchainparameters' getEnergyFee, getTransactionFee) at most every
ENERGY_PRICE_TTL_S (the committee changes
it rarely), and the energy a USDT transfer from `owner` to `to` needs
(triggerconstantcontract) at most every DESTINATION_TTL_S per (owner, destination).

The energy is read for moving 1 µUSDT: a transfer's energy does not depend on its amount,
and the estimate then works whatever the owner holds. Errors are the gateway's (ChainError):
nothing is guessed when the node does not answer."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from meterchat.chain.gateway import ChainGateway

ENERGY_PRICE_TTL_S = 600.0
DESTINATION_TTL_S = 60.0
MAX_DESTINATIONS = 10_000


class ChainPrices:
    """One per app (chain_ctx.CHAIN_PRICES): reads and caches the chain's energy figures."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._price: tuple[float, int] | None = None
        self._bandwidth_price: tuple[float, int] | None = None
        self._energy: OrderedDict[tuple[str, str], tuple[float, int]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def energy_price_sun(self, gateway: ChainGateway) -> int:
        async with self._lock:
            now = self.clock()
            if self._price is None or now - self._price[0] >= ENERGY_PRICE_TTL_S:
                self._price = (now, await gateway.energy_price_sun())
            return self._price[1]

    async def bandwidth_price_sun(self, gateway: ChainGateway) -> int:
        """Sun per byte of bandwidth burned (getTransactionFee), as long as the energy's."""
        async with self._lock:
            now = self.clock()
            seen = self._bandwidth_price
            if seen is None or now - seen[0] >= ENERGY_PRICE_TTL_S:
                seen = self._bandwidth_price = (now, await gateway.bandwidth_price_sun())
            return seen[1]

    async def usdt_transfer_energy(self, gateway: ChainGateway, owner: str, to: str) -> int:
        async with self._lock:
            now = self.clock()
            seen = self._energy.get((owner, to))
            if seen is None or now - seen[0] >= DESTINATION_TTL_S:
                seen = (now, await gateway.usdt_transfer_energy(owner, to, 1))
                self._energy[(owner, to)] = seen
            self._energy.move_to_end((owner, to))
            while len(self._energy) > MAX_DESTINATIONS:
                self._energy.popitem(last=False)
            return seen[1]
