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


@dataclass(frozen=True, slots=True)
class Shop:
    """The shop as customers see it: in every message's header, footer and contact block."""

    name: str = "Northwind Electronics"
    email: str = "help@northwind.example"
    phone: str = "+48 22 100 20 30"
    help_url: str = "https://northwind.example/help"
    base_url: str = "https://northwind.example"
    default_locale: str = "en"
    from_email: str = "orders@northwind.example"
    from_name: str = "Northwind Electronics"
    reply_to: str = "help@northwind.example"


@dataclass(frozen=True, slots=True)
class Settings:
    #: AFTERSALE_DB: a DuckDB file path (or `:memory:`), or a database URL
    db: str = "aftersale.duckdb"
    outbox_dir: Path = Path("outbox")
    inbox_dir: Path = Path("inbox")  # order files dropped here are imported each cycle
    rules_dir: Path = PROJECT_ROOT / "rules"
    templates_dir: Path = PROJECT_ROOT / "templates"
    catalogue_path: Path = PROJECT_ROOT / "catalogue" / "products.yaml"
    #: slug -> tracking API base URL: each carrier's META default, or AFTERSALE_<SLUG>_URL
    carrier_urls: Mapping[str, str] = field(default_factory=dict)
    poll_concurrency: int = 16
    poll_timeout_s: float = 10.0
    store_lock_wait_s: float = 60.0
    #: AFTERSALE_SHOP_MAPPING: how a shop platform's products map to categories (docs/shops.md)
    shop_mapping_path: Path | None = None
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
        )
