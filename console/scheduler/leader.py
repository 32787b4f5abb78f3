"""Leader election: exactly one scheduler instance runs jobs at a time.

PostgreSQL: a session-level advisory lock on a dedicated connection; if that connection dies the
lock is released by the server and a standby takes over. SQLite (single machine): an exclusive
file lock beside the database file, released by the kernel when the process dies.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import Engine

# Arbitrary but fixed: identifies "the console scheduler" among advisory locks.
ADVISORY_LOCK_KEY = 0x46494E4349  # "FINCI"


class Leadership:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._connection = None
        self._lock_file = None

    def try_acquire(self) -> bool:
        if self.engine.dialect.name == "postgresql":
            return self._try_postgres()
        return self._try_file()

    def still_held(self) -> bool:
        if self._connection is None and self._lock_file is None:
            return False
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
            except Exception:
                self.release()
                return False
        return True

    def release(self) -> None:
        if self._connection is not None:
            # If the connection is already gone, so is the lock: nothing to undo.
            with contextlib.suppress(Exception):
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"),
                                         {"k": ADVISORY_LOCK_KEY})
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        if self._lock_file is not None:
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _try_postgres(self) -> bool:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        acquired = connection.execute(text("SELECT pg_try_advisory_lock(:k)"),
                                      {"k": ADVISORY_LOCK_KEY}).scalar()
        if acquired:
            self._connection = connection
            return True
        connection.close()
        return False

    def _try_file(self) -> bool:
        database = self.engine.url.database or "memory"
        path = Path(f"{database}.scheduler.lock")
        handle = open(path, "a+")  # noqa: SIM115 - held for as long as we lead
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock_file = handle
        return True
