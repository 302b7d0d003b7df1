"""Carrier and channel health across runs: an outage stays known in runs with nothing due,
its alert repeats at the set interval, its end is announced, and the store keeps it all."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from aftersale.dispatch.send import Outcome
from aftersale.models import PollResult, Status, Tracking
from aftersale.ops.health import (
    FAILING,
    OK,
    carrier_error_kind,
    channel_error_kind,
    observe_carriers,
    observe_channels,
    record_health,
    update_health,
)
from aftersale.store import open_store
from aftersale.store.records import CarrierBacklog

T0 = datetime(2026, 11, 22, 10, 15, tzinfo=UTC)
HOUR = timedelta(hours=1)


def polls(carrier: str, ok: int, failed: int, error: str = "HTTP 503") -> list[PollResult]:
    good = [
        PollResult(f"S{i}", carrier, Tracking(carrier, f"T{i}", Status.IN_TRANSIT))
        for i in range(ok)
    ]
    bad = [
        PollResult(f"F{i}", carrier, None, f"{carrier} F{i}: {error} (after 3 attempts)")
        for i in range(failed)
    ]
    return good + bad


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ("dhl 123: HTTP 503 (after 3 attempts)", "HTTP 503"),
        ("dhl 123: HTTP 503 (not retried: dhl circuit open)", "HTTP 503"),
        ("ups 1Z: HTTP 401: credentials refused", "credentials refused (HTTP 401/403)"),
        (
            "dhl: circuit open after repeated failures; not polled this run",
            "not called: circuit open",
        ),
        ("dpd 9: HTTP 429; asked to retry after 3600 s", "rate limited (HTTP 429)"),
        ("inpost 6: request failed: ReadTimeout('') (after 3 attempts)", "timeout"),
        (
            "inpost 6: request failed: ConnectError('refused') (after 3 attempts)",
            "connection failed",
        ),
        ("dhl: daily budget of 250 requests used up; not polled", "daily request budget used up"),
        ("carrier 'fedex' is not configured", "no carrier configured"),
        ("dhl 12: unexpected error: KeyError('x')", "unexpected error: KeyError('x')"),
    ],
)
def test_poll_errors_group_into_kinds(error: str, kind: str) -> None:
    assert carrier_error_kind(error) == kind


def test_send_failures_group_by_provider_code() -> None:
    assert channel_error_kind("http_401: SendGrid refused the API key") == (
        "credentials refused (http_401)"
    )
    assert channel_error_kind("timeout: no answer in 10 s") == "timeout"


def test_an_outage_is_announced_kept_through_idle_runs_repeated_and_ended() -> None:
    backlog = {"dhl": CarrierBacklog("dhl", 11, 11, T0 + 30 * timedelta(minutes=1))}
    # 10:15 every DHL poll fails: down, alerted once
    first = update_health([], observe_carriers(polls("dhl", 0, 11), ["dhl"]), T0, backlog=backlog)
    [down] = first.alerts
    assert down.event == "aftersale.carrier.down" and down.resource_id == "aftersale.carrier.dhl"
    assert down.message.startswith(
        "carrier dhl down since 2026-11-22 10:15 UTC (0 min): 11 failed polls so far, HTTP 503 ×11; "
        "last called in this run; 11 shipments wait, next check 2026-11-22 10:45 UTC. "
        "check the carrier's status page"
    )
    assert down.payload["state"] == "down"
    [dhl] = first.records
    assert (dhl.state, dhl.since, dhl.breaker_opened_at, dhl.alerted_at) == (FAILING, T0, T0, T0)

    # 10:30 and 11:00: nothing of DHL's is due; still down, no new alert within the hour
    idle = update_health(first.records, [], T0 + HOUR / 4, backlog=backlog)
    assert idle.alerts == [] and idle.changed == []
    assert idle.degraded(T0 + HOUR / 4) == [
        "carrier dhl down since 2026-11-22 10:15 UTC (15 min): 11 failed polls so far, "
        "HTTP 503 ×11; last called in the run at 2026-11-22 10:15 UTC; 11 shipments wait, "
        "next check 2026-11-22 10:45 UTC"
    ]
    # 11:15: an hour on, the alert repeats, though nothing was polled
    again = update_health(idle.records, [], T0 + HOUR, backlog=backlog)
    [repeat] = again.alerts
    assert repeat.message.startswith("carrier dhl still down since 2026-11-22 10:15 UTC (1 h)")
    assert repeat.payload["state"] == "still down"
    # 11:30: more failures accumulate into the same outage
    worse = update_health(
        again.records, observe_carriers(polls("dhl", 1, 4), []), T0 + 5 * HOUR / 4
    )
    assert worse.alerts == []
    assert (worse.records[0].failures, worse.records[0].since) == (15, T0)
    # 12:30: most polls answer: the outage is over, once
    back = update_health(worse.records, observe_carriers(polls("dhl", 9, 1), []), T0 + 9 * HOUR / 4)
    [over] = back.alerts
    assert over.event == "aftersale.carrier.recovered"
    assert over.message == (
        "carrier dhl is back at 2026-11-22 12:30 UTC after 2 h 15 min down "
        "(since 2026-11-22 10:15 UTC; 15 failed polls): the outage is over"
    )
    assert back.records[0].state == OK and back.degraded(T0) == []
    assert update_health(back.records, [], T0 + 4 * HOUR).alerts == []


def test_a_few_failures_are_not_an_outage() -> None:
    update = update_health([], observe_carriers(polls("ups", 3, 2), []), T0)
    assert update.alerts == [] and update.records[0].state == OK
    assert update.records[0].errors == {"HTTP 503": 2}


def test_a_channel_whose_provider_refuses_the_key_is_down_and_says_what_to_fix() -> None:
    outcomes = [
        Outcome(f"m-{i}", "shipped", "shipped", "email", "O1", "deferred", "a***@x.pl", "sendgrid",
                reason="http_401: SendGrid refused the API key")
        for i in range(3)
    ] + [
        # a template error says nothing about the channel
        Outcome("m-9", "shipped", "shipped", "email", "O1", "failed", "a***@x.pl", None, reason="x")
    ]  # fmt: skip
    [obs] = observe_channels(outcomes)
    assert (obs.calls, obs.failures) == (3, 3)
    [alert] = update_health([], [obs], T0).alerts
    assert alert.event == "aftersale.channel.down"
    assert "credentials refused (http_401) ×3" in alert.message
    assert "fix SENDGRID_API_KEY or TWILIO_*" in alert.message


def test_the_store_keeps_health_across_runs_and_processes(tmp_path: Path) -> None:
    db = tmp_path / "h.duckdb"
    with open_store(db) as store:
        first = record_health(store, T0, observe_carriers(polls("dhl", 0, 5), ["dhl"]))
    assert [a.event for a in first.alerts] == ["aftersale.carrier.down"]
    with open_store(db) as store:  # the next run is another process
        idle = record_health(store, T0 + HOUR / 2, [], repeat=HOUR)
        assert idle.alerts == []
        [kept] = store.load_health()
    assert kept == first.records[0]
    with open_store(db) as store:
        later = record_health(store, T0 + HOUR, [], repeat=HOUR)
        assert [a.payload["state"] for a in later.alerts] == ["still down"]
        assert store.load_health()[0].alerted_at == T0 + HOUR
