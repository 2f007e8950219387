"""The package's public names."""

import hygie.devices


def test_all_is_sorted_and_complete() -> None:
    names = hygie.devices.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(hygie.devices, name) is not None
