"""Known server-side template injection payloads are refused with a clear error.

Each payload is put in a marketer's template (email and SMS) and rendered with a real
context; none may render, and each error names the file, the line and the reason.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.errors import TemplateError
from aftersale.models import ChannelKind
from aftersale.render.library import TemplateLibrary
from aftersale.render.samples import sample_contexts
from aftersale.settings import Shop
from carriers.registry import DIRECTORY

SANDBOX = "not allowed in templates (sandbox): "
KNOWN = (
    "(known names: customer, delay, delivered_items, dispatch, item, items, links, locale, namespace, order, "
    "product, range, refund, return_window, shipment, shop, tracking_events)"
)

#: (payload, expected error after "file:line: ")
PAYLOADS = [
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}",
     SANDBOX + "access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ customer.__class__ }}",
     SANDBOX + "access to attribute '__class__' of 'Fields' object is unsafe."),
    ("{{ [].__class__.__base__.__subclasses__() }}",
     SANDBOX + "access to attribute '__class__' of 'list' object is unsafe."),
    ("{{ lipsum.__globals__['os'].popen('id').read() }}", f"'lipsum' is undefined {KNOWN}"),
    ("{{ cycler.__init__.__globals__.os.popen('id').read() }}",
     f"'cycler' is undefined {KNOWN}"),
    ("{{ range.__globals__['__builtins__'] }}",
     SANDBOX + "access to attribute '__globals__' of 'function' object is unsafe."),
    ("{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
     SANDBOX + "access to attribute '_TemplateReference__context' of 'TemplateReference' "
     "object is unsafe."),
    ("{{ namespace.__init__.__globals__ }}",
     SANDBOX + "access to attribute '__init__' of 'type' object is unsafe."),
    ("{{ self.__init__.__globals__.__builtins__.__import__('os').system('id') }}",
     SANDBOX + "access to attribute '__init__' of 'TemplateReference' object is unsafe."),
    ("{{ order.placed_at.__class__.__mro__ }}",
     SANDBOX + "access to attribute '__class__' of 'datetime' object is unsafe."),
    ("{{ order.total.__class__.__init__ }}",
     SANDBOX + "access to attribute '__class__' of 'Decimal' object is unsafe."),
    ("{{ ''|attr('__class__') }}",
     SANDBOX + "access to attribute '__class__' of 'str' object is unsafe."),
    ("{{ customer|attr('__init__') }}",
     SANDBOX + "access to attribute '__init__' of 'Fields' object is unsafe."),
    ("{{ '{0.__class__.__mro__}'.format(customer) }}",
     SANDBOX + "access to attribute '__class__' of 'Fields' object is unsafe."),
    ("{{ '{x.__init__.__globals__}'.format_map({'x': namespace}) }}",
     SANDBOX + "access to attribute '__init__' of 'type' object is unsafe."),
    ("{{ customer.name.upper.__self__ }}",
     SANDBOX + "access to attribute '__self__' of 'builtin_function_or_method' object is unsafe."),
    ("{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
     SANDBOX + "access to attribute '__class__' of 'tuple' object is unsafe."),
    ("{{ items.append(1) }}",
     SANDBOX + "access to attribute 'append' of 'list' object is unsafe."),
    ("{{ customer.update({'name': 'x'}) }}",
     SANDBOX + "access to attribute 'update' of 'Fields' object is unsafe."),
    ("{{ order.placed_at.tzinfo.__reduce__() }}",
     SANDBOX + "access to attribute '__reduce__' of 'timezone' object is unsafe."),
    ("{{ 'a' * 1000000000 }}", SANDBOX + "repeating text beyond 100000 characters"),
    ("{{ 9 ** 99999999 }}", SANDBOX + "exponents above 64 are not allowed in templates"),
    ("{{ range(10000000)|list|length }}",
     SANDBOX + "numbers above 100,000 are not allowed as arguments"),
    ("{{ 'a'|center(1000000000) }}",
     SANDBOX + "|center with a number above 100,000 is not allowed"),
    ("{{ ('a' * 99999)|replace('a', 'a' * 99999) }}",
     SANDBOX + "|replace would make text beyond 100,000 characters"),
    ("{% for a in range(99999) %}{% for b in range(99999) %}{{ a }}{% endfor %}{% endfor %}",
     "more than 100,000 loop steps and calls (the budget per message): a loop or macro "
     "repeats too often"),
    ("{{ config.items() }}", f"'config' is undefined {KNOWN}"),
    ("{{ request.application.__globals__ }}", f"'request' is undefined {KNOWN}"),
    ("{{ os.popen('id').read() }}", f"'os' is undefined {KNOWN}"),
    ("{{ __builtins__.open('/etc/passwd').read() }}", f"'__builtins__' is undefined {KNOWN}"),
    ("{% include '/etc/passwd' %}",
     "uses '/etc/passwd', which does not exist under templates/"),
    ("{% include '../../../../etc/passwd' %}",
     "uses '../../../../etc/passwd', which does not exist under templates/"),
    ("{% import 'os' as os %}{{ os }}", "uses 'os', which does not exist under templates/"),
]  # fmt: skip


@pytest.fixture(scope="module")
def context() -> dict[str, object]:
    return sample_contexts("shipped", Shop(), None, DIRECTORY)[0][1]  # type: ignore[arg-type]


@pytest.mark.parametrize("channel", list(ChannelKind))
@pytest.mark.parametrize(("payload", "expected"), PAYLOADS)
def test_payload_is_refused(
    tmp_path: Path, context: dict[str, object], channel: ChannelKind, payload: str, expected: str
) -> None:
    path = tmp_path / "templates" / channel.value / "shipped" / "en.j2"
    path.parent.mkdir(parents=True)
    body = f"Order {{{{ order.number }}}}\n{payload}\n"
    if channel is ChannelKind.EMAIL:
        body = f"{{% block subject %}}S{{% endblock %}}\n{{% block html %}}{body}{{% endblock %}}"
    path.write_text(body, encoding="utf-8")
    library = TemplateLibrary.load(tmp_path / "templates", Shop(), None, DIRECTORY)
    with pytest.raises(TemplateError) as caught:
        library.render("shipped", channel, context, "x")
    line = 3 if channel is ChannelKind.EMAIL else 2
    assert str(caught.value) == f"templates/{channel.value}/shipped/en.j2:{line}: {expected}"


def test_enough_payloads() -> None:
    assert len(PAYLOADS) >= 15


def test_the_catalogue_is_not_a_way_out() -> None:
    """Tips from the catalogue are data: a tip that looks like Jinja is printed, not run
    (check refuses such a tip; this is what happens if one gets through)."""
    from aftersale.render.catalogue import Catalogue, ProductInfo
    from aftersale.render.library import build_context
    from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
    from aftersale.settings import PROJECT_ROOT

    tips = {"pl": ("{{ cycler.__init__ }}",)}
    catalogue = Catalogue(categories={"headphones": ProductInfo("headphones", tips=tips)})
    library = TemplateLibrary.load(PROJECT_ROOT / "templates", Shop(), None, DIRECTORY)
    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("setup_tip", sample)[0]
    kwargs["item_sku"] = "NW-ANC-700"
    ctx = build_context(
        sample.order, Shop(), carriers=DIRECTORY, catalogue=catalogue, now=SAMPLE_NOW, **kwargs
    )
    message = library.render("setup_tip", ChannelKind.EMAIL, ctx, "a@b")
    assert "<li>{{ cycler.__init__ }}</li>" in (message.html or "")
