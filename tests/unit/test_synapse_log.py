"""The harness's check of Synapse's logs: which records count as errors of Wangxin code."""
# ruff: noqa: E501 (log lines as Synapse writes them)

from __future__ import annotations

from tests.harness.synapse_log import log_sizes, new_wangxin_errors, records, wangxin_errors

LOG = """\
2026-12-06 19:30:19,560 - synapse.access.http.8008 - 465 - INFO - PUT-12 - 127.0.0.1 - {@a:x} Processed request
2026-12-06 19:30:19,561 - synapse.metrics.background_process_metrics - 514 - ERROR - wangxin_circle_record_follow-3 - Background process re-entered without a proc: wangxin_circle_record_follow-3
Stack (most recent call last):
  File "/venv/synapse/logging/context.py", line 700, in set_current_context
2026-12-06 19:30:19,562 - synapse.appservice.scheduler - 431 - ERROR - as-sender-111 - Error starting AS recoverer
2026-12-06 19:30:19,563 - synapse.http.server - 130 - ERROR - PUT-13 - Failed handle request via 'RoutedJsonResource'
Traceback (most recent call last):
  File "/work/main/synapse_modules/mute_exemptions.py", line 190, in _put_mute
ValueError: boom
2026-12-06 19:30:19,564 - synapse_modules.mute_exemptions - 60 - WARNING - wangxin_mute_repair-1 - slow
2026-12-06 19:30:19,565 - synapse.logging.context - 355 - WARNING - PUT-14 - Expected logging context wangxin_mute_repair-7 but found PUT-14
2026-12-06 19:30:19,566 - synapse.storage.database - 991 - WARNING - sentinel - Starting db txn 'wangxin_x' from sentinel context
2026-12-06 19:30:19,567 - twisted - 280 - CRITICAL - sentinel - Unhandled error in Deferred:
Traceback (most recent call last):
  File "/work/main/synapse_modules/_group_commit.py", line 80, in _write
"""


def test_records_keep_their_continuation_lines() -> None:
    found = records(LOG)
    assert len(found) == 8
    assert found[1].splitlines()[1] == "Stack (most recent call last):"


def test_errors_and_tracebacks_naming_wangxin_code_count_and_nothing_else() -> None:
    errors = wangxin_errors(LOG)
    assert [e.split(" - ")[1] for e in errors] == [
        "synapse.metrics.background_process_metrics",
        "synapse.http.server",
        "synapse.logging.context",
        "synapse.storage.database",
        "twisted",
    ]
    # Synapse's own error (an appservice down) and an ordinary warning of ours do not count.
    assert not any("AS recoverer" in e or "slow" in e for e in errors)


def test_only_what_was_written_after_the_start_counts(tmp_path) -> None:
    log = tmp_path / "synapse.log"
    log.write_text(LOG)
    start = log_sizes([str(log)])
    assert new_wangxin_errors(start) == {}
    with open(log, "a") as f:
        f.write("2026-12-06 19:31:00,000 - synapse_modules.merchant_circle - 70 - ERROR - sentinel - oops\n")
    (problem,) = new_wangxin_errors(start)[str(log)]
    assert problem.endswith("oops")
