"""The harness's port blocks stay clear of the ports the kernel hands to outgoing connections."""

import random
import socket

import pytest

from tests.harness import services
from wangxin_stack.options import PORTS_USED


def test_blocks_are_drawn_below_the_ephemeral_range(monkeypatch) -> None:
    monkeypatch.setattr(services, "_ephemeral_range", lambda: (32768, 60999))
    for _ in range(50):
        base = services.free_port_block()
        assert 20000 <= base and base + PORTS_USED - 1 < 32768


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


def test_a_port_taken_for_udp_only_is_not_free(monkeypatch) -> None:
    """coturn listens on UDP too, and relays on UDP ports: a block must be free for both."""
    monkeypatch.setattr(services, "_ephemeral_range", lambda: (60000, 60999))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        for _ in range(100):
            port = random.randrange(20000, 30000)
            try:
                taken.bind(("127.0.0.1", port))
                break
            except OSError:
                continue
        assert not services._port_free(port)
        with pytest.raises(RuntimeError):
            services.free_port_block(1, start=port, end=port + 2)  # the one candidate: port
