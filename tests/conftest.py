"""Session-wide fixtures: one real stack per backend, shared by every end-to-end test.

Tests that use ``stack`` run once per enabled backend (SQLite; PostgreSQL with
``WANGXIN_TEST_PG``; workers with ``WANGXIN_TEST_REDIS`` too). pytest groups tests by backend,
so each stack starts once per session. Under pytest-xdist (``python3 run.py test`` starts three
workers with ``--dist loadgroup``) each backend's tests go to one worker, so each stack still
starts once and the three backends run side by side.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.harness import services, synapse_log
from tests.harness.fake_twilio import FakeTwilio
from tests.harness.stack import RunningStack, stack_args_for


def pytest_configure(config: pytest.Config) -> None:
    try:
        services.check_ci_services()
    except services.ServiceMissing as e:
        raise pytest.UsageError(str(e)) from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", services.enabled_backends(), scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        backend = callspec.params.get("backend") if callspec is not None else None
        if backend is not None:
            item.add_marker(pytest.mark.xdist_group(f"backend-{backend}"))


@pytest.fixture(scope="session")
def twilio() -> Iterator[FakeTwilio]:
    """One local fake Twilio for the session: every stack's bridge sends its SMS there."""
    fake = FakeTwilio()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, backend: str, twilio: FakeTwilio) -> Iterator[RunningStack]:
    databases = []
    if backend in ("postgres", "workers"):
        databases = [services.create_database("wx_synapse"), services.create_database("wx_bridge")]
    # Not under pytest's basetemp: pytest prunes old numbered basetemps, and a second test run
    # started meanwhile (another developer's, or a helper's) could prune a running stack's data.
    directory = tempfile.mkdtemp(prefix=f"wangxin-stack-{backend}-")
    # A unique server name per stack also keeps workers of parallel runs apart on a shared Redis.
    server_name = f"wx{secrets.token_hex(3)}.test"
    running = RunningStack(directory, stack_args_for(backend, services.free_port_block(), server_name, databases,
                                                     twilio))
    running.start()
    try:
        yield running
    finally:
        code = running.stop()
        for db in databases:
            services.drop_database(db)
        assert code == 0, f"the stack exited with {code}:\n{running.output()}"
        if request.session.testsfailed:
            # Kept, with its logs, when a test failed: a failure under load is often not seen again.
            print(f"\n[{backend}] a test failed: the stack's logs are kept in {directory}", flush=True)
        else:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def no_wangxin_errors_in_synapse_log(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails a test during which Synapse logged an error or a traceback of Wangxin code: in the
    shared stack's logs (from where they ended when the test started), and in the logs of any
    stack the test started itself under its ``tmp_path``."""
    start: dict[str, int] = {}
    if "stack" in request.fixturenames:
        running: RunningStack = request.getfixturevalue("stack")
        start.update(synapse_log.log_sizes(synapse_log.synapse_logs(running.info["logs_dir"])))
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is not None:
        for logs_dir in sorted(str(p) for p in tmp.glob("**/logs") if p.is_dir()):
            start.update(dict.fromkeys(synapse_log.synapse_logs(logs_dir), 0))
    problems = synapse_log.new_wangxin_errors(start)
    if problems:
        pytest.fail("Synapse logged errors of Wangxin code during this test:\n" + synapse_log.describe(problems),
                    pytrace=False)


@pytest.fixture
def user(stack: RunningStack) -> dict:
    return stack.register_user()


@pytest.fixture
def repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
