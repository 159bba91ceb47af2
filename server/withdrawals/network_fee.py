"""The "auto" network fee's readings from the chain (withdrawals.network_fee_usdt = "auto"):
the energy a USDT transfer from the hot wallet to an address needs (triggerconstantcontract:
64,285 to an address holding USDT, 130,285 to one holding none) and the chain's prices of
energy and bandwidth (getchainparameters' getEnergyFee and getTransactionFee), turned into
µUSDT by rules.auto_network_fee (the transfer's 345 bytes of bandwidth counted).

The quote a seller is shown and the request they confirm read the same cached figures: the
energy price at most every ENERGY_PRICE_TTL_S (the committee changes it rarely), a
destination's energy at most every DESTINATION_TTL_S. The estimate moves 1 µUSDT (the energy
of a transfer does not depend on its amount, and the estimate then works whatever the hot
wallet holds)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from meterchat.chain.gateway import ChainError, ChainGateway
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import Unavailable
from meterchat.withdrawals.rules import NetworkFee, auto_network_fee

ENERGY_PRICE_TTL_S = 600.0
DESTINATION_TTL_S = 60.0
MAX_DESTINATIONS = 10_000


class NetworkFeeReader:
    """One per app: reads and caches what an "auto" fee needs."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._price: tuple[float, int, int] | None = None  # (read at, energy, bandwidth)
        self._energy: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = asyncio.Lock()

    async def _prices(self, gateway: ChainGateway) -> tuple[int, int]:
        """Sun per unit of energy and per byte of bandwidth."""
        now = self.clock()
        if self._price is None or now - self._price[0] >= ENERGY_PRICE_TTL_S:
            self._price = (now, await gateway.energy_price_sun(),
                           await gateway.bandwidth_price_sun())
        return self._price[1], self._price[2]

    async def _transfer_energy(self, gateway: ChainGateway, owner: str, to: str) -> int:
        now = self.clock()
        seen = self._energy.get(to)
        if seen is None or now - seen[0] >= DESTINATION_TTL_S:
            seen = (now, await gateway.usdt_transfer_energy(owner, to, 1))
            self._energy[to] = seen
            self._energy.move_to_end(to)
            while len(self._energy) > MAX_DESTINATIONS:
                self._energy.popitem(last=False)
        return seen[1]

    async def fee(self, gateway: ChainGateway, cfg: WithdrawalsConfig, owner: str,
                  to: str) -> NetworkFee | None:
        """The network fee of a withdrawal to `to` (None when it is a fixed number).
        An unreachable chain is 503 chain_unavailable: no fee is guessed."""
        if not cfg.network_fee_auto:
            return None
        try:
            async with self._lock:
                price, bandwidth_price = await self._prices(gateway)
                energy = await self._transfer_energy(gateway, owner, to)
        except ChainError as exc:
            raise Unavailable("the TRON node is not answering, so the network fee cannot be "
                              "read; try again in a minute", "chain_unavailable") from exc
        return auto_network_fee(energy, price, cfg.trx_usdt_price, bandwidth_price)
