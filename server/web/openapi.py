"""The OpenAPI 3.0 description of the HTTP API, served at /api/openapi.json. A test walks the
app's routes and fails when a route is missing here or described but not served, so this
stays true; schemathesis fuzzes the server from it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

# A JSON Schema (or any other part of the description): a JSON object.
Schema = dict[str, Any]
# (summary, request body schema or None, success status, tag)
Operation = tuple[str, Schema | None, int, str]

STR = {"type": "string"}
TOKENS = {"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "example": "12.5"}
USDT = {"type": "string", "pattern": r"^\d+(\.\d{1,6})?$", "example": "10"}
BOOL = {"type": "boolean"}


def obj(required: list[str] | None = None, **props: Any) -> Schema:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def integer(minimum: int | None = None, maximum: int | None = None) -> Schema:
    out: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


ERROR = obj(["error"], error=obj(["code", "message"], code=STR, message=STR))
USER = obj(id=STR, email=STR, role=STR, display_name=STR)

# (method, path) -> the operation
OPERATIONS: dict[tuple[str, str], Operation] = {
    ("get", "/api/health"): ("health of the server, database and chain", None, 200, "meta"),
    ("get", "/api/openapi.json"): ("this description", None, 200, "meta"),
    ("get", "/metrics"): ("Prometheus metrics", None, 200, "meta"),
    ("post", "/api/auth/register"): (
        "create a buyer or seller account",
        obj(["email", "password", "role", "display_name", "adult", "terms"], email=STR,
            password={"type": "string", "minLength": 10},
            role={"type": "string", "enum": ["buyer", "seller"]}, display_name=STR,
            adult={"type": "boolean", "enum": [True],
                   "description": "the user confirms being 18 or older"},
            terms={"type": "boolean", "enum": [True],
                   "description": "the user accepts the terms of service"}),
        201, "accounts"),
    ("post", "/api/auth/login"): (
        "log in; returns a bearer token and sets the session cookie",
        obj(["email", "password"], email=STR, password=STR,
            otp={"type": "string", "description": "with 2FA on: the current code or a "
                 "recovery code (401 otp_required, otp_invalid)"}), 200, "accounts"),
    ("post", "/api/auth/logout"): ("revoke this session", None, 204, "accounts"),
    ("post", "/api/auth/logout-everywhere"): (
        "revoke every session of the user, this one too", None, 204, "accounts"),
    ("get", "/api/me"): (
        "the user (with email_verified and two_factor) and their balances", None, 200,
        "accounts"),
    ("post", "/api/auth/password"): (
        "change the password (the current one required); every other session is revoked",
        obj(["current_password", "new_password"], current_password=STR,
            new_password={"type": "string", "minLength": 10}), 204, "accounts"),
    ("post", "/api/auth/password-reset"): (
        "mail a single-use reset link; 202 whether or not the email has an account",
        obj(["email"], email=STR), 202, "accounts"),
    ("post", "/api/auth/password-reset/confirm"): (
        "set a new password with the mailed token; every session is revoked (400 "
        "invalid_token for a used or expired one)",
        obj(["token", "new_password"], token=STR,
            new_password={"type": "string", "minLength": 10}), 204, "accounts"),
    ("post", "/api/auth/email/verify"): (
        "verify the email with the token mailed at sign-up", obj(["token"], token=STR), 204,
        "accounts"),
    ("post", "/api/auth/email/resend"): (
        "mail a new verification link (the older one stops working)", None, 202,
        "accounts"),
    ("post", "/api/auth/2fa/setup"): (
        "a new TOTP secret, its otpauth URI and QR code (2FA is on only after enable)",
        None, 200, "accounts"),
    ("post", "/api/auth/2fa/enable"): (
        "turn 2FA on with a code of the set-up secret; returns ten recovery codes, shown "
        "once", obj(["code"], code=STR), 200, "accounts"),
    ("post", "/api/auth/2fa/disable"): (
        "turn 2FA off with the password and a code (or a recovery code)",
        obj(["password", "code"], password=STR, code=STR), 204, "accounts"),
    ("get", "/api/me/sessions"): (
        "my live sessions: created, last seen, client address, user agent", None, 200,
        "accounts"),
    ("delete", "/api/me/sessions/{id}"): ("revoke one of my sessions", None, 204,
                                          "accounts"),
    ("get", "/api/admin/audit"): ("recompute the ledger (admin)", None, 200, "operator"),
    # Sellers and calls (sellers/routes.py, calls/routes.py)
    ("get", "/api/seller/profile"): (
        "the seller's own profile; null before the first save", None, 200, "sellers"),
    ("put", "/api/seller/profile"): (
        "set the seller's rate (tokens per minute), bio, tags and languages",
        obj(["rate"], rate=integer(1), bio=STR, tags={"type": "array", "items": STR},
            languages={"type": "array", "items": STR}), 200, "sellers"),
    ("put", "/api/seller/status"): (
        "go online or offline", obj(["online"], online=BOOL), 200, "sellers"),
    ("get", "/api/sellers"): (
        "sellers, filtered by query online, max_rate, tag, language, favourites", None, 200,
        "sellers"),
    ("get", "/api/sellers/{id}"): ("one seller", None, 200, "sellers"),
    ("get", "/api/favourites"): ("the buyer's favourite sellers", None, 200, "sellers"),
    ("get", "/api/favourites/mail"): (
        "whether the buyer gets a mail when a favourite comes online", None, 200, "sellers"),
    ("put", "/api/favourites/mail"): (
        "turn the favourite-online mail on or off (off by default)", obj(["mail"], mail=BOOL),
        200, "sellers"),
    ("put", "/api/favourites/{id}"): ("add a seller to the buyer's favourites (idempotent)",
                                      None, 204, "sellers"),
    ("delete", "/api/favourites/{id}"): (
        "remove a seller from the buyer's favourites (idempotent)", None, 204, "sellers"),
    ("get", "/api/seller/photo"): (
        "the seller's shown photo, the upload waiting for review, a refused last upload",
        None, 200, "sellers"),
    ("put", "/api/seller/photo"): (
        "upload a photo: the image as the body (Content-Type image/jpeg, image/png or"
        " image/webp, at most sellers.max_photo_bytes); pending until the operator approves",
        None, 202, "sellers"),
    ("get", "/api/photos/{name}"): (
        "a stored photo (JPEG); public once approved", None, 200, "sellers"),
    ("get", "/api/admin/photos"): (
        "seller photos, ?status=pending|approved|rejected|replaced (admin)", None, 200,
        "operator"),
    ("post", "/api/admin/photos/{id}/approve"): (
        "approve a pending photo: it replaces the seller's shown one (admin)",
        obj(reason=STR), 200, "operator"),
    ("post", "/api/admin/photos/{id}/reject"): (
        "reject a pending photo (admin)", obj(reason=STR), 200, "operator"),
    ("post", "/api/users/{id}/block"): ("block a user", obj(reason=STR), 204, "sellers"),
    ("delete", "/api/users/{id}/block"): ("unblock a user", None, 204, "sellers"),
    ("post", "/api/users/{id}/report"): ("report a user", obj(reason=STR), 204, "sellers"),
    ("post", "/api/calls"): (
        "start a call at the rate the buyer saw, with an optional spending cap",
        obj(["seller_id", "rate"], seller_id=STR, rate=integer(1), spend_cap=TOKENS),
        201, "calls"),
    ("get", "/api/calls"): (
        "my calls, newest first, 50 a page (?before=<id>, ?limit=1..50; next_before), each with what it cost"
        " (buyer) or earned (seller, after commission), tips and refunds", None, 200, "calls"),
    ("get", "/api/calls/{id}/receipt"): (
        "one call of mine with its figures and my ledger lines of it", None, 200, "calls"),
    ("get", "/api/calls/{id}"): ("one call of mine", None, 200, "calls"),
    ("post", "/api/calls/{id}/accept"): ("the seller accepts a ringing call", None, 200,
                                         "calls"),
    ("post", "/api/calls/{id}/decline"): ("the seller declines a ringing call", None, 200,
                                          "calls"),
    ("post", "/api/calls/{id}/end"): ("hang up (or cancel a ringing call)", None, 200,
                                      "calls"),
    ("post", "/api/calls/{id}/rating"): (
        "the buyer rates an ended call", obj(["stars"], stars=integer(1, 5), comment=STR),
        200, "calls"),
    ("get", "/api/calls/{id}/messages"): (
        "the chat messages of a call of mine, oldest first, 500 at a time after ?after=ID"
        " (`more`: ask again from the last id)", None, 200, "calls"),
    ("post", "/api/calls/{id}/messages/{mid}/report"): (
        "report a chat message the other party sent (to the operator's reports queue)",
        obj(reason=STR), 204, "calls"),
    ("get", "/api/ice"): ("STUN/TURN servers with short-lived TURN credentials", None, 200,
                          "calls"),
    ("post", "/api/deposits/intents"): (
        "ask to top up: the deposit address, the exact amount to send (unique µUSDT "
        "suffix), its expiry and a QR code",
        obj(["usdt"], usdt={"type": "string", "pattern": r"^\d+(\.\d{1,2})?$",
                            "example": "10"}),
        201, "wallet"),
    ("post", "/api/deposits/claim"): (
        "claim a USDT transfer by its TXID (202 while it is not final yet)",
        obj(["txid"], txid={"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}), 200, "wallet"),
    ("get", "/api/deposits"): ("the user's deposits and top-up intents (a paid one with its "
                               "receipt: paid {txid, credited_at, amount_usdt, tokens})", None,
                               200, "wallet"),
    ("get", "/api/deposits/address"): (
        "deposits.mode = address_per_user: my own deposit address (the same every time), its "
        "QR code, the minimum and what was received below it (409 personal_addresses_off "
        "otherwise)", None, 200, "wallet"),
    ("get", "/api/admin/sweeps"): (
        "sweeps of personal deposit addresses to the hot wallet: status, USDT, TRX spent, why "
        "one waits (admin)", None, 200, "operator"),
    ("get", "/api/ledger"): (
        "the user's ledger lines, newest first; ?group=calls: each call's lines as one",
        None, 200, "wallet"),
    ("get", "/api/admin/deposits"): (
        "recorded deposits, ?status=unmatched|credited (admin)", None, 200, "operator"),
    ("post", "/api/admin/deposits/{txid}/assign"): (
        "credit an unmatched transfer to a user (admin)",
        obj(["user_id"], user_id=STR, log_index=integer(0)), 200, "operator"),
    ("post", "/api/withdrawals"): (
        "withdraw tokens as USDT to a TRON address; needs an Idempotency-Key header (the "
        "same key returns the same withdrawal and moves nothing)",
        obj(["tokens", "address"], tokens=TOKENS,
            address={"type": "string", "pattern": "^T[1-9A-HJ-NP-Za-km-z]{33}$"},
            otp={"type": "string", "description": "with 2FA on: a fresh code (403 "
                 "otp_required, otp_invalid)"},
            fee_tokens={"type": "string", "description": "the fee_tokens of the quote the "
                        "seller was shown: another fee now is 409 fee_changed"}),
        201, "wallet"),
    ("get", "/api/withdrawals/quote"): (
        "the fees and net of a withdrawal, ?address=T...&tokens=400, before confirming (with "
        "withdrawals.network_fee_usdt = \"auto\": read from the chain for this address)",
        None, 200, "wallet"),
    ("get", "/api/withdrawals"): ("the user's withdrawals, newest first", None, 200, "wallet"),
    ("post", "/api/withdrawals/{id}/cancel"): (
        "cancel my withdrawal that has not gone out (queued, held or in review); the "
        "tokens come back", None, 200, "wallet"),
    ("get", "/api/admin/withdrawals"): (
        "withdrawals, ?status=review|queued|signed|sent|confirmed|failed|rejected (admin)",
        None, 200, "operator"),
    ("post", "/api/admin/withdrawals/{id}/approve"): (
        "approve a withdrawal under review, or retry a failed one (admin)", None, 200,
        "operator"),
    ("post", "/api/admin/withdrawals/{id}/reject"): (
        "reject a withdrawal under review, queued or failed; its tokens are returned (admin)",
        obj(reason=STR), 200, "operator"),
    ("post", "/api/admin/withdrawals/{id}/confirm"): (
        "record that a USDT transfer out of the hot wallet seen on chain (listed by "
        "reconcile) paid a withdrawal in review, e.g. one restored from a backup (admin)",
        obj(["txid"], txid={"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}), 200,
        "operator"),
    # Operator: disputes, moderation, audit log, reconciliation (operator/routes.py)
    ("post", "/api/calls/{id}/dispute"): (
        "the buyer disputes an ended call within the dispute window",
        obj(["reason"], reason={"type": "string", "minLength": 1, "maxLength": 2000}),
        201, "calls"),
    ("get", "/api/admin/disputes"): (
        "disputes, ?status=open|resolved (admin)", None, 200, "operator"),
    ("get", "/api/admin/disputes/{id}"): (
        "a dispute with its call's whole record: states, segments, media reports, ledger"
        " (admin)", None, 200, "operator"),
    ("post", "/api/admin/disputes/{id}/resolve"): (
        "resolve a dispute with a refund of up to the charge, from the seller and the"
        " commission in proportion (admin)",
        obj(["refund_tokens"], refund_tokens=TOKENS, note=STR), 200, "operator"),
    ("get", "/api/admin/calls/{id}/record"): (
        "a call's whole record (admin)", None, 200, "operator"),
    ("get", "/api/admin/reports"): (
        "the queue of user reports, ?status=open|closed (admin)", None, 200, "operator"),
    ("post", "/api/admin/reports/{id}/dismiss"): (
        "close a report without action (admin)", obj(reason=STR), 200, "operator"),
    ("get", "/api/admin/users"): (
        "search users, ?q= an id, an email or its beginning, part of a display name;"
        " no q: every user, newest first; ?limit=1..100 (20), ?offset=; each with role,"
        " balance, banned (admin)", None, 200,
        "operator"),
    ("get", "/api/admin/users/{id}"): (
        "a user's moderation state, balance, and their latest calls, deposits, withdrawals,"
        " reports by and about them, audit-log lines, 20 of each (admin)", None, 200,
        "operator"),
    ("get", "/api/admin/calls"): (
        "calls, ?status=live|recent, newest first, ?before= a call id, ?limit=1..200 (50),"
        " with both parties (admin)", None, 200, "operator"),
    ("post", "/api/admin/users/{id}/ban"): (
        "ban a user: logs them out everywhere, ends their call, closes their sockets,"
        " blocks their withdrawals (admin)",
        obj(["reason"], reason={"type": "string", "minLength": 1, "maxLength": 2000}),
        200, "operator"),
    ("post", "/api/admin/users/{id}/unban"): (
        "lift a ban and the withdrawal block (admin)", obj(reason=STR), 200, "operator"),
    ("get", "/api/admin/audit-log"): (
        "operator actions, newest first, ?target=&before= (admin)", None, 200, "operator"),
    ("get", "/api/admin/reconcile"): (
        "what users hold against the hot wallet's USDT and TRX on chain, and unmatched"
        " deposits, with the TRX costs (admin)", None, 200, "operator"),
    ("get", "/api/admin/costs"): (
        "TRX spent on withdrawals from their receipts, per UTC day for 30 days, per USDT"
        " moved, and the hot wallet's TRX runway in days (admin)", None, 200, "operator"),
    # Events (events/routes.py)
    ("get", "/api/admin/events"): (
        "operator events {id, type, at, data}, newest first, each with its deliveries to "
        "each webhook and its last attempts; ?type=, ?status=dead, ?before=<event id>, "
        "?limit= (admin)", None, 200, "operator"),
    ("post", "/api/admin/events/{id}/resend"): (
        "send a dead (or delivered) event again, with the same id, to every webhook it was "
        "for or to `webhook` only (admin)", obj(webhook=STR), 200, "operator"),
    # Economy (economy/routes.py)
    ("post", "/api/calls/{id}/tip"): (
        "the buyer tips the seller whole tokens of a call that went live, during it or up to "
        "24 h after it, from bought tokens only (402 bonus_not_tippable); needs an "
        "Idempotency-Key header (a replay returns the first tip, 200)",
        obj(["tokens"], tokens=integer(1)), 201, "economy"),
    ("get", "/api/calls/{id}/tips"): ("the tips of one call of mine", None, 200, "economy"),
    ("get", "/api/me/limits"): (
        "my spending limits, what is spent and left today and this month, self-exclusion",
        None, 200, "economy"),
    ("put", "/api/me/limits"): (
        "set daily and/or monthly spending limits in tokens (null = none); lowering takes "
        "effect at once, raising after 24 h",
        obj(daily={"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "nullable": True},
            monthly={"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "nullable": True}),
        200, "economy"),
    ("post", "/api/me/self-exclusion"): (
        "exclude myself for some days: no calls, tips or top-up intents (deposits are still "
        "credited); can be extended, never shortened",
        obj(["days"], days=integer(1, 3650)), 200, "economy"),
    ("put", "/api/me/privacy"): (
        "show me (display name only) on sellers' supporter boards, or not",
        obj(["show_on_leaderboard"], show_on_leaderboard=BOOL), 200, "economy"),
    ("get", "/api/me/spending"): (
        "my spending per UTC day and per seller over ?days= (1..366, default 30)", None, 200,
        "economy"),
    ("get", "/api/seller/stats"): (
        "my earnings per day/week/month, minutes billed, average call length, top "
        "supporters, busiest hours (seller)", None, 200, "economy"),
    ("get", "/api/seller/stats/chart.svg"): (
        "my earnings per day over 30 days as an SVG chart (seller)", None, 200, "economy"),
    ("get", "/api/sellers/{id}/supporters"): (
        "a seller's top supporters who opted in (display names only)", None, 200, "economy"),
    ("get", "/api/admin/promotions"): (
        "bonus tiers, promotions and what they have cost (admin)", None, 200, "operator"),
    ("post", "/api/admin/promotions"): (
        "start a time-limited top-up promotion: extra percent on top-ups credited between "
        "starts_at and ends_at; with the highest tier it must stay below the laundering bound "
        "of the lowest commission (422 bonus_too_high) (admin)",
        obj(["name", "percent", "starts_at", "ends_at"], name=STR,
            percent={"type": "string", "pattern": r"^\d+(\.\d{1,4})?$", "example": "5"},
            from_usdt=USDT, starts_at={"type": "string", "format": "date-time"},
            ends_at={"type": "string", "format": "date-time"}), 201, "operator"),
    ("post", "/api/admin/promotions/{id}/end"): (
        "end a promotion now; one not started yet is withdrawn (admin)", None, 200,
        "operator"),
    ("get", "/api/client-config"): (
        "public settings the browser client shows: network, explorer, limits and fees",
        None, 200, "meta"),
    ("get", "/api/terms"): (
        "the terms of service: the operator's terms.md beside the database, or the default;"
        " a markdown subset (# headings, paragraphs, - lists) shown as text", None, 200, "meta"),
}


def describe(op: Operation, path: str) -> Schema:
    summary, body, status, tag = op
    out: dict[str, Any] = {
        "summary": summary,
        "tags": [tag],
        "responses": {
            str(status): {"description": "success"},
            "default": {"description": "error",
                        "content": {"application/json": {"schema": ERROR}}},
        },
    }
    params = [
        {"name": part[1:-1], "in": "path", "required": True, "schema": STR}
        for part in path.split("/")
        if part.startswith("{") and part.endswith("}")
    ]
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": True,
                              "content": {"application/json": {"schema": body}}}
    return out


# Request headers an operation needs besides auth: (method, path) -> parameters.
HEADERS: dict[tuple[str, str], list[Schema]] = {
    ("post", "/api/withdrawals"): [{
        "name": "Idempotency-Key", "in": "header", "required": True,
        "description": "unique per withdrawal; repeat it to retry safely",
        "schema": {"type": "string", "pattern": "^[!-~]{1,200}$"},
    }],
}


def spec() -> Schema:
    paths: dict[str, Schema] = {}
    for (method, path), op in sorted(OPERATIONS.items(), key=lambda kv: kv[0][1]):
        paths.setdefault(path, {})[method] = describe(op, path)
        if (method, path) in HEADERS:
            paths[path][method].setdefault("parameters", []).extend(HEADERS[(method, path)])
    return {
        "openapi": "3.0.3",
        "info": {"title": "meterchat", "version": "1",
                 "description": "Pay-per-minute 1-on-1 video chat paid in USDT on TRON."},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": "mc_session"},
            },
            "schemas": {"Error": ERROR, "User": USER},
        },
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(spec())


def setup(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json)
