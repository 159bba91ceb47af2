"""POST /api/calls/{id}/tip and GET /api/calls/{id}/tips (server/tips.py owns the rules)."""

from __future__ import annotations

from aiohttp import web

from server import tips, validate
from server.appkeys import CONFIG, DB
from server.auth import current_user, require_role
from server.calls import HUB
from server.errors import NotFound


def _call_id(request: web.Request) -> int:
    text = request.match_info["id"]
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise NotFound("no such call of yours", "call_not_found")
    return int(text)


async def give(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    call_id = _call_id(request)
    idem_key = validate.idempotency_key(request.headers.get("Idempotency-Key"))
    body = await validate.read_json(request)
    cfg = request.app[CONFIG].economy
    if "tokens" not in body:
        validate.string(body, "tokens")  # the missing-field error
    amount_musdt = tips.check_tip_tokens(body["tokens"], cfg)
    tip = await request.app[DB].tx(tips.give_tx, call_id, user.id, amount_musdt, idem_key, cfg)
    if not tip.replayed:
        message = {"type": "tip", "call_id": str(call_id), "tip": tip.view()}
        hub = request.app[HUB]
        for party in (tip.buyer_id, tip.seller_id):
            await hub.send(party, message)
    status = 200 if tip.replayed else 201
    headers = {"Idempotent-Replayed": "true"} if tip.replayed else None
    return web.json_response({"tip": tip.view()}, status=status, headers=headers)


async def list_tips(request: web.Request) -> web.Response:
    user = await current_user(request)
    call_id = _call_id(request)
    found = await request.app[DB].read(tips.of_call, call_id, user.id)
    return web.json_response({"tips": [t.view() for t in found]})


def setup(app: web.Application) -> None:
    app.router.add_post("/api/calls/{id}/tip", give)
    app.router.add_get("/api/calls/{id}/tips", list_tips)
