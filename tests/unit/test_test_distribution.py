"""How the suite spreads end-to-end tests over stacks (tests/conftest.py, run.py): under xdist
each worker runs a share of every backend's tests on one stack per backend, started once; tests
that cannot depend on the database run on one backend only; the long tests that start their own
processes go first. Checked by running pytest on stand-in tests whose ``stack`` records its
starts instead of starting a homeserver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SHARED = '''
import json, os
import pytest

def record(**what):
    with open(os.environ["RUN_LOG"], "a") as f:
        f.write(json.dumps({"worker": os.environ.get("PYTEST_XDIST_WORKER"), **what}) + "\\n")
'''

E2E = SHARED + '''
@pytest.fixture(scope="session")
def stack(backend):  # stands in for the shared stack: same name, scope and parameter
    record(event="start", backend=backend)
    yield {"info": {}}
    record(event="stop", backend=backend)

@pytest.fixture(autouse=True)
def no_wangxin_errors_in_synapse_log():  # the real one reads the stack's logs
    yield

@pytest.mark.parametrize("n", range(12))
def test_on_the_stack(stack, backend, n):
    record(event="test", test=f"stack-{n}", backend=backend)

@pytest.mark.backend_independent
def test_a_config_check(stack, backend):
    record(event="test", test="config", backend=backend)

def test_with_its_own_stack(backend):
    record(event="test", test="own", backend=backend)
'''

UNIT = SHARED + '''
def test_pure():
    record(event="test", test="unit")
'''


def _run(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    for folder, text in (("e2e", E2E), ("unit", UNIT)):
        (tmp_path / folder).mkdir(exist_ok=True)
        (tmp_path / folder / f"test_{folder}_stand_ins.py").write_text(text)
    log = tmp_path / "ran.jsonl"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT")}
    # All three backends: outside CI the services are not contacted until a stack starts.
    env.update(WANGXIN_TEST_PG="postgresql://postgres@127.0.0.1:5432/unused", WANGXIN_TEST_REDIS="127.0.0.1:6379",
               RUN_LOG=str(log))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", *args,
         str(tmp_path / "unit"), str(tmp_path / "e2e")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    ran = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, ran


def test_each_worker_runs_a_share_of_every_backend_on_one_stack_each(tmp_path) -> None:
    from run import _parallel

    result, ran = _run(tmp_path, *_parallel([]))
    assert result.returncode == 0, result.stdout + result.stderr
    starts: dict[tuple[str, str], int] = defaultdict(int)
    workers_of: dict[str, set[str]] = defaultdict(set)
    for r in ran:
        if r["event"] == "start":
            starts[(r["worker"], r["backend"])] += 1
        elif r["event"] == "test" and r["test"].startswith("stack-"):
            workers_of[r["backend"]].add(r["worker"])
    assert set(starts.values()) == {1}, starts  # a worker starts each backend's stack once
    for backend in ("sqlite", "postgres", "workers"):
        assert len(workers_of[backend]) > 1, workers_of  # ... and shares that backend's tests


def test_backend_independent_tests_run_on_the_first_backend_only(tmp_path) -> None:
    result, ran = _run(tmp_path, "-n", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [r["backend"] for r in ran if r.get("test") == "config"] == ["sqlite"]
    assert sorted(r["backend"] for r in ran if r.get("test") == "stack-0") == ["postgres", "sqlite", "workers"]


def test_tests_with_their_own_stacks_go_first_and_unit_tests_last(tmp_path) -> None:
    result, ran = _run(tmp_path, "-n", "0")
    assert result.returncode == 0, result.stdout + result.stderr
    order = [r["test"] for r in ran if r["event"] == "test"]
    assert order[:3] == ["own"] * 3 and order[-1] == "unit", order
    # In one process each backend's stack starts once, before its tests, and stops after them.
    events = [(r["event"], r["backend"]) for r in ran if r["event"] in ("start", "stop")]
    assert events == [("start", "sqlite"), ("stop", "sqlite"), ("start", "postgres"), ("stop", "postgres"),
                      ("start", "workers"), ("stop", "workers")], events
