"""Suppression list: normalised addresses, reason strength, opt-in lifting only consent,
CSV import with per-line errors, the webhook spool, delivery states, and the CLI's text."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from aftersale.cli.delivery import suppress_app
from aftersale.dispatch import messages as msgs
from aftersale.dispatch.send import DispatchReport, dispatch_due
from aftersale.dispatch.spool import SpoolSink, ingest_webhook_spool, webhook_spool_dir
from aftersale.dispatch.suppressions import (
    StoreWebhookSink,
    SuppressionError,
    add_suppression,
    import_suppressions,
    is_suppressed,
    list_suppressions,
    normalise_address,
    record_delivery,
    remove_suppression,
)
from aftersale.models import (
    ChannelKind,
    Customer,
    Decision,
    DomainEvent,
    EventKind,
    Item,
    Order,
    OutgoingMessage,
    RenderedMessage,
    SendResult,
)
from aftersale.settings import Settings
from aftersale.store import Store, open_store
from aftersale.store.records import Suppression
from tests.support.postgres import PostgresCluster
from tests.support.servers import free_port

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
EMAIL, SMS = ChannelKind.EMAIL, ChannelKind.SMS
REASONS = "manual, unsubscribe, stop, bounce, spamreport, dropped"
NEEDS_ADDRESS = "1: the header needs exactly one address column (address, email or phone); "


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(tmp_path / "s.duckdb")
    yield s
    s.close()


def entries(store: Store) -> list[tuple[str, str, str]]:
    return [(e.address, e.channel.value, e.reason) for e in list_suppressions(store)]


# --- normalising ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "channel", "expected"),
    [
        ("  Anna.Nowak@Example.PL ", None, ("anna.nowak@example.pl", EMAIL)),
        ("+48 601 234 567", None, ("+48601234567", SMS)),
        ("+48-601-234-567", "SMS", ("+48601234567", SMS)),
        ("+1 (415) 555-2671", "sms", ("+14155552671", SMS)),
        ("a@b.co", "email", ("a@b.co", EMAIL)),
    ],
)
def test_addresses_are_normalised(raw: str, channel: str | None, expected: tuple) -> None:
    assert normalise_address(raw, channel) == expected


@pytest.mark.parametrize(
    ("raw", "channel", "message"),
    [
        ("", None, "address is empty"),
        (
            "601234567",
            None,
            "'601234567' is not a valid phone number: without a country it must start with + (like +48601234567)",
        ),
        ("+48 12", None, "'+48 12' is not a valid phone number (like +48601234567)"),
        ("anna@example", None, "'anna@example' is not an email address"),
        ("anna nowak@example.pl", None, "'anna nowak@example.pl' is not an email address"),
        ("+48601234567", "email", "'+48601234567' is not an email address"),
        (
            "anna@example.pl",
            "sms",
            "'anna@example.pl' is not a valid phone number: without a country it must start with + (like +48601234567)",
        ),
        ("anna@example.pl", "fax", "channel 'fax' is not one of: email, sms"),
    ],
)
def test_bad_addresses_say_what_is_wrong(raw: str, channel: str | None, message: str) -> None:
    with pytest.raises(SuppressionError) as err:
        normalise_address(raw, channel)
    assert str(err.value) == message


# --- reasons and their strength -------------------------------------------------------


def test_add_is_idempotent_and_a_stronger_reason_wins(store: Store) -> None:
    first, outcome = add_suppression(store, "Anna@Example.pl", None, "unsubscribe", NOW)
    assert (first, outcome) == (Suppression("anna@example.pl", EMAIL, "unsubscribe", NOW), "added")
    assert (
        add_suppression(store, "anna@example.pl", EMAIL, "unsubscribe", NOW + timedelta(1))[1]
        == "kept"
    )
    later = NOW + timedelta(days=2)
    assert add_suppression(store, "anna@example.pl", EMAIL, "bounce", later) == (
        Suppression("anna@example.pl", EMAIL, "bounce", later),
        "replaced",
    )
    # a weaker reason never overwrites a bounce
    assert add_suppression(store, "anna@example.pl", EMAIL, "unsubscribe", NOW)[1] == "kept"
    assert entries(store) == [("anna@example.pl", "email", "bounce")]
    assert is_suppressed(store, "anna@example.pl", "email") == "bounce"


def test_the_same_address_is_separate_per_channel(store: Store) -> None:
    add_suppression(store, "+48601234567", SMS, "stop", NOW)
    assert is_suppressed(store, "+48601234567", "sms") == "stop"
    assert is_suppressed(store, "+48601234567", "email") is None


def test_unknown_reason_is_refused(store: Store) -> None:
    with pytest.raises(
        SuppressionError,
        match=f"reason 'hardbounce' is not one of: {REASONS}",
    ):
        add_suppression(store, "a@example.com", None, "hardbounce", NOW)
    assert entries(store) == []


def test_remove_can_be_limited_to_some_reasons(store: Store) -> None:
    add_suppression(store, "+48601234567", None, "bounce", NOW)
    assert remove_suppression(store, "+48 601 234 567", None, only={"stop"}) is None
    removed = remove_suppression(store, "+48 601 234 567", None)
    assert removed == Suppression("+48601234567", SMS, "bounce", NOW)
    assert remove_suppression(store, "+48601234567", None) is None


# --- the webhook sink ----------------------------------------------------------------


def test_sink_start_lifts_stop_but_never_a_bounce_or_manual(store: Store) -> None:
    sink = StoreWebhookSink(store)
    sink.suppress("+48601234567", SMS, "stop", NOW)
    sink.suppress("+48602345678", SMS, "stop", NOW)
    add_suppression(store, "+48602345678", SMS, "manual", NOW)  # operator: never text this one
    sink.suppress("B@Example.com", EMAIL, "bounce", NOW)
    sink.suppress("c@example.com", EMAIL, "unsubscribe", NOW)
    for address, channel in [
        ("+48601234567", SMS),
        ("+48602345678", SMS),
        ("b@example.com", EMAIL),
        ("C@example.com", EMAIL),
    ]:
        sink.unsuppress(address, channel, NOW + timedelta(hours=1))
    assert sorted(entries(store)) == [
        ("+48602345678", "sms", "manual"),
        ("b@example.com", "email", "bounce"),
    ]


def test_sink_skips_an_unusable_address_and_says_so(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = StoreWebhookSink(store)
    with caplog.at_level(logging.WARNING):
        sink.suppress("not-a-number", SMS, "stop", NOW)
        sink.suppress("+48601234567", SMS, "stop", NOW)
    assert entries(store) == [("+48601234567", "sms", "stop")]
    assert "webhook suppression of n***" in caplog.text
    assert "'not-a-number' is not a valid phone number" in caplog.text


def queue_one(store: Store, rule: str = "thank_you", channel: ChannelKind = EMAIL) -> str:
    event = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=1))
    store.record_domain_events([event], run_id="r", now=NOW)
    d = Decision(rule, "thank_you", channel, "NW-1", f"{rule}:NW-1:{channel}", NOW, event)
    (message_id,) = msgs.queue_decisions(store, [d], {"NW-1": "C-1"}, run_id="r", now=NOW)
    return message_id


def delivery(store: Store, message_id: str) -> tuple[str | None, str | None]:
    message = store.load_message(message_id)
    assert message is not None
    return message.delivery_state, message.error_text


def test_delivery_states_never_go_backwards(store: Store) -> None:
    mid = queue_one(store)
    assert record_delivery(store, mid, "deferred", "421 try later", NOW)
    assert delivery(store, mid) == ("deferred", None)
    assert record_delivery(store, mid, "delivered", None, NOW)
    assert not record_delivery(store, mid, "deferred", None, NOW)  # late, out of order
    assert delivery(store, mid) == ("delivered", None)
    assert record_delivery(store, mid, "spam_report", None, NOW)
    assert delivery(store, mid) == ("spam_report", None)


def test_opens_and_clicks_keep_their_first_time_beside_the_delivery_state(store: Store) -> None:
    mid = queue_one(store)
    assert record_delivery(store, mid, "delivered", None, NOW)
    later = NOW + timedelta(hours=1)
    for state, at in (("opened", NOW), ("opened", later), ("clicked", later)):
        assert record_delivery(store, mid, state, None, at)
    message = store.load_message(mid)
    assert message is not None
    assert (message.delivery_state, message.opened_at, message.clicked_at) == (
        "delivered",
        NOW,
        later,
    )


def test_a_bounce_records_the_provider_reason(store: Store) -> None:
    mid = queue_one(store)
    StoreWebhookSink(store).record_delivery(mid, "bounced", "550 5.1.1 user unknown", NOW)
    assert delivery(store, mid) == ("bounced", "550 5.1.1 user unknown")


def test_delivery_for_an_unknown_message_is_ignored(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING):
        assert not record_delivery(store, "m-nope", "delivered", None, NOW)
    assert "delivery state 'delivered' for unknown message m-nope ignored" in caplog.text


# --- CSV import -----------------------------------------------------------------------


def test_import_loads_good_rows_and_names_each_bad_one(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "list.csv"
    path.write_text(
        "address,channel,reason,created_at\n"
        "Anna@Example.pl,,unsubscribe,\n"
        "+48 601 234 567,sms,stop,2026-01-02T03:04:05+01:00\n"
        "601234567,sms,,\n"
        "piotr@example.pl,fax,,\n"
        "ewa@example.pl,,hardbounce,\n"
        "\n"
        "jan@example.pl,email,bounce,yesterday\n"
        "kasia@example.pl,email,manual,2026-01-01T00:00:00\n"
        "anna@example.pl,email,bounce,\n"
        "ola@example.pl,email,manual,,extra\n"
        "+48602345678,,,\n",
        encoding="utf-8",
    )
    result = import_suppressions(store, path, NOW)
    assert result.problems == [
        f"{path}:4: address: '601234567' is not a valid phone number: without a country it must start with + (like +48601234567)",
        f"{path}:5: channel: channel 'fax' is not one of: email, sms",
        f"{path}:6: reason: reason 'hardbounce' is not one of: {REASONS}",
        f"{path}:8: created_at: 'yesterday' is not an ISO 8601 time",
        f"{path}:9: created_at: '2026-01-01T00:00:00' needs a UTC offset, like +00:00",
        f"{path}:11: row: more fields than the header has columns",
    ]
    assert (result.added, result.replaced, result.kept) == (3, 1, 0)
    assert sorted(entries(store)) == [
        ("+48601234567", "sms", "stop"),
        ("+48602345678", "sms", "manual"),
        ("anna@example.pl", "email", "bounce"),
    ]
    stop = next(e for e in list_suppressions(store) if e.reason == "stop")
    assert stop.created_at == datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC)


def test_import_takes_an_email_or_phone_column(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "sendgrid-export.csv"
    path.write_text("email,reason\nB@example.com,bounce\n", encoding="utf-8")
    assert import_suppressions(store, path, NOW).added == 1
    phones = tmp_path / "phones.csv"
    phones.write_text("phone\n+48601234567\n", encoding="utf-8")
    assert import_suppressions(store, phones, NOW).added == 1
    assert sorted(entries(store)) == [
        ("+48601234567", "sms", "manual"),
        ("b@example.com", "email", "bounce"),
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("", "1: the file is empty; expected a header row like: address,channel,reason"),
        (
            "channel,reason\nsms,stop\n",
            f"{NEEDS_ADDRESS}found none in: channel,reason",
        ),
        (
            "email,phone\na@b.co,+48601234567\n",
            f"{NEEDS_ADDRESS}found email, phone in: email,phone",
        ),
        (
            "address,reasn\na@b.co,bounce\n",
            "1: unknown column 'reasn'; the columns are: "
            "address (or email, phone), channel, reason, created_at",
        ),
        ("address,reason,reason\na@b.co,bounce,stop\n", "1: column 'reason' appears twice"),
    ],
)
def test_a_bad_header_loads_nothing(
    store: Store, tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    result = import_suppressions(store, path, NOW)
    assert result.problems == [f"{path}:{problem}"]
    assert entries(store) == []


# --- the spool between the receiver and the cycle ------------------------------------------


def test_spooled_facts_apply_in_arrival_order_once(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "webhooks"
    sink = SpoolSink(spool)
    mid = queue_one(store)
    sink.suppress("+48601234567", SMS, "stop", NOW)
    sink.unsuppress("+48601234567", SMS, NOW + timedelta(minutes=1))  # START after STOP
    sink.unsuppress("+48602345678", SMS, NOW)  # START before STOP
    sink.suppress("+48602345678", SMS, "stop", NOW + timedelta(minutes=1))
    sink.suppress("b@example.com", EMAIL, "bounce", NOW)
    sink.record_delivery(mid, "bounced", "550 user unknown", NOW)
    assert len(list(spool.glob("*.jsonl"))) == 6
    assert entries(store) == []  # nothing reaches the store before the cycle ingests
    assert ingest_webhook_spool(store, spool, NOW) == 6
    assert sorted(entries(store)) == [
        ("+48602345678", "sms", "stop"),
        ("b@example.com", "email", "bounce"),
    ]
    assert delivery(store, mid) == ("bounced", "550 user unknown")
    assert list(spool.glob("*.jsonl")) == []
    assert ingest_webhook_spool(store, spool, NOW) == 0


def test_a_crash_after_apply_only_reapplies(store: Store, tmp_path: Path) -> None:
    spool = tmp_path / "webhooks"
    SpoolSink(spool).suppress("+48601234567", SMS, "stop", NOW)
    (kept,) = spool.glob("*.jsonl")
    copy = kept.read_bytes()
    assert ingest_webhook_spool(store, spool, NOW) == 1
    kept.write_bytes(copy)  # as if the cycle died before deleting the file
    assert ingest_webhook_spool(store, spool, NOW) == 1
    assert entries(store) == [("+48601234567", "sms", "stop")]


def test_an_unreadable_spool_line_is_set_aside_and_named(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = tmp_path / "webhooks"
    SpoolSink(spool).suppress("+48601234567", SMS, "stop", NOW)
    bad = spool / "00000000000000000001-1-00000001.jsonl"
    bad.write_text(
        '{"op": "suppress", "address": "+48602345678", "channel": "sms", "reason": "stop", '
        '"at": "2026-11-23T09:00:00+00:00"}\n'
        '{"op": "explode"}\n'
        '{"op": "unsuppress", "address": "+48602345678", "channel": "sms"}\n'
        "not json\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.ERROR):
        assert ingest_webhook_spool(store, spool, NOW) == 2
    assert sorted(entries(store)) == [
        ("+48601234567", "sms", "stop"),
        ("+48602345678", "sms", "stop"),
    ]
    assert (spool / "rejected" / bad.name).exists() and not bad.exists()
    assert f"{bad}:2: op 'explode' is not one of: suppress, unsuppress, delivery" in caplog.text
    assert f"{bad}:3: unsuppress: field 'at' missing or not a string" in caplog.text
    assert f"{bad}:4: Expecting value" in caplog.text
    assert list(spool.glob("*.jsonl")) == []


def test_spool_dir_sits_beside_the_database_unless_set(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "var" / "a.duckdb"))
    assert webhook_spool_dir(settings, {}) == tmp_path / "var" / "webhooks"
    assert webhook_spool_dir(settings, {"AFTERSALE_WEBHOOK_SPOOL": "/srv/spool"}) == Path(
        "/srv/spool"
    )


def test_a_database_url_has_no_spool_unless_one_is_set(tmp_path: Path) -> None:
    """PostgreSQL: the receiver writes to the store; a set spool (left from DuckDB days)
    is still drained."""
    settings = Settings(db="postgresql://aftersale@db.internal/aftersale")
    assert webhook_spool_dir(settings, {}) is None
    assert webhook_spool_dir(settings, {"AFTERSALE_WEBHOOK_SPOOL": str(tmp_path)}) == tmp_path


def test_a_missing_spool_is_nothing_to_do(store: Store, tmp_path: Path) -> None:
    assert ingest_webhook_spool(store, tmp_path / "nowhere", NOW) == 0


# --- dispatch honours what the list says -------------------------------------------------


class Renderer:
    def render(
        self, template: str, channel: ChannelKind, context: Mapping[str, Any], to: str
    ) -> RenderedMessage:
        return RenderedMessage(
            channel, to, "s" if channel is EMAIL else None, "text", sms_segments=1
        )


class Recording:
    name = "recording"

    def __init__(self, kind: ChannelKind) -> None:
        self.kind = kind
        self.sent: list[OutgoingMessage] = []

    def send(self, message: OutgoingMessage) -> SendResult:
        self.sent.append(message)
        return SendResult(ok=True, provider_id=f"p-{len(self.sent)}")


def test_dispatch_suppresses_by_reason_and_channel(store: Store) -> None:
    customer = Customer(
        "C-1", "Anna", "anna@example.pl", "+48601234567", "pl", "Europe/Warsaw", True, True, "PL"
    )
    item = Item("TV", "TV", "tv", 1, Decimal("10"), "PLN", 24)
    store.save_orders(
        [Order("NW-1", NOW - timedelta(hours=2), customer, (item,), ())], source="t", now=NOW
    )
    event = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - timedelta(hours=2))
    store.record_domain_events([event], run_id="r", now=NOW)
    decisions = [
        Decision("news", "thank_you", EMAIL, "NW-1", "news:email", NOW, event, marketing=True),
        Decision("thank_you", "thank_you", EMAIL, "NW-1", "thank_you:email", NOW, event),
        Decision("shipped", "thank_you", SMS, "NW-1", "shipped:sms", NOW, event),
    ]
    msgs.queue_decisions(store, decisions, {"NW-1": "C-1"}, run_id="r", now=NOW)
    add_suppression(store, "ANNA@example.pl", None, "unsubscribe", NOW)  # marketing only
    StoreWebhookSink(store).suppress("+48601234567", SMS, "stop", NOW)  # everything on SMS
    email, sms = Recording(EMAIL), Recording(SMS)
    report = dispatch_due(
        store,
        Renderer(),
        lambda order, **kw: {},
        {EMAIL: email, SMS: sms},
        now=NOW,
        run_id="r2",
        into=DispatchReport(),
    )
    assert sorted((o.rule_id, o.outcome) for o in report.outcomes) == [
        ("news", "suppressed"),
        ("shipped", "suppressed"),
        ("thank_you", "sent"),
    ]
    assert [m.rule_id for m in email.sent] == ["thank_you"] and sms.sent == []


# --- the CLI ------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AFTERSALE_DB", str(tmp_path / "cli.duckdb"))
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(suppress_app, list(args))

    return invoke


def test_cli_add_remove_list(cli) -> None:  # type: ignore[no-untyped-def]
    r = cli("add", "+48 601 234 567", "--reason", "stop")
    assert (r.exit_code, r.stdout) == (0, "suppressed +48601234567 on sms (stop)\n")
    r = cli("add", "+48601234567", "--reason", "bounce")
    assert (r.exit_code, r.stdout) == (
        0,
        "suppressed +48601234567 on sms (bounce, replacing stop)\n",
    )
    r = cli("add", "+48601234567", "--reason", "unsubscribe")
    assert r.exit_code == 0
    assert r.stdout.startswith("already suppressed: +48601234567 on sms (bounce since ")
    assert cli("add", "Anna@Example.PL").stdout == "suppressed anna@example.pl on email (manual)\n"
    listed = cli("list")
    assert listed.exit_code == 0
    lines = listed.stdout.splitlines()
    assert lines[-1] == "2 suppression(s)"
    assert {tuple(line.split()[:3]) for line in lines[:-1]} == {
        ("a***@example.pl", "email", "manual"),
        ("+48******567", "sms", "bounce"),
    }
    assert "anna@example.pl" not in listed.stdout and "+48601234567" not in listed.stdout
    unmasked = cli("list", "--channel", "sms", "--unmasked").stdout.splitlines()
    assert (
        unmasked[0].split()[:3] == ["+48601234567", "sms", "bounce"]
        and unmasked[-1] == "1 suppression(s)"
    )
    assert cli("list", "--reason", "stop").stdout == "0 suppression(s)\n"
    r = cli("remove", "+48601234567")
    assert (r.exit_code, r.stdout) == (0, "removed +48601234567 on sms (was bounce)\n")
    r = cli("remove", "+48601234567")
    assert (r.exit_code, r.stdout) == (0, "not suppressed: +48601234567 on sms\n")


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (
            ["add", "601234567"],
            "error: '601234567' is not a valid phone number: without a country it must start with + (like +48601234567)\n",
        ),
        (["add", "anna@example"], "error: 'anna@example' is not an email address\n"),
        (
            ["add", "a@example.pl", "--channel", "fax"],
            "error: channel 'fax' is not one of: email, sms\n",
        ),
        (
            ["add", "a@example.pl", "--reason", "spam"],
            f"error: reason 'spam' is not one of: {REASONS}\n",
        ),
        (
            ["remove", "+48 12"],
            "error: '+48 12' is not a valid phone number (like +48601234567)\n",
        ),
        (["list", "--channel", "push"], "error: channel 'push' is not one of: email, sms\n"),
        (
            ["list", "--reason", "nope"],
            f"error: reason 'nope' is not one of: {REASONS}\n",
        ),
    ],
)
def test_cli_bad_input_exact_errors(cli, args: list[str], error: str) -> None:  # type: ignore[no-untyped-def]
    r = cli(*args)
    assert (r.exit_code, r.stdout, r.stderr) == (1, "", error)


def test_cli_import_reports_each_bad_line(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "in.csv"
    path.write_text(
        "address,reason\na@example.pl,bounce\n+4860123,stop\nb@example.pl,\n", encoding="utf-8"
    )
    r = cli("import", str(path))
    assert r.exit_code == 1
    assert r.stdout == f"{path}: 2 added, 0 replaced, 0 already suppressed, 1 rejected\n"
    assert (
        r.stderr
        == f"{path}:3: address: '+4860123' is not a valid phone number (like +48601234567)\n"
    )
    r = cli("import", str(path))
    assert r.stdout == f"{path}: 0 added, 0 replaced, 2 already suppressed, 1 rejected\n"
    good = tmp_path / "good.csv"
    good.write_text("phone,reason\n+48601234567,stop\n", encoding="utf-8")
    r = cli("import", str(good))
    assert (r.exit_code, r.stderr) == (0, "")


def test_cli_import_of_a_missing_file(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = cli("import", str(tmp_path / "nope.csv"))
    assert r.exit_code == 1
    assert (
        r.stdout
        == f"{tmp_path / 'nope.csv'}: 0 added, 0 replaced, 0 already suppressed, 1 rejected\n"
    )
    assert r.stderr.startswith(
        f"{tmp_path / 'nope.csv'}: cannot read the file: [Errno 2] No such file"
    )


def test_cli_names_a_database_it_cannot_open(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    not_a_db = tmp_path / "a-folder"
    not_a_db.mkdir()
    monkeypatch.setenv("AFTERSALE_DB", str(not_a_db))
    r = cli("list")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr.startswith(f"error: {not_a_db}: cannot open the database: ")


def test_cli_writes_straight_to_postgresql(
    cli, monkeypatch: pytest.MonkeyPatch, postgres_cluster: PostgresCluster
) -> None:  # type: ignore[no-untyped-def]
    """Several processes share a PostgreSQL store: the CLI writes while cycles run."""
    with postgres_cluster.database() as url:
        monkeypatch.setenv("AFTERSALE_DB", url)
        assert cli("add", "+48601234567", "--reason", "stop").exit_code == 0
        with open_store(url) as store:  # another process's view, at the same time
            entry = store.get_suppression("+48601234567", ChannelKind.SMS)
            assert entry is not None and entry.reason == "stop"
            assert cli("remove", "+48601234567").exit_code == 0
            assert store.get_suppression("+48601234567", ChannelKind.SMS) is None


def test_cli_names_a_postgresql_server_it_cannot_reach(
    cli, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    monkeypatch.setenv("AFTERSALE_DB", f"postgresql://shop:s3cret@127.0.0.1:{port}/aftersale")
    monkeypatch.setenv("AFTERSALE_STORE_LOCK_WAIT_S", "0")
    r = cli("list")
    assert (r.exit_code, r.stdout) == (1, "")
    assert r.stderr.startswith(
        f"error: postgresql://shop:***@127.0.0.1:{port}/aftersale: cannot connect to "
        "PostgreSQL: Connection refused"
    )


def test_spool_lines_are_json(tmp_path: Path) -> None:
    """The spool format is stable JSON lines, readable by an operator."""
    path = SpoolSink(tmp_path)._write(
        {
            "op": "suppress",
            "address": "+48601234567",
            "channel": "sms",
            "reason": "stop",
            "at": NOW.isoformat(),
        }
    )
    assert json.loads(path.read_text()) == {
        "op": "suppress",
        "address": "+48601234567",
        "channel": "sms",
        "reason": "stop",
        "at": "2026-11-23T09:00:00+00:00",
    }
    assert (path.stat().st_mode & 0o777) == 0o600
