"""Settings, built once at the edge (CLI, flow) from the environment and passed down.

Nothing here is read at import time. Secrets (API keys) are read from the
environment only when a channel or carrier is built, and never stored or logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aftersale.carriers_meta import Carriers

PROJECT_ROOT = Path(__file__).resolve().parent.parent


#: Texts a market may give per language (`{"en": "...", "de": "..."}`): opening hours,
#: legal footer. A customer reads their language, else the shop's default, else any.
Texts = Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Market:
    """One market's face to its customers (shop.yaml, `markets:`): who to call, in which
    currency its orders and offers are, and the legal footer its law asks for."""

    code: str  # e.g. "GB": how shop.yaml names it, and what templates see as shop.market
    countries: tuple[str, ...]  # ISO 3166-1 alpha-2 codes served by this market
    currency: str  # ISO 4217: its orders' currency; catalogue offers need a price in it
    phone: str
    email: str
    help_url: str
    hours: Texts = field(default_factory=dict)  # opening hours of the phone line
    legal: Texts = field(default_factory=dict)  # company, address, registration numbers


@dataclass(frozen=True, slots=True)
class Shop:
    """The shop as customers see it: in every message's header, footer and contact block.

    The top-level contact fields are the fallback for a customer whose country no market
    serves; `market_for` picks the market (shop.yaml documents the order of lookup)."""

    name: str = "Northwind Electronics"
    email: str = "help@northwind.example"
    phone: str = "+48 22 100 20 30"
    help_url: str = "https://northwind.example/help"
    base_url: str = "https://northwind.example"
    default_locale: str = "en"
    from_email: str = "orders@northwind.example"
    from_name: str = "Northwind Electronics"
    reply_to: str = "help@northwind.example"
    hours: Texts = field(default_factory=dict)
    legal: Texts = field(default_factory=dict)
    markets: tuple[Market, ...] = ()
    #: the mailbox named in marketing email's List-Unsubscribe header (mailto:), whose
    #: messages the shop acts on; None: unsubscribe@ the from_email's domain
    unsubscribe_email: str | None = None
    #: whose calendar the promises below run on (business days, the return period's end)
    time_zone: str = "UTC"
    #: business days (Mon-Fri) from an order to its tracking number; None: not promised
    dispatch_days: int | None = None
    #: days after delivery a return is accepted; None: no return-period reminder
    return_days: int | None = None

    def market_for(self, *countries: str | None) -> Market:
        """The market of the first of `countries` (shipping country, then the customer's)
        that a market serves; else the shop's own contact block as market "*"."""
        for country in countries:
            if not country:
                continue
            code = country.upper()
            for market in self.markets:
                if code in market.countries:
                    return market
        return Market(
            code="*",
            countries=(),
            currency="",
            phone=self.phone,
            email=self.email,
            help_url=self.help_url,
            hours=self.hours,
            legal=self.legal,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    #: AFTERSALE_DB: a DuckDB file path (or `:memory:`), or a database URL
    db: str = "aftersale.duckdb"
    outbox_dir: Path = Path("outbox")
    inbox_dir: Path = Path("inbox")  # order files dropped here are imported each cycle
    rules_dir: Path = PROJECT_ROOT / "rules"
    templates_dir: Path = PROJECT_ROOT / "templates"
    catalogue_path: Path = PROJECT_ROOT / "catalogue" / "products.yaml"
    shop_path: Path = PROJECT_ROOT / "shop.yaml"  # the shop's name, markets and contacts
    #: slug -> tracking API base URL: each carrier's META default, or AFTERSALE_<SLUG>_URL
    carrier_urls: Mapping[str, str] = field(default_factory=dict)
    poll_concurrency: int = 16
    poll_timeout_s: float = 10.0
    store_lock_wait_s: float = 60.0
    #: AFTERSALE_SHOP_MAPPING: how a shop platform's products map to categories (docs/shops.md)
    shop_mapping_path: Path | None = None
    #: orders whose due shipments one cycle page polls and commits together
    page_size: int = 2_000
    #: PostgreSQL: how long shipments and messages a worker claimed stay its own if it
    #: hangs (a worker that dies loses them at once)
    lease_s: float = 300.0
    shop: Shop = field(default_factory=Shop)
    #: AFTERSALE_ALERT_REPEAT_MINUTES: how often an ongoing outage is announced again
    alert_repeat_minutes: int = 60

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, carriers: Carriers) -> Settings:
        """Settings from `env` (default: the process environment); `carriers` is the
        directory the edge builds (carriers.registry), whose META gives each default URL."""
        env = os.environ if env is None else env
        urls = carriers.api_urls()
        for slug in urls:
            override = env.get(f"AFTERSALE_{slug.upper()}_URL")
            if override:
                urls[slug] = override
        from aftersale.markets import load_shop  # parses YAML: only when settings are built

        shop_path = Path(env.get("AFTERSALE_SHOP", PROJECT_ROOT / "shop.yaml"))
        return cls(
            db=env.get("AFTERSALE_DB", "aftersale.duckdb"),
            outbox_dir=Path(env.get("AFTERSALE_OUTBOX", "outbox")),
            inbox_dir=Path(env.get("AFTERSALE_INBOX", "inbox")),
            rules_dir=Path(env.get("AFTERSALE_RULES", PROJECT_ROOT / "rules")),
            templates_dir=Path(env.get("AFTERSALE_TEMPLATES", PROJECT_ROOT / "templates")),
            catalogue_path=Path(
                env.get("AFTERSALE_CATALOGUE", PROJECT_ROOT / "catalogue" / "products.yaml")
            ),
            carrier_urls=urls,
            poll_concurrency=int(env.get("AFTERSALE_POLL_CONCURRENCY", "16")),
            store_lock_wait_s=float(env.get("AFTERSALE_STORE_LOCK_WAIT_S", "60")),
            alert_repeat_minutes=int(env.get("AFTERSALE_ALERT_REPEAT_MINUTES", "60")),
            shop_mapping_path=Path(env["AFTERSALE_SHOP_MAPPING"])
            if env.get("AFTERSALE_SHOP_MAPPING")
            else None,
            shop_path=shop_path,
            shop=load_shop(shop_path),
            page_size=int(env.get("AFTERSALE_PAGE_SIZE", "2000")),
            lease_s=float(env.get("AFTERSALE_LEASE_S", "300")),
        )
