"""Seller profile, online status and the public listing (API.md "Sellers"); seller photos,
their files and the operator's photo queue; blocks and reports between users. Parses the
input, calls the store, answers with the JSON views. Favourites and the `seller.online`
notice a seller's going online sends to them (through the hub's send queues)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from meterchat.accounts.auth import current_user, enforce, require_role, session_of
from meterchat.appkeys import CONFIG, DB, LIMITS
from meterchat.calls.manager import CALLS, HUB
from meterchat.core import validate
from meterchat.core.db import now_ms
from meterchat.core.errors import NotFound, PayloadTooLarge, Unauthorized, Unprocessable
from meterchat.core.units import PPM, commission_ppm_from_percent, musdt_to_tokens_str
from meterchat.mail import messages
from meterchat.money.billing_rules import commission_split, segment_price_musdt
from meterchat.sellers import blocks, favourites, images, photos, rules, store
from meterchat.sellers.store import Seller


def seller_json(seller: Seller) -> dict[str, Any]:
    """A seller as the API shows one (ids as strings, the rating with one decimal)."""
    return {
        "id": str(seller.user_id),
        "display_name": seller.display_name,
        "rate": seller.rate,
        "online": seller.online,
        "busy": seller.busy,
        "rating": None if seller.rating is None else f"{seller.rating:.1f}",
        "calls": seller.calls,
        "bio": seller.bio,
        "tags": seller.tags,
        "languages": seller.languages,
        # The approved photo (profile size, and the square card of the list); null until
        # the operator approves one: the page shows initials.
        "photo_url": photos.url(seller.photo_profile) if seller.photo_profile else None,
        "photo_card_url": photos.url(seller.photo_card) if seller.photo_card else None,
        "favourite": seller.favourite,  # in the asking buyer's favourites
    }


def _percent(ppm: int) -> str:
    """250000 -> "25", 125000 -> "12.5"."""
    whole, frac = divmod(ppm * 100, PPM)
    return str(whole) if frac == 0 else f"{whole}.{str(frac).rjust(6, '0').rstrip('0')}"


async def own_seller_json(request: web.Request, seller: Seller) -> dict[str, Any]:
    """The seller's own view: the public one, plus the commission the platform takes of
    this seller's calls and what a minute at the saved rate earns after it (the split the
    billing makes of each minute)."""
    ppm = await request.app[DB].read(store.commission_ppm_of, seller.user_id)
    if ppm is None:
        ppm = commission_ppm_from_percent(request.app[CONFIG].billing.commission_percent)
    earned, _ = commission_split(10 * segment_price_musdt(seller.rate), ppm)
    return {**seller_json(seller), "commission_percent": _percent(ppm),
            "earns_per_minute": musdt_to_tokens_str(earned)}


def _user_id(request: web.Request) -> int:
    return validate.path_id(request, "user")


def _labels(body: validate.Body, name: str) -> list[str] | None:
    """Tags or languages from the body; None when left out (the saved ones stay)."""
    if body.get(name) is None:
        return None
    return rules.clean_labels(validate.string_list(body, name), name)


async def put_profile(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    billing = request.app[CONFIG].billing
    rate = validate.integer(body, "rate")
    rules.check_rate(rate, billing.min_rate, billing.max_rate)
    bio = validate.string(body, "bio", required=False, max_len=rules.MAX_BIO_CHARS)
    tags = _labels(body, "tags")
    languages = _labels(body, "languages")
    seller = await request.app[DB].tx(store.save_profile_tx, user.id, rate, bio, tags,
                                      languages)
    return web.json_response({"seller": await own_seller_json(request, seller)})


async def get_own_profile(request: web.Request) -> web.Response:
    """The seller's own profile, or null before the first save (a new seller's dashboard asks
    this on every visit, so "none yet" is an answer, not a 404)."""
    user = await require_role(request, "seller")
    try:
        seller = await request.app[DB].read(store.get_seller, user.id)
    except NotFound:
        return web.json_response({"seller": None})
    return web.json_response({"seller": await own_seller_json(request, seller)})


async def put_status(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    body = await validate.read_json(request)
    online = validate.boolean(body, "online")
    config, hub = request.app[CONFIG], request.app[HUB]
    minutes = config.favourites.notice_interval_minutes
    done = await request.app[DB].tx(
        favourites.set_online_tx, user.id, online, now_ms(), int(minutes * 60_000),
        frozenset(hub.sockets), messages.links_base(config), minutes)
    seller = done.seller
    if online:
        hub.watch_presence(user.id)
        # Each notice goes into that buyer's bounded send queue; nothing here waits.
        notice = {"type": "seller.online", "seller": seller_json(seller)}
        for buyer_id in done.notify_buyer_ids:
            hub.send(buyer_id, notice)
    else:
        # Going offline ends the seller's call; its end changes `busy`, so read again.
        await request.app[CALLS].end_calls_of_user(user.id, "seller_offline")
        seller = await request.app[DB].read(store.get_seller, user.id)
    return web.json_response({"seller": seller_json(seller)})


async def list_sellers(request: web.Request) -> web.Response:
    viewer_id = await _viewer_id(request)  # the listing is public
    max_rate = validate.query_int(request, "max_rate")
    online = validate.query_flag(request, "online")
    tag = request.query.get("tag")
    language = request.query.get("language")
    only_favourites = bool(validate.query_flag(request, "favourites"))
    if only_favourites and viewer_id is None:
        raise Unauthorized("log in to see your favourites", "unauthorized")
    found = await request.app[DB].read(
        lambda c: store.list_sellers(c, online=online, max_rate=max_rate, tag=tag,
                                     language=language, viewer_id=viewer_id,
                                     favourites=only_favourites))
    return web.json_response({"sellers": [seller_json(s) for s in found]})


async def _viewer_id(request: web.Request) -> int | None:
    try:
        return (await session_of(request)).user.id
    except Unauthorized:
        return None  # public


async def get_seller(request: web.Request) -> web.Response:
    seller = await request.app[DB].read(store.get_seller, _user_id(request),
                                        await _viewer_id(request))
    return web.json_response({"seller": seller_json(seller)})


async def block(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=rules.MAX_REASON_CHARS)
    await request.app[DB].tx(blocks.block_tx, user.id, _user_id(request), reason)
    return web.Response(status=204)


async def unblock(request: web.Request) -> web.Response:
    user = await current_user(request)
    await request.app[DB].tx(blocks.unblock_tx, user.id, _user_id(request))
    return web.Response(status=204)


async def report(request: web.Request) -> web.Response:
    user = await current_user(request)
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=rules.MAX_REASON_CHARS)
    await request.app[DB].tx(blocks.report_tx, user.id, _user_id(request), reason)
    return web.Response(status=204)


# -- favourites

async def put_favourite(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    await request.app[DB].tx(favourites.add_tx, user.id, _user_id(request), now_ms())
    return web.Response(status=204)


async def delete_favourite(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    await request.app[DB].tx(favourites.remove_tx, user.id, _user_id(request))
    return web.Response(status=204)


async def list_favourites(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    found = await request.app[DB].read(
        lambda c: store.list_sellers(c, viewer_id=user.id, favourites=True))
    return web.json_response({"sellers": [seller_json(s) for s in found]})


async def get_favourite_mail(request: web.Request) -> web.Response:
    user = await require_role(request, "buyer")
    on = await request.app[DB].read(favourites.mail_opt_in, user.id)
    return web.json_response({"mail": on})


async def put_favourite_mail(request: web.Request) -> web.Response:
    """The opt-in to a mail when a favourite comes online (off until the buyer turns it on)."""
    user = await require_role(request, "buyer")
    body = await validate.read_json(request)
    on = await request.app[DB].tx(favourites.set_mail_opt_in_tx, user.id,
                                  validate.boolean(body, "mail"))
    return web.json_response({"mail": on})


# -- photos

def photo_json(photo: photos.Photo) -> dict[str, Any]:
    return {
        "id": str(photo.id),
        "seller_id": str(photo.seller_id),
        "seller_name": photo.seller_name,
        "status": photo.status,
        "url": photos.url(photo.profile_file),
        "card_url": photos.url(photo.card_file),
        "width": photo.width_px,
        "height": photo.height_px,
        "bytes": photo.upload_bytes,
        "created_at_ms": photo.created_at_ms,
        "decided_at_ms": photo.decided_at_ms,
        "reason": photo.reason,
    }


async def _read_body(request: web.Request, max_bytes: int) -> bytes:
    """The raw body, at most max_bytes (413 photo_too_large, before reading more)."""
    too_large = PayloadTooLarge(f"the photo is larger than {max_bytes} bytes",
                                "photo_too_large")
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks, total = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        total += len(chunk)
        if total > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def put_photo(request: web.Request) -> web.Response:
    user = await require_role(request, "seller")
    images.check_content_type(request.headers.get("Content-Type", ""))
    cfg = request.app[CONFIG].sellers
    enforce("too many photo uploads; try again later",
            (request.app[LIMITS].photo_uploads, str(user.id)))
    data = await _read_body(request, cfg.max_photo_bytes)
    if not data:
        raise Unprocessable("send the image as the request body", "photo_invalid")
    processed = await photos.run_in_photo_thread(photos.make, cfg.photo_dir, data,
                                                 cfg.max_photo_pixels)
    photo = await request.app[DB].tx(photos.add_pending_tx, user.id, processed, len(data),
                                     now_ms())
    await _delete_orphans(request, user.id)  # a pending upload it replaced
    return web.json_response({"photo": photo_json(photo)}, status=202)


async def _delete_orphans(request: web.Request, seller_id: int) -> None:
    """The files of the seller's refused and replaced photos go (their rows stay)."""
    names = await request.app[DB].read(photos.orphan_files, seller_id)
    if names:
        await photos.run_in_photo_thread(photos.delete_files,
                                         request.app[CONFIG].sellers.photo_dir, names)


async def get_own_photo(request: web.Request) -> web.Response:
    """The seller's shown photo, the upload waiting for review and a refused last upload."""
    user = await require_role(request, "seller")
    mine = await request.app[DB].read(photos.of_seller, user.id)
    return web.json_response({k: None if p is None else photo_json(p) for k, p in mine.items()})


async def serve_photo(request: web.Request) -> web.StreamResponse:
    """A stored size. Public once approved (immutable: the name is the content's hash);
    before that only to its seller and the operator, never cached."""
    name = request.match_info["name"]
    if not photos.FILE_NAME.match(name):
        raise NotFound("no such photo", "photo_not_found")
    public, owners = await request.app[DB].read(photos.file_access, name)
    if not owners:
        raise NotFound("no such photo", "photo_not_found")
    if public:
        cache = "public, max-age=31536000, immutable"
    else:
        try:
            viewer = (await session_of(request)).user
        except Unauthorized:
            raise NotFound("no such photo", "photo_not_found") from None
        if viewer.role != "admin" and viewer.id not in owners:
            raise NotFound("no such photo", "photo_not_found")
        cache = "private, no-store"
    path = request.app[CONFIG].sellers.photo_dir / name
    if not path.is_file():
        raise NotFound("no such photo", "photo_not_found")
    return web.FileResponse(path, headers={
        "Content-Type": "image/jpeg", "Cache-Control": cache,
        "X-Content-Type-Options": "nosniff"})


async def admin_photos(request: web.Request) -> web.Response:
    await require_role(request, "admin")
    status = validate.query_status(request, photos.STATUSES)
    found = await request.app[DB].read(photos.queue, status)
    return web.json_response({"photos": [photo_json(p) for p in found]})


async def _decide(request: web.Request, approve: bool) -> web.Response:
    admin = await require_role(request, "admin")
    photo_id = validate.path_id(request, "photo")
    body = await validate.read_json(request)
    reason = validate.string(body, "reason", required=False, max_len=rules.MAX_REASON_CHARS)
    photo = await request.app[DB].tx(photos.decide_tx, photo_id, admin.id, approve,
                                     (reason or "").strip() or None, now_ms())
    await _delete_orphans(request, photo.seller_id)  # the refused one, or the one replaced
    return web.json_response({"photo": photo_json(photo)})


async def approve_photo(request: web.Request) -> web.Response:
    return await _decide(request, True)


async def reject_photo(request: web.Request) -> web.Response:
    return await _decide(request, False)


def setup(app: web.Application) -> None:
    app.router.add_get("/api/favourites", list_favourites)
    # Before /api/favourites/{id}, which would take "mail" for an id.
    app.router.add_get("/api/favourites/mail", get_favourite_mail)
    app.router.add_put("/api/favourites/mail", put_favourite_mail)
    app.router.add_put("/api/favourites/{id}", put_favourite)
    app.router.add_delete("/api/favourites/{id}", delete_favourite)
    app.router.add_get("/api/seller/photo", get_own_photo)
    app.router.add_put("/api/seller/photo", put_photo)
    app.router.add_get("/api/photos/{name}", serve_photo)
    app.router.add_get("/api/admin/photos", admin_photos)
    app.router.add_post("/api/admin/photos/{id}/approve", approve_photo)
    app.router.add_post("/api/admin/photos/{id}/reject", reject_photo)
    app.router.add_get("/api/seller/profile", get_own_profile)
    app.router.add_put("/api/seller/profile", put_profile)
    app.router.add_put("/api/seller/status", put_status)
    app.router.add_get("/api/sellers", list_sellers)
    app.router.add_get("/api/sellers/{id}", get_seller)
    app.router.add_post("/api/users/{id}/block", block)
    app.router.add_delete("/api/users/{id}/block", unblock)
    app.router.add_post("/api/users/{id}/report", report)
