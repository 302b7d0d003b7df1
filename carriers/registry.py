"""The carriers aftersale knows: an explicit dict, slug -> factory. No scanning."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from carriers.base import Carrier
from carriers.inpost import InPost

#: slug -> factory(base_url, env) building a configured adapter.
CARRIERS: dict[str, Callable[[str, Mapping[str, str]], Carrier]] = {
    "inpost": lambda url, env: InPost(url, token=env.get("INPOST_TOKEN")),
}


def build_carriers(urls: Mapping[str, str], env: Mapping[str, str] | None = None) -> dict[str, Carrier]:
    """Adapters for every registered carrier, credentials from the environment."""
    env = os.environ if env is None else env
    return {slug: factory(urls[slug], env) for slug, factory in CARRIERS.items() if slug in urls}
