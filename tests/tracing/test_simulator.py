"""The phone simulator against the real HTTP API: notifications follow true contacts."""

from __future__ import annotations

from pathlib import Path

from hygie.tracing.simulator import SimulationConfig, run_simulation


def test_small_town(tmp_path: Path) -> None:
    cfg = SimulationConfig(n_phones=24, days=4, positive_share=0.125, seed=3)
    result = run_simulation(cfg, tmp_path)
    assert result.requests["register"] == 24 and result.requests["status"] == 24 * 4
    assert result.requests["report"] == result.positives == 3
    assert result.hellos > 0 and result.true_contacts
    # Scoring is a proxy of distance and duration: most true contacts are told, and
    # most of those told are true contacts (the thresholds are not the same quantity).
    assert result.recall >= 0.6 and result.precision >= 0.6
    text = result.summary()
    assert "precision:" in text and "recall:" in text
