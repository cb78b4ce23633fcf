"""Child processes of a stack: started with their output in ``logs/``, watched, stopped together."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from twisted.internet import defer, protocol, reactor

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 20.0


class ChildExited(Exception):
    def __init__(self, name: str, code: int | None, log_path: str):
        super().__init__(f"{name} exited with code {code}")
        self.name = name
        self.code = code
        self.log_path = log_path


class _ChildProtocol(protocol.ProcessProtocol):
    def __init__(self, child: Child):
        self.child = child

    def processEnded(self, reason: object) -> None:  # noqa: N802 (Twisted's name)
        code = getattr(getattr(reason, "value", None), "exitCode", None)
        self.child._ended(code)


class Child:
    """One supervised process; restarted with back-off if it dies after the stack is ready."""

    def __init__(self, name: str, argv: list[str], log_path: str, env: dict[str, str], cwd: str):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.env = env
        self.cwd = cwd
        self.pid: int | None = None
        self.supervise = False
        self.stopping = False
        self.restarts = 0
        self.on_exit: Callable[[Child, int | None], None] | None = None
        self.on_restart: Callable[[Child], None] | None = None
        self._exit_waiters: list[defer.Deferred[int | None]] = []
        self._started_at = 0.0

    def start(self) -> None:
        log = open(self.log_path, "ab", buffering=0)
        log.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {' '.join(self.argv)}\n".encode())
        transport = reactor.spawnProcess(
            _ChildProtocol(self),
            self.argv[0],
            self.argv,
            env=self.env,
            path=self.cwd,
            childFDs={0: "w", 1: log.fileno(), 2: log.fileno()},
        )
        log.close()  # the child has its own copy of the descriptor
        self.pid = transport.pid
        self._started_at = time.monotonic()
        logger.info("Started %s (pid %s), log: %s", self.name, self.pid, self.log_path)

    def _ended(self, code: int | None) -> None:
        self.pid = None
        waiters, self._exit_waiters = self._exit_waiters, []
        for d in waiters:
            d.callback(code)
        if self.stopping:
            return
        if self.on_exit:
            self.on_exit(self, code)
        if self.supervise:
            # Quick crash loops back off up to 30 s; a process that ran a while restarts at once.
            delay = 1.0 if time.monotonic() - self._started_at > 60 else min(2 ** min(self.restarts, 5), 30)
            self.restarts += 1
            logger.warning("%s exited with code %s; restarting in %.0fs (see %s)", self.name, code, delay,
                           self.log_path)
            reactor.callLater(delay, self._restart)

    def _restart(self) -> None:
        if self.stopping or self.pid is not None:
            return
        self.start()
        if self.on_restart:
            self.on_restart(self)

    def wait_exit(self) -> defer.Deferred[int | None]:
        d: defer.Deferred[int | None] = defer.Deferred()
        if self.pid is None:
            d.callback(None)
        else:
            self._exit_waiters.append(d)
        return d

    async def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        self.stopping = True
        if self.pid is None:
            return
        pid = self.pid
        exited = self.wait_exit()
        _signal(pid, signal.SIGTERM)
        timer = reactor.callLater(grace, _signal, pid, signal.SIGKILL)
        await exited
        if timer.active():
            timer.cancel()
        logger.info("Stopped %s", self.name)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def python_argv(*args: str) -> list[str]:
    return [sys.executable, *args]
