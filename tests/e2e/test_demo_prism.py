"""The demo's path with credentials pointed at Prism: every message of a short demo-like run
(carrier sandbox, example orders, a few cycles) goes through the real SendGrid and Twilio
SDKs, every request validates against the providers' published specs, and all end `sent`."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from aftersale.cycle import run_cycle
from aftersale.intake.files import import_file
from aftersale.models import ChannelKind
from aftersale.settings import PROJECT_ROOT, Settings
from aftersale.store import open_store
from carriers.registry import DIRECTORY
from flows.demo import DEMO_START, load_parcels
from flows.wiring import build_parts
from sandbox.app import SandboxClock, SandboxState
from sandbox.server import SandboxServer
from tests.support.prism import prism_server, spec

pytestmark = pytest.mark.slow

EXAMPLES = PROJECT_ROOT / "examples"
ORDERS = 9  # NW-1001..NW-1009: email and SMS consent, a shipment each, one delay
CYCLE_HOURS = (0, 8, 14)
PASSED = "passed the validation rules"


@pytest.fixture(scope="module")
def prisms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, Path]]]:
    logs = tmp_path_factory.mktemp("prism")
    sendgrid_spec, twilio_spec = spec("sendgrid_tsg_mail_v3.yaml"), spec("twilio_api_v2010.yaml")
    with (
        prism_server(sendgrid_spec, logs / "sendgrid.log") as sendgrid,
        prism_server(twilio_spec, logs / "twilio.log") as twilio,
    ):
        yield {
            "sendgrid": (sendgrid, logs / "sendgrid.log"),
            "twilio": (twilio, logs / "twilio.log"),
        }


def test_demo_messages_go_through_the_sdks_and_validate(
    prisms: dict[str, tuple[str, Path]], tmp_path: Path
) -> None:
    orders = tmp_path / "orders.ndjson"
    lines = (EXAMPLES / "orders.ndjson").read_text(encoding="utf-8").splitlines()[:ORDERS]
    orders.write_text("\n".join(lines) + "\n", encoding="utf-8")
    log_start = {name: log.stat().st_size for name, (_, log) in prisms.items()}
    state = SandboxState(SandboxClock(DEMO_START))
    state.add(load_parcels(EXAMPLES / "sandbox_parcels.json"))
    env = {
        "SENDGRID_API_KEY": "SG.prism-demo",
        "AFTERSALE_SENDGRID_HOST": prisms["sendgrid"][0],
        "AFTERSALE_SENDGRID_ASM_GROUP": "5",
        "TWILIO_ACCOUNT_SID": "AC" + "0123456789abcdef" * 2,
        "TWILIO_AUTH_TOKEN": "prism-demo-token",
        "TWILIO_FROM": "+48221002030",
        "TWILIO_STATUS_CALLBACK": "https://hooks.northwind.example/twilio/status",
        "AFTERSALE_TWILIO_BASE_URL": prisms["twilio"][0],
        "AFTERSALE_TWILIO_MPS": "100",
        **{k: v for meta in DIRECTORY for k, v in meta.sandbox_env.items()},
    }
    with SandboxServer(state) as sandbox:
        settings = Settings(
            db=str(tmp_path / "aftersale.duckdb"),
            outbox_dir=tmp_path / "outbox",
            inbox_dir=tmp_path / "inbox",
            carrier_urls={slug: sandbox.url for slug in DIRECTORY.slugs},
        )
        with open_store(settings.db) as store:
            report = import_file(store, orders, now=DEMO_START, detect=DIRECTORY)
            assert (report.loaded, report.rejections) == (ORDERS, [])
            parts, notes = build_parts(settings, store, env=env)
            assert [n.split(" ")[:2] for n in notes] == [["email:", "sendgrid"], ["sms:", "twilio"]]
            summaries = []
            for hours in CYCLE_HOURS:
                now = DEMO_START + timedelta(hours=hours)
                state.clock.set(now)
                summaries.append(run_cycle(parts, now, f"prism-{hours}").as_dict())
            rows = [
                (m.channel, m.state, m.provider, m.provider_id, m.error_text, m.due_at)
                for m in store.list_messages()
            ]
    logs = {name: log.read_bytes()[log_start[name] :].decode() for name, (_, log) in prisms.items()}
    for name, text in logs.items():
        assert "Violation" not in text and "did not pass" not in text, f"{name}: {text}"
    problems = [r for r in rows if r[1] not in ("sent", "pending", "cancelled")]
    assert problems == [], json.dumps(summaries, default=str)
    last = DEMO_START + timedelta(hours=CYCLE_HOURS[-1])
    assert all(r[5] > last for r in rows if r[1] == "pending"), rows  # not yet due
    sent = Counter(r[0] for r in rows if r[1] == "sent")
    assert sent[ChannelKind.EMAIL] >= ORDERS and sent[ChannelKind.SMS] >= 3, sent
    assert {(r[0], r[2]) for r in rows if r[1] == "sent"} == {
        ("email", "sendgrid"),
        ("sms", "twilio"),
    }
    assert all(r[3] for r in rows if r[0] == "sms" and r[1] == "sent"), "Twilio sid recorded"
    # one validated request per message sent: no retries, no doubles
    assert logs["sendgrid"].count(PASSED) == sent[ChannelKind.EMAIL]
    assert logs["twilio"].count(PASSED) == sent[ChannelKind.SMS]
    assert sum(s["sent"] for s in summaries) == sum(sent.values())
    assert not (tmp_path / "outbox").exists()  # nothing fell back to the outbox
