"""Hearth appliance: composition root (config, domain, hub, db, APIs, lifecycle)."""
