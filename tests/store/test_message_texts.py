"""What each send attempt sent (subject, text) is kept apart from its message (migration
14): one row per attempt, written with the claim, read back with the message, erased with
the customer."""

from __future__ import annotations

from pathlib import Path

import pytest

import aftersale.store.duckdb.connection as duckdb_connection
from aftersale.dispatch.messages import queue_decisions
from aftersale.models import ChannelKind, Decision, DomainEvent, EventKind, MessageState
from aftersale.store import Store, open_store
from aftersale.store.migrations import MIGRATIONS
from aftersale.store.records import Claim, MessageResult
from tests.store.test_ops_reads import DAY, NOW, order

PLACED = DomainEvent(EventKind.ORDER_PLACED, "NW-1", NOW - DAY)


def queued(store: Store) -> str:
    store.save_orders([order()], source="t", now=NOW)
    store.record_domain_events([PLACED], run_id="r", now=NOW)
    decision = Decision("thank_you", "thank_you", ChannelKind.EMAIL, "NW-1", "k1", NOW, PLACED)
    [mid] = queue_decisions(store, [decision], {"NW-1": "C-1"}, run_id="r", now=NOW)
    return mid


def test_each_attempt_keeps_its_text_and_the_message_shows_the_latest(store_target: str) -> None:
    with open_store(store_target) as store:
        mid = queued(store)
        first = Claim(mid, "anna@example.pl", "Thank you", "first text", None, "outbox", 1)
        assert store.claim_messages([first], run_id="r", now=NOW) == {mid}
        store.record_results([MessageResult(mid, MessageState.UNKNOWN, error_text="?")], NOW)
        assert store.release_unknown([mid], resend=True, now=NOW) == 1
        [again] = store.due_messages(NOW + DAY, limit=10)
        assert again.attempts == 1
        second = Claim(mid, "anna@example.pl", "Thank you!", "second text", None, "outbox", 2)
        assert store.claim_messages([second], run_id="r", now=NOW + DAY) == {mid}
        store.record_results([MessageResult(mid, MessageState.SENT, "p-2")], NOW + DAY)

        shown = store.load_message(mid)
        assert shown is not None
        assert (shown.attempts, shown.subject, shown.body_text) == (2, "Thank you!", "second text")
        assert [(m.subject, m.body_text) for m in store.list_messages()] == [
            ("Thank you!", "second text")
        ]
        assert store.count("message_texts") == 2  # the first attempt's text is kept too

        store.erase_customer("C-1", NOW + 2 * DAY)
        erased = store.load_message(mid)
        assert erased is not None and (erased.subject, erased.body_text) == (None, None)
        assert store.count("message_texts") == 0


def test_a_claim_that_loses_its_message_writes_no_text(store_target: str) -> None:
    with open_store(store_target) as store:
        mid = queued(store)
        store.cancel_pending_messages(["k1"], "superseded", NOW)
        lost = Claim(mid, "anna@example.pl", "Thank you", "text", None, "outbox", 1)
        assert store.claim_messages([lost], run_id="r", now=NOW) == set()
        assert store.count("message_texts") == 0


def test_migration_14_moves_the_texts_sent_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as old:
        old.setattr(duckdb_connection, "MIGRATIONS", tuple(m for m in MIGRATIONS if m[0] < 14))
        with open_store(path) as store:
            mid = queued(store)
            # what a claim and its result wrote before migration 14
            store.execute(
                "UPDATE messages SET state = 'sent', attempts = 1, recipient = ?, subject = ?, "
                "body_text = ? WHERE message_id = ?",
                ["anna@example.pl", "Thank you", "We have your order.", mid],
            )
    with open_store(path) as store:
        assert store.schema_version() == MIGRATIONS[-1][0]
        moved = store.load_message(mid)
        assert moved is not None
        assert (moved.recipient, moved.subject, moved.body_text) == (
            "anna@example.pl",
            "Thank you",
            "We have your order.",
        )
        assert store.count("messages") == 1 and store.count("message_texts") == 1
