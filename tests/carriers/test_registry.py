"""Carrier facts in one place: the registry's dict is the only list of carriers, each
carrier's facts are its META, and the core names no carrier."""

from __future__ import annotations

import ast

import pytest

from aftersale.carriers_meta import CarrierMeta, Carriers
from aftersale.settings import PROJECT_ROOT
from carriers.registry import CARRIERS, DIRECTORY, build_carriers, load_settings

CORE = PROJECT_ROOT / "aftersale"


def test_the_registry_keys_are_the_metas_slugs() -> None:
    assert DIRECTORY.slugs == tuple(CARRIERS)
    assert all(adapter.meta.slug == slug for slug, adapter in CARRIERS.items())


@pytest.mark.parametrize("meta", list(DIRECTORY), ids=DIRECTORY.slugs)
def test_every_meta_is_complete(meta: CarrierMeta) -> None:
    assert meta.name and meta.api_url.startswith("https://")
    assert meta.number_patterns, "detection needs at least one number format"
    page = meta.tracking_page("N 1", "fr-FR")
    assert page.startswith("https://") and "N%201" in page


def test_settings_urls_come_from_the_metas_and_the_environment() -> None:
    settings = load_settings({"AFTERSALE_DPD_URL": "http://127.0.0.1:9"})
    assert settings.carrier_urls == {
        **{m.slug: m.api_url for m in DIRECTORY},
        "dpd": "http://127.0.0.1:9",
    }
    assert sorted(build_carriers(settings.carrier_urls, {})) == sorted(CARRIERS)


def test_a_directory_refuses_two_carriers_with_one_slug() -> None:
    meta = next(iter(DIRECTORY))
    with pytest.raises(ValueError, match="share a slug"):
        Carriers((meta, meta))


def _core_strings() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(CORE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append((str(path.relative_to(PROJECT_ROOT)), node.lineno, node.value))
    return found


def test_the_core_names_no_carrier() -> None:
    """A new carrier touches carriers/ and the sandbox, never aftersale/ (docs/extending.md)."""
    slugs = set(DIRECTORY.slugs)
    named = [f"{path}:{line}: {value!r}" for path, line, value in _core_strings() if value in slugs]
    assert named == []
