"""Unsubscribe links: signed and expiring tokens, the key every process finds, the
List-Unsubscribe headers marketing email carries, and the receiver's page that records
the opt-out (a GET only asks; the POST, or a mail program's one-click, unsubscribes)."""

from __future__ import annotations

import email
import os
import stat
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import pytest

from aftersale.dispatch.channels import mime
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.inbound import build_webhook_app
from aftersale.dispatch.unsubscribe import (
    KEY_FILE,
    BadToken,
    UnsubscribeLinks,
    unsubscribe_key,
    unsubscribe_links,
)
from aftersale.errors import ConfigError
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.settings import Settings, Shop
from tests.dispatch.channels.test_webhooks import AppClient, RecordingSink

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LINKS = UnsubscribeLinks(b"k" * 32, "https://hooks.northwind.example/unsubscribe", "un@n.example")


def test_a_token_reads_back_and_any_change_breaks_it() -> None:
    token = LINKS.token("amelia@example.co.uk", ChannelKind.EMAIL, "en-GB", NOW)
    wanted = LINKS.read(token, NOW + timedelta(days=89))
    assert (wanted.address, wanted.channel, wanted.locale) == (
        "amelia@example.co.uk",
        ChannelKind.EMAIL,
        "en-GB",
    )
    body, sig = token.split(".")
    forged = LINKS.token("someone@else.example", ChannelKind.EMAIL, "en", NOW).split(".")[0]
    for bad in (f"{forged}.{sig}", f"{body}.{sig[:-2]}", body, "", "C-2039", f"{body}x.{sig}"):
        with pytest.raises(BadToken):
            LINKS.read(bad, NOW)
    other_key = UnsubscribeLinks(b"x" * 32, LINKS.page_url)
    with pytest.raises(BadToken, match="signature"):
        other_key.read(token, NOW)


def test_a_token_expires_after_ninety_days() -> None:
    token = LINKS.token("+48601234567", ChannelKind.SMS, "pl-PL", NOW)
    assert LINKS.read(token, NOW + timedelta(days=90)).channel is ChannelKind.SMS
    with pytest.raises(BadToken, match="expired on 2027-02-28") as caught:
        LINKS.read(token, NOW + timedelta(days=91))
    assert caught.value.expired


def test_the_key_is_the_secret_or_a_private_file_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "var" / "a.duckdb"))
    made = unsubscribe_key(settings, {})
    path = tmp_path / "var" / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert unsubscribe_key(settings, {}) == made  # the receiver finds the same key
    assert unsubscribe_key(settings, {"AFTERSALE_UNSUBSCRIBE_SECRET": "s3cret"}) != made
    on_postgres = Settings(db="postgresql://aftersale@db/aftersale")
    with pytest.raises(ConfigError, match="AFTERSALE_UNSUBSCRIBE_SECRET is not set"):
        unsubscribe_key(on_postgres, {})  # and no database at hand to keep a key in


def test_on_a_shared_database_the_first_process_keeps_the_key_there(tmp_path: Path) -> None:
    from aftersale.store import open_store

    on_postgres = Settings(db="postgresql://aftersale@db/aftersale")
    with open_store(tmp_path / "a.duckdb") as store:  # the same store protocol
        first = unsubscribe_key(on_postgres, {}, store)
        assert unsubscribe_key(on_postgres, {}, store) == first
        assert store.count("signing_keys") == 1


def test_links_point_at_the_receiver_and_must_be_https(tmp_path: Path) -> None:
    settings = Settings(db=str(tmp_path / "a.duckdb"), shop=Shop())
    hooks = {"AFTERSALE_WEBHOOK_PUBLIC_URL": "https://hooks.northwind.example/"}
    links = unsubscribe_links(settings, hooks)
    assert links.page_url == "https://hooks.northwind.example/unsubscribe"
    assert links.mailbox == "unsubscribe@northwind.example"  # the sender's domain
    assert unsubscribe_links(settings, {}).page_url == "https://northwind.example/unsubscribe"
    with pytest.raises(ConfigError, match="must be an https:// link"):
        unsubscribe_links(settings, {"AFTERSALE_UNSUBSCRIBE_URL": "http://x.example/u"})


def _email(marketing: bool, targets: tuple[str, ...]) -> OutgoingMessage:
    return OutgoingMessage(
        message_id="m-1",
        idempotency_key="setup_tip|NW-1/1|email",
        rule_id="setup_tip",
        template="setup_tip",
        order_id="NW-1",
        marketing=marketing,
        content=RenderedMessage(
            ChannelKind.EMAIL, "amelia@example.co.uk", "Tips", "text", "<p>html</p>",
            list_unsubscribe=targets,
        ),
    )  # fmt: skip


def test_the_outbox_writes_list_unsubscribe_on_marketing_email_only(tmp_path: Path) -> None:
    token = LINKS.token("amelia@example.co.uk", ChannelKind.EMAIL, "en-GB", NOW)
    targets = (f"{LINKS.page_url}?t={token}", LINKS.mailto(token) or "")
    channel = OutboxChannel(tmp_path, ChannelKind.EMAIL, sender="Shop <s@shop.example>")
    assert channel.send(_email(True, targets)).ok
    parsed = email.message_from_bytes(
        (tmp_path / "email" / "m-1.eml").read_bytes(), policy=policy.default
    )
    assert parsed["List-Unsubscribe"] == f"<{targets[0]}>, <{targets[1]}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert channel.send(_email(False, targets)).ok
    again = email.message_from_bytes(
        (tmp_path / "email" / "m-1.2.eml").read_bytes(), policy=policy.default
    )
    assert again["List-Unsubscribe"] is None and again["List-Unsubscribe-Post"] is None


def test_a_target_cannot_break_out_of_the_header() -> None:
    with pytest.raises(mime.AddressError):
        mime.list_unsubscribe_headers(("https://x.example/u?t=1>\nBcc: a@b.example",))
    assert mime.list_unsubscribe_headers(("mailto:u@x.example",)) == [
        ("List-Unsubscribe", "<mailto:u@x.example>")  # no one-click without an https target
    ]


@pytest.fixture
def receiver() -> tuple[AppClient, RecordingSink]:
    sink = RecordingSink()
    app = build_webhook_app(
        sink,
        twilio_auth_token="t",
        sendgrid_public_key=None,
        public_url="https://hooks.northwind.example",
        now=lambda: NOW,
        unsubscribe=LINKS,
        shop=Shop(),
    )
    return AppClient(app), sink


def test_opening_the_link_asks_and_confirming_records_the_opt_out(receiver) -> None:  # type: ignore[no-untyped-def]
    client, sink = receiver
    token = LINKS.token("jonas@example.de", ChannelKind.EMAIL, "de-DE", NOW)
    page = client.get(f"/unsubscribe?t={token}")
    assert page.status_code == 200 and "<strong>jonas@example.de</strong>" in page.text
    assert "Abmelden</button>" in page.text and sink.calls == []  # a scanner's GET does nothing
    done = client.post(f"/unsubscribe?t={token}")
    assert done.status_code == 200 and "Erledigt" in done.text
    assert sink.calls == [("suppress", "jonas@example.de", ChannelKind.EMAIL, "unsubscribe", NOW)]


def test_a_mail_programs_one_click_post_unsubscribes(receiver) -> None:  # type: ignore[no-untyped-def]
    client, sink = receiver
    token = LINKS.token("+48601234567", ChannelKind.SMS, "pl-PL", NOW)
    answer = client.post(
        f"/unsubscribe?t={token}",
        content=mime.ONE_CLICK,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 200 and "SMS-ów" in answer.text
    assert sink.calls == [("suppress", "+48601234567", ChannelKind.SMS, "unsubscribe", NOW)]


def test_a_forged_or_old_link_unsubscribes_nobody(receiver) -> None:  # type: ignore[no-untyped-def]
    client, sink = receiver
    assert client.post("/unsubscribe?t=C-2039").status_code == 400
    old = LINKS.token("a@b.example", ChannelKind.EMAIL, "en", NOW - timedelta(days=100))
    gone = client.post(f"/unsubscribe?t={old}")
    assert gone.status_code == 410 and "help@northwind.example" in gone.text
    assert sink.calls == []


def test_a_marketing_email_links_its_own_customer_and_names_the_targets() -> None:
    from aftersale.render.context import build_context
    from aftersale.render.library import TemplateLibrary
    from aftersale.render.samples import SAMPLE_NOW, build_samples, sample_situations
    from aftersale.settings import PROJECT_ROOT
    from carriers.registry import DIRECTORY

    sample = build_samples(DIRECTORY)[0]
    _, kwargs = sample_situations("review_request", sample)[0]
    context = build_context(
        sample.order, Shop(), carriers=DIRECTORY, unsubscribe=LINKS, now=SAMPLE_NOW, **kwargs
    )
    links = context["links"]
    token = links["unsubscribe"].split("?t=")[1]
    assert LINKS.read(token, SAMPLE_NOW).address == sample.order.customer.email
    sms_token = links["unsubscribe_short"].split("?t=")[1]
    assert LINKS.read(sms_token, SAMPLE_NOW).address == sample.order.customer.phone
    assert not links["unsubscribe_short"].startswith("https://")
    library = TemplateLibrary.load(PROJECT_ROOT / "templates", Shop(), None, DIRECTORY)
    mail = library.render("review_request", ChannelKind.EMAIL, context, "a@b.example")
    assert mail.list_unsubscribe == (links["unsubscribe"], links["unsubscribe_mailto"])
    assert f'href="{links["unsubscribe"]}"' in (mail.html or "")
    shipped = library.render("shipped", ChannelKind.EMAIL, context, "a@b.example")
    assert shipped.list_unsubscribe == ()  # transactional: no unsubscribe header
