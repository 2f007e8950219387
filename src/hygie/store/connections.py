"""Pooled connections for work that does not need a transaction around it.

Most of the platform's SQL goes through SQLAlchemy ``Connection`` objects inside the
repository's transactions. Two kinds of work are better served without: statements
that are each consistent on their own (a read by id, an access check), which need no
BEGIN and ROLLBACK, and the hot paths where a ``Connection``'s own objects, events
and result cost more than the statement (a read by id, the audit trail's appends),
which talk to the pooled DB-API connection directly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine

__all__ = ["autocommit_driver_connection", "single_statement_reads"]


@contextmanager
def single_statement_reads(engine: Engine) -> Iterator[Connection]:
    """A pooled connection for reads that are each consistent on their own.

    No transaction is begun: on SQLite no BEGIN and ROLLBACK around the statement, on
    PostgreSQL autocommit, which saves their round trips (each as dear as a short query).
    """
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="")
        else:
            conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


class autocommit_driver_connection:
    """The driver's own connection (``sqlite3`` or ``psycopg``) of a pooled one, in
    autocommit: each statement commits on its own unless the caller sends BEGIN.

    The platform's SQLite connections are always so (``isolation_level`` None). A
    PostgreSQL connection is switched to autocommit for the block, and a transaction
    the caller left open (a failure half-way) is rolled back before it is switched
    back. On an error the connection is dropped from the pool rather than handed to
    the next caller in an unknown state. The pool's checkout and return still run.
    (A class rather than a generator: it serves every read by id, and the generator's
    context manager cost 4,000 more instructions each.)
    """

    __slots__ = ("_fairy", "_postgres")

    def __init__(self, engine: Engine) -> None:
        self._fairy: Any = engine.raw_connection()
        self._postgres = engine.dialect.name != "sqlite"

    def __enter__(self) -> Any:
        dbapi = self._fairy.driver_connection
        if self._postgres:
            try:
                dbapi.autocommit = True
            except Exception:
                self._fairy.invalidate()
                self._fairy.close()
                raise
        return dbapi

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 _tb: Any) -> None:
        fairy = self._fairy
        try:
            dbapi = fairy.driver_connection
            if self._postgres and not dbapi.closed:
                if dbapi.info.transaction_status.name != "IDLE":
                    dbapi.execute("ROLLBACK")  # nothing of a failed block stays
                dbapi.autocommit = False
        except Exception:
            fairy.invalidate()
            fairy.close()
            raise
        if error is not None:
            fairy.invalidate()
        fairy.close()
