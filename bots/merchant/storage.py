"""What the merchant bot keeps between runs: a bot's session and sync position
(``bots.common.storage``), and the last image each merchant sent it."""

from __future__ import annotations

from bots.common.storage import BotStorage


class MerchantStorage(BotStorage):
    def last_image(self, user_id: str) -> str | None:
        data = self._read("last_images.json") or {}
        value = data.get(user_id)
        return value if isinstance(value, str) else None

    def save_last_image(self, user_id: str, mxc: str) -> None:
        data = self._read("last_images.json") or {}
        data[user_id] = mxc
        self._write("last_images.json", data)

    def drafts_shown(self, user_id: str) -> list[list[str]]:
        """The scheduled posts ``drafts`` last listed for ``user_id``: ``[account_id, post_id]``, numbered from 1."""
        data = self._read("drafts_shown.json") or {}
        value = data.get(user_id)
        return [list(map(str, v)) for v in value] if isinstance(value, list) else []

    def save_drafts_shown(self, user_id: str, shown: list[list[str]]) -> None:
        data = self._read("drafts_shown.json") or {}
        data[user_id] = shown
        self._write("drafts_shown.json", data)
