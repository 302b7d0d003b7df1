"""The channel seam: `send(message) -> SendResult`. Outbox, SendGrid and Twilio implement it."""

from __future__ import annotations

from typing import Protocol

from aftersale.models import ChannelKind, OutgoingMessage, SendResult


class Channel(Protocol):
    kind: ChannelKind
    #: Human-readable name for logs and artifacts ("outbox", "sendgrid", "twilio").
    name: str

    def send(self, message: OutgoingMessage) -> SendResult: ...
