"""The follow queue's pool: slots refill as soon as one user's jobs end, one user's jobs stay in
order, a job is never run twice in one drain, and an unexpected error cannot spin the pool.

Jobs finish when the test fires their Deferreds, so every interleaving is the test's choice."""

from __future__ import annotations

import attrs
from synapse.logging.context import make_deferred_yieldable
from twisted.internet import defer

from synapse_modules._job_pool import JobPool, by_user


@attrs.frozen
class J:
    job_id: str
    user_id: str


class Queue:
    """A job table: ``claim`` returns due jobs in order (honouring ``exclude`` unless told not
    to), a job leaves the table when it finishes; ``then`` queues follow-up jobs on finishing."""

    def __init__(self, jobs: list[J], honour_exclude: bool = True, limit: int = 100):
        self.jobs = list(jobs)
        self.honour_exclude = honour_exclude
        self.limit = limit
        self.claims: list[frozenset[str]] = []
        self.started: list[str] = []
        self.finished: list[str] = []
        self.gates: dict[str, defer.Deferred] = {}
        self.then: dict[str, list[J]] = {}
        self.explode: set[str] = set()

    async def claim(self, exclude: frozenset[str]) -> list[J]:
        self.claims.append(exclude)
        due = [j for j in self.jobs if not self.honour_exclude or j.job_id not in exclude]
        return due[: self.limit]

    async def run(self, job: J) -> None:
        self.started.append(job.job_id)
        gate = self.gates[job.job_id] = defer.Deferred()
        await make_deferred_yieldable(gate)
        if job.job_id in self.explode:
            raise RuntimeError("database gone")
        self.jobs.remove(job)
        self.jobs.extend(self.then.get(job.job_id, []))
        self.finished.append(job.job_id)

    def running(self) -> list[str]:
        return [j for j in self.started if j not in self.finished and not self.gates[j].called]

    def finish(self, job_id: str) -> None:
        self.gates[job_id].callback(None)


def _start(pool: JobPool) -> defer.Deferred:
    return defer.ensureDeferred(pool.drain())


def test_a_slot_refills_as_soon_as_one_user_is_done_not_when_the_batch_is() -> None:
    queue = Queue([J(f"j{i}", f"@u{i}:hs") for i in range(5)])
    done = _start(JobPool(2, queue.claim, queue.run))
    assert queue.running() == ["j0", "j1"]
    queue.finish("j1")  # j0 still runs: the next user starts anyway
    assert queue.running() == ["j0", "j2"]
    queue.finish("j2")
    assert queue.running() == ["j0", "j3"]
    for job_id in ("j0", "j3", "j4"):
        queue.finish(job_id)
    assert done.called and done.result == 5
    assert queue.jobs == []


def test_one_users_jobs_run_in_order_never_two_at_once_even_across_claims() -> None:
    queue = Queue([J("a1", "@a:hs"), J("b1", "@b:hs"), J("a2", "@a:hs")])
    queue.then["b1"] = [J("a3", "@a:hs"), J("c1", "@c:hs")]  # claimed while a's first jobs run
    done = _start(JobPool(3, queue.claim, queue.run))
    assert queue.running() == ["a1", "b1"]
    queue.finish("b1")
    # a3 came in a later claim; a is busy, so c starts and a3 waits for a1 and a2.
    assert queue.running() == ["a1", "c1"]
    queue.finish("a1")
    assert queue.running() == ["c1", "a2"]
    queue.finish("a2")
    assert queue.running() == ["c1", "a3"]
    queue.finish("a3")
    queue.finish("c1")
    assert done.called and done.result == 5
    assert [j for j in queue.finished if j.startswith("a")] == ["a1", "a2", "a3"]


def test_a_claimed_job_is_not_run_twice_even_if_the_claim_returns_it_again() -> None:
    queue = Queue([J("j1", "@u1:hs"), J("j2", "@u2:hs")], honour_exclude=False)
    done = _start(JobPool(4, queue.claim, queue.run))
    queue.finish("j1")  # the next claim returns j2 (still running) again
    assert queue.running() == ["j2"]
    assert queue.claims[-1] == frozenset({"j2"})  # it was told j2 is taken
    queue.finish("j2")
    assert done.called and queue.started == ["j1", "j2"]


def test_an_unexpected_error_leaves_the_users_jobs_for_the_next_drain() -> None:
    queue = Queue([J("a1", "@a:hs"), J("a2", "@a:hs"), J("b1", "@b:hs")], honour_exclude=False)
    queue.explode.add("a1")
    done = _start(JobPool(2, queue.claim, queue.run))
    queue.finish("a1")  # raises: a2 must not run (order), and a1 is not claimed again now
    queue.finish("b1")
    assert done.called and done.result == 1
    assert queue.started == ["a1", "b1"]
    assert [j.job_id for j in queue.jobs] == ["a1", "a2"]
    # The next drain (the queue's next tick) takes them again.
    queue.explode.clear()
    again = _start(JobPool(2, queue.claim, queue.run))
    queue.finish("a1")
    queue.finish("a2")
    assert again.called and queue.jobs == []


def test_an_empty_queue_drains_at_once() -> None:
    queue = Queue([])
    done = _start(JobPool(8, queue.claim, queue.run))
    assert done.called and done.result == 0 and queue.claims == [frozenset()]


def test_jobs_are_grouped_per_user_in_order() -> None:
    jobs = [J("1", "@a:hs"), J("2", "@b:hs"), J("3", "@a:hs")]
    assert by_user(jobs) == [[jobs[0], jobs[2]], [jobs[1]]]
