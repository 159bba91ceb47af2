"""ICE servers for WebRTC clients: STUN URLs from config, and TURN credentials in coturn's
`use-auth-secret` scheme (username `expiry:user_id`, password base64(HMAC-SHA1(secret,
username))), valid for turn_ttl_s only."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

from meterchat.core.config import IceConfig


def turn_credentials(secret: str, user_id: int, ttl_s: int, now_s: int) -> tuple[str, str]:
    username = f"{now_s + ttl_s}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers(cfg: IceConfig, user_id: int, now_s: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if cfg.stun_urls:
        out.append({"urls": list(cfg.stun_urls)})
    secret = os.environ.get(cfg.turn_secret_env, "") if cfg.turn_secret_env else ""
    if cfg.turn_urls and secret:
        username, credential = turn_credentials(secret, user_id, cfg.turn_ttl_s, now_s)
        out.append({"urls": list(cfg.turn_urls), "username": username,
                    "credential": credential})
    return out
