"""Channel facts in one place: every kind has its ChannelSpec, and no stage outside the
channels' own files branches on email versus SMS."""

from __future__ import annotations

import ast

import pytest

from aftersale.dispatch.channels.kinds import CHANNELS, spec_of
from aftersale.models import ChannelKind, Customer
from aftersale.settings import PROJECT_ROOT

CORE = PROJECT_ROOT / "aftersale"
#: The files that may name a kind: its facts, its providers (sending and inbound), the
#: provider choice, the models that define the kinds and the CLI's default option.
MAY_NAME_A_KIND = {
    "aftersale/models.py",
    "aftersale/dispatch/channels/email.py",
    "aftersale/dispatch/channels/sms.py",
    "aftersale/dispatch/channels/config.py",
    "aftersale/dispatch/channels/sendgrid.py",
    "aftersale/dispatch/channels/sendgrid_events.py",
    "aftersale/dispatch/channels/twilio.py",
    "aftersale/dispatch/channels/twilio_inbound.py",
    "aftersale/dispatch/suppressions.py",  # a bare address: '@' means email, else a phone
    "aftersale/cli/templates.py",  # `preview --channel` defaults to email
}


def customer(**kw: object) -> Customer:
    fields: dict[str, object] = {
        "customer_id": "C-1",
        "name": "Anna",
        "email": "anna@example.pl",
        "phone": "+48601234567",
        "locale": "pl",
        "time_zone": "Europe/Warsaw",
        "consent_email": False,
        "consent_sms": False,
    }
    return Customer(**{**fields, **kw})  # type: ignore[arg-type]


def test_every_kind_has_facts() -> None:
    assert set(CHANNELS) == set(ChannelKind)
    assert all(spec.kind is kind for kind, spec in CHANNELS.items())
    assert spec_of("sms") is CHANNELS[ChannelKind.SMS]


@pytest.mark.parametrize(
    ("kind", "who", "marketing", "problem"),
    [
        (ChannelKind.EMAIL, customer(), False, None),
        (ChannelKind.EMAIL, customer(), True, "no marketing consent for email"),
        (ChannelKind.EMAIL, customer(email=None), False, "no email address"),
        (ChannelKind.SMS, customer(), False, "no SMS consent"),
        (ChannelKind.SMS, customer(consent_sms=True), True, None),
        (ChannelKind.SMS, customer(phone=None, consent_sms=True), False, "no phone number"),
    ],
)
def test_contact_problem(kind: ChannelKind, who: Customer, marketing: bool, problem) -> None:
    assert spec_of(kind).contact_problem(who, marketing) == problem


def test_addresses_are_normalised_per_kind() -> None:
    assert spec_of(ChannelKind.EMAIL).normalise(" Anna@Example.PL ") == "anna@example.pl"
    assert spec_of(ChannelKind.SMS).normalise("+48 601 234 567") == "+48601234567"
    with pytest.raises(ValueError, match="is not an email address"):
        spec_of(ChannelKind.EMAIL).normalise("anna@example")


def test_no_stage_branches_on_a_kind() -> None:
    named = []
    for path in sorted(CORE.rglob("*.py")):
        where = str(path.relative_to(PROJECT_ROOT))
        if where in MAY_NAME_A_KIND:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "ChannelKind"
                and node.attr in ChannelKind.__members__
            ):
                named.append(f"{where}:{node.lineno}: ChannelKind.{node.attr}")
    assert named == []
