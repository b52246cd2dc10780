"""``hearth webhook add|list|remove|test``: signed JSON POSTs on broadcast events (issue 14 §2).

Kept apart from :mod:`appliance.cli` like ``recording``: ``cli`` calls
:func:`add_webhook_parser`; each action sets its own ``func`` with ``set_defaults``.
The wire format and how a receiver verifies it: docs/webhooks.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any
from urllib.parse import quote

from appliance.api.schema import (
    WEBHOOK_EVENTS,
    AdminWebhook,
    WebhookCreated,
    WebhookTestQueued,
    safe_text,
)
from appliance.cli_parsing import leaf
from appliance.webhooks.payload import WebhookError, parse_events, validate_url

LIST_FIELDS = ("id", "url", "events", "state", "last_status", "last_error",
               "consecutive_failures", "pending", "dropped", "last_success_at", "created_at")
"""``hearth webhook list --json`` keys (the contract)."""


def add_webhook_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register ``webhook add|list|remove|test`` on the top-level subparsers."""
    wh = sub.add_parser(
        "webhook", help="POST signed JSON to URLs when broadcasts start, end, ...",
        description="Webhooks: Hearth POSTs a signed JSON message to each endpoint when an "
                    "event it subscribed to happens (docs/webhooks.md). Events: "
                    + ", ".join(WEBHOOK_EVENTS) + ".")
    wsub = wh.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = leaf(wsub, common, "add", cmd_add, "add an endpoint (prints its secret once)",
               "Add an endpoint. Without --event it receives every event. The signing "
               "secret is printed once: keep it with the receiver.",
               "  hearth webhook add https://ntfy.sh/my-topic --event broadcast.live\n"
               "  hearth webhook add http://127.0.0.1:9000/hook --json")
    add.add_argument("url", help="http:// or https:// URL to POST to")
    add.add_argument("--event", action="append", default=[], metavar="EVENT",
                     help="subscribe to EVENT (repeatable; default: all): "
                          + ", ".join(WEBHOOK_EVENTS))
    leaf(wsub, common, "list", cmd_list, "list endpoints with their delivery state",
         "List endpoints: state (new, ok, failing), last HTTP status and error, "
         "consecutive failures, deliveries waiting.",
         "  hearth webhook list\n  hearth webhook list --json")
    rm = leaf(wsub, common, "remove", cmd_remove, "remove an endpoint",
              "Remove an endpoint and drop its undelivered messages.",
              "  hearth webhook remove 3f2a9c1b7d4e")
    rm.add_argument("id", help="webhook id (from `hearth webhook list`)")
    test = leaf(wsub, common, "test", cmd_test, "send a webhook.test message",
                "Queue a webhook.test message to this endpoint (delivered with retries "
                "like any other; see `hearth webhook list` for the outcome).",
                "  hearth webhook test 3f2a9c1b7d4e")
    test.add_argument("id", help="webhook id (from `hearth webhook list`)")


def _fail(message: str) -> int:
    print(f"hearth: {message}", file=sys.stderr)
    return 2


async def cmd_add(client: Any, args: argparse.Namespace) -> int:
    try:
        url = validate_url(args.url)
        events = parse_events(args.event)
    except WebhookError as exc:
        return _fail(str(exc))
    data = await client.request("POST", "/v1/webhooks", {"url": url, "events": events})
    created = WebhookCreated.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    w = created.webhook
    print(f"Webhook {w.id} added: {safe_text(w.url, 200)}")
    print(f"  events  {', '.join(w.events) or 'all'}")
    print(f"  secret  {created.secret}")
    print("The secret is shown only now: give it to the receiver to verify "
          "Hearth-Webhook-Signature (docs/webhooks.md).")
    return 0


def _row(w: AdminWebhook) -> dict[str, Any]:
    d = w.to_dict()
    return {k: d[k] for k in LIST_FIELDS}


async def cmd_list(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("GET", "/v1/webhooks")
    hooks = [AdminWebhook.from_dict(d) for d in data]
    if args.json:
        print(json.dumps([_row(w) for w in hooks], indent=2))
        return 0
    if not hooks:
        print("No webhooks. Add one: hearth webhook add URL")
        return 0
    print(f"{'ID':12} {'STATE':8} {'LAST':>4} {'FAILS':>5} {'QUEUE':>5} URL")
    for w in hooks:
        status = str(w.last_status) if w.last_status is not None else "-"
        print(f"{w.id:12} {w.state.value:8} {status:>4} {w.consecutive_failures:>5} "
              f"{w.pending:>5} {safe_text(w.url, 80)}")
        print(f"{'':12} events: {', '.join(w.events) or 'all'}")
        if w.last_success_at:
            when = dt.datetime.fromtimestamp(w.last_success_at).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{'':12} last delivered {when}")
        if w.last_error:
            print(f"{'':12} ↳ {safe_text(w.last_error, 120)}")
        if w.dropped:
            print(f"{'':12} {w.dropped} message(s) dropped (outbox full)")
    return 0


async def cmd_remove(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("DELETE", f"/v1/webhooks/{quote(args.id, safe='')}")
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"Webhook {safe_text(args.id, 40)} removed.")
    return 0


async def cmd_test(client: Any, args: argparse.Namespace) -> int:
    data = await client.request("POST", f"/v1/webhooks/{quote(args.id, safe='')}/test")
    queued = WebhookTestQueued.from_dict(data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(f"Test message {queued.delivery_id} queued for {queued.webhook_id}; "
              "`hearth webhook list` shows the outcome.")
    return 0
