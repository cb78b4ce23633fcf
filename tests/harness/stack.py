"""Stacks for tests: the launcher handle, plus the arguments for each backend."""

from __future__ import annotations

from typing import Any

from tests.harness import services
from wangxin_stack.running import RunningStack, StackFailed

__all__ = ["RunningStack", "StackFailed", "stack_args_for"]


def stack_args_for(backend: str, base_port: int, server_name: str, databases: list[Any]) -> list[str]:
    args = ["--port", str(base_port), "--server-name", server_name, "--relaxed-rate-limits"]
    if backend in ("postgres", "workers"):
        synapse_db, bridge_db = databases
        args += ["--postgres", synapse_db.dsn, "--bridge-postgres", bridge_db.dsn]
    if backend == "workers":
        args += ["--workers", "--redis", services.redis_address() or ""]
    return args
