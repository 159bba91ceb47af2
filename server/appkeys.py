"""Typed application state keys shared by handlers. Domain-specific keys live beside their
domain module (e.g. chain gateway, call manager)."""

from __future__ import annotations

from aiohttp import web

from server.accounts import Passwords
from server.config import Config
from server.db import Database
from server.ratelimit import Limits

CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
PASSWORDS = web.AppKey("passwords", Passwords)
LIMITS = web.AppKey("limits", Limits)
