"""Webhooks: signed JSON POSTs to operator-configured URLs from a durable outbox (docs/webhooks.md).

:mod:`~appliance.webhooks.payload` holds the pure parts (URL and event-name validation, the
payload and its HMAC signature); :mod:`~appliance.webhooks.service` the bus consumer and the
sender; the SQL is in :mod:`appliance.db.webhook_queries`.
"""
