"""Hearth's Nostr side: keys, NIP-53 live events, live chat and moderation (see service.py)."""
