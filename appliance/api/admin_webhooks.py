"""Admin API routes for webhooks (Unix socket only; docs/webhooks.md).

* ``GET    /v1/webhooks`` → ``[AdminWebhook]`` (never a secret).
* ``POST   /v1/webhooks`` ``WebhookCreate`` → 201 ``WebhookCreated`` (the secret, this once).
* ``DELETE /v1/webhooks/{id}`` → ``{"id", "deleted": true}``.
* ``POST   /v1/webhooks/{id}/test`` → 202 ``WebhookTestQueued`` (a ``webhook.test`` delivery).
"""

from __future__ import annotations

import re

from aiohttp import web

from appliance.api.admin_common import STATE, error_response, json_body
from appliance.api.schema import (
    AdminWebhook,
    SchemaError,
    WebhookCreate,
    WebhookCreated,
    WebhookState,
    WebhookTestQueued,
)
from appliance.db.webhook_queries import EndpointRow
from appliance.state import AppState
from appliance.webhooks.payload import WebhookError
from appliance.webhooks.service import WebhookNotFound, WebhookService

WEBHOOK_ID_RE = re.compile(r"[0-9a-f]{12}")


def _service(state: AppState) -> WebhookService:
    if state.webhooks is None:
        raise web.HTTPServiceUnavailable(text='{"error": "webhooks are starting"}',
                                         content_type="application/json")
    return state.webhooks


def admin_webhook(ep: EndpointRow) -> AdminWebhook:
    if not ep.enabled:
        st = WebhookState.DISABLED
    elif ep.last_attempt_at is None:
        st = WebhookState.NEW
    elif ep.consecutive_failures:
        st = WebhookState.FAILING
    else:
        st = WebhookState.OK
    return AdminWebhook(id=ep.id, url=ep.url, events=list(ep.events), state=st,
                        enabled=ep.enabled, created_at=ep.created_at,
                        last_status=ep.last_status, last_error=ep.last_error,
                        last_success_at=ep.last_success_at,
                        consecutive_failures=ep.consecutive_failures, pending=ep.pending,
                        dropped=ep.dropped)


def _id(request: web.Request) -> str | None:
    value = request.match_info["webhook_id"]
    return value if WEBHOOK_ID_RE.fullmatch(value) else None


async def list_webhooks(request: web.Request) -> web.Response:
    eps = await _service(request.app[STATE]).endpoints()
    return web.json_response([admin_webhook(ep).to_dict() for ep in eps])


async def create_webhook(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    try:
        body = WebhookCreate.from_dict(await json_body(request))
        ep, secret = await service.create(body.url, body.events)
    except (SchemaError, WebhookError) as exc:
        return error_response(400, str(exc))
    return web.json_response(WebhookCreated(webhook=admin_webhook(ep), secret=secret).to_dict(),
                             status=201)


async def delete_webhook(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    wid = _id(request)
    try:
        if wid is None:
            raise WebhookNotFound("")
        await service.remove(wid)
    except WebhookNotFound:
        return error_response(404, "no such webhook")
    return web.json_response({"id": wid, "deleted": True})


async def test_webhook(request: web.Request) -> web.Response:
    service = _service(request.app[STATE])
    wid = _id(request)
    try:
        if wid is None:
            raise WebhookNotFound("")
        delivery_id = await service.test(wid)
    except WebhookNotFound:
        return error_response(404, "no such webhook")
    return web.json_response(WebhookTestQueued(webhook_id=wid, delivery_id=delivery_id)
                             .to_dict(), status=202)


def add_webhook_routes(app: web.Application) -> None:
    app.router.add_get("/v1/webhooks", list_webhooks)
    app.router.add_post("/v1/webhooks", create_webhook)
    app.router.add_delete("/v1/webhooks/{webhook_id}", delete_webhook)
    app.router.add_post("/v1/webhooks/{webhook_id}/test", test_webhook)
