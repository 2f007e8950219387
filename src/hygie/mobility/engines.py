"""The engines the pipeline runs on: DuckDB (default, one machine) and PySpark.

Both are reached through Ibis, so ``pipeline.py`` is written once. PySpark is for
data that outgrows one machine; tests run it as ``local[2]``. Each engine is imported
only when used, and a missing one raises ``EngineUnavailable`` naming the extra.
"""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import pandas as pd

ENGINES = ("duckdb", "pyspark")


class EngineUnavailable(RuntimeError):
    """The engine's library is not installed: install the ``hygie[mobility]`` extra."""


class Engine:
    """An open Ibis backend and how to read Parquet and pandas into it."""

    def __init__(self, name: str, backend: Any, session: Any = None) -> None:
        self.name = name
        self.backend = backend
        self._session = session

    def read_parquet(self, folder: Path) -> ir.Table:
        """A table over every ``*.parquet`` file of ``folder``."""
        files = sorted(glob.glob(str(Path(folder) / "*.parquet")))
        if not files:
            raise FileNotFoundError(f"no Parquet file in {folder}")
        if self.name == "duckdb":
            return self.backend.read_parquet(files)
        return self.backend.read_parquet(str(folder))

    def table(self, frame: pd.DataFrame, schema: ibis.Schema | None = None) -> ir.Table:
        """A (small) pandas frame as a table usable in this engine's expressions."""
        return ibis.memtable(frame, schema=schema)

    def close(self) -> None:
        if self.name == "duckdb":
            self.backend.disconnect()
        # A Spark session is shared by the process (SparkSession.getOrCreate): keep it.


def connect(name: str = "duckdb", threads: int | None = None,
            memory_limit: str | None = None) -> Engine:
    """Open an engine: ``duckdb`` in memory, or ``pyspark`` as ``local[threads]``."""
    if name == "duckdb":
        try:
            import duckdb  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineUnavailable("duckdb is not installed: pip install 'hygie[mobility]'") \
                from exc
        backend = ibis.duckdb.connect()
        backend.raw_sql("SET TimeZone = 'UTC'")
        if threads:
            backend.raw_sql(f"SET threads = {int(threads)}")
        if memory_limit:
            backend.raw_sql(f"SET memory_limit = '{memory_limit}'")
        backend.raw_sql("SET preserve_insertion_order = false")
        return Engine("duckdb", backend)
    if name == "pyspark":
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise EngineUnavailable("pyspark is not installed: pip install 'hygie[mobility]'") \
                from exc
        session = (
            SparkSession.builder.master(f"local[{threads or 2}]")
            .appName("hygie-mobility")
            .config("spark.ui.enabled", "false")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.shuffle.partitions", str(4 * (threads or 2)))
            .config("spark.sql.adaptive.enabled", "true")
            .config("spark.driver.memory", memory_limit or "2g")
            .config("spark.log.level", "ERROR")
            .getOrCreate()
        )
        return Engine("pyspark", ibis.pyspark.connect(session), session)
    raise ValueError(f"unknown engine {name!r}: expected one of {', '.join(ENGINES)}")
