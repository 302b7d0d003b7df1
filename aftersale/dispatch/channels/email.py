"""Email's facts: the customer's `email`, consent needed for marketing only, addresses
lower-cased, messages with a subject, HTML and a text alternative. Sent by SendGrid
(channels/sendgrid.py) or written to the outbox."""

from __future__ import annotations

from aftersale import contacts
from aftersale.dispatch.channels.base import ChannelSpec, RenderFormat
from aftersale.models import ChannelKind


def normalise_email(raw: str) -> str:
    """The stored form of an email address: one address, lower-cased. ValueError if not."""
    return contacts.normalise_email(raw)


EMAIL = ChannelSpec(
    kind=ChannelKind.EMAIL,
    recipient_field="email",
    recipient_noun="email address",
    consent_field="consent_email",
    consent_for_every_message=False,  # order and delivery news is transactional
    no_consent="no marketing consent for email",
    normalise=normalise_email,
    render_format=RenderFormat.EMAIL,
    sample_address="test@example.com",
)
