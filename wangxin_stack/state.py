"""What a stack keeps between starts: its secrets and the users it created.

The first start draws every secret from a cryptographic random source; later starts reuse
them, so the same database and tokens keep working.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any

STATE_FILE = "state.json"
SECRET_NAMES = (
    "registration_shared_secret",
    "macaroon_secret_key",
    "form_secret",
    "as_token",
    "hs_token",
    "worker_replication_secret",
    "demo_password",
    "merchant_bot_password",
    "discovery_bot_password",  # the discovery bot's account (bots/discovery)
    # The discovery module's own service_secret: the discovery bot acts with it for the sender of a
    # command, in discovery only (not the other modules' secret).
    "discovery_service_secret",
    "parcels_bot_password",  # the parcels bot's account (synapse_modules.parcels), for a bot process to log in
    "admin_password",
    "module_service_secret",
    "platform_secret",  # the purchases webhook of synapse_modules.merchant_circle
    "msisdn_delegate_secret",  # in Synapse's msisdn delegate URL: only Synapse may make the bridge text codes
    "coupon_secret",  # the discovery module's and the local coupon issuer's (wangxin_stack/coupons.py)
    "turn_shared_secret",  # Synapse's turn_shared_secret and coturn's static-auth-secret (wangxin_stack/turn.py)
)


class StackState:
    def __init__(self, directory: str, data: dict[str, Any]):
        self.directory = directory
        self.data = data

    @staticmethod
    def load_or_create(directory: str) -> StackState:
        path = os.path.join(directory, STATE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            data = {}
        data.setdefault("secrets", {})
        for name in SECRET_NAMES:
            data["secrets"].setdefault(name, secrets.token_urlsafe(32))
        data.setdefault("users", {})
        state = StackState(directory, data)
        state.save()
        return state

    @property
    def secrets(self) -> dict[str, str]:
        return self.data["secrets"]

    def user(self, role: str) -> dict[str, str] | None:
        return self.data["users"].get(role)

    def set_user(self, role: str, info: dict[str, str]) -> None:
        self.data["users"][role] = info
        self.save()

    def save(self) -> None:
        path = os.path.join(self.directory, STATE_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f, indent=2)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
