"""Helpers for call tests: users on real WebSockets with scripted media heartbeats."""

from __future__ import annotations

from dataclasses import dataclass

from meterchat.tools.peer import Client, SyntheticMedia
from tests.conftest import Actor, actor, fund, seller_online

MEDIA_INTERVAL_S = 0.3


async def ws_client(app_client, who: Actor) -> Client:
    c = Client(str(app_client.make_url("")))
    await c.__aenter__()
    c.token = who.token
    c.user = who.user
    await c.open_ws()
    return c


@dataclass
class LiveCall:
    call_id: str
    buyer: Actor
    seller: Actor
    bc: Client
    sc: Client
    bm: SyntheticMedia
    sm: SyntheticMedia

    async def wait_state(self, state: str, within: float = 10.0, client: Client | None = None,
                         ) -> dict:
        while True:
            msg = await (client or self.bc).next("call.state", self.call_id, within=within)
            if msg["call"]["state"] == state:
                return msg["call"]

    async def end(self) -> dict:
        resp = await self.buyer.post(f"/api/calls/{self.call_id}/end")
        assert resp.status == 200, await resp.text()
        return (await resp.json())["call"]

    async def close(self) -> None:
        for m in (self.bm, self.sm):
            await m.stop()
        for c in (self.bc, self.sc):
            await c.close()


async def start_live_call(app_client, rate: int = 600, funds: int = 1000,
                          spend_cap: str | None = None) -> LiveCall:
    seller = await seller_online(app_client, rate)
    # The seller's socket first: with many calls set up at once, the buyers' registrations
    # could otherwise outlast the presence grace and take the seller offline.
    sc = await ws_client(app_client, seller)
    buyer = await actor(app_client)
    await fund(app_client, buyer.id, funds)
    bc = await ws_client(app_client, buyer)
    return await call_between(app_client, buyer, seller, bc, sc, rate, spend_cap)


async def call_between(app_client, buyer: Actor, seller: Actor, bc: Client, sc: Client,
                       rate: int = 600, spend_cap: str | None = None) -> LiveCall:
    """A live call between two users whose sockets are open (again and again, for tests of
    what repeating something gains), with fresh synthetic heartbeats on both sides."""
    body = {"seller_id": seller.id, "rate": rate}
    if spend_cap is not None:
        body["spend_cap"] = spend_cap
    resp = await buyer.post("/api/calls", body)
    assert resp.status == 201, await resp.text()
    call_id = (await resp.json())["call"]["id"]
    await sc.next("call.incoming", call_id)
    resp = await seller.post(f"/api/calls/{call_id}/accept")
    assert resp.status == 200, await resp.text()
    bm = SyntheticMedia(bc, call_id, MEDIA_INTERVAL_S)
    sm = SyntheticMedia(sc, call_id, MEDIA_INTERVAL_S)
    bm.start()
    sm.start()
    live = LiveCall(call_id, buyer, seller, bc, sc, bm, sm)
    await live.wait_state("live")
    return live
