"""The channel seams. Sending: `send(message) -> SendResult` (outbox, SendGrid, Twilio).
Inbound: provider webhooks hand their facts to a `WebhookSink` (the spool, the store).
Facts: one `ChannelSpec` per kind of channel (channels/email.py, channels/sms.py), the only
place that knows which customer field holds the address, which consent it needs, how an
address is normalised and what a message of that kind is made of (channels/kinds.py).
Doubt: a channel that can tell whether it received a send also implements `Reconciler`
(Twilio lists messages by recipient and sender; the outbox looks for the attempt's file or
line); dispatch asks it about the messages whose send ended in doubt (a timeout after the
request left, a run killed mid-send) before anything is sent again. Because such a channel
settles its own doubt, dispatch claims its messages in large batches (`batch_size`); those
of a channel that cannot tell (SendGrid) go in small ones, as a person checks each one a
crash leaves in doubt.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, runtime_checkable

from aftersale.models import ChannelKind, Customer, OutgoingMessage, SendResult


class Channel(Protocol):
    kind: ChannelKind
    #: Human-readable name for logs and artifacts ("outbox", "sendgrid", "twilio").
    name: str

    def send(self, message: OutgoingMessage) -> SendResult: ...


@dataclass(frozen=True, slots=True)
class InDoubt:
    """A message that may or may not have reached the provider, as it was claimed."""

    message_id: str
    to: str
    body: str
    claimed_at: datetime
    attempt: int  # which send of the message (its `attempts` as counted by the claim)


@runtime_checkable
class Reconciler(Protocol):
    #: A send in doubt is asked about only this long after its claim (a provider may
    #: still be working on a request that timed out: it must not read as never arrived).
    reconcile_after: timedelta
    #: How many of its messages one dispatch batch claims at most: all of them may be in
    #: doubt after a crash, until `reconcile` settles them.
    batch_size: int

    def reconcile(self, messages: Sequence[InDoubt]) -> dict[str, str | None]:
        """message id -> the provider's id when the provider has this attempt of the
        message, None when it surely has not; a message the provider cannot tell about is
        left out (it stays in doubt for a person or the next cycle)."""
        ...


class WebhookSink(Protocol):
    """Where webhook facts go (the spool, then the store). Calls may repeat: be idempotent.
    `reason` is a SuppressionReason; delivery states are listed in dispatch/inbound.py."""

    def suppress(self, address: str, channel: ChannelKind, reason: str, at: datetime) -> None: ...

    def unsuppress(self, address: str, channel: ChannelKind, at: datetime) -> None: ...

    def record_delivery(
        self, message_id: str, state: str, detail: str | None, at: datetime
    ) -> None: ...


class RenderFormat(StrEnum):
    """What a rendered message of a channel is made of."""

    EMAIL = "email"  # subject, HTML (escaped, brand CSS inlined) and a text alternative
    TEXT = "text"  # one line of plain text whose SMS segment count is known


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """What every stage needs to know about one kind of channel."""

    kind: ChannelKind
    recipient_field: str  # the `Customer` attribute holding the address
    recipient_noun: str  # "email address": says what a customer lacks
    consent_field: str  # the `Customer` attribute holding the consent
    consent_for_every_message: bool  # False: only marketing needs the consent
    no_consent: str  # why a message was not sent without it
    #: The stored form of an address (suppressions match on it); ValueError says what is wrong.
    normalise: Callable[[str], str]
    render_format: RenderFormat
    sample_address: str  # previews send here when the sample customer has no address

    def recipient(self, customer: Customer) -> str | None:
        address: str | None = getattr(customer, self.recipient_field)
        return address

    def contact_problem(self, customer: Customer, marketing: bool) -> str | None:
        """Why `customer` cannot get this message on this channel, or None."""
        if not self.recipient(customer):
            return f"no {self.recipient_noun}"
        needs_consent = self.consent_for_every_message or marketing
        if needs_consent and not getattr(customer, self.consent_field):
            return self.no_consent
        return None
