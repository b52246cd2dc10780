"""The async facade over SQLite: one writer thread, one reader thread (datasette pattern).

Writes run on a dedicated thread inside ``BEGIN IMMEDIATE … COMMIT``; ``await store.write(fn)``
returns only after COMMIT, so whatever the caller acknowledges is durable (WAL +
``synchronous=FULL``: durable across process crashes *and* power loss, docs/threat-model.md
§filesystem).
Reads use a second connection on its own thread. Nothing touches SQLite on the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlite_utils import Database

from appliance.db.migrations import apply_migrations

logger = logging.getLogger(__name__)

T = TypeVar("T")

WAL_CHECKPOINT_BYTES = 16 << 20


def open_database(path: Path | str) -> Database:
    """Open a connection configured the way every Hearth connection must be."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=5.0)
    db = Database(conn)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute(f"PRAGMA journal_size_limit={WAL_CHECKPOINT_BYTES}")
    return db


class Store:
    """Async access to the database. Create with :meth:`open`, finish with :meth:`close`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db-writer")
        self._reader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="db-reader")
        self._local = threading.local()
        self._closed = False

    @classmethod
    async def open(cls, path: Path) -> Store:
        store = cls(path)
        loop = asyncio.get_running_loop()
        applied = await loop.run_in_executor(store._writer, store._init_writer)
        if applied:
            logger.info("database %s: applied migrations %s", path, ", ".join(applied))
        return store

    def _init_writer(self) -> list[str]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = open_database(self.path)
        self._local.db = db
        try:
            os.chmod(self.path, 0o600)
        except OSError:
            pass
        return apply_migrations(db)

    def _thread_db(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is None:
            db = open_database(self.path)
            self._local.db = db
        return db

    def _run_write(self, fn: Callable[[Database], T]) -> T:
        db = self._thread_db()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    def _run_read(self, fn: Callable[[Database], T]) -> T:
        db = self._thread_db()
        db.execute("BEGIN")  # one consistent snapshot, kept short
        try:
            return fn(db)
        finally:
            db.execute("COMMIT")

    async def write(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` in one transaction on the writer thread; returns after COMMIT."""
        if self._closed:
            raise RuntimeError("store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._run_write, fn)

    def write_soon(self, fn: Callable[[Database], T]) -> asyncio.Future[T]:
        """Queue ``fn`` on the writer thread now (not when awaited); await the future for COMMIT.

        For callers that must fix the order of writes from synchronous code: writes run in
        submission order, so a later :meth:`write` sees this one committed.
        """
        if self._closed:
            raise RuntimeError("store is closed")
        return asyncio.get_running_loop().run_in_executor(self._writer, self._run_write, fn)

    async def read(self, fn: Callable[[Database], T]) -> T:
        """Run ``fn(db)`` in a read transaction on the reader thread."""
        if self._closed:
            raise RuntimeError("store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._reader, self._run_read, fn)

    async def checkpoint(self) -> None:
        """Truncate the WAL when it has grown (checkpoint starvation guard, docs/threat-model.md
        §filesystem)."""
        wal = Path(str(self.path) + "-wal")

        def _checkpoint_if_grown() -> None:  # on the writer thread: stat() is disk I/O too
            try:
                size = wal.stat().st_size
            except FileNotFoundError:
                return
            if size > WAL_CHECKPOINT_BYTES:
                self._thread_db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

        await asyncio.get_running_loop().run_in_executor(self._writer, _checkpoint_if_grown)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()

        def _close_thread() -> None:
            db: Database | None = getattr(self._local, "db", None)
            if db is not None:
                db.conn.close()
                self._local.db = None

        await loop.run_in_executor(self._writer, _close_thread)
        await loop.run_in_executor(self._reader, _close_thread)
        self._writer.shutdown(wait=True)
        self._reader.shutdown(wait=True)
