"""What customers receive stays byte for byte the same when rendering's code changes: every
template variant, rendered against every gallery sample (shop.yaml's markets included) in
every situation it is sent in, with signed unsubscribe links, digested per variant and
compared with golden_renders.txt.

A template, context, filter or Babel change that alters a message fails here, naming the
variants. When the change is meant, refresh the digests and commit them with it:

    AFTERSALE_GOLDEN_UPDATE=1 .venv/bin/pytest -q -p no:cacheprovider tests/render/test_golden.py
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from aftersale.dispatch.unsubscribe import UnsubscribeLinks
from aftersale.markets import load_shop
from aftersale.render.context import build_context
from aftersale.render.library import TemplateLibrary
from aftersale.render.market_samples import all_samples
from aftersale.render.samples import SAMPLE_NOW, sample_recipient, sample_situations
from aftersale.settings import PROJECT_ROOT
from carriers.registry import DIRECTORY

GOLDEN = Path(__file__).with_name("golden_renders.txt")
REFRESH = (
    ". If that is meant (a template, sample or Babel change), refresh the digests with "
    "AFTERSALE_GOLDEN_UPDATE=1 .venv/bin/pytest -p no:cacheprovider tests/render/test_golden.py "
    "and commit tests/render/golden_renders.txt with the change"
)
SIGNER = UnsubscribeLinks(
    b"golden-renders-key-of-32-bytes!!",
    "https://hooks.northwind.example/unsubscribe",
    "unsubscribe@northwind.example",
)


def _renders(library: TemplateLibrary) -> Iterator[tuple[str, str]]:
    """(variant name, one rendered message as JSON) for every variant x sample x situation."""
    samples = all_samples(library.shop, library.carriers)
    for template, channel in library.templates():
        for sample in samples:
            for _, kwargs in sample_situations(template, sample):
                context = build_context(
                    sample.order,
                    library.shop,
                    carriers=library.carriers,
                    catalogue=library.catalogue,
                    unsubscribe=SIGNER,
                    now=SAMPLE_NOW,
                    **kwargs,
                )
                to = sample_recipient(context, channel)
                for variant in library.variants[(template, channel)].values():
                    m = library.render_variant(variant, context, to)
                    yield (
                        variant.name,
                        json.dumps(
                            [m.to, m.subject, m.text, m.html, m.sms_segments, m.list_unsubscribe],
                            ensure_ascii=False,
                        ),
                    )


def digests(library: TemplateLibrary) -> dict[str, str]:
    """One digest per variant over all its renders, in order."""
    found: dict[str, hashlib._Hash] = {}
    for name, rendered in _renders(library):
        found.setdefault(name, hashlib.sha256()).update(rendered.encode() + b"\0")
    return {name: h.hexdigest()[:24] for name, h in sorted(found.items())}


def read_golden() -> dict[str, str]:
    lines = GOLDEN.read_text(encoding="utf-8").splitlines()
    return dict(line.split() for line in lines if line and not line.startswith("#"))


@pytest.fixture(scope="module")
def library() -> TemplateLibrary:
    return TemplateLibrary.load(
        PROJECT_ROOT / "templates",
        load_shop(PROJECT_ROOT / "shop.yaml"),
        PROJECT_ROOT / "catalogue" / "products.yaml",
        DIRECTORY,
    )


def test_every_variant_renders_as_recorded(library: TemplateLibrary) -> None:
    found = digests(library)
    if os.environ.get("AFTERSALE_GOLDEN_UPDATE"):
        header = (
            "# variant  digest of its renders (tests/render/test_golden.py says how to refresh)"
        )
        GOLDEN.write_text(
            "\n".join([header, *(f"{k} {v}" for k, v in found.items())]) + "\n", encoding="utf-8"
        )
    golden = read_golden()
    changed = sorted(k for k in found.keys() & golden.keys() if found[k] != golden[k])
    assert not changed, f"these variants now render differently: {', '.join(changed)}{REFRESH}"
    assert found.keys() == golden.keys(), (
        f"new: {sorted(found.keys() - golden.keys())}, "
        f"gone: {sorted(golden.keys() - found.keys())}{REFRESH}"
    )
