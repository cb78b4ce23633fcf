"""Log contexts (synapse/logging/context.py).

Synapse tags every log line and database transaction with the request or background process it
serves, and checks the rules: a Deferred is fired outside any context and awaited through
``make_deferred_yieldable`` (public in synapse.module_api), which restores the waiter's own. A
plain Twisted lock or a Deferred fired inside a context breaks them: the waiter resumes in the
other's context, and Synapse logs "Expected logging context X but found Y" or "Background
process re-entered without a proc". ``run_in_background`` and ``make_deferred_yieldable`` are
public in ``synapse.module_api``; only firing from the sentinel and the lock need this adapter.
"""

from __future__ import annotations

from typing import Any

from synapse.logging.context import PreserveLoggingContext
from synapse.module_api import ModuleApi
from synapse.util.async_helpers import Linearizer
from twisted.internet import defer
from twisted.python.failure import Failure


def keyed_lock(api: ModuleApi, name: str) -> Linearizer:
    """Synapse's ``Linearizer``: one holder per key at a time, each waiter resuming in its own log
    context. Use as ``async with lock.queue(key): ...``."""
    return Linearizer(name, api._hs.get_clock())


def resolve_outside_log_context(
    done: defer.Deferred[Any], result: Any = None, error: BaseException | None = None
) -> None:
    """Fire a Deferred (that its waiter awaits through ``make_deferred_yieldable``) from the
    sentinel context, as Synapse's own waiters are fired: the waiter's callbacks run in their
    own context, and this caller's context is intact afterwards."""
    with PreserveLoggingContext():
        if error is not None:
            done.errback(Failure(error))
        else:
            done.callback(result)
