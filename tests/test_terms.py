"""The terms of service at GET /api/terms: the default shipped with the package, or the
operator's own terms.md in the state directory (beside the database), with this server's
figures filled in; served as text for the page to render as text."""

from __future__ import annotations

from meterchat.app import create_app
from meterchat.web.terms import MAX_TERMS_BYTES, operator_terms_path
from tests.conftest import make_config


async def test_default_terms_are_served_without_an_operator_file(aiohttp_client, tmp_path):
    config = make_config(tmp_path, billing={"commission_percent": 20},
                         operator={"dispute_window_days": 7})
    assert not operator_terms_path(config).exists()
    client = await aiohttp_client(create_app(config))
    resp = await client.get("/api/terms")
    assert resp.status == 200 and resp.content_type == "application/json"
    body = await resp.json()
    assert body["source"] == "default" and body["format"] == "markdown-subset"
    text = body["text"]
    assert text.startswith("# Terms of service\n")
    for heading in ("## 18 or older only", "## What a minute costs", "## Refunds and disputes",
                    "## What sellers earn and withdraw", "## Prohibited content and conduct",
                    "## Privacy"):
        assert heading in text, heading
    # This server's own figures, not placeholders.
    assert "{{" not in text
    assert "keeps 20 % of each charge" in text
    assert "within\n7 days" in text
    assert "100 tokens are 1 USDT" in text
    assert "the operator's contact address" in text  # no From: configured yet


async def test_the_operators_terms_file_replaces_the_default(aiohttp_client, tmp_path):
    config = make_config(tmp_path, mail={"from": "Help <help@example.org>"})
    path = operator_terms_path(config)
    assert path.parent == config.database.path.parent
    path.write_text("# Our terms\n\nWrite to {{contact}}.\n\n<script>alert(1)</script>\r\n",
                    encoding="utf-8")
    client = await aiohttp_client(create_app(config))
    body = await (await client.get("/api/terms")).json()
    assert body["source"] == "operator"
    # Served as the operator wrote it (the page shows it as text, so markup stays inert).
    assert body["text"] == ("# Our terms\n\nWrite to Help <help@example.org>.\n\n"
                            "<script>alert(1)</script>\n")

    # Changed on disk: the next request serves the new text, no restart.
    path.write_text("New terms.", encoding="utf-8")
    assert (await (await client.get("/api/terms")).json())["text"] == "New terms."

    # Too large to be terms: the default instead.
    path.write_bytes(b"x" * (MAX_TERMS_BYTES + 1))
    body = await (await client.get("/api/terms")).json()
    assert body["source"] == "default" and body["text"].startswith("# Terms of service")
