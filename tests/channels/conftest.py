"""Channels fixtures: a migrated platform on each engine, the loopback peers started as
processes, and a ``make_channels`` factory that points a platform at them.

Other packages' tests start the same peers with ``hygie.channels.peers`` (``run_smsc``,
``run_mail_sink``, ``run_phone``) and drain the outbox with
``hygie.channels.worker.Dispatcher.drain``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hygie.channels.peers import SmscHandle, run_smsc
from hygie.channels.service import Channels
from hygie.channels.settings import channel_settings
from hygie.config import load_settings
from hygie.platform import Platform, open_platform
from hygie.store.migrations import upgrade

BASE = "http://testserver"


def open_test_platform(database_url: str, var_dir: Path, **channels: Any) -> Platform:
    settings = load_settings(database_url=database_url, var_dir=var_dir, base_url=BASE,
                             extra={"channels": channels})
    platform = open_platform(settings)
    upgrade(platform.engine)
    return platform


@pytest.fixture
def platform(database_url: str, tmp_path: Path) -> Iterator[Platform]:
    p = open_test_platform(database_url, tmp_path / "var")
    yield p
    p.close()


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    p = open_test_platform(f"sqlite:///{tmp_path / 'hygie.db'}", tmp_path / "var")
    yield p
    p.close()


@pytest.fixture
def smsc(tmp_path: Path) -> Iterator[SmscHandle]:
    with run_smsc(tmp_path / "smsc") as handle:
        yield handle


#: Short timers so that retries and settling happen within a test.
FAST = {"retry_base_s": 0.2, "retry_max_s": 1.0, "poll_s": 0.05, "lease_s": 2.0,
        "in_doubt_grace_s": 3.0, "smpp_response_timeout_s": 3.0, "smpp_reconnect_max_s": 0.5}


@pytest.fixture
def make_channels() -> Callable[..., Channels]:
    """Channels of a platform, with FAST timers and the given settings on top."""

    def make(platform: Platform, **overrides: Any) -> Channels:
        settings = channel_settings(platform.settings, **{**FAST, **overrides})
        channels = Channels(platform, settings)
        platform.parts["channels"] = channels
        return channels

    return make
