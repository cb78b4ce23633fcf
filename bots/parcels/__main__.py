"""``wangxin-parcels-bot -c parcels-bot.yaml``: run the parcels bot."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from bots.common.cli import bot_main


def _parts() -> tuple[Callable[[str], Any], Callable[[Any], int]]:
    from bots.parcels.bot import run
    from bots.parcels.config import load_config

    return load_config, run


def main(argv: list[str] | None = None) -> int:
    return bot_main(argv, name="parcels", description="The Wangxin parcels bot (快递)", parts=_parts)


if __name__ == "__main__":
    sys.exit(main())
