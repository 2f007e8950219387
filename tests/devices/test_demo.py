"""The ICU of ``hygie demo``: a gateway and simulated devices, started and stopped."""

from __future__ import annotations

import time

import pytest

from hygie.devices import demo
from hygie.devices.journal import open_journal
from hygie.platform import Platform
from hygie.store.interactions import StoreContext


def test_the_demo_icu_fills_the_board_and_stops(
    platform: Platform, store: StoreContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYGIE_DATABASE_URL", platform.settings.database_url)
    monkeypatch.setenv("HYGIE_VAR_DIR", str(platform.settings.var_dir))
    icu = demo.start(platform.settings)
    try:
        assert icu.port > 0 and len(icu.processes) == 2
        devices = demo.MONITORS + demo.VENTILATORS
        deadline = time.monotonic() + 90
        while (open_journal(platform).counts().get("stored", 0) < devices
               and time.monotonic() < deadline):
            time.sleep(0.5)
        assert open_journal(platform).counts().get("stored", 0) >= devices
        page = store.repository.search("Observation", [("_count", "0"), ("_total", "accurate")])
        assert page.total and page.total > 0
    finally:
        processes = list(icu.processes)
        icu.stop()
    assert all(p.poll() is not None for p in processes)
