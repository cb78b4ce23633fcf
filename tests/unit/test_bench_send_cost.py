"""``bench send_cost``'s reading of a py-spy profile, and its command line's refusals."""

from __future__ import annotations

import os

import pytest

from bench.__main__ import main
from bench.send_cost import summarize_profile

SITE = "/venv/lib/python3.11/site-packages"
ROOT = f"run (twisted/internet/base.py:686);_runCallbacks ({SITE}/twisted/internet/defer.py:1082)"
WRAPPER = f"check_event_for_spam ({SITE}/synapse/module_api/callbacks/spamchecker_callbacks.py:370)"
MEASURE = f"__exit__ ({SITE}/synapse/util/metrics.py:265)"
CIRCLE = "check_event_for_spam (/work/synapse_modules/merchant_circle/spam_checks.py:101)"
LOOKUP = "get (/work/synapse_modules/merchant_circle/lookups.py:40)"
DUE = "due_posts_txn (/work/synapse_modules/accounts/store/posts.py:88)"
AS_HANDLER = f"_notify_interested_services ({SITE}/synapse/handlers/appservice.py:160)"
PERSIST = f"_persist_events_txn ({SITE}/synapse/storage/databases/main/events.py:400)"


def test_samples_are_attributed_to_modules_wrappers_and_the_appservice_handler() -> None:
    raw = [
        f"{ROOT};{WRAPPER};{MEASURE} 6\n",  # the wrapper's own time
        f"{ROOT};{WRAPPER};{CIRCLE};{LOOKUP} 3\n",  # a module's, inside the wrapper: the module's
        f"{ROOT};{DUE} 1\n",  # a poll
        f"{ROOT};{AS_HANDLER} 4\n",
        f"{ROOT};{PERSIST} 86\n",
        "not a profile line\n",
        "\n",
    ]
    got = summarize_profile(raw)
    assert got["samples"] == 100
    assert got["callback_wrappers_share"] == 0.06
    assert got["modules_share"] == 0.04
    assert got["appservice_share"] == 0.04
    # By the innermost module frame, with the path from synapse_modules/ on.
    assert got["modules_top"] == {"get (synapse_modules/merchant_circle/lookups.py)": 3,
                                  "due_posts_txn (synapse_modules/accounts/store/posts.py)": 1}


def test_an_empty_profile_gives_zero_shares() -> None:
    assert summarize_profile([]) == {"samples": 0, "modules_share": 0.0, "callback_wrappers_share": 0.0,
                                     "appservice_share": 0.0, "modules_top": {}}


@pytest.mark.parametrize("argv, words", [
    (["send_cost"], "--reuse-build"),
    (["send_cost", "--reuse-build", "/nonexistent", "--postgres", "postgresql://x/y", "--workers"], "single"),
    (["send_cost", "--reuse-build", "/nonexistent", "--messages", "3"], "--messages"),
])
def test_the_command_line_refuses_what_it_cannot_measure(argv: list[str], words: str,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # --postgres sets WANGXIN_TEST_PG for the benchmark's process: put back what was there.
    monkeypatch.setattr(os, "environ", os.environ.copy())
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert words in capsys.readouterr().err


def test_a_missing_build_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["send_cost", "--reuse-build", "/nonexistent-build"])
    assert "no kept.json in /nonexistent-build" in capsys.readouterr().err
