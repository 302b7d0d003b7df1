"""SMS's facts: the customer's `phone`, consent needed for every message, numbers in
E.164, messages of plain text whose segment count is known. Sent by Twilio
(channels/twilio.py) or written to the outbox."""

from __future__ import annotations

from aftersale import contacts
from aftersale.dispatch.channels.base import ChannelSpec, RenderFormat
from aftersale.models import ChannelKind


def normalise_phone(raw: str) -> str:
    """The stored form of a phone number: E.164 (`+48…`, `0048…` and spaced forms all
    become one). ValueError if it is not a valid one."""
    return contacts.normalise_phone(raw)


SMS = ChannelSpec(
    kind=ChannelKind.SMS,
    recipient_field="phone",
    recipient_noun="phone number",
    consent_field="consent_sms",
    consent_for_every_message=True,  # a text to a phone needs consent, news or not
    no_consent="no SMS consent",
    normalise=normalise_phone,
    render_format=RenderFormat.TEXT,
    sample_address="+48600000000",
)
