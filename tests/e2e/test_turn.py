"""Calls connect across networks: Synapse hands out TURN credentials for the stack's coturn, and a
real TURN client (aioice's) allocates a relay with them and relays through it (docs/calls.md)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from aioice import stun
from aioice.turn import create_turn_endpoint

from tests.harness.stack import RunningStack

# Waits for an answer from coturn on loopback; a generous bound, not a timing assertion.
ANSWER_TIMEOUT_S = 30


@pytest.fixture
def turn_info(stack: RunningStack) -> dict[str, Any]:
    info = stack.info.get("turn")
    if info is None:
        message = "coturn is not installed (`apt install coturn`): the stack runs no TURN server"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; .ci/run installs it, and CI must not skip the TURN tests", pytrace=False)
        pytest.skip(message)
    return dict(info)


def _credentials(stack: RunningStack, user: dict[str, Any]) -> dict[str, Any]:
    r = requests.get(f"{stack.url}/_matrix/client/v3/voip/turnServer",
                     headers={"Authorization": f"Bearer {user['access_token']}"}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def _server(uri: str) -> tuple[tuple[str, int], str]:
    """``turn:127.0.0.1:28008?transport=udp`` -> ((host, port), "udp")."""
    parts = urlsplit(uri)
    assert parts.scheme == "turn", uri
    host, _, port = parts.path.rpartition(":")
    transport = dict(p.split("=", 1) for p in parts.query.split("&") if p).get("transport", "udp")
    return (host, int(port)), transport


def _stack_secret(stack: RunningStack) -> str:
    with open(os.path.join(stack.dir, "state.json"), encoding="utf-8") as f:
        return str(json.load(f)["secrets"]["turn_shared_secret"])


def _signed(username: str, secret: str) -> str:
    """The TURN REST credential scheme Synapse and coturn share: HMAC-SHA1 of the user name."""
    return base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()


class _Receiver(asyncio.DatagramProtocol):
    """What arrives through the relay, and the errors the TURN transport reports."""

    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[tuple[bytes, Any]] = asyncio.Queue()
        self.errors: asyncio.Queue[Exception] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.datagrams.put_nowait((data, addr))

    def error_received(self, exc: Exception) -> None:
        self.errors.put_nowait(exc)


async def _allocate(uri: str, username: str, password: str) -> tuple[Any, _Receiver]:
    server, transport = _server(uri)
    return await asyncio.wait_for(
        create_turn_endpoint(_Receiver, server_addr=server, username=username, password=password, transport=transport),
        ANSWER_TIMEOUT_S,
    )


def test_a_user_gets_credentials_for_the_stacks_turn_server(stack: RunningStack, turn_info: dict[str, Any]) -> None:
    user = stack.register_user()
    before = int(time.time())
    creds = _credentials(stack, user)
    assert creds["uris"] == turn_info["uris"]
    assert {_server(u)[1] for u in creds["uris"]} == {"udp", "tcp"}
    assert creds["ttl"] == 3600  # turn_user_lifetime
    expiry, _, user_id = creds["username"].partition(":")
    assert user_id == user["user_id"] and before + 3600 <= int(expiry) <= int(time.time()) + 3600
    assert creds["password"]
    r = requests.get(f"{stack.url}/_matrix/client/v3/voip/turnServer", timeout=30)
    assert r.status_code == 401 and r.json()["errcode"] == "M_MISSING_TOKEN"


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_an_allocation_with_synapses_credentials_relays_to_a_peer(
    stack: RunningStack, turn_info: dict[str, Any], transport: str
) -> None:
    creds = _credentials(stack, stack.register_user())
    (uri,) = [u for u in creds["uris"] if _server(u)[1] == transport]
    relay, receiver = await _allocate(uri, creds["username"], creds["password"])
    try:
        relayed = relay.get_extra_info("sockname")
        low, high = turn_info["relay_ports"]
        assert relayed[0] == "127.0.0.1" and low <= relayed[1] <= high, relayed

        # A peer on loopback (the other side of a call on this machine) hears the relay, and answers.
        loop = asyncio.get_running_loop()
        peer_transport, peer = await loop.create_datagram_endpoint(_Receiver, local_addr=("127.0.0.1", 0))
        try:
            peer_addr = peer_transport.get_extra_info("sockname")
            relay.sendto(b"ping", peer_addr)
            data, source = await asyncio.wait_for(peer.datagrams.get(), ANSWER_TIMEOUT_S)
            assert (data, tuple(source)) == (b"ping", tuple(relayed))
            peer_transport.sendto(b"pong", relayed)
            data, source = await asyncio.wait_for(receiver.datagrams.get(), ANSWER_TIMEOUT_S)
            assert (data, tuple(source)) == (b"pong", tuple(peer_addr))
            assert receiver.errors.empty()
        finally:
            peer_transport.close()
    finally:
        relay.close()


async def test_the_relay_cannot_reach_private_networks(stack: RunningStack, turn_info: dict[str, Any]) -> None:
    """A caller must not use the relay to reach the TURN server's internal network or a cloud
    metadata service: coturn refuses the channel (403) and nothing is sent."""
    creds = _credentials(stack, stack.register_user())
    relay, receiver = await _allocate(creds["uris"][0], creds["username"], creds["password"])
    try:
        for peer in (("10.0.0.1", 9), ("192.168.1.1", 9), ("169.254.169.254", 80)):
            relay.sendto(b"probe", peer)
            error = await asyncio.wait_for(receiver.errors.get(), ANSWER_TIMEOUT_S)
            assert isinstance(error, stun.TransactionFailed), error
            assert error.response.error_code == 403, (peer, error)
    finally:
        relay.close()


async def test_wrong_credentials_are_refused(stack: RunningStack, turn_info: dict[str, Any]) -> None:
    user = stack.register_user()
    creds = _credentials(stack, user)
    secret = _stack_secret(stack)
    expired = f"{int(time.time()) - 60}:{user['user_id']}"
    attempts = {
        "a wrong password": (creds["username"], creds["password"][:-4] + "AAA="),
        "another user's name with this password": (creds["username"].replace(user["user_id"], "@admin:x"),
                                                   creds["password"]),
        "expired credentials, correctly signed": (expired, _signed(expired, secret)),
        "credentials signed with another secret": (creds["username"], _signed(creds["username"], "not-the-secret")),
    }
    assert _signed(creds["username"], secret) == creds["password"]  # the scheme the forgeries follow
    for what, (username, password) in attempts.items():
        for uri in creds["uris"]:
            with pytest.raises(stun.TransactionFailed) as refused:
                relay, _ = await _allocate(uri, username, password)
                relay.close()
            assert refused.value.response.error_code == 401, (what, uri, refused.value)
