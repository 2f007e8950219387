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
import pyarrow as pa

ENGINES = ("duckdb", "pyspark")
#: Arrow types of reference tables, as Spark DDL (for empty tables, which Spark cannot infer).
_SPARK_TYPES = {"int32": "INT", "int64": "BIGINT", "double": "DOUBLE", "string": "STRING",
                "large_string": "STRING"}


class EngineUnavailable(RuntimeError):
    """The engine's library is not installed: install the ``hygie[mobility]`` extra."""


class Engine:
    """An open Ibis backend and how to read Parquet and pandas into it."""

    def __init__(self, name: str, backend: Any, session: Any = None) -> None:
        self.name = name
        self.backend = backend
        self._session = session
        self._views = 0

    def read_parts(self, folder: Path) -> list[ir.Table]:
        """One table per ``*.parquet`` file of ``folder`` (each part holds its own devices)."""
        files = sorted(glob.glob(str(Path(folder) / "*.parquet")))
        if not files:
            raise FileNotFoundError(f"no Parquet file in {folder}")
        return [self.backend.read_parquet(f) for f in files]

    def table(self, frame: pd.DataFrame, schema: ibis.Schema | None = None) -> ir.Table:
        """A (small) pandas frame as a table usable in this engine's expressions.

        It goes through Arrow: Ibis's pandas path reads a pandas option that pandas 3
        deprecates (a warning on every call).
        """
        arrow = pa.Table.from_pandas(frame, schema=schema.to_pyarrow() if schema else None,
                                     preserve_index=False)
        if self.name == "pyspark":
            # Cached expressions do not register memtables on Spark: use a temp view.
            self._views += 1
            name = f"hygie_mobility_ref_{id(self)}_{self._views}"
            ddl = ", ".join(f"`{f.name}` {_SPARK_TYPES[str(f.type)]}" for f in arrow.schema)
            spark_frame = self._session.createDataFrame(arrow.to_pandas(), schema=ddl)
            spark_frame.createOrReplaceTempView(name)
            return self.backend.table(name)
        return ibis.memtable(arrow)

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
