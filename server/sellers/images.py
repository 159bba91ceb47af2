"""A seller photo checked and re-made with Pillow: the upload's type is judged by its content
(JPEG, PNG or WebP; the Content-Type header only has to name one of them), its pixels are
bounded before they are decoded (a decompression bomb is refused, never decoded), the EXIF
orientation is applied, and two sizes are re-encoded as baseline JPEG with no metadata at all
(no EXIF, GPS, XMP, ICC or comments: Pillow writes only what it is given). CPU only, no I/O:
run `process` in a thread, never on the event loop. Pillow is imported there, by the first
upload: serving loads no image library until a seller sends a photo."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

from meterchat.core.errors import Unprocessable, UnsupportedMediaType

# The Content-Type an upload may be sent with, and the Pillow formats its content may be.
ACCEPTED_CONTENT_TYPES = ("image/jpeg", "image/png", "image/webp")
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")
# The card of the sellers list (a square, cropped to the centre) and the profile size (the
# whole picture, at most this on its longer side).
CARD_PX = 320
PROFILE_PX = 800
JPEG_QUALITY = 85
# Smaller than this on either side is no photo of a person.
MIN_SIDE_PX = 64


@dataclass(frozen=True)
class Encoded:
    """One stored size: its JPEG bytes and its content-addressed file name."""

    data: bytes
    name: str  # "<sha256 hex>.jpg"


@dataclass(frozen=True)
class Processed:
    card: Encoded
    profile: Encoded
    width_px: int  # of the upload, after its orientation was applied
    height_px: int
    source_format: str  # what the content was: JPEG, PNG or WEBP


def check_content_type(header: str) -> None:
    """415 photo_type unless the header names one of the accepted image types."""
    if header.split(";", 1)[0].strip().lower() not in ACCEPTED_CONTENT_TYPES:
        raise UnsupportedMediaType(
            "send the photo as the body with Content-Type image/jpeg, image/png or image/webp",
            "photo_type")


def _invalid(why: str) -> Unprocessable:
    return Unprocessable(f"not a readable JPEG, PNG or WebP image ({why})", "photo_invalid")


def _too_many_pixels(max_pixels: int) -> Unprocessable:
    return Unprocessable(f"the image has more than {max_pixels} pixels", "photo_too_many_pixels")


def _encode(im: Image.Image) -> Encoded:
    out = io.BytesIO()
    # No exif=, icc_profile= or comment=, and an image without info to inherit them from:
    # the file carries pixels and a JFIF header only.
    im.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
    data = out.getvalue()
    return Encoded(data, hashlib.sha256(data).hexdigest() + ".jpg")


def _flatten(im: Image.Image) -> Image.Image:
    """RGB; transparency laid on white (JPEG has no alpha)."""
    from PIL import Image

    if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        base = Image.new("RGB", rgba.size, (255, 255, 255))
        base.paste(rgba, mask=rgba.getchannel("A"))
        return base
    return im.convert("RGB")


def process(data: bytes, max_pixels: int) -> Processed:
    """Check and re-encode an upload (422 photo_invalid, 422 photo_too_many_pixels)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        # Pillow warns (DecompressionBombWarning) past Image.MAX_IMAGE_PIXELS and raises
        # past twice that, at open, before decoding: both are a refusal here, the warning
        # made an error for this call (pytest runs with every warning as an error anyway).
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels(max_pixels) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise _invalid(type(exc).__name__) from None
    with im:
        width, height = im.size
        # Our own bound, read from the header, before a single pixel is decoded.
        if width * height > max_pixels:
            raise _too_many_pixels(max_pixels)
        if getattr(im, "n_frames", 1) > 1:
            im.seek(0)  # an animated WebP or PNG: its first frame
        try:
            im.load()  # a truncated or corrupt file fails here
            upright = ImageOps.exif_transpose(im)
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise _invalid(type(exc).__name__) from None
        source_format = str(im.format)
    width, height = upright.size
    if min(width, height) < MIN_SIDE_PX:
        raise Unprocessable(f"the image is smaller than {MIN_SIDE_PX} pixels on a side",
                            "photo_too_small")
    # Pixels only: a fresh image carries nothing of the upload's info (Pillow would write
    # an inherited comment, ICC profile or EXIF back out).
    flat = _flatten(upright)
    rgb = Image.frombytes("RGB", flat.size, flat.tobytes())
    card = ImageOps.fit(rgb, (CARD_PX, CARD_PX), Image.Resampling.LANCZOS)
    profile = rgb.copy()
    profile.thumbnail((PROFILE_PX, PROFILE_PX), Image.Resampling.LANCZOS)
    return Processed(_encode(card), _encode(profile), width, height, source_format)
