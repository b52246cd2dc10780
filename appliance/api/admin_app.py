"""The admin application: every admin route module on one aiohttp app (Unix socket only)."""

from __future__ import annotations

from aiohttp import web

from appliance.api.admin import add_stream_routes
from appliance.api.admin_access import add_access_routes
from appliance.api.admin_analytics import add_analytics_routes
from appliance.api.admin_blocks import add_block_routes
from appliance.api.admin_common import MAX_BODY, STATE
from appliance.api.admin_events import add_event_stream
from appliance.api.admin_nostr import add_nostr_routes
from appliance.api.admin_recordings import add_recording_routes
from appliance.api.admin_restream import add_restream_routes
from appliance.api.admin_webhooks import add_webhook_routes
from appliance.state import AppState


def build_admin_app(state: AppState) -> web.Application:
    app = web.Application(client_max_size=MAX_BODY)
    app[STATE] = state
    add_stream_routes(app)
    add_event_stream(app)
    add_nostr_routes(app)
    add_block_routes(app, STATE)
    add_recording_routes(app)
    add_webhook_routes(app)
    add_restream_routes(app)
    add_access_routes(app)
    add_analytics_routes(app)
    return app
