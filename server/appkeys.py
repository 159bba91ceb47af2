"""Typed application state keys shared by handlers. Domain-specific keys live beside their
domain module (e.g. chain gateway, call manager)."""

from __future__ import annotations

from aiohttp import web

from meterchat.accounts.passwords import Passwords
from meterchat.core.clock import Clock
from meterchat.core.config import Config
from meterchat.core.db import Database
from meterchat.core.ratelimit import Limits

CLOCK = web.AppKey("clock", Clock)  # the one clock (core/clock.py)
CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
PASSWORDS = web.AppKey("passwords", Passwords)
LIMITS = web.AppKey("limits", Limits)
