"""Which backends this run tests on, from the environment.

- SQLite always.
- PostgreSQL when ``WANGXIN_TEST_PG`` holds a DSN; every run gets fresh databases.
- The worker topology when ``WANGXIN_TEST_REDIS`` (HOST:PORT) is set as well.

Under ``CI=true`` both must be set and reachable: CI never skips a backend silently.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator

import attrs

from wangxin_stack.options import PORTS_USED

BACKENDS_ALL = ("sqlite", "postgres", "workers")


class ServiceMissing(Exception):
    pass


def pg_dsn() -> str | None:
    return os.environ.get("WANGXIN_TEST_PG") or None


def redis_address() -> str | None:
    value = os.environ.get("WANGXIN_TEST_REDIS") or None
    return value.removeprefix("redis://").rstrip("/") if value else None


def enabled_backends() -> list[str]:
    backends = ["sqlite"]
    if pg_dsn():
        backends.append("postgres")
        if redis_address():
            backends.append("workers")
    return backends


def check_ci_services() -> None:
    """Fail (not skip) when CI lacks a service the suite must run on."""
    if os.environ.get("CI") != "true":
        return
    dsn, redis = pg_dsn(), redis_address()
    if not dsn or not redis:
        raise ServiceMissing(
            "CI=true but WANGXIN_TEST_PG or WANGXIN_TEST_REDIS is not set: on CI the suite must run on "
            "SQLite, PostgreSQL and the worker topology (.ci/run sets both)"
        )
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=5).close()
    except Exception as e:
        raise ServiceMissing(f"PostgreSQL at WANGXIN_TEST_PG={dsn!r} is not reachable: {e}") from e
    host, _, port = redis.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as e:
        raise ServiceMissing(f"Redis at WANGXIN_TEST_REDIS={redis!r} is not reachable: {e}") from e


@attrs.frozen
class FreshDatabase:
    name: str
    dsn: str


def _admin_connection():  # type: ignore[no-untyped-def]
    import psycopg2

    conn = psycopg2.connect(pg_dsn(), connect_timeout=10)
    conn.autocommit = True
    return conn


def create_database(prefix: str, copy_of: FreshDatabase | None = None) -> FreshDatabase:
    """A new, empty database with the C collation Synapse insists on; or a copy of ``copy_of``
    (nothing may be connected to it meanwhile)."""
    from psycopg2.extensions import make_dsn, parse_dsn

    name = f"{prefix}_{secrets.token_hex(4)}"
    template = copy_of.name if copy_of else "template0"
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(
                f'CREATE DATABASE "{name}" ENCODING \'UTF8\' LC_COLLATE \'C\' LC_CTYPE \'C\' TEMPLATE "{template}"'
            )
    finally:
        conn.close()
    parts = parse_dsn(pg_dsn())
    parts["dbname"] = name
    parts.setdefault("host", "127.0.0.1")
    return FreshDatabase(name, make_dsn(**parts))


def drop_database(db: FreshDatabase) -> None:
    conn = _admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{db.name}" WITH (FORCE)')
    finally:
        conn.close()


def free_port_block(size: int = PORTS_USED, start: int = 20000, end: int = 60000) -> int:
    """A base port whose next ``size`` ports are all free on 127.0.0.1, TCP and UDP (by default
    as many as a stack uses, ``wangxin_stack.options.PORTS_USED``: coturn takes UDP ports too).

    Blocks are drawn below the kernel's ephemeral range: a port in that range that is free now
    can be taken as the local port of any outgoing connection (another stack's database or Redis
    client, a test's HTTP client) before the stack binds it, which made a listener fail with
    "Address already in use" seconds after the check.
    """
    import random

    low, high = _ephemeral_range()
    if start < low:
        end = min(end, low)
    for _ in range(200):
        base = random.randrange(start, end - size)
        ports = range(base, base + size)
        if any(low <= port <= high for port in ports):
            continue
        if all(_port_free(port) for port in ports):
            return base
    raise RuntimeError(f"no free block of {size} ports found in {start}..{end} outside {low}..{high}")


def _ephemeral_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux; IANA's elsewhere)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low, high = (int(part) for part in f.read().split())
            return low, high
    except (OSError, ValueError):
        return 49152, 65535


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers do: a closed listener's lingering TIME_WAIT connections must not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        try:
            u.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def iter_backends() -> Iterator[str]:
    yield from enabled_backends()
