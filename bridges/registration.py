"""The appservice registration Synapse loads (``app_service_config_files``).

The root ``appservice.yaml`` is this function's output with placeholder values; a test keeps
the two identical, so the documented template cannot drift from what the stack generates.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import yaml

PLACEHOLDER_AS_TOKEN = "CHANGE_ME_as_token"
PLACEHOLDER_HS_TOKEN = "CHANGE_ME_hs_token"


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def build_registration(
    *,
    appservice_id: str,
    url: str | None,
    as_token: str,
    hs_token: str,
    server_name: str,
    bot_localpart: str,
    ghost_prefix: str,
) -> dict[str, Any]:
    server = re.escape(server_name)
    return {
        "id": appservice_id,
        "url": url,
        "as_token": as_token,
        "hs_token": hs_token,
        "sender_localpart": bot_localpart,
        "namespaces": {
            # Synapse anchors namespace regexes at the start only; the trailing $ is ours.
            "users": [{"exclusive": True, "regex": f"@{re.escape(ghost_prefix)}[^:]*:{server}$"}],
            "aliases": [],
            "rooms": [],
        },
        # Imports create rooms and invite thousands of members: with Synapse's per-room join and
        # invite limits a big import would take hours (docs/synapse.md, "Rate limits").
        "rate_limited": False,
        "receive_ephemeral": False,
    }


def render_registration(registration: dict[str, Any], header: str = "") -> str:
    return header + yaml.safe_dump(registration, sort_keys=False, allow_unicode=True)


TEMPLATE_HEADER = """\
# Wangxin bridge: appservice registration template.
#
# Synapse loads a registration like this one through `app_service_config_files` in
# homeserver.yaml. The dev stack (`make up`) writes a real one with fresh random tokens into
# its stack directory. For a production server, generate one with:
#
#   wangxin-bridge generate-registration --server-name example.org \\
#       --url http://127.0.0.1:29330 --output /etc/synapse/wangxin-registration.yaml \\
#       --bridge-config /etc/wangxin/bridge.yaml
#
# which draws as_token and hs_token from a cryptographic random source and writes the same
# tokens into the bridge's own config. Never reuse the placeholders below.
#
#   url               where Synapse reaches the bridge (keep it on loopback or a private net)
#   sender_localpart  the bridge bot, @wangxin:<server>
#   namespaces.users  ghosts: placeholder members of imported groups and SMS contacts
#   rate_limited      false: imports create rooms and invitations in bulk
"""


def template_text() -> str:
    """The documented template kept at the repository root as ``appservice.yaml``."""
    return render_registration(
        build_registration(
            appservice_id="wangxin",
            url="http://127.0.0.1:29330",
            as_token=PLACEHOLDER_AS_TOKEN,
            hs_token=PLACEHOLDER_HS_TOKEN,
            server_name="example.org",
            bot_localpart="wangxin",
            ghost_prefix="wx_",
        ),
        TEMPLATE_HEADER,
    )
