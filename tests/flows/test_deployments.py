"""Deployments and automations are data: check them without a server."""

from __future__ import annotations

import importlib
import inspect
import logging
import re
from uuid import uuid4

import pytest
import yaml

from aftersale.ops.alerts import NOTIFIED
from aftersale.settings import PROJECT_ROOT
from flows.alerts import MaskingFilter
from flows.automations import AUTOMATIONS_FILE, load_automations


def deployments() -> dict[str, dict]:
    """flow name/deployment name -> deployment (Prefect's names)."""
    data = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8"))
    return {f"{flow_of(d).name}/{d['name']}": d for d in data["deployments"]}


def flow_of(deployment: dict):  # type: ignore[no-untyped-def]
    path, func = deployment["entrypoint"].split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), func)


def test_the_deployments_point_at_real_flows_with_valid_parameters() -> None:
    deps = deployments()
    assert set(deps) == {
        "aftersale-cycle/every-15-minutes",
        "aftersale-cycle/worker",
        "aftersale-fan-out/every-15-minutes",
        "aftersale-housekeeping/daily",
        "aftersale-replay/on-demand",
        "aftersale-shopify-reconcile/hourly",
    }
    for dep in deps.values():
        accepted = set(inspect.signature(flow_of(dep).fn).parameters)
        assert set(dep.get("parameters", {})) <= accepted, dep["name"]
        assert dep["work_pool"]["name"] == "aftersale"
    cycle = deps["aftersale-cycle/every-15-minutes"]
    assert cycle["schedules"] == [{"cron": "*/15 * * * *", "timezone": "UTC", "active": True}]
    assert cycle["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    assert "schedules" not in deps["aftersale-replay/on-demand"]
    # PostgreSQL: the fan-out's schedule is there but off; the runs it starts have none
    shared = deps["aftersale-fan-out/every-15-minutes"]
    assert shared["schedules"] == [{"cron": "*/15 * * * *", "timezone": "UTC", "active": False}]
    assert shared["concurrency_limit"] == cycle["concurrency_limit"]
    assert "schedules" not in deps["aftersale-cycle/worker"]
    from flows.fanout import WORKER_DEPLOYMENT

    assert WORKER_DEPLOYMENT in deps
    reconcile = deps["aftersale-shopify-reconcile/hourly"]
    assert reconcile["entrypoint"] == "flows/reconcile.py:aftersale_shopify_reconcile"
    assert reconcile["schedules"] == [{"cron": "7 * * * *", "timezone": "UTC", "active": True}]


def test_prefect_yaml_holds_no_secret() -> None:
    text = (PROJECT_ROOT / "prefect.yaml").read_text(encoding="utf-8")
    assert not re.search(r"(KEY|TOKEN|SECRET|PASSWORD)\w*\s*:", text, re.IGNORECASE)


def test_every_automation_validates_with_the_block_filled_in() -> None:
    from prefect.events.schemas.automations import AutomationCore

    block = uuid4()
    items = load_automations(AUTOMATIONS_FILE, block)
    models = [AutomationCore.model_validate(item) for item in items]
    assert [m.name for m in models] == [
        "aftersale · run failed or crashed",
        "aftersale · needs a human",
        "aftersale · cancel late cycles",
    ]
    notify = [a for m in models for a in m.actions if getattr(a, "block_document_id", None)]
    assert notify and all(a.block_document_id == block for a in notify)
    assert models[0].trigger.expect == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
    assert models[1].trigger.expect == set(NOTIFIED)  # every alert a run emits notifies


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--webhook-url", ""], "--webhook-url is empty (is AFTERSALE_ALERT_WEBHOOK_URL set?)"),
        (["--webhook-url", "ftp://example.com/x"], "is not an http(s) URL"),
        (
            ["--webhook-url", "http://127.0.0.1:9000/hook"],
            "Prefect refuses to notify private and loopback addresses",
        ),
        (["--block", "no-slash"], "give it as block-type-slug/block-name"),
        (
            ["--block", "custom-webhook/x"],
            "cannot reach the Prefect server at http://127.0.0.1:9/api",
        ),
    ],
)
def test_the_automations_command_refuses_what_would_never_notify(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.automations import main

    monkeypatch.delenv("AFTERSALE_ALERT_WEBHOOK_URL", raising=False)
    with (
        temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}),
        pytest.raises(SystemExit) as exit_,
    ):
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err, err
    if "private" in says:
        assert "--allow-private-urls" in err


def test_the_automations_command_needs_a_server(capsys: pytest.CaptureFixture[str]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.automations import main

    with temporary_settings(restore_defaults={PREFECT_API_URL}), pytest.raises(SystemExit):
        main(["--webhook-url", "https://hooks.example.com/x"])
    assert "PREFECT_API_URL is not set" in capsys.readouterr().err


def test_log_lines_leave_with_addresses_and_numbers_masked() -> None:
    record = logging.LogRecord(
        "aftersale", logging.WARNING, __file__, 1, "bounce from %s (%s)",
        ("anna.kowalska@example.pl", "+48601234567"), None,
    )  # fmt: skip
    assert MaskingFilter().filter(record)
    assert record.getMessage() == "bounce from a***@example.pl (+48******567)"
