"""docs/shops.md shows examples/shop-mapping.yaml as it is, and a shop starts from a copy
of it: it must load and map the way the docs say."""

from __future__ import annotations

from aftersale.intake.shops.base import ShopMapping
from aftersale.settings import PROJECT_ROOT

EXAMPLE = PROJECT_ROOT / "examples" / "shop-mapping.yaml"


def test_the_example_shop_mapping_loads_and_maps_as_documented() -> None:
    example = ShopMapping.load(EXAMPLE)
    assert example.category("Television", [], "X-1") == "tv"  # product type
    assert example.category("", ["gift-card"], None) == "gift_cards"  # tag
    assert example.category(None, [], "NW-HDMI-2M") == "cables"  # SKU prefix
    assert example.category(None, [], "ZZ-1") == "other"
    assert example.warranty_months["tv"] == 24
    assert (example.time_zone("CH"), example.locale("CH")) == ("Europe/Zurich", "de-CH")
    assert (example.time_zone("PL"), example.locale("PL")) == ("Europe/Warsaw", "pl-PL")
    docs = (PROJECT_ROOT / "docs" / "shops.md").read_text(encoding="utf-8")
    body = EXAMPLE.read_text(encoding="utf-8").split("\n", 2)[2]  # below its two comment lines
    assert f"```yaml\n# examples/shop-mapping.yaml\n{body}```" in docs
