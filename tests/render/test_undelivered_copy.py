"""A parcel going back says what happens to the money: the parcel's own value in the
order's currency (not the whole order's, when the order ships in parts)."""

from __future__ import annotations

from dataclasses import replace

from aftersale.models import ChannelKind, ShipmentRef
from aftersale.render.library import TemplateLibrary, build_context
from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY


def test_the_refund_is_the_parcels_value_in_the_orders_currency() -> None:
    library = TemplateLibrary.load(
        PROJECT_ROOT / "templates", Shop(), PROJECT_ROOT / "catalogue" / "products.yaml", DIRECTORY
    )
    sample = build_samples(DIRECTORY)[0]  # Anna: headphones 899.00 and two cables, PLN
    _, kwargs = sample_situations("returned_to_sender", sample)[0]
    ship = kwargs["shipment"]
    headphones, cable = sample.order.items
    whole = build_context(sample.order, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    text = library.render("returned_to_sender", ChannelKind.EMAIL, whole, "a@b").text
    assert "zwrócimy 978,80\xa0zł tą samą" in text
    split = replace(
        sample.order,
        shipments=(
            ShipmentRef(ship.tracking_number, ship.carrier, (headphones.sku,)),
            ShipmentRef("OTHER-1", ship.carrier, (cable.sku,)),
        ),
    )
    part = build_context(split, library.shop, carriers=DIRECTORY, now=SAMPLE_NOW, **kwargs)
    text = library.render("returned_to_sender", ChannelKind.EMAIL, part, "a@b").text
    assert f"zwrócimy 899,00\xa0zł za: {headphones.name} tą samą" in text
