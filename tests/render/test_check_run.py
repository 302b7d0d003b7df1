"""`run_check` on copies of the shipped rules, templates and catalogue: the mistakes
marketers make, each caught at its file:line with the words they will read, all in one
run; and the edits they make correctly, which must pass."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from aftersale.render.check import run_check
from aftersale.settings import PROJECT_ROOT, Shop
from carriers.registry import DIRECTORY


def _check(root: Path) -> list[str]:
    return run_check(
        rules_dir=root / "rules",
        templates_dir=root / "templates",
        catalogue_path=root / "catalogue" / "products.yaml",
        shop=Shop(),
        carriers=DIRECTORY,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    for folder in ("rules", "templates", "catalogue"):
        shutil.copytree(PROJECT_ROOT / folder, tmp_path / folder)
    return tmp_path


def _edit(root: Path) -> Callable[[str, str, str], None]:
    def edit(relative: str, old: str, new: str) -> None:
        path = root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{relative} no longer contains {old!r}: update the test"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def _line_of(root: Path) -> Callable[..., int]:
    """The line of a copied file holding `needle` (the whole line with `exact`), so the
    expected messages follow the shipped files as they change."""

    def line_of(relative: str, needle: str, *, exact: bool = False, after: int = 0) -> int:
        lines = (root / relative).read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines, start=1):
            found = line.strip() == needle if exact else needle in line
            if number > after and found:
                return number
        raise AssertionError(f"{relative} has no line with {needle!r}")

    return line_of


def test_shipped_files_have_no_problems_and_check_is_quick() -> None:
    started = time.process_time()
    assert _check(PROJECT_ROOT) == []
    assert time.process_time() - started < 10


def test_template_mistakes(copy: Path) -> None:
    edit = _edit(copy)
    # data only some customers have: a guard removed
    edit(
        "templates/email/available_for_pickup/en.j2",
        '{% if shipment.pickup_point %}\n<p class="notice">{{ shipment.pickup_point }}'
        "{% if shipment.pickup_hours %}<br>Opening hours: {{ shipment.pickup_hours }}{% endif %}"
        "</p>\n{% endif %}",
        '<p class="notice">Pickup point: {{ shipment.pickup_point }}</p>',
    )
    edit(
        "templates/email/arriving_tomorrow/en.j2",
        "{% if shipment.window_start %}, between <strong>{{ shipment.window_start|time }} and "
        "{{ shipment.window_end|time }}</strong>{% endif %}",
        ", between <strong>{{ shipment.window_start|time }} and "
        "{{ shipment.window_end|time }}</strong>",
    )
    edit(
        "templates/email/thank_you/en.j2",
        "{% if order.promised_delivery %}\n<p>Expected delivery: <strong>"
        '{{ order.promised_delivery|date("full") }}</strong>.</p>\n{% endif %}',
        '<p>Expected delivery: <strong>{{ order.promised_delivery|date("full") }}</strong>.</p>',
    )
    edit(
        "templates/sms/available_for_pickup/en.j2",
        "Where: {{ links.tracking_short }}",
        "Pickup point: {{ shipment.pickup_point or '' }}. Where: {{ links.tracking_short }}",
    )
    edit(
        "templates/email/available_for_pickup/de.j2",
        '{% if shipment.pickup_point %}\n<p class="notice">{{ shipment.pickup_point }}'
        "{% if shipment.pickup_hours %}<br>Öffnungszeiten: {{ shipment.pickup_hours }}{% endif %}"
        "</p>\n{% endif %}",
        '<p class="notice">{{ shipment.pickup_point or "" }}</p>',
    )
    edit(
        "templates/email/arriving_tomorrow/de.j2",
        "{% block text %}\n",
        "{% block text %}\nZeitfenster: {{ shipment.window_start|time if "
        "shipment.window_start else '' }}\n",
    )
    # formats that render nonsense
    edit(
        "templates/email/shipped/de.j2",
        'shipment.estimated_delivery|date("full") }}</strong>',
        'shipment.estimated_delivery|date("DD.MM.YYYY") }}</strong>',
    )
    edit(
        "templates/email/delivered/en.j2",
        "{% block html %}\n",
        "{% block html %}\n<p>Placed at {{ order.placed_at|money }}</p>\n",
    )
    edit(
        "templates/sms/shipped/pl.j2",
        "{% block text %}\n",
        "{% block text %}\n{% if shipment.estimated_delivery %}Dostawa "
        "{{ shipment.estimated_delivery|time }}.{% endif %}\n",
    )
    # escaping turned off, a plain http link
    edit(
        "templates/email/shipped/en.j2",
        "{{ customer.first_name }}",
        "{{ customer.first_name|safe }}",
    )
    edit(
        "templates/email/delivered/pl.j2",
        "{% block html %}\n",
        '{% block html %}\n<p><a href="http://northwind.example/pomoc">Pomoc</a></p>\n',
    )
    # content that silently disappears
    edit(
        "templates/sms/delivered/de.j2",
        '{% extends "sms/_layout.j2" %}\n',
        '{% extends "sms/_layout.j2" %}\nVielen Dank!\n',
    )
    # a runaway template
    edit(
        "templates/email/review_request/de.j2",
        "{% block html %}\n",
        "{% block html %}\n{% for a in range(99999) %}{% for b in range(99999) %}."
        "{% endfor %}{% endfor %}\n",
    )
    # an unclosed tag; a locale file misnamed
    edit(
        "templates/email/delivery_attempted/pl.j2",
        "{% block html %}\n",
        "{% block html %}\n{% if customer.phone %}\n",
    )
    (copy / "templates/sms/delayed/de.j2").rename(copy / "templates/sms/delayed/ge.j2")
    # a block the layout does not have; the word None made by a filter; a currency symbol
    edit("templates/email/delivered/de.j2", "{% block html %}", "{% block htmll %}")
    edit(
        "templates/sms/shipped/en.j2",
        "Track it:",
        "Carrier: {{ shipment.carrier|replace('_', ' ') }}. Track it:",
    )
    edit(
        "templates/email/thank_you/de.j2",
        "{% block html %}\n",
        "{% block html %}\n<p>{{ order.total|money('zł') }}</p>\n",
    )
    shutil.copy(copy / "templates/email/shipped/pl.j2", copy / "templates/email/shipped/pl_PL.j2")
    # unknown filter and include, with suggestions
    edit(
        "templates/email/out_for_delivery/en.j2",
        "{% block html %}\n",
        "{% block html %}\n{{ order.total|moneys }}\n",
    )
    edit(
        "templates/email/out_for_delivery/de.j2",
        "{% block html %}\n",
        "{% block html %}\n{% include 'email/_itemz.j2' %}\n",
    )
    line_of = _line_of(copy)
    window_de = line_of("templates/email/arriving_tomorrow/de.j2", "Zeitfenster:")
    window_en = line_of(
        "templates/email/arriving_tomorrow/en.j2", ", between <strong>{{ shipment.window_start"
    )
    empty_p = line_of(
        "templates/email/available_for_pickup/de.j2",
        '<p class="notice">{{ shipment.pickup_point or',
    )
    pickup = line_of(
        "templates/email/available_for_pickup/en.j2", "Pickup point: {{ shipment.pickup_point }}"
    )
    money = line_of("templates/email/delivered/en.j2", "Placed at")
    http = line_of("templates/email/delivered/pl.j2", "http://northwind")
    opened = line_of("templates/email/delivery_attempted/pl.j2", "{% if customer.phone %}")
    endblock = line_of("templates/email/delivery_attempted/pl.j2", "{% endblock %}", after=opened)
    include = line_of("templates/email/out_for_delivery/de.j2", "_itemz")
    moneys = line_of("templates/email/out_for_delivery/en.j2", "moneys")
    runaway = line_of("templates/email/review_request/de.j2", "range(99999)")
    pattern = line_of("templates/email/shipped/de.j2", "DD.MM.YYYY")
    safe = line_of("templates/email/shipped/en.j2", "customer.first_name|safe")
    promised = line_of("templates/email/thank_you/en.j2", "Expected delivery: <strong>")
    dangling = line_of("templates/sms/available_for_pickup/en.j2", "Pickup point:")
    outside = line_of("templates/sms/delivered/de.j2", "Vielen Dank!")
    as_time = line_of("templates/sms/shipped/pl.j2", "Dostawa")
    htmll = line_of("templates/email/delivered/de.j2", "{% block htmll %}")
    zloty = line_of("templates/email/thank_you/de.j2", "money('zł')")
    assert _check(copy) == [
        f"templates/email/arriving_tomorrow/de.j2:{window_de}: leaves 'Zeitfenster:' dangling: "
        "put the "
        "words around the value inside the same {% if … %} as the value (when the carrier "
        "gives no delivery time window, and 1 more case)",
        f"templates/email/arriving_tomorrow/en.j2:{window_en}: |time got nothing: the value "
        "before it is "
        "empty here; put it inside {% if … %}…{% endif %} (when the carrier gives no delivery "
        "time window, and 3 more cases)",
        f"templates/email/available_for_pickup/de.j2:{empty_p}: leaves an empty <p> element: put "
        "it "
        "inside the same {% if … %} as the value it shows (for home delivery, with no pickup "
        "point, and 1 more case)",
        f"templates/email/available_for_pickup/en.j2:{pickup}: prints 'None': this value is empty "
        "here; put it inside {% if … %}…{% endif %} or give a fallback with `or` (for home "
        "delivery, with no pickup point, and 3 more cases)",
        f"templates/email/delivered/de.j2:{htmll}: {{% block htmll %}} is not a block of "
        "email/_layout.j2 (did you mean 'html'?): its content is never shown",
        f"templates/email/delivered/en.j2:{money}: |money needs an amount, got a date and time "
        "(2025-03-09T07:30+00:00)",
        f"templates/email/delivered/pl.j2:{http}: link 'http://northwind.example/pomoc' is not "
        "https: customers' mail programs warn about plain http; use "
        "'https://northwind.example/pomoc'",
        f"templates/email/delivery_attempted/pl.j2:{opened}:" " syntax error: this {% if %} is "
        "never "
        "closed: add {% endif %} before the {% endblock %} on line " f"{endblock}",
        f"templates/email/out_for_delivery/de.j2:{include}: uses 'email/_itemz.j2', which does not "
        "exist under templates/ (did you mean 'email/_items.j2'?)",
        f"templates/email/out_for_delivery/en.j2:{moneys}: syntax error: No filter named 'moneys'. "
        "(did you mean 'money'?)",
        f"templates/email/review_request/de.j2:{runaway}: more than 100,000 loop steps and calls "
        "(the "
        "budget per message): a loop or macro repeats too often",
        # a date has one format per locale: a pattern of one's own is refused by name
        f"templates/email/shipped/de.j2:{pattern}: |date('DD.MM.YYYY'): use a named format (short, "
        "medium, long, full, day, day_short); the customer's locale decides how the date is "
        "written",
        f"templates/email/shipped/en.j2:{safe}: |safe on 'customer.first_name', which customers, "
        "orders or carriers provide: a name like '<script>' would become part of the email; "
        "remove |safe",
        "templates/email/shipped/pl_PL.j2: a locale is written with '-' in file names (did you "
        "mean 'pl-PL.j2'?); as it is, this file is never used",
        f"templates/email/thank_you/de.j2:{zloty}: |money('zł'): not a currency code; use an "
        "ISO 4217 code such as PLN or EUR, or leave it out for the order's currency",
        f"templates/email/thank_you/en.j2:{promised}: |date got nothing: the value before it is "
        "empty "
        "here; put it inside {% if … %}…{% endif %} (when the order has no promised delivery "
        "date, and 3 more cases)",
        "templates/sms/available_for_pickup/en.j2: SMS too long: 2 segments (291 characters, "
        "GSM-7), the maximum is 1 (with long names, product names and addresses)",
        f"templates/sms/available_for_pickup/en.j2:{dangling}: leaves 'Pickup point: .' dangling: "
        "put "
        "the words around the value inside the same {% if … %} as the value (for home "
        "delivery, with no pickup point, and 3 more cases)",
        "templates/sms/delayed/ge.j2: unknown locale 'ge' (did you mean 'de'?): a template "
        "file is named after a locale such as en.j2, pl.j2, de.j2 or pl-PL.j2; this one is "
        "never used",
        f"templates/sms/delivered/de.j2:{outside}:" " 'Vielen Dank!' is outside every "
        "{% block %}: a "
        "template that extends a layout shows only its blocks, so no customer would see it; "
        "move it into a block",
        "templates/sms/shipped/en.j2: shows the word 'None': a value is empty here and a filter "
        "turned it into text; put it inside {% if … %}…{% endif %} (when the carrier is not "
        "known yet, and 1 more case)",
        f"templates/sms/shipped/pl.j2:{as_time}: |time needs a date and time, got a date (2025-03-13) "
        "(for a day alone use |date) (when every fact is known, and 3 more cases)",
    ]  # fmt: skip


def test_rule_and_catalogue_mistakes(copy: Path) -> None:
    edit = _edit(copy)
    # values nobody checked: a category, a country and a locale that do not exist
    edit(
        "rules/aftercare.yaml",
        "in: [headphones, speakers, laptops, smartwatches,",
        "in: [headphones, speakers, laptops, smartwatch,",
    )
    edit("catalogue/products.yaml", "  speakers:\n", "  speaker:\n")
    edit(
        "catalogue/products.yaml",
        "      de:\n        - Führen Sie das Systemupdate",
        "      ger:\n        - Führen Sie das Systemupdate",
    )
    edit(
        "rules/delays.yaml",
        "    when:\n",
        "    when:\n      - {field: customer.country, in: [PL, Germany]}\n"
        "      - {field: customer.locale, ne: ger}\n",
    )
    # a rules file's case written for customers and products that do not exist
    edit(
        "rules/aftercare.yaml",
        "  - name: no setup tips for a cable\n",
        "  - name: no setup tips for a cable\n    customer: {country: Polska}\n",
    )
    edit("rules/aftercare.yaml", "category: accessories", "category: accessory")
    # marketer content in the catalogue
    edit(
        "catalogue/products.yaml",
        "- Turn on automatic workout detection in the app.",
        "- Turn on <b>automatic workout detection</b in the app.",
    )
    edit(
        "catalogue/products.yaml",
        "- Format the memory card in the camera",
        "- Hi {{ customer.first_name }}, format the memory card in the camera",
    )
    edit("catalogue/products.yaml", "    category: headphones\n", "    category: headphone\n")
    edit(
        "catalogue/products.yaml",
        "      pl:\n        - Ustaw głośnik",
        "      pl_PL:\n        - Ustaw głośnik",
    )
    # windows that run the wrong way
    edit(
        "rules/shipping.yaml",
        'send_window: {email: "08:00-20:00"}',
        'send_window: {email: "20:00-08:00"}',
    )
    edit("rules/policy.yaml", 'sms: "21:00-08:00"', 'sms: "08:00-21:00"')
    # one typo in a rule id: one line, not one per reference to it
    edit("rules/shipping.yaml", "  - id: shipped\n", "  - id: shiped\n")
    line_of = _line_of(copy)
    shipping = (copy / "rules/shipping.yaml").read_text(encoding="utf-8").splitlines()
    refs = [n for n, text in enumerate(shipping, 1) if "supersedes: [shipped" in text]
    returned = line_of("rules/undelivered.yaml", "supersedes: [shipped")
    pl_pl = line_of("catalogue/products.yaml", "pl_PL:")
    ger = line_of("catalogue/products.yaml", "ger:")
    markup = line_of("catalogue/products.yaml", "</b in the app")
    syntax = line_of("catalogue/products.yaml", "Hi {{ customer.first_name }}")
    headphone = line_of("catalogue/products.yaml", "category: headphone", exact=True)
    smartwatch = line_of("rules/aftercare.yaml", "smartwatch,")
    polska = line_of("rules/aftercare.yaml", "customer: {country: Polska}")
    accessory = line_of("rules/aftercare.yaml", "category: accessory,")
    germany = line_of("rules/delays.yaml", "Germany")
    ger_locale = line_of("rules/delays.yaml", "ne: ger")
    quiet = line_of("rules/policy.yaml", 'sms: "08:00-21:00"')
    overnight = line_of("rules/shipping.yaml", '"20:00-08:00"')
    assert _check(copy) == [
        f"catalogue/products.yaml:{pl_pl}:7 category 'speaker': locale 'pl_PL' is written with "
        "'-' here (did you mean 'pl-PL'?); as it is, these tips are never shown",
        f"catalogue/products.yaml:{ger}:7 category 'laptops': unknown locale 'ger' (did you mean "
        "'de'?): tips are filed under a locale such as en, pl, de or pl-PL",
        f"catalogue/products.yaml:{markup}:11 category 'smartwatches': tip 2 (en): broken markup "
        "'</b': the tag is not finished and would be shown as typed; tips are plain text, "
        "write it without tags",
        f"catalogue/products.yaml:{syntax}:11 category 'camera': tip 1 (en): "
        "'{{ customer.first_name }}' would be shown as typed: the catalogue is not a "
        "template, so names are not filled in; write the text without {{ }} or {% %}",
        f"catalogue/products.yaml:{headphone}:15 product 'NW-ANC-700': unknown category "
        "'headphone': "
        "no entry under categories (did you mean 'headphones'?)",
        f"rules/aftercare.yaml:{smartwatch}:13 rule 'setup_tip': unknown category 'speakers' (did "
        "you "
        "mean 'speaker'?), 'smartwatch' (did you mean 'smartwatches'?) for "
        "'shipment.item_categories': "
        "the catalogue has no such category",
        f"rules/aftercare.yaml:{polska}:25 case 'no setup tips for a cable': unknown country "
        "'Polska' "
        "(did you mean 'PL'?) for 'customer.country'",
        f"rules/aftercare.yaml:{accessory}:59 case 'no setup tips for a cable': unknown category "
        "'accessory' (did you mean 'accessories'?) for 'items.category': the catalogue has no "
        "such category",
        f"rules/delays.yaml:{germany}:39 rule 'delayed': unknown country 'Germany' (did you mean "
        "'DE'?) for 'customer.country'",
        f"rules/delays.yaml:{ger_locale}:38 rule 'delayed': unknown locale 'ger' (did you mean "
        "'de'?) for "
        "'customer.locale'",
        f"rules/policy.yaml:{quiet}:10 defaults: sms: quiet hours '08:00-21:00' are daytime hours: "
        "messages would wait through the day and go out at night (22:00-07:00 in the "
        "recipient's time zone); quiet hours run from evening to morning (did you mean "
        "'21:00-08:00'?)",
        f"rules/shipping.yaml:{overnight}:26 rule 'arriving_tomorrow': email: send window "
        "'20:00-08:00' "
        "runs overnight: a send window is a daytime range, start before end (did you mean "
        "'08:00-20:00'?)",
        f"rules/shipping.yaml:{refs[0]}:17 rule 'out_for_delivery': unknown rule 'shipped' "
        f"(did you mean 'shiped'?); also named at rules/shipping.yaml:{refs[1]}:17, "
        f"rules/shipping.yaml:{refs[2]}:17, rules/undelivered.yaml:{returned}:17 and 6 more",
    ]  # fmt: skip


def test_correct_edits_pass(copy: Path) -> None:
    edit, templates = _edit(copy), copy / "templates"
    # a new message type made by copying `delayed`, sent by a rule on the delayed event
    for locale in ("en", "pl", "de"):
        source = (templates / "email" / "delayed" / f"{locale}.j2").read_text(encoding="utf-8")
        target = templates / "email" / "delay_apology" / f"{locale}.j2"
        target.parent.mkdir(exist_ok=True)
        target.write_text(source.replace("{% block subject %}", "{% block subject %}Sorry! "))
    (copy / "rules" / "apology.yaml").write_text(
        "rules:\n"
        "  - id: delay_apology\n"
        "    on: delayed\n"
        "    reason: eta_missed\n"
        "    template: delay_apology\n"
        "    channels: [email]\n"
        '    send_window: {email: "09:00-20:00"}\n'
        # a VIP condition: big orders of tagged customers get the thank-you by SMS as well
        "  - id: vip_thanks\n"
        "    on: order_placed\n"
        "    template: thank_you\n"
        "    channels: [sms]\n"
        "    after: 10m\n"
        '    quiet_hours: {sms: "21:30-08:30"}\n'
        "    when:\n"
        "      - {field: customer.tags, in: [vip]}\n"
        "      - {field: order.total, gte: 1000}\n"
        "      - {field: customer.country, in: [PL, DE]}\n",
        encoding="utf-8",
    )
    # a Polish-for-Poland variant beside pl.j2, using the shared parts as documented
    for channel in ("email", "sms"):
        source = (templates / channel / "shipped" / "pl.j2").read_text(encoding="utf-8")
        (templates / channel / "shipped" / "pl-PL.j2").write_text(source.replace("!", "."))
    # the setup tip also by SMS
    edit(
        "rules/aftercare.yaml",
        "    template: setup_tip\n    channels: [email]",
        "    template: setup_tip\n    channels: [email, sms]",
    )
    # a new catalogue category with tips, named by the setup tip rule
    edit(
        "catalogue/products.yaml",
        "\nproducts:\n",
        "  e-bike:\n    warranty_months: 24\n"
        "    guide_url: https://northwind.example/guides/e-bike\n"
        "    tips:\n      en: [Charge the battery fully before the first ride.]\n"
        "      pl: [Przed pierwsza jazda naladuj akumulator do pelna.]\n"
        "      de: [Laden Sie den Akku vor der ersten Fahrt vollständig auf.]\n"
        "\nproducts:\n",
    )
    edit("rules/aftercare.yaml", "in: [headphones, speakers,", "in: [e-bike, headphones, speakers,")
    assert _check(copy) == []


def test_every_file_is_checked_whatever_fails_first(copy: Path) -> None:
    """A catalogue or rules file that is not even YAML stops nothing else, and the rules
    it defines are not reported again by every file that names them."""
    edit = _edit(copy)
    edit("catalogue/products.yaml", "  speakers:\n", "  speakers\n")
    edit("rules/delays.yaml", "channels: [email, sms]", "channels: [email, sms")
    edit("templates/sms/shipped/en.j2", "{{ order.number }}", "{{ order.numbr }}")
    line_of = _line_of(copy)
    # YAML notices a missing ':' or ']' on the line after the mistake
    speakers = line_of("catalogue/products.yaml", "speakers", exact=True) + 1
    channels = line_of("rules/delays.yaml", "channels: [email, sms") + 1
    numbr = line_of("templates/sms/shipped/en.j2", "order.numbr")
    assert _check(copy) == [
        f"catalogue/products.yaml:{speakers}:20 not valid YAML: could not find expected ':'",
        f"rules/delays.yaml:{channels}:13 file: invalid YAML: expected ',' or ']', but got ':'",
        f"templates/sms/shipped/en.j2:{numbr}: 'order' has no field 'numbr' (did you mean "
        "'number'?)",
    ]
