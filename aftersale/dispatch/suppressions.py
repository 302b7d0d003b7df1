"""The suppression list: who must not get (marketing or any) messages on a channel, and why.

Addresses are stored normalised (email lower-case, phone E.164) so one lookup finds them.
A stronger reason is never replaced by a weaker one (a bounce stays a bounce when an
unsubscribe arrives), and provider opt-ins (START, group resubscribe) lift only consent
suppressions (`stop`, `unsubscribe`), never a bounce or a manual entry.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from aftersale.dispatch.channels.kinds import spec_of
from aftersale.errors import AftersaleError
from aftersale.masking import mask_recipient, mask_text
from aftersale.models import ChannelKind, SuppressionReason
from aftersale.store.protocols import MessageStore, Store, SuppressionStore
from aftersale.store.records import Suppression
from aftersale.store.rows import ENGAGEMENT_COLUMNS

log = logging.getLogger(__name__)

#: Every reason the store knows. `unsubscribe` stops marketing only; the rest stop
#: everything on the channel (see aftersale.dispatch.HARD_SUPPRESSIONS).
REASONS: tuple[str, ...] = tuple(SuppressionReason)
#: Consent suppressions: the recipient can lift them again (SMS START, group resubscribe).
LIFTABLE = frozenset({"stop", "unsubscribe"})
CSV_COLUMNS = ("address", "channel", "reason", "created_at")

#: Delivery states the providers report (see aftersale.webhooks); a later event never
#: moves a message back to an earlier rank (a late "deferred" after "delivered").
_DELIVERY_RANK = {
    "queued": 0,
    "sent": 1,
    "deferred": 1,
    "delivered": 2,
    "undelivered": 2,
    "failed": 2,
    "bounced": 2,
    "blocked": 2,
    "dropped": 2,
    "spam_report": 3,
}
_DELIVERY_PROBLEMS = frozenset(
    {"undelivered", "failed", "bounced", "blocked", "dropped", "spam_report"}
)


class SuppressionError(AftersaleError):
    """An address, channel or reason that cannot go on the list (the text says which)."""


@dataclass(frozen=True, slots=True)
class ImportResult:
    added: int = 0
    replaced: int = 0
    kept: int = 0
    problems: list[str] = field(default_factory=list)


def _rank(reason: str) -> int:
    if reason == "unsubscribe":
        return 1
    if reason == "stop":
        return 2
    return 3


# --- pure: normalise ----------------------------------------------------------


def parse_channel(raw: str | ChannelKind) -> ChannelKind:
    try:
        return ChannelKind(str(raw).strip().lower())
    except ValueError:
        raise SuppressionError(f"channel {str(raw)!r} is not one of: email, sms") from None


def parse_reason(raw: str) -> str:
    reason = raw.strip().lower()
    if reason not in REASONS:
        raise SuppressionError(f"reason {raw!r} is not one of: {', '.join(REASONS)}")
    return reason


def normalise_address(
    address: str, channel: ChannelKind | str | None = None
) -> tuple[str, ChannelKind]:
    """The stored form of `address` and its channel (guessed from the address when None):
    email lower-cased, phone E.164. Raises SuppressionError saying what is wrong."""
    raw = address.strip()
    if not raw:
        raise SuppressionError("address is empty")
    kind = parse_channel(channel) if channel is not None else _guess_channel(raw)
    try:
        return spec_of(kind).normalise(raw), kind
    except ValueError as exc:
        raise SuppressionError(str(exc)) from None


def _guess_channel(raw: str) -> ChannelKind:
    return ChannelKind.EMAIL if "@" in raw else ChannelKind.SMS


# --- store operations ---------------------------------------------------------


def add_suppression(
    store: SuppressionStore,
    address: str,
    channel: ChannelKind | str | None,
    reason: str,
    at: datetime,
) -> tuple[Suppression, str]:
    """Suppress `address`; returns the entry now in effect and what happened:
    "added", "replaced" (a stronger reason took over) or "kept" (as strong or stronger
    already there: its reason and time stay)."""
    addr, kind = normalise_address(address, channel)
    why = parse_reason(reason)
    existing = store.get_suppression(addr, kind)
    if existing is not None and _rank(why) <= _rank(existing.reason):
        return existing, "kept"
    entry = Suppression(addr, kind, why, at)
    store.put_suppression(entry)
    return entry, "added" if existing is None else "replaced"


def remove_suppression(
    store: SuppressionStore,
    address: str,
    channel: ChannelKind | str | None,
    *,
    only: Iterable[str] | None = None,
) -> Suppression | None:
    """Lift a suppression; with `only`, just when its reason is one of those. Returns
    what was removed (None when nothing was)."""
    addr, kind = normalise_address(address, channel)
    existing = store.get_suppression(addr, kind)
    if existing is None or (only is not None and existing.reason not in set(only)):
        return None
    store.delete_suppression(addr, kind)
    return existing


def list_suppressions(
    store: SuppressionStore,
    *,
    channel: ChannelKind | str | None = None,
    reason: str | None = None,
) -> list[Suppression]:
    """Entries, newest first, optionally of one channel and/or reason (both checked)."""
    return store.list_suppressions(
        channel=parse_channel(channel) if channel is not None else None,
        reason=parse_reason(reason) if reason is not None else None,
    )


def suppressions_for(
    store: SuppressionStore, addresses: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], str]:
    """(address lower-cased, channel) -> reason, for the given (address, channel)
    recipients that are suppressed (on any channel listed for that address)."""
    return store.suppression_reasons({a.lower() for a, _ in addresses})


def is_suppressed(store: SuppressionStore, address: str, channel: str) -> str | None:
    return suppressions_for(store, [(address, channel)]).get((address.lower(), channel))


def import_suppressions(store: Store, path: Path, now: datetime) -> ImportResult:
    """Load a CSV with a header row: `address` (or `email` / `phone`), and optionally
    `channel` (guessed from the address when empty), `reason` (default `manual`) and
    `created_at` (ISO 8601 with offset; default `now`). A bad row is reported as
    `file:line: field: problem` and the others load; a bad header loads nothing."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return ImportResult(problems=[f"{path}: cannot read the file: {exc}"])
    reader = csv.DictReader(text.splitlines())
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    problem = _check_header(header)
    if problem:
        return ImportResult(problems=[f"{path}:1: {problem}"])
    reader.fieldnames = header
    added = replaced = kept = 0
    problems: list[str] = []
    with store.transaction():
        for row in reader:
            line = reader.line_num
            try:
                address, channel, reason, at = _parse_row(row, now)
                _, outcome = add_suppression(store, address, channel, reason, at)
            except _RowError as exc:
                problems.append(f"{path}:{line}: {exc.field}: {exc.problem}")
                continue
            added += outcome == "added"
            replaced += outcome == "replaced"
            kept += outcome == "kept"
    return ImportResult(added, replaced, kept, problems)


class _RowError(Exception):
    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name
        self.problem = problem


def _check_header(header: list[str]) -> str | None:
    if not header:
        return "the file is empty; expected a header row like: address,channel,reason"
    address_cols = [h for h in header if h in ("address", "email", "phone")]
    if len(address_cols) != 1:
        return (
            "the header needs exactly one address column (address, email or phone); "
            f"found {', '.join(address_cols) or 'none'} in: {','.join(header)}"
        )
    known = {*CSV_COLUMNS, "email", "phone"}
    unknown = [h for h in header if h not in known]
    if unknown:
        return (
            f"unknown column {unknown[0]!r}; the columns are: address (or email, phone), "
            "channel, reason, created_at"
        )
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        return f"column {dupes[0]!r} appears twice"
    return None


def _parse_row(row: dict[str, str | None], now: datetime) -> tuple[str, ChannelKind, str, datetime]:
    if None in row:
        raise _RowError("row", "more fields than the header has columns")
    col = next(h for h in row if h in ("address", "email", "phone"))
    raw_address = (row.get(col) or "").strip()
    raw_channel = (row.get("channel") or "").strip()
    channel_hint = {"email": ChannelKind.EMAIL, "phone": ChannelKind.SMS}.get(col)
    try:
        channel = parse_channel(raw_channel) if raw_channel else channel_hint
    except SuppressionError as exc:
        raise _RowError("channel", str(exc)) from None
    try:
        address, kind = normalise_address(raw_address, channel)
    except SuppressionError as exc:
        raise _RowError(col, str(exc)) from None
    try:
        reason = parse_reason(row.get("reason") or "manual")
    except SuppressionError as exc:
        raise _RowError("reason", str(exc)) from None
    raw_at = (row.get("created_at") or "").strip()
    at = now
    if raw_at:
        try:
            at = datetime.fromisoformat(raw_at)
        except ValueError:
            raise _RowError("created_at", f"{raw_at!r} is not an ISO 8601 time") from None
        if at.tzinfo is None:
            raise _RowError("created_at", f"{raw_at!r} needs a UTC offset, like +00:00")
        at = at.astimezone(UTC)
    return address, kind, reason, at


def record_delivery(
    store: MessageStore, message_id: str, state: str, detail: str | None, at: datetime
) -> bool:
    """Set a message's provider delivery state. A state of lower rank than the one
    stored (a late "deferred" after "delivered") changes nothing. "opened" and "clicked"
    (SendGrid's engagement events) keep their first time beside the delivery state.
    False when the message is unknown or the state was not applied."""
    message = store.load_message(message_id)
    if message is None:
        log.warning("delivery state %r for unknown message %s ignored", state, message_id)
        return False
    if state in ENGAGEMENT_COLUMNS:
        store.record_engagement(message_id, state, at)
        return True
    current = message.delivery_state
    if current is not None and _DELIVERY_RANK.get(state, 1) < _DELIVERY_RANK.get(current, 1):
        return False
    problem = detail if detail and state in _DELIVERY_PROBLEMS else None
    store.set_delivery_state(message_id, state, problem)
    return True


class StoreWebhookSink:
    """aftersale.webhooks.WebhookSink over the store (used by the spool ingest).

    Bad addresses from a provider are logged (masked) and skipped: one odd event must
    not stop the rest of a batch."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def suppress(self, address: str, channel: ChannelKind, reason: str, at: datetime) -> None:
        try:
            entry, outcome = add_suppression(self.store, address, channel, str(reason), at)
        except SuppressionError as exc:
            log.warning(
                "webhook suppression of %s skipped: %s",
                mask_recipient(address),
                mask_text(str(exc)),
            )
            return
        if outcome != "kept":
            log.info("suppressed %s on %s: %s", mask_recipient(entry.address), channel, reason)

    def unsuppress(self, address: str, channel: ChannelKind, at: datetime) -> None:
        try:
            removed = remove_suppression(self.store, address, channel, only=LIFTABLE)
        except SuppressionError as exc:
            log.warning(
                "webhook opt-in of %s skipped: %s", mask_recipient(address), mask_text(str(exc))
            )
            return
        if removed is not None:
            log.info("lifted %s suppression of %s", removed.reason, mask_recipient(address))

    def record_delivery(
        self, message_id: str, state: str, detail: str | None, at: datetime
    ) -> None:
        record_delivery(self.store, message_id, state, detail, at)
