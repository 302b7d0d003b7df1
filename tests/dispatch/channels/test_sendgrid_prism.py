"""Contract: every request SendGridChannel makes validates against SendGrid's published
spec, served by Prism (an invalid request gets 400/422 instead of 202)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from aftersale.dispatch.channels.config import build_channels
from aftersale.dispatch.channels.sendgrid import SendGridChannel, build_mail
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.settings import Shop
from tests.support.prism import prism_server, spec

pytestmark = pytest.mark.slow

SPEC = spec("sendgrid_tsg_mail_v3.yaml")


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("prism") / "sendgrid.log"
    with prism_server(SPEC, log) as url:
        yield url, log


UNSUBSCRIBE = (
    "https://hooks.northwind.example/unsubscribe?t=ZXxhbm5h.c2ln",
    "mailto:unsubscribe@northwind.example?subject=unsubscribe%20ZXxhbm5h.c2ln",
)


def message(
    *,
    marketing: bool = False,
    html: str | None = "<p>Hi</p>",
    test: bool = False,
    list_unsubscribe: tuple[str, ...] = (),
):
    return OutgoingMessage(
        message_id="m-0001",
        idempotency_key="rule:o-1:s-1:email",
        rule_id="rule",
        template="delay_notice",
        order_id="o-1",
        marketing=marketing,
        test=test,
        content=RenderedMessage(
            channel=ChannelKind.EMAIL,
            to="anna.nowak@example.com",
            subject="Your parcel is running late",
            text="Hi Anna, your parcel is late. Zażółć gęślą jaźń.",
            html=html,
            list_unsubscribe=list_unsubscribe,
        ),
    )


@pytest.mark.parametrize(
    ("channel_kw", "message_kw"),
    [
        ({}, {}),
        ({}, {"html": None}),
        ({"unsubscribe_group_id": 12345}, {"marketing": True}),
        ({"sandbox_mode": True, "unsubscribe_group_id": 7}, {"marketing": True, "test": True}),
        ({}, {"marketing": True, "list_unsubscribe": UNSUBSCRIBE}),
    ],
    ids=["transactional", "text-only", "marketing-asm", "sandbox", "list-unsubscribe"],
)
def test_requests_validate_against_the_spec(prism, channel_kw, message_kw):
    url, log = prism
    channel = SendGridChannel("SG.contract-test", Shop(), host=url, **channel_kw)
    seen = log.stat().st_size
    result = channel.send(message(**message_kw))
    new_log = log.read_bytes()[seen:].decode()
    assert result.ok, (result, new_log)
    assert "Violation" not in new_log and "passed the validation rules" in new_log, new_log


def test_channel_built_from_configuration_validates(prism, tmp_path):
    url, _ = prism
    env = {
        "SENDGRID_API_KEY": "SG.contract-test",
        "AFTERSALE_SENDGRID_HOST": url,
        "AFTERSALE_SENDGRID_ASM_GROUP": "5",
    }
    setup = build_channels(env, Shop(), tmp_path)
    assert setup.live(ChannelKind.EMAIL)
    assert setup.channels[ChannelKind.EMAIL].send(message(marketing=True)).ok


def test_prism_rejects_what_the_spec_forbids(prism):
    """The contract can fail: the spec types top-level `custom_args` as a string, so the
    same body with our custom args moved there is refused. That is why they live in the
    personalization."""
    url, _ = prism
    body = build_mail(message(), Shop())
    body["custom_args"] = body["personalizations"][0].pop("custom_args")
    client = SendGridAPIClient(api_key="SG.contract-test", host=url)
    with pytest.raises(HTTPError) as err:
        client.client.mail.send.post(request_body=body)
    assert err.value.status_code == 400


def test_marketing_email_carries_one_click_unsubscribe_and_transactional_does_not():
    body = build_mail(message(marketing=True, list_unsubscribe=UNSUBSCRIBE), Shop())
    assert body["headers"] == {
        "List-Unsubscribe": f"<{UNSUBSCRIBE[0]}>, <{UNSUBSCRIBE[1]}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert "headers" not in build_mail(message(list_unsubscribe=UNSUBSCRIBE), Shop())
