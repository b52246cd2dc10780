"""Delivery after the live edge: recordings (VOD + MP4), thumbnails and retention.

Every module here works on validated broadcast ids (:mod:`appliance.delivery.paths`) and does
its disk and PyAV work off the event loop; nothing here knows RTMP or the stream model.
"""
