"""What a bot keeps between runs: its login session, its sync position, and its ready mark."""

from __future__ import annotations

import json
import os
import time
from typing import Any


class BotStorage:
    def __init__(self, directory: str):
        self.directory = directory
        os.makedirs(directory, exist_ok=True)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name)

    def _read(self, name: str) -> Any:
        try:
            with open(self._path(name), encoding="utf-8") as f:
                return json.load(f)
        except (FileNotFoundError, ValueError):
            return None

    def _write(self, name: str, data: Any) -> None:
        tmp = self._path(name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o600)
        os.replace(tmp, self._path(name))

    def load_session(self) -> dict[str, str] | None:
        data = self._read("session.json")
        return data if isinstance(data, dict) else None

    def save_session(self, user_id: str, device_id: str, access_token: str) -> None:
        self._write("session.json", {"user_id": user_id, "device_id": device_id, "access_token": access_token})

    def load_sync_token(self) -> str | None:
        data = self._read("sync.json")
        return data.get("next_batch") if isinstance(data, dict) else None

    def save_sync_token(self, token: str) -> None:
        self._write("sync.json", {"next_batch": token})

    def mark_ready(self, user_id: str) -> None:
        """Tell whoever started the bot (the dev stack) that it has logged in and synced."""
        self._write("ready.json", {"user_id": user_id, "pid": os.getpid(), "ts": int(time.time() * 1000)})

    def clear_ready(self) -> None:
        try:
            os.remove(self._path("ready.json"))
        except FileNotFoundError:
            pass
