"""Hearth media library: RTMP ingest, H.264/AAC helpers, fMP4 and HLS packaging.

Imports only the standard library (and PyAV/aiortc where stated); never other Hearth packages.
"""
