"""The gallery end to end: served on 127.0.0.1, loaded in headless Chromium, every entry
rendered, a screenshot kept under test-artifacts/."""

from __future__ import annotations

import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftersale.render.gallery import Gallery, start_gallery
from aftersale.render.library import TemplateLibrary
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = PROJECT_ROOT / "test-artifacts"
FIXTURES = PROJECT_ROOT / "tests" / "render" / "template_fixtures"


def _message_types(channel: str) -> list[Path]:
    """The template folders on disk (one per message type), counted apart from the library."""
    return [p for p in (PROJECT_ROOT / "templates" / channel).iterdir() if p.is_dir()]


#: every message type of each channel in every locale any template is written in
LOCALES = {f.stem for p in _message_types("email") + _message_types("sms") for f in p.glob("*.j2")}
EMAILS = len(_message_types("email")) * len(LOCALES)
TEXTS = len(_message_types("sms")) * len(LOCALES)
ENTRIES = EMAILS + TEXTS


def _serve(templates: Path) -> Gallery:
    catalogue = PROJECT_ROOT / "catalogue" / "products.yaml"
    return start_gallery(lambda: TemplateLibrary.load(templates, Shop(), catalogue, DIRECTORY))


@pytest.fixture
def gallery() -> Iterator[Gallery]:
    running = _serve(PROJECT_ROOT / "templates")
    yield running
    running.stop()


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make setup does it)")
    profile = tmp_path / "profile"
    return subprocess.run(
        [
            str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--virtual-time-budget=10000", *args,
        ],
        capture_output=True, text=True, timeout=120, check=True,
        env={**os.environ, "HOME": str(tmp_path)},  # chromium writes ~/.config despite the profile
    )  # fmt: skip


def test_every_entry_renders_in_chromium(gallery: Gallery, tmp_path: Path) -> None:
    dom = _chromium(tmp_path, "--dump-dom", gallery.url).stdout
    statuses = re.findall(r'<section class="entry[^"]*" data-status="(\w+)"', dom)
    assert statuses == ["rendered"] * ENTRIES
    assert f'data-rendered="{ENTRIES}" data-errors="0"' in dom
    assert dom.count("<iframe") == EMAILS
    assert dom.count('class="bubble"') == TEXTS
    assert "Twoje zamówienie NW-1047 jest już w drodze" in dom  # an email subject
    assert re.search(r'data-segments="1">1 segment · GSM-7 · \d+ characters', dom)

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "gallery.png"
    shot.unlink(missing_ok=True)
    _chromium(tmp_path, "--window-size=1400,2400", f"--screenshot={shot}", gallery.url)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a real page, not a blank one


def test_broken_templates_show_their_error() -> None:
    broken = _serve(FIXTURES / "undefined")
    try:
        with urllib.request.urlopen(broken.url, timeout=10) as response:
            page = response.read().decode()
    finally:
        broken.stop()
    assert 'data-rendered="0" data-errors="2"' in page
    assert "undefined/sms/shipped/en.j2:1: &#x27;ordr&#x27; is undefined (did you mean " in page


def test_other_samples_and_every_situation(gallery: Gallery) -> None:
    with urllib.request.urlopen(gallery.url + "?sample=rtl_name&all=1", timeout=30) as response:
        page = response.read().decode()
    assert "محمد" in page
    # delayed: seven reasons; arriving tomorrow and pickup: two situations each.
    assert page.count('data-template="delayed"') == 7 * 3 * 2
    assert 'data-errors="0"' in page
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(gallery.url + "nothing-here", timeout=10)
