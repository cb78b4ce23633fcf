"""Stacks for tests: the launcher handle, plus the arguments for each backend."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tests.harness import services
from wangxin_stack.running import RunningStack, StackFailed

if TYPE_CHECKING:
    from tests.harness.fake_coupons import FakeCouponPlatform
    from tests.harness.fake_twilio import FakeTwilio

__all__ = ["RunningStack", "StackFailed", "own_stack", "stack_args_for", "twilio_args"]

# Short gateway timeouts and back-off, so tests of retries take seconds.
TEST_SMS_LIMITS = "request_timeout_s=3,retry_base_s=0.5,retry_max_s=4"
# The modules' polls (circle membership watcher, mute repair, arrival delivery) every 100 ms instead
# of every 0.5-1 s: a test waiting for one of them ends as soon as the loop can act.
TEST_MODULE_POLL_MS = 100
# Limits small enough that tests of them need not push a day's quota or megabytes through the
# stack; every test that exercises a limit reads its value from the stack's config.
TEST_LOOKUPS_PER_DAY = 2000
# bcrypt's minimum: the suite registers hundreds of users, and 12 rounds cost 0.3 s of CPU each.
TEST_BCRYPT_ROUNDS = 4
TEST_IMPORT_LIMITS = "max_bytes=2097152,max_rows=10000"
# Discovery: shake windows of 1.5 s instead of 5, locations that expire in 30 s instead of 2 h (a
# test of the expiry waits for it), and daily limits a test reaches in a few calls.
# 36.8° windows of 1.5 s too; coupons retried after 0.3 s, then 0.6 s (a test makes the platform
# fail twice) and looked for every 100 ms; two rewarded pairings a day.
TEST_DISCOVERY_OPTIONS = ("shake_window_ms=1500,location_ttl_s=30,throws_per_day=3,picks_per_day=3,"
                          "angle.window_ms=1500,coupons.retry_base_ms=300,coupons.poll_ms=100,"
                          "coupons.rewards_per_day=2,coupons.timeout_s=2")


def twilio_args(twilio: FakeTwilio, limits: str = TEST_SMS_LIMITS) -> list[str]:
    return ["--sms-provider", "twilio", "--twilio-base-url", twilio.url, "--twilio-account-sid", twilio.account_sid,
            "--twilio-auth-token", twilio.auth_token, "--sms-from", ",".join(twilio.numbers), "--sms-limits", limits]


def stack_args_for(backend: str, base_port: int, server_name: str, databases: list[Any],
                   twilio: FakeTwilio | None = None, coupons: FakeCouponPlatform | None = None) -> list[str]:
    # A chat-started follow that can never happen gives up after 8 s instead of 30 (a test waits for that).
    args = ["--port", str(base_port), "--server-name", server_name, "--relaxed-rate-limits",
            "--circle-chat-wait-s", "8", "--module-poll-ms", str(TEST_MODULE_POLL_MS),
            "--bcrypt-rounds", str(TEST_BCRYPT_ROUNDS),
            "--lookups-per-day", str(TEST_LOOKUPS_PER_DAY), "--import-limits", TEST_IMPORT_LIMITS,
            "--discovery-options", TEST_DISCOVERY_OPTIONS]
    if twilio is not None:
        args += twilio_args(twilio)
    if coupons is not None:
        args += ["--coupon-url", coupons.url, "--coupon-secret", coupons.secret]
    if backend in ("postgres", "workers"):
        synapse_db, bridge_db = databases
        args += ["--postgres", synapse_db.dsn, "--bridge-postgres", bridge_db.dsn]
    if backend == "workers":
        args += ["--workers", "--redis", services.redis_address() or ""]
    return args


@contextmanager
def own_stack(backend: str, directory: str, extra: list[str] | None = None) -> Iterator[RunningStack]:
    """A stack of the test's own on ``backend`` (fresh databases where it needs them), for a test
    that kills or restarts processes and must not disturb the shared stack; stopped and its
    databases dropped afterwards."""
    databases = []
    if backend in ("postgres", "workers"):
        databases = [services.create_database("wx_synapse"), services.create_database("wx_bridge")]
    running = RunningStack(directory, stack_args_for(
        backend, services.free_port_block(), f"wx{secrets.token_hex(3)}.test", databases) + (extra or []))
    try:
        running.start()
        yield running
    finally:
        running.stop()
        for db in databases:
            services.drop_database(db)
