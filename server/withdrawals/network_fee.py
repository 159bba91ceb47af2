"""The "auto" network fee (withdrawals.network_fee_usdt = "auto"): the energy a USDT transfer
from the hot wallet to an address needs (triggerconstantcontract: 64,285 to an address
holding USDT, 130,285 to one holding none) and the chain's prices of energy and bandwidth
(getchainparameters' getEnergyFee and getTransactionFee), turned into µUSDT by
rules.auto_network_fee (the transfer's 345 bytes of bandwidth counted).

The quote a seller is shown and the request they confirm read the same cached figures: the
app's one chain.prices.ChainPrices cache (shared with the sweeper), which reads the prices
at most every 10 minutes and a destination's energy at most every minute."""

from __future__ import annotations

from meterchat.chain.gateway import ChainError, ChainGateway
from meterchat.chain.prices import ChainPrices
from meterchat.core.config import WithdrawalsConfig
from meterchat.core.errors import Unavailable
from meterchat.withdrawals.rules import NetworkFee, auto_network_fee


class NetworkFeeReader:
    """One per app: what an "auto" fee needs, from the app's ChainPrices."""

    def __init__(self, prices: ChainPrices) -> None:
        self.prices = prices

    async def fee(self, gateway: ChainGateway, cfg: WithdrawalsConfig, owner: str,
                  to: str) -> NetworkFee | None:
        """The network fee of a withdrawal to `to` (None when it is a fixed number).
        An unreachable chain is 503 chain_unavailable: no fee is guessed."""
        if not cfg.network_fee_auto:
            return None
        try:
            price = await self.prices.energy_price_sun(gateway)
            bandwidth_price = await self.prices.bandwidth_price_sun(gateway)
            energy = await self.prices.usdt_transfer_energy(gateway, owner, to)
        except ChainError as exc:
            raise Unavailable("the TRON node is not answering, so the network fee cannot be "
                              "read; try again in a minute", "chain_unavailable") from exc
        return auto_network_fee(energy, price, cfg.trx_usdt_price, bandwidth_price)
