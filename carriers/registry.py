"""The carriers aftersale knows: an explicit dict, slug -> factory. No scanning.

Credentials come from the environment (or whatever mapping the edge passes: Prefect
Secret blocks resolved into it), never from files in the repo:
UPS_CLIENT_ID + UPS_CLIENT_SECRET, DHL_API_KEY, INPOST_TOKEN (optional). DPD's
parcel lifecycle JSON needs none.

Per-carrier poll limits can be tuned from the environment (`limits_from_env`):
AFTERSALE_<SLUG>_RATE_PER_S, AFTERSALE_<SLUG>_RATE_PER_DAY, AFTERSALE_<SLUG>_CONCURRENCY
("0" or "none" lifts a rate limit); unset means the adapter's documented defaults.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from aftersale.errors import ConfigError
from carriers.base import Carrier
from carriers.dhl import Dhl
from carriers.dpd import Dpd
from carriers.inpost import InPost
from carriers.poll import CarrierLimits, default_limits
from carriers.ups import Ups

#: slug -> factory(base_url, env) building a configured adapter.
CARRIERS: dict[str, Callable[[str, Mapping[str, str]], Carrier]] = {
    "ups": lambda url, env: Ups(url, env.get("UPS_CLIENT_ID"), env.get("UPS_CLIENT_SECRET")),
    "dhl": lambda url, env: Dhl(url, api_key=env.get("DHL_API_KEY")),
    "inpost": lambda url, env: InPost(url, token=env.get("INPOST_TOKEN")),
    "dpd": lambda url, env: Dpd(url),
}


def build_carriers(
    urls: Mapping[str, str], env: Mapping[str, str] | None = None
) -> dict[str, Carrier]:
    """Adapters for every registered carrier, credentials from the environment."""
    env = os.environ if env is None else env
    return {slug: factory(urls[slug], env) for slug, factory in CARRIERS.items() if slug in urls}


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
