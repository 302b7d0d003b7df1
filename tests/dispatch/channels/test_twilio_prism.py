"""Contract: every request TwilioChannel makes validates against Twilio's published
api v2010 spec, served by Prism (an invalid request gets 422 instead of 201)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aftersale.dispatch.channels.config import build_channels
from aftersale.dispatch.channels.twilio import RateLimiter, TwilioChannel
from aftersale.models import ChannelKind, OutgoingMessage, RenderedMessage
from aftersale.settings import Shop
from tests.support.prism import prism_server, spec

pytestmark = pytest.mark.slow

SPEC = spec("twilio_api_v2010.yaml")
SID = "AC" + "0123456789abcdef" * 2


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    log = tmp_path_factory.mktemp("prism") / "twilio.log"
    with prism_server(SPEC, log) as url:
        yield url, log


def message(to: str = "+48601234567", text: str = "Your parcel is out for delivery today."):
    return OutgoingMessage(
        message_id="m-0002",
        idempotency_key="rule:o-1:s-1:sms",
        rule_id="rule",
        template="out_for_delivery",
        order_id="o-1",
        marketing=False,
        content=RenderedMessage(channel=ChannelKind.SMS, to=to, subject=None, text=text),
    )


@pytest.mark.parametrize(
    "channel_kw",
    [
        {"from_number": "+48221002030"},
        {"messaging_service_sid": "MG" + "abcdef0123456789" * 2},
        {
            "messaging_service_sid": "MG" + "abcdef0123456789" * 2,
            "status_callback": "https://hooks.northwind.example/twilio/status",
        },
    ],
    ids=["from-number", "messaging-service", "status-callback"],
)
def test_requests_validate_against_the_spec(prism, channel_kw):
    url, log = prism
    channel = TwilioChannel(
        SID, "contract-token", base_url=url, rate_limiter=RateLimiter(1000.0), **channel_kw
    )
    seen = log.stat().st_size
    result = channel.send(message(text="Paczka już jedzie 📦 (UCS-2)"))
    new_log = log.read_bytes()[seen:].decode()
    assert result.ok, (result, new_log)
    assert "Violation" not in new_log and "passed the validation rules" in new_log, new_log
    # Prism answers with the spec's example, so the sid is the example's.
    assert result.provider_id and result.provider_id.startswith("SM")


def test_channel_built_from_configuration_validates(prism, tmp_path):
    url, _ = prism
    env = {
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": "contract-token",
        "TWILIO_FROM": "+48 22 100 20 30",
        "AFTERSALE_TWILIO_BASE_URL": url,
        "AFTERSALE_TWILIO_MPS": "50",
        "TWILIO_STATUS_CALLBACK": "https://hooks.northwind.example/twilio/status",
    }
    setup = build_channels(env, Shop(), tmp_path)
    assert setup.live(ChannelKind.SMS)
    assert setup.channels[ChannelKind.SMS].send(message()).ok


def test_prism_rejects_what_the_spec_forbids(prism):
    """The contract test can fail: a bad account SID breaks the path pattern."""
    url, _ = prism
    channel = TwilioChannel(
        "ACnot-a-sid",
        "contract-token",
        from_number="+48221002030",
        base_url=url,
        rate_limiter=RateLimiter(1000.0),
    )
    result = channel.send(message())
    assert (result.ok, result.transient, result.error_code) == (False, False, "http_422")
