"""Shared test helpers: a real appliance process, real publishers (ffmpeg CLI, PyAV)."""
