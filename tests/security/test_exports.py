"""The public surface of hygie.security stays sorted and importable."""

import hygie.security


def test_all_is_sorted_and_complete() -> None:
    names = hygie.security.__all__
    assert names == sorted(names)
    for name in names:
        assert getattr(hygie.security, name) is not None
