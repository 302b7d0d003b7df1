"""The `aftersale-cycle` flow under Prefect's own test harness, against the real sandbox:
the cycle runs, names itself, publishes its artifacts, and a second run sends nothing."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aftersale.models import MessageState
from aftersale.store import open_store
from sandbox.server import SandboxServer
from tests.flows.scenario import EMAIL, PHONE, START, prepare, sandbox_state


def read_runs_and_artifacts(flow_name: str) -> tuple[list[Any], dict[str, list[Any]]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])))
        artifacts: dict[str, list[Any]] = {}
        for a in client.read_artifacts():
            artifacts.setdefault(str(a.flow_run_id), []).append(a)
    return runs, artifacts


def test_the_flow_runs_a_cycle_and_a_second_run_sends_nothing_twice(
    prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.cycle import aftersale_cycle

    state = sandbox_state()
    with SandboxServer(state) as sandbox:
        db = prepare(tmp_path, sandbox.url, monkeypatch)
        later = START + timedelta(hours=8)
        state.clock.set(later)
        first = aftersale_cycle(now=later)
        again = aftersale_cycle(now=later)
    assert first["polled"] == 1
    assert first["status_changes"] == {"in_transit": 1}
    assert first["sent"] >= 2  # thank-you and shipped at least
    assert again["sent"] == 0 and again["queued"] == 0
    with open_store(db) as store:
        finished = [r for r in store.list_runs() if r.finished_at is not None]
        sent = store.messages_in_state(MessageState.SENT)
    templates = {m.template for m in sent}
    assert len(finished) == 2
    assert {"thank_you", "shipped"} <= templates
    assert len(list((tmp_path / "outbox" / "email").glob("*.eml"))) >= 2

    flow_runs, artifacts = read_runs_and_artifacts("aftersale-cycle")
    labels = {f"cycle 2026-11-23 15:00 · {str(r.id).replace('-', '')[-6:]}": r for r in flow_runs}
    # one name per run, even for two runs of the same minute: the store's run id too
    assert {r.run_id for r in finished} <= set(labels)
    names = {r.name for r in flow_runs}
    assert len(names) == len(flow_runs)
    run = next(
        r for label, r in labels.items() if r.name == f"{label} · 1 polled · {first['sent']} sent"
    )
    assert any(n.endswith(" · 0 polled · 0 sent") for n in names)  # not due again
    assert run.state is not None and run.state.is_completed()
    by_key = {a.key: a for a in artifacts[str(run.id)]}
    assert {"cycle-summary", "cycle-messages", "carrier-health"} <= set(by_key)
    assert by_key["cycle-summary"].type == "markdown"
    assert "| inpost | 1 | 0 | 0 | 0 | closed |" in by_key["cycle-summary"].data
    assert "| carrier | inpost | ok |" in by_key["carrier-health"].data
    table = by_key["cycle-messages"].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert sum(1 for r in rows if r["outcome"] == "sent") == first["sent"]
    everything = json.dumps([a.data for a in artifacts[str(run.id)]])
    assert EMAIL not in everything and PHONE not in everything
    assert "a***@example.pl" in everything
