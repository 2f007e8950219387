"""Database writes of the channels package: one lock order, bounded statements.

Writers take the write lock first (``BEGIN IMMEDIATE`` on SQLite), so that two writers
queue instead of deadlocking; lists of ids are cut into chunks so that no statement
binds more parameters than a backend accepts. Times are UTC milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
