"""Hearth operator dashboard (Textual). Talks to the appliance only through the admin API."""
