"""The harness's port blocks stay clear of the ports the kernel hands to outgoing connections."""

from tests.harness import services


def test_blocks_are_drawn_below_the_ephemeral_range(monkeypatch) -> None:
    monkeypatch.setattr(services, "_ephemeral_range", lambda: (32768, 60999))
    for _ in range(50):
        base = services.free_port_block()
        assert 20000 <= base and base + 7 < 32768


def test_a_range_above_the_ephemeral_one_is_used_as_given(monkeypatch) -> None:
    monkeypatch.setattr(services, "_ephemeral_range", lambda: (32768, 60999))
    base = services.free_port_block(2, start=61000, end=62000)
    assert 61000 <= base <= 61998


def test_no_block_outside_the_ephemeral_range_is_an_error(monkeypatch) -> None:
    monkeypatch.setattr(services, "_ephemeral_range", lambda: (1024, 65535))
    try:
        services.free_port_block(start=20000, end=30000)
    except RuntimeError as e:
        assert "outside 1024..65535" in str(e)
    else:
        raise AssertionError("a block inside the ephemeral range was returned")
