"""``wangxin-discovery-bot -c discovery-bot.yaml``: run the discovery bot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bots.common.cli import bot_main


def _parts() -> tuple[Callable[[str], Any], Callable[[Any], int]]:
    from bots.discovery.bot import run
    from bots.discovery.config import load_config

    return load_config, run


def main(argv: list[str] | None = None) -> int:
    return bot_main(argv, name="discovery", description="The Wangxin discovery bot", parts=_parts)


if __name__ == "__main__":
    sys.exit(main())
