"""Session-wide fixtures: real stacks, shared by the end-to-end tests.

Tests that use ``stack`` run once per enabled backend (SQLite; PostgreSQL with
``WANGXIN_TEST_PG``; workers with ``WANGXIN_TEST_REDIS`` too), except tests marked
``backend_independent`` (config errors: nothing in them can depend on the database or the
topology), which run on the first backend only.

Each test process has one stack per backend, started for its first test on that backend and
stopped after its last (pytest keeps each backend's tests together). Under pytest-xdist every
worker is a shard: ``python3 run.py test`` starts three workers and deals them the tests one or
two at a time, in order (``--dist load --maxschedchunk 1``), so each worker runs a share of every
backend's tests on a stack of its own: each backend's tests run on three stacks side by side,
and the backends one after another. (Not ``--dist loadgroup`` with a group per stack: on
pytest 9.2, pytest-xdist 3.8 no longer sees ``xdist_group`` marks, pytest-dev/pytest-xdist#1386,
and silently deals out single tests.)
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator

import pytest

from tests.harness import services, synapse_log
from tests.harness.fake_coupons import FakeCouponPlatform
from tests.harness.fake_twilio import FakeTwilio
from tests.harness.stack import RunningStack, stack_args_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "backend_independent: runs on the first backend only (its outcome cannot depend on the database)"
    )
    try:
        services.check_ci_services()
    except services.ServiceMissing as e:
        raise pytest.UsageError(str(e)) from None
    if not config.pluginmanager.has_plugin("wangxin-run-order"):
        config.pluginmanager.register(_RunOrder(), "wangxin-run-order")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = services.enabled_backends()
        if metafunc.definition.get_closest_marker("backend_independent"):
            backends = backends[:1]
        metafunc.parametrize("backend", backends, scope="session")


class _RunOrder:
    @pytest.hookimpl(trylast=True)  # after pytest's own grouping of the tests by backend
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """End-to-end tests that start their own stacks or processes first: they are the longest
        single tests, and under xdist they then run while the other workers start their stacks
        rather than at the end, alone. Then the tests on the shared stacks, each backend's in a
        row (one stack per backend and process); the quick unit tests last, filling the gaps."""

        def rank(item: pytest.Item) -> int:
            if "e2e" not in item.path.parts:
                return 2
            return 1 if "stack" in getattr(item, "fixturenames", ()) else 0

        items.sort(key=rank)  # stable: each rank keeps pytest's order


@pytest.fixture(scope="session")
def twilio() -> Iterator[FakeTwilio]:
    """One local fake Twilio for the session: every stack's bridge sends its SMS there."""
    fake = FakeTwilio()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def coupon_platform() -> Iterator[FakeCouponPlatform]:
    """One local shop platform for the session: every stack's discovery module asks it for coupons."""
    fake = FakeCouponPlatform()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest, backend: str, twilio: FakeTwilio,
          coupon_platform: FakeCouponPlatform) -> Iterator[RunningStack]:
    databases = []
    if backend in ("postgres", "workers"):
        databases = [services.create_database("wx_synapse"), services.create_database("wx_bridge")]
    # Not under pytest's basetemp: pytest prunes old numbered basetemps, and a second test run
    # started meanwhile (another developer's, or a helper's) could prune a running stack's data.
    directory = tempfile.mkdtemp(prefix=f"wangxin-stack-{backend}-")
    # A unique server name per stack also keeps workers of parallel runs apart on a shared Redis.
    server_name = f"wx{secrets.token_hex(3)}.test"
    running = RunningStack(directory, stack_args_for(backend, services.free_port_block(), server_name, databases,
                                                     twilio, coupon_platform))
    try:
        running.start()
    except BaseException:
        for db in databases:
            services.drop_database(db)
        raise
    try:
        yield running
    finally:
        try:
            code = running.stop()
        finally:
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
