"""The delay copy says what the carrier reported and nothing more: a parcel never scanned
in is "waiting for the first scan" (never "on its way"), a new date is named, no action
is claimed that nobody took, and a parcel of a split order says which parcel it is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from aftersale.models import ChannelKind, DomainEvent, EventKind, ShipmentRef, Status
from aftersale.render.library import TemplateLibrary, build_context
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

TEMPLATES = PROJECT_ROOT / "templates"
CATALOGUE = PROJECT_ROOT / "catalogue" / "products.yaml"
EMAIL, SMS = ChannelKind.EMAIL, ChannelKind.SMS


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load(TEMPLATES, Shop(), CATALOGUE, DIRECTORY)


def render(library: TemplateLibrary, reason: str, status: Status, locale: str = "en-GB"):
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = next(s for s in sample_situations("delayed", sample) if s[0] == f"delay: {reason}")
    shipment = replace(kwargs["shipment"], status=status)
    order = replace(sample.order, customer=replace(sample.order.customer, locale=locale))
    context = build_context(
        order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **{**kwargs, "shipment": shipment}
    )
    email = library.render("delayed", EMAIL, context, "a@b")
    sms = library.render("delayed", SMS, context, "+48")
    return email.text, sms.text


@pytest.mark.parametrize("reason", ["eta_missed", "stale", "exception", "no_first_scan"])
def test_a_parcel_never_scanned_is_waiting_for_its_first_scan(library, reason: str) -> None:
    email, sms = render(library, reason, Status.LABEL_CREATED)
    assert "waiting for the first scan" in email
    assert "on the way" not in email and "on its way with" not in email
    assert "first scan" in sms and "on its way" not in sms


def test_a_new_date_is_named_even_before_the_first_scan(library) -> None:
    email, sms = render(library, "eta_slipped", Status.LABEL_CREATED)
    assert "has moved the expected delivery to Monday, 17 March 2025" in email
    assert "waiting for the first scan" in email
    assert "New delivery date: 17 Mar" in sms


@pytest.mark.parametrize("locale", ["en-GB", "de-DE", "pl-PL"])
def test_an_exception_claims_no_action_and_keeps_the_carriers_name(library, locale) -> None:
    email, _ = render(library, "exception", Status.EXCEPTION, locale)
    carrier = build_samples(DIRECTORY)[0].shipment.carrier
    name = DIRECTORY.name(carrier)
    assert name in email and name.capitalize() not in email.replace(name, "")
    for claim in ("contacted", "kontaktiert", "skontaktowal", "usually", "meist", "zwykle"):
        assert claim not in email.lower()


def test_a_parcel_of_a_split_order_says_which_it_is(library) -> None:
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("delayed", sample)[0]
    ship = kwargs["shipment"]
    first, second = sample.order.items[0], sample.order.items[-1]
    order = replace(
        sample.order,
        shipments=(
            ShipmentRef(ship.tracking_number, ship.carrier, (first.sku,)),
            ShipmentRef("OTHER-1", ship.carrier, (second.sku,)),
        ),
    )
    event = DomainEvent(EventKind.DELAYED, order.order_id, SAMPLE_NOW, ship.shipment_id,
                        reason="stale")  # fmt: skip
    context = build_context(
        order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **{**kwargs, "event": event}
    )
    assert context["shipment"]["contents"] == [first.name]
    email = library.render("delayed", EMAIL, context, "a@b")
    assert first.name in email.subject and second.name not in email.text
