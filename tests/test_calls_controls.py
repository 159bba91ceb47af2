"""Call controls over real sockets: a party's `media_state` (muted, camera off) is relayed
to the other party only, the sender learns the other side's last state (after a reload),
bad values and strangers get an `error`, and billing does not read it (README: camera off)."""

from __future__ import annotations

import pytest

from tests.calls_helpers import clocked_app, start_live_call, ws_client
from tests.conftest import actor, fast_calls_config
from tests.test_calls_chat import nothing_more


@pytest.fixture
async def app_client(aiohttp_client, tmp_path):
    return (await clocked_app(aiohttp_client, fast_calls_config(tmp_path))).client


async def media_state(client, call_id, audio, video) -> None:
    await client.send({"type": "media_state", "call_id": call_id, "audio": audio,
                       "video": video})


async def test_camera_off_reaches_the_other_party_and_a_reloaded_page_learns_it(app_client):
    call = await start_live_call(app_client)
    try:
        s0 = len(call.sc.messages)
        await media_state(call.bc, call.call_id, True, False)
        got = await call.sc.next("media_state", call.call_id, after=s0)
        assert got == {"type": "media_state", "call_id": call.call_id,
                       "from": call.buyer.id, "audio": True, "video": False}
        # The sender is not echoed: it knows its own state.
        await nothing_more(call.bc, "media_state", 0)
        # A new socket of the seller (a reload) says its state and hears the buyer's.
        again = await ws_client(app_client, call.seller)
        try:
            await media_state(again, call.call_id, False, True)
            back = await again.next("media_state", call.call_id)
            assert (back["from"], back["audio"], back["video"]) == (call.buyer.id, True, False)
            told = await call.bc.next("media_state", call.call_id)
            assert (told["from"], told["audio"], told["video"]) == (call.seller.id, False, True)
        finally:
            await again.close()
        # Time still counts with the camera off: media flows (black frames), so the
        # heartbeats keep the call live and billed.
        await call.run(7)
        ended = await call.end()
        assert ended["live_seconds"] >= 6 and ended["billed_tenths"] >= 1, ended
    finally:
        await call.close()


async def test_bad_media_states_and_strangers_get_an_error_and_reach_nobody(app_client):
    call = await start_live_call(app_client)
    stranger = await actor(app_client)
    sx = await ws_client(app_client, stranger)
    try:
        s0 = len(call.sc.messages)
        for audio, video in ((1, True), (True, None), ("false", False)):
            at = len(call.bc.messages)
            await media_state(call.bc, call.call_id, audio, video)
            assert (await call.bc.next("error", after=at))["code"] == "invalid_message"
        await media_state(sx, call.call_id, False, False)
        assert (await sx.next("error"))["code"] == "not_your_call"
        await nothing_more(call.sc, "media_state", s0)
        await call.end()
        at = len(call.bc.messages)
        await media_state(call.bc, call.call_id, False, False)
        assert (await call.bc.next("error", after=at))["code"] == "not_your_call"
    finally:
        await sx.close()
        await call.close()
