"""``wangxin-merchant-bot -c merchant-bot.yaml``: run the merchant bot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bots.common.cli import bot_main


def _parts() -> tuple[Callable[[str], Any], Callable[[Any], int]]:
    from bots.merchant.bot import run
    from bots.merchant.config import load_config

    return load_config, run


def main(argv: list[str] | None = None) -> int:
    return bot_main(argv, name="merchant", description="The Wangxin merchant bot", parts=_parts)


if __name__ == "__main__":
    sys.exit(main())
