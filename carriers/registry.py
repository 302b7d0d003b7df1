"""The carriers aftersale knows: one explicit dict, slug -> adapter. No scanning.

Everything else about a carrier (display name, tracking pages, API URL, number formats,
sandbox credentials, threshold overrides) is in its module's `META`; `DIRECTORY`, the
settings' URLs, the adapters and their poll limits are built from this dict.

Credentials come from the environment (or whatever mapping the edge passes: Prefect
Secret blocks resolved into it), never from files in the repo; each adapter's `from_env`
names its variables (UPS_CLIENT_ID + UPS_CLIENT_SECRET, DHL_API_KEY, INPOST_TOKEN
optional; DPD's parcel lifecycle JSON needs none).

Per-carrier poll limits can be tuned from the environment (`limits_from_env`):
AFTERSALE_<SLUG>_RATE_PER_S, AFTERSALE_<SLUG>_RATE_PER_DAY, AFTERSALE_<SLUG>_CONCURRENCY
("0" or "none" lifts a rate limit); unset means the adapter's documented defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from aftersale.carriers_meta import Carriers
from aftersale.errors import ConfigError
from aftersale.settings import Settings
from carriers.base import Carrier
from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.inpost import InPost
from carriers.poll import CarrierLimits, default_limits
from carriers.ups import Ups

#: slug -> adapter. The order is detection's order of preference when formats overlap.
CARRIERS: dict[str, type[Carrier]] = {
    "ups": Ups,
    "dhl": Dhl,
    "inpost": InPost,
    "dpd": Dpd,
}

#: Every carrier's facts, for the core (intake, rules, templates, settings, detection).
DIRECTORY = Carriers(tuple(adapter.meta for adapter in CARRIERS.values()))

_misfiled = [slug for slug, adapter in CARRIERS.items() if adapter.meta.slug != slug]
if _misfiled:
    raise ConfigError(f"carriers.registry: key and META.slug differ for {_misfiled}")


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment, with every registered carrier's API URL."""
    return Settings.from_env(env, carriers=DIRECTORY)


def build_carriers(
    urls: Mapping[str, str], env: Mapping[str, str] | None = None
) -> dict[str, Carrier]:
    """Adapters for every registered carrier, credentials from the environment."""
    env = os.environ if env is None else env
    return {
        slug: adapter.from_env(urls[slug], env)
        for slug, adapter in CARRIERS.items()
        if slug in urls
    }


def limits_from_env(
    carriers: Mapping[str, Carrier],
    env: Mapping[str, str] | None = None,
    concurrency: int = 16,
) -> dict[str, CarrierLimits]:
    """Each carrier's poll limits: its adapter's defaults, overridden by AFTERSALE_<SLUG>_*."""
    env = os.environ if env is None else env
    limits = {}
    for slug, carrier in carriers.items():
        base = default_limits(carrier, concurrency)
        prefix = f"AFTERSALE_{slug.upper()}_"
        limits[slug] = CarrierLimits(
            concurrency=int(_number(env, prefix + "CONCURRENCY", base.concurrency) or concurrency),
            rate_per_s=_number(env, prefix + "RATE_PER_S", base.rate_per_s),
            rate_per_day=_int_or_none(_number(env, prefix + "RATE_PER_DAY", base.rate_per_day)),
        )
    return limits


def _number(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() in ("0", "none", "off"):
        return None
    problem = f"{name}={raw!r}: expected a positive number, or 0/none for no limit"
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(problem) from None
    if value < 0:
        raise ConfigError(problem)
    return value


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)
