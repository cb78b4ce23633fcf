"""On CI a missing PostgreSQL or Redis fails the run instead of skipping backends."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _pytest_with(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "tests/unit/test_router.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_ci_without_service_variables_fails() -> None:
    result = _pytest_with({"CI": "true", "WANGXIN_TEST_PG": None, "WANGXIN_TEST_REDIS": "127.0.0.1:6379"})
    assert result.returncode != 0
    assert "WANGXIN_TEST_PG or WANGXIN_TEST_REDIS is not set" in result.stdout + result.stderr


def test_ci_with_an_unreachable_service_fails() -> None:
    result = _pytest_with(
        {"CI": "true", "WANGXIN_TEST_PG": "postgresql://postgres@127.0.0.1:1/test", "WANGXIN_TEST_REDIS": "127.0.0.1:1"}
    )
    assert result.returncode != 0
    assert "is not reachable" in result.stdout + result.stderr


def test_outside_ci_missing_services_only_narrow_the_backends() -> None:
    result = _pytest_with({"CI": None, "WANGXIN_TEST_PG": None, "WANGXIN_TEST_REDIS": None})
    assert result.returncode == 0, result.stdout + result.stderr
