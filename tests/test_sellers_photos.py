"""Seller photos (API.md "The call room"): uploaded as the body, judged by their content,
bounded in bytes and pixels, re-encoded without any metadata in two sizes, shown to nobody
until the operator approves, and served immutable under content-addressed names."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from meterchat.app import create_app
from meterchat.appkeys import CONFIG
from tests.conftest import actor, admin_actor, assert_error, make_config

GPS_IFD = 0x8825
ORIENTATION = 0x0112


def jpeg_with_gps(size=(400, 300), orientation: int | None = None) -> bytes:
    im = Image.new("RGB", size, (200, 30, 30))
    im.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 4))  # a blue top-left corner
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0110] = "Phone 12"  # Model
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (52.0, 22.0, 12.0), 3: "E", 4: (4.0, 53.0, 2.0)})
    if orientation is not None:
        exif[ORIENTATION] = orientation
    out = io.BytesIO()
    im.save(out, "JPEG", exif=exif.tobytes(), comment=b"secret comment")
    return out.getvalue()


def png(size=(300, 300), mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, 120).save(out, "PNG")
    return out.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height pixels and holds almost none: a decompression bomb's
    header (Pillow reads the size before a single pixel)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture
def photo_config(tmp_path):
    return make_config(tmp_path, sellers={"max_photo_pixels": 1_000_000,
                                          "max_photo_bytes": 200_000})


@pytest.fixture
async def app_client(aiohttp_client, photo_config):
    return await aiohttp_client(create_app(photo_config))


async def seller_with_profile(client, name: str = "Sam"):
    seller = await actor(client, "seller", display_name=name)
    resp = await seller.put("/api/seller/profile", {"rate": 60})
    assert resp.status == 200
    return seller


async def upload(who, data: bytes, content_type: str = "image/jpeg"):
    return await who.put("/api/seller/photo", data=data,
                         headers={"Content-Type": content_type})


async def fetch(client, url: str, who=None) -> tuple[int, bytes, dict]:
    resp = await (who.get(url) if who else client.get(url))
    return resp.status, await resp.read(), dict(resp.headers)


async def test_upload_is_pending_and_shown_to_nobody_until_approved(app_client):
    seller = await seller_with_profile(app_client)
    resp = await upload(seller, jpeg_with_gps())
    assert resp.status == 202, await resp.text()
    photo = (await resp.json())["photo"]
    assert photo["status"] == "pending"
    listed = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert listed["photo_url"] is None and listed["photo_card_url"] is None
    # Before approval: the file is its seller's and the operator's only, never cached.
    stranger = await actor(app_client)
    assert (await fetch(app_client, photo["url"]))[0] == 404
    assert (await fetch(app_client, photo["url"], stranger))[0] == 404
    status, _, headers = await fetch(app_client, photo["url"], seller)
    assert status == 200 and headers["Cache-Control"] == "private, no-store"
    mine = await (await seller.get("/api/seller/photo")).json()
    assert mine["pending"]["id"] == photo["id"] and mine["approved"] is None


async def test_operator_approves_and_the_listing_shows_the_photo(app_client):
    seller = await seller_with_profile(app_client)
    photo = (await (await upload(seller, jpeg_with_gps())).json())["photo"]
    admin = await admin_actor(app_client)
    queue = (await (await admin.get("/api/admin/photos?status=pending")).json())["photos"]
    assert [p["id"] for p in queue] == [photo["id"]]
    # The operator is told of the photo waiting (written with the upload).
    events = (await (await admin.get("/api/admin/events")).json())["events"]
    assert [(e["type"], e["data"]) for e in events if e["type"] == "photo.pending"] == [
        ("photo.pending", {"photo_id": photo["id"], "seller_id": str(seller.id)})]
    resp = await admin.post(f"/api/admin/photos/{photo['id']}/approve")
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["photo"]["status"] == "approved"
    card = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert card["photo_url"] == photo["url"] and card["photo_card_url"] == photo["card_url"]
    listing = (await (await app_client.get("/api/sellers")).json())["sellers"]
    assert [s["photo_card_url"] for s in listing if s["id"] == seller.id] == [photo["card_url"]]
    for url in (photo["url"], photo["card_url"]):
        status, body, headers = await fetch(app_client, url)
        assert status == 200
        assert headers["Content-Type"] == "image/jpeg"
        assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert Image.open(io.BytesIO(body)).format == "JPEG"
    log = (await (await admin.get("/api/admin/audit-log")).json())
    assert "photo.approve" in str(log)
    # Decided once: a second decision is refused.
    await assert_error(await admin.post(f"/api/admin/photos/{photo['id']}/reject"), 409,
                       "photo_not_pending")


async def test_gps_and_every_exif_tag_are_stripped_from_both_sizes(app_client):
    seller = await seller_with_profile(app_client)
    original = jpeg_with_gps()
    assert Image.open(io.BytesIO(original)).getexif().get_ifd(GPS_IFD)  # the test has GPS
    photo = (await (await upload(seller, original)).json())["photo"]
    for url, side in ((photo["card_url"], 320), (photo["url"], 400)):
        _, body, _ = await fetch(app_client, url, seller)
        im = Image.open(io.BytesIO(body))
        assert len(im.getexif()) == 0
        assert not im.getexif().get_ifd(GPS_IFD)
        assert "exif" not in im.info and "comment" not in im.info and "icc_profile" not in im.info
        assert b"Exif" not in body and b"PhoneMaker" not in body and b"secret comment" not in body
        assert max(im.size) == side


async def test_exif_orientation_is_applied_before_the_tags_go(app_client):
    seller = await seller_with_profile(app_client)
    # Orientation 6: the camera held sideways, the picture is to be turned 90 degrees.
    photo = (await (await upload(seller, jpeg_with_gps((400, 300), orientation=6))).json())
    assert (photo["photo"]["width"], photo["photo"]["height"]) == (300, 400)
    _, body, _ = await fetch(app_client, photo["photo"]["url"], seller)
    assert Image.open(io.BytesIO(body)).size == (300, 400)


async def test_type_is_judged_by_content_a_png_sent_as_jpeg_is_taken(app_client):
    seller = await seller_with_profile(app_client)
    resp = await upload(seller, png(), "image/jpeg")
    assert resp.status == 202
    _, body, _ = await fetch(app_client, (await resp.json())["photo"]["url"], seller)
    assert Image.open(io.BytesIO(body)).format == "JPEG"  # re-encoded whatever it was


@pytest.mark.parametrize(("content_type", "status", "code"), [
    ("text/plain", 415, "photo_type"),
    ("image/gif", 415, "photo_type"),
    ("application/json", 415, "photo_type"),
    ("", 415, "photo_type"),
])
async def test_wrong_content_type_is_refused(app_client, content_type, status, code):
    seller = await seller_with_profile(app_client)
    await assert_error(await upload(seller, png(), content_type), status, code)


async def test_not_an_image_truncated_and_empty_are_refused(app_client):
    seller = await seller_with_profile(app_client)
    await assert_error(await upload(seller, b"hello, not an image" * 20), 422, "photo_invalid")
    whole = jpeg_with_gps((600, 600))
    await assert_error(await upload(seller, whole[: len(whole) // 2]), 422, "photo_invalid")
    await assert_error(await upload(seller, b""), 422, "photo_invalid")
    gif = io.BytesIO()
    Image.new("RGB", (100, 100)).save(gif, "GIF")
    await assert_error(await upload(seller, gif.getvalue(), "image/png"), 422, "photo_invalid")
    await assert_error(await upload(seller, png((20, 20))), 422, "photo_too_small")
    mine = await (await seller.get("/api/seller/photo")).json()
    assert mine == {"approved": None, "pending": None, "rejected": None}


async def test_too_many_pixels_and_decompression_bombs_are_refused(app_client):
    seller = await seller_with_profile(app_client)
    # Over the configured bound (1,000,000 here), under Pillow's own.
    await assert_error(await upload(seller, png((1001, 1000), "L"), "image/png"), 422,
                       "photo_too_many_pixels")
    # Past Pillow's MAX_IMAGE_PIXELS (its warning) and past twice it (its error).
    for side in (10_000, 20_000):
        await assert_error(await upload(seller, png_header_only(side, side), "image/png"), 422,
                           "photo_too_many_pixels")


async def test_too_large_body_is_refused(app_client):
    seller = await seller_with_profile(app_client)
    await assert_error(await upload(seller, b"\xff\xd8" + b"\0" * 200_001), 413,
                       "photo_too_large")


async def test_a_buyer_cannot_upload_and_a_stranger_cannot_approve(app_client):
    buyer = await actor(app_client)
    await assert_error(await upload(buyer, png()), 403)
    app_client.session.cookie_jar.clear()  # nobody logged in
    await assert_error(await app_client.put("/api/seller/photo", data=png(),
                                            headers={"Content-Type": "image/png"}), 401)
    seller = await seller_with_profile(app_client)
    photo = (await (await upload(seller, png())).json())["photo"]
    for who in (buyer, seller):
        await assert_error(await who.post(f"/api/admin/photos/{photo['id']}/approve"), 403)
        await assert_error(await who.get("/api/admin/photos"), 403)
    mine = await (await seller.get("/api/seller/photo")).json()
    assert mine["pending"]["status"] == "pending"
    await assert_error(await (await admin_actor(app_client)).post(
        "/api/admin/photos/999/approve"), 404, "photo_not_found")


async def test_a_replacement_waits_while_the_approved_photo_stays_shown(app_client):
    seller = await seller_with_profile(app_client)
    admin = await admin_actor(app_client)
    first = (await (await upload(seller, jpeg_with_gps())).json())["photo"]
    await admin.post(f"/api/admin/photos/{first['id']}/approve")
    second = (await (await upload(seller, png())).json())["photo"]
    assert second["status"] == "pending"
    card = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert card["photo_url"] == first["url"]  # the approved one stays until the next is
    # A rejected replacement changes nothing shown.
    await admin.post(f"/api/admin/photos/{second['id']}/reject", {"reason": "not a face"})
    card = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert card["photo_url"] == first["url"]
    mine = await (await seller.get("/api/seller/photo")).json()
    assert mine["rejected"]["reason"] == "not a face" and mine["pending"] is None
    # An upload while one is pending replaces the pending one in the queue.
    third = (await (await upload(seller, png((500, 400)))).json())["photo"]
    fourth = (await (await upload(seller, png((400, 500)))).json())["photo"]
    queue = (await (await admin.get("/api/admin/photos?status=pending")).json())["photos"]
    assert [p["id"] for p in queue] == [fourth["id"]]
    await assert_error(await admin.post(f"/api/admin/photos/{third['id']}/approve"), 409,
                       "photo_not_pending")
    await admin.post(f"/api/admin/photos/{fourth['id']}/approve")
    card = (await (await app_client.get(f"/api/sellers/{seller.id}")).json())["seller"]
    assert card["photo_url"] == fourth["url"]
    app_client.session.cookie_jar.clear()
    assert (await fetch(app_client, first["url"]))[0] == 404  # no longer public
    # The files of every photo that is not shown or waiting are gone from the disk; the
    # rows stay for the record.
    photo_dir = app_client.app[CONFIG].sellers.photo_dir
    kept = {p.name for p in photo_dir.iterdir()}
    assert kept == {fourth["url"].rsplit("/", 1)[1], fourth["card_url"].rsplit("/", 1)[1]}
    assert (await fetch(app_client, second["url"], admin))[0] == 404
    statuses = (await (await admin.get("/api/admin/photos")).json())["photos"]
    assert [p["status"] for p in statuses] == ["approved", "replaced", "rejected", "replaced"]


async def test_bad_photo_names_and_queue_filters(app_client):
    admin = await admin_actor(app_client)
    for name in ("x.jpg", "../meterchat.sqlite3", "a" * 64 + ".png", "A" * 64 + ".jpg"):
        await assert_error(await app_client.get(f"/api/photos/{name}"), 404)
    await assert_error(await admin.get("/api/admin/photos?status=nope"), 422, "invalid_status")
