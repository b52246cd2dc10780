"""SRT ingest: a libsrt listener (:mod:`.server`, ctypes binding in :mod:`.libsrt`) and its
glue to channels and broadcasts (:mod:`.ingest`); MPEG-TS parsing lives in :mod:`media.ts`."""
