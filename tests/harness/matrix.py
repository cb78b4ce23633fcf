"""Real matrix-nio clients for tests, and small helpers to wait for what they should see."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from nio import AsyncClient, AsyncClientConfig, RoomCreateResponse, RoomMessagesResponse, RoomPreset, SyncResponse


async def client_for(url: str, user: dict[str, Any]) -> AsyncClient:
    client = AsyncClient(url, user["user_id"], config=AsyncClientConfig(encryption_enabled=False))
    client.restore_login(user["user_id"], user["device_id"], user["access_token"])
    return client


async def create_dm(client: AsyncClient, other: str, *, encrypted: bool = False) -> str:
    """A DM created the way Element creates one: private chat preset, ``is_direct``, the other invited."""
    initial_state = []
    if encrypted:
        initial_state.append(
            {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
        )
    response = await client.room_create(
        is_direct=True, invite=[other], preset=RoomPreset.trusted_private_chat, initial_state=initial_state
    )
    assert isinstance(response, RoomCreateResponse), response
    return response.room_id


async def wait_for_event(
    client: AsyncClient,
    room_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 30,
) -> dict[str, Any]:
    """Page the room's timeline until an event matches; returns the event's source dict."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        response = await client.room_messages(room_id, start="", limit=100)
        if isinstance(response, RoomMessagesResponse):
            seen = [e.source for e in response.chunk]
            for source in seen:
                if predicate(source):
                    return source
        await asyncio.sleep(0.3)
    bodies = [(e.get("sender"), e.get("type"), (e.get("content") or {}).get("body")) for e in seen[:10]]
    raise AssertionError(f"no matching event in {room_id} within {timeout}s; latest: {bodies}")


async def room_events(client: AsyncClient, room_id: str, limit: int = 200) -> list[dict[str, Any]]:
    response = await client.room_messages(room_id, start="", limit=limit)
    assert isinstance(response, RoomMessagesResponse), response
    return [e.source for e in response.chunk]


async def wait_joined(client: AsyncClient, room_id: str, user_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.joined_members(room_id)
        members = getattr(response, "members", [])
        if any(m.user_id == user_id for m in members):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{user_id} did not join {room_id} within {timeout}s")


async def send_text(client: AsyncClient, room_id: str, body: str) -> str:
    response = await client.room_send(room_id, "m.room.message", {"msgtype": "m.text", "body": body})
    return str(response.event_id)


def is_reply_to(event_id: str, sender: str) -> Callable[[dict[str, Any]], bool]:
    def match(event: dict[str, Any]) -> bool:
        relates = (event.get("content") or {}).get("m.relates_to") or {}
        return event.get("sender") == sender and (relates.get("m.in_reply_to") or {}).get("event_id") == event_id

    return match


__all__ = ["SyncResponse", "client_for", "create_dm", "wait_for_event", "room_events", "wait_joined", "send_text"]
