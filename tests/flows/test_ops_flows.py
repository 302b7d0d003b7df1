"""Housekeeping and replay flows, alert events, and two store-writing flows started at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.dispatch.messages import queue_decisions
from aftersale.models import Decision
from aftersale.settings import PROJECT_ROOT
from aftersale.store import open_store
from aftersale.store.records import Claim
from sandbox.faults import Fault
from sandbox.server import SandboxServer
from tests.flows.scenario import START, aftersale_env, prepare, sandbox_state

LATER = START + timedelta(hours=8)


def artifact_keys(flow_run_id: Any) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key for a in found if a.key}


def events_named(prefix: str, timeout_s: float = 10.0) -> list[dict[str, Any]]:
    """Events the server has stored under `prefix` (they arrive asynchronously)."""
    from prefect.client.orchestration import get_client

    deadline = time.monotonic() + timeout_s
    while True:
        with get_client(sync_client=True) as client:
            response = client.request(
                "POST",
                "/events/filter",
                json={"filter": {"event": {"prefix": [prefix]}, "order": "DESC"}},
            )
        events = response.json()["events"]
        if events or time.monotonic() > deadline:
            return events
        time.sleep(0.3)


def test_replay_reports_then_queues_what_a_missing_rule_would_have_sent_and_nothing_twice(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cycle import aftersale_cycle
    from flows.replay import aftersale_replay

    partial_rules = tmp_path / "rules"
    shutil.copytree(PROJECT_ROOT / "rules", partial_rules)
    (partial_rules / "order.yaml").unlink()  # the thank-you rule is "added later"
    state = sandbox_state()
    with SandboxServer(state) as sandbox:
        db = prepare(tmp_path, sandbox.url, monkeypatch)
        state.clock.set(LATER)
        monkeypatch.setenv("AFTERSALE_RULES", str(partial_rules))
        before = aftersale_cycle(now=LATER)
        monkeypatch.delenv("AFTERSALE_RULES")
        window = {
            "start": START - timedelta(days=1),
            "end": START + timedelta(days=1),
            "now": LATER,
        }
        report = aftersale_replay(**window)
        late = aftersale_replay(
            window["start"], window["end"], now=LATER + timedelta(hours=3), max_late_hours=1
        )
        applied = aftersale_replay(**window, apply=True)
        after = aftersale_cycle(now=LATER + timedelta(minutes=15))
    assert before["sent"] >= 1
    assert (report["would_queue"], report["queued"], report["apply"]) == (1, 0, False)
    assert report["already_decided"] >= 1  # shipped & co. are not decided again
    assert (late["too_late"], late["would_queue"]) == (1, 0)
    assert applied["queued"] == 1
    assert after["sent"] == 1
    with open_store(db) as store:
        sent = [
            (c.template, c.channel, c.count) for c in store.message_counts() if c.state == "sent"
        ]
    assert all(n == 1 for *_, n in sent) and ("thank_you", "email", 1) in sent


def test_housekeeping_reports_a_stuck_message_and_emits_the_unknown_alert(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cycle import aftersale_cycle
    from flows.housekeeping import aftersale_housekeeping

    state = sandbox_state()
    with SandboxServer(state) as sandbox:
        db = prepare(tmp_path, sandbox.url, monkeypatch)
        state.clock.set(LATER)
        aftersale_cycle(now=LATER)
    with open_store(db) as store:  # a run that died between claim and result
        shipped = next(m for m in store.list_messages() if m.template == "shipped")
        event = store.load_domain_event(shipped.event_id)
        assert event is not None
        again = Decision(
            "shipped-again", "shipped", shipped.channel, shipped.order_id, "crash", LATER, event
        )
        customer_of = {shipped.order_id: shipped.customer_id}
        [mid] = queue_decisions(store, [again], customer_of, run_id="crashed", now=LATER)
        claim = Claim(mid, "anna@example.com", "Shipped", "text", None, "outbox", 1)
        assert store.claim_messages([claim], run_id="crashed", now=LATER) == {mid}
    state_ = aftersale_housekeeping(now=LATER + timedelta(hours=2), return_state=True)
    result = state_.result()
    assert result["stuck_to_unknown"] >= 1 and result["unknown_total"] == result["stuck_to_unknown"]
    assert {"housekeeping-summary", "housekeeping-stuck-messages", "report"} <= artifact_keys(
        state_.state_details.flow_run_id
    )
    alerts = events_named("aftersale.messages.unknown")
    assert alerts and alerts[0]["resource"]["prefect.resource.id"] == "aftersale.messages"
    assert alerts[0]["payload"]["unknown"] == result["unknown_total"]


def test_a_cycle_and_housekeeping_started_together_both_complete_one_waiting_for_the_store(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cycle runs in its own process (as a worker runs it) and holds the DuckDB file
    while it polls a slow carrier; housekeeping starts meanwhile and waits, then runs."""
    from prefect.settings import PREFECT_API_URL

    from flows.housekeeping import aftersale_housekeeping

    state = sandbox_state()
    with SandboxServer(state) as sandbox:
        prepare(tmp_path, sandbox.url, monkeypatch)
        state.clock.set(LATER)
        state.set_fault("inpost", Fault(latency_ms=3000))
        env = {
            **os.environ,
            **aftersale_env(tmp_path, sandbox.url),
            "PREFECT_API_URL": str(PREFECT_API_URL.value()),
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
        }
        code = (
            "from datetime import datetime; from flows.cycle import aftersale_cycle; "
            f"print(aftersale_cycle(now=datetime.fromisoformat('{LATER.isoformat()}'))['sent'])"
        )
        cycle = subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while state.requests["inpost"] == 0:  # the cycle holds the store from here
                assert cycle.poll() is None, cycle.communicate()[1][-3000:]
                assert time.monotonic() < deadline, "the cycle never polled"
                time.sleep(0.05)
            started = time.monotonic()
            housekeeping = aftersale_housekeeping(now=LATER, store_wait_s=60)
            waited = time.monotonic() - started
            out, err = cycle.communicate(timeout=60)
        finally:
            if cycle.poll() is None:
                cycle.kill()
                cycle.wait()
    assert cycle.returncode == 0, err[-3000:]
    assert int(out.strip().splitlines()[-1]) >= 2
    assert housekeeping["expired"] == 0
    assert waited >= 1.5  # it waited for the cycle's lock instead of failing


def test_an_invalid_rule_set_fails_the_cycle_and_emits_its_alert(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aftersale.errors import RuleSetError
    from flows.cycle import aftersale_cycle

    broken = tmp_path / "rules"
    broken.mkdir()
    (broken / "bad.yaml").write_text("rules:\n  - id: oops\n    on: nonsense\n", encoding="utf-8")
    prepare(tmp_path, "http://127.0.0.1:9", monkeypatch)
    monkeypatch.setenv("AFTERSALE_RULES", str(broken))
    with pytest.raises(RuleSetError):
        aftersale_cycle(now=LATER)
    [alert, *_] = events_named("aftersale.ruleset.invalid")
    assert alert["resource"]["prefect.resource.id"] == "aftersale.ruleset"
    assert any("bad.yaml" in p for p in alert["payload"]["problems"])
