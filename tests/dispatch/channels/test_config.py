"""build_channels: outbox without credentials, providers with them, clear errors for a
half-done setup, and never a secret in the notes."""

from __future__ import annotations

from pathlib import Path

import pytest

from aftersale.dispatch.channels.config import build_channels, webhook_config
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.channels.sendgrid import SendGridChannel
from aftersale.dispatch.channels.twilio import TwilioChannel
from aftersale.errors import ConfigError
from aftersale.models import ChannelKind
from aftersale.settings import Shop

SID = "AC" + "0123456789abcdef" * 2
MG = "MG" + "fedcba9876543210" * 2
SG_KEY = "SG.super-secret-sendgrid-key"
TOKEN = "super-secret-twilio-token"


def build(env: dict[str, str], tmp_path: Path, **kw):
    return build_channels(env, Shop(), tmp_path / "outbox", **kw)


def test_no_credentials_means_outbox_for_both(tmp_path):
    setup = build({}, tmp_path)
    assert all(isinstance(setup.channels[k], OutboxChannel) for k in ChannelKind)
    assert not setup.live(ChannelKind.EMAIL) and not setup.live(ChannelKind.SMS)
    assert setup.notes == [
        f"email: outbox (SENDGRID_API_KEY is not set) -> {tmp_path / 'outbox'}",
        f"sms: outbox (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are not set) -> "
        f"{tmp_path / 'outbox'}",
    ]


def test_full_configuration_builds_both_providers(tmp_path):
    env = {
        "SENDGRID_API_KEY": SG_KEY,
        "AFTERSALE_SENDGRID_HOST": "http://127.0.0.1:4011",
        "AFTERSALE_SENDGRID_SANDBOX": "true",
        "AFTERSALE_SENDGRID_ASM_GROUP": "321",
        "TWILIO_ACCOUNT_SID": SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_MESSAGING_SERVICE_SID": MG,
        "TWILIO_STATUS_CALLBACK": "https://hooks.northwind.example/twilio/status",
        "AFTERSALE_TWILIO_BASE_URL": "http://127.0.0.1:4010",
        "AFTERSALE_TWILIO_MPS": "2.5",
    }
    setup = build(env, tmp_path)
    email, sms = setup.channels[ChannelKind.EMAIL], setup.channels[ChannelKind.SMS]
    assert isinstance(email, SendGridChannel) and isinstance(sms, TwilioChannel)
    assert (email.host, email.sandbox_mode, email.unsubscribe_group_id) == (
        "http://127.0.0.1:4011",
        True,
        321,
    )
    assert (sms.messaging_service_sid, sms.from_number, sms.base_url) == (
        MG,
        None,
        "http://127.0.0.1:4010",
    )
    assert sms.status_callback == "https://hooks.northwind.example/twilio/status"
    assert setup.live(ChannelKind.EMAIL) and setup.live(ChannelKind.SMS)
    assert setup.notes == [
        "email: sendgrid (SENDGRID_API_KEY from environment; from orders@northwind.example; "
        "host http://127.0.0.1:4011; sandbox mode: nothing is delivered; unsubscribe group 321)",
        f"sms: twilio (credentials from environment; messaging service {MG}; 2.5 msg/s per "
        "sender; base URL http://127.0.0.1:4010; "
        "status callback https://hooks.northwind.example/twilio/status)",
    ]
    text = " ".join(setup.notes) + repr(email) + repr(sms)
    assert SG_KEY not in text and TOKEN not in text


def test_secret_blocks_fill_in_missing_secrets(tmp_path):
    blocks = {"sendgrid-api-key": SG_KEY, "twilio-auth-token": TOKEN}
    asked: list[str] = []

    def lookup(name: str) -> str | None:
        asked.append(name)
        return blocks.get(name)

    env = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_FROM": "+48 22 100 20 30"}
    setup = build(env, tmp_path, secret_lookup=lookup)
    assert setup.live(ChannelKind.EMAIL) and setup.live(ChannelKind.SMS)
    assert sorted(asked) == ["sendgrid-api-key", "twilio-auth-token"]  # env SID wins
    assert setup.channels[ChannelKind.SMS].from_number == "+48221002030"  # type: ignore[attr-defined]
    assert "SENDGRID_API_KEY from Secret block 'sendgrid-api-key'" in setup.notes[0]
    assert (
        "TWILIO_ACCOUNT_SID from environment, TWILIO_AUTH_TOKEN from Secret block "
        "'twilio-auth-token'" in setup.notes[1]
    )
    assert "no unsubscribe group for marketing" in setup.notes[0]
    assert SG_KEY not in " ".join(setup.notes) and TOKEN not in " ".join(setup.notes)


def test_dry_run_forces_outbox_even_with_credentials(tmp_path):
    env = {"SENDGRID_API_KEY": SG_KEY, "TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN}
    setup = build(env, tmp_path, dry_run=True)
    assert not setup.live(ChannelKind.EMAIL) and not setup.live(ChannelKind.SMS)
    assert setup.notes == ["email: outbox (dry run)", "sms: outbox (dry run)"]


def test_alphanumeric_sender_id_is_accepted(tmp_path):
    env = {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": "Northwind"}
    setup = build(env, tmp_path)
    assert setup.channels[ChannelKind.SMS].from_number == "Northwind"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_FROM": "+48221002030"},
            "TWILIO_ACCOUNT_SID is set but TWILIO_AUTH_TOKEN is not",
        ),
        (
            {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": "+48221002030"},
            "TWILIO_AUTH_TOKEN is set but TWILIO_ACCOUNT_SID is not",
        ),
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN},
            "no sender: set TWILIO_MESSAGING_SERVICE_SID (recommended) or TWILIO_FROM",
        ),
        (
            {
                "TWILIO_ACCOUNT_SID": "AC123",
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_FROM": "+48221002030",
            },
            "TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex digits",
        ),
        (
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_MESSAGING_SERVICE_SID": "x",
            },
            "TWILIO_MESSAGING_SERVICE_SID must be 'MG' followed by 32 hex digits",
        ),
        (
            {"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_FROM": "+4812"},
            "TWILIO_FROM='+4812': expected an E.164 number",
        ),
        (
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_FROM": "+48221002030",
                "AFTERSALE_TWILIO_MPS": "0",
            },
            "AFTERSALE_TWILIO_MPS='0': must be greater than 0",
        ),
        (
            {
                "TWILIO_ACCOUNT_SID": SID,
                "TWILIO_AUTH_TOKEN": TOKEN,
                "TWILIO_FROM": "+48221002030",
                "TWILIO_STATUS_CALLBACK": "hooks.example.com/status",
            },
            "TWILIO_STATUS_CALLBACK='hooks.example.com/status': expected an absolute http(s) URL",
        ),
        (
            {"SENDGRID_API_KEY": SG_KEY, "AFTERSALE_SENDGRID_SANDBOX": "maybe"},
            "AFTERSALE_SENDGRID_SANDBOX='maybe': expected 1/0, true/false, yes/no or on/off",
        ),
        (
            {"SENDGRID_API_KEY": SG_KEY, "AFTERSALE_SENDGRID_ASM_GROUP": "marketing"},
            "AFTERSALE_SENDGRID_ASM_GROUP='marketing': expected a whole number",
        ),
        (
            {"SENDGRID_API_KEY": SG_KEY, "AFTERSALE_SENDGRID_HOST": "https://u:pw@mock.local"},
            "AFTERSALE_SENDGRID_HOST: put credentials in their own variables, not in the URL",
        ),
    ],
)
def test_half_done_or_malformed_setup_is_a_clear_error(tmp_path, env, message):
    with pytest.raises(ConfigError) as err:
        build(env, tmp_path)
    assert message in str(err.value)
    assert TOKEN not in str(err.value) and SG_KEY not in str(err.value)
    assert "pw" not in str(err.value)


def test_every_problem_is_reported_at_once(tmp_path):
    env = {
        "SENDGRID_API_KEY": SG_KEY,
        "AFTERSALE_SENDGRID_SANDBOX": "maybe",
        "TWILIO_ACCOUNT_SID": SID,
    }
    with pytest.raises(ConfigError) as err:
        build(env, tmp_path)
    assert "AFTERSALE_SENDGRID_SANDBOX" in str(err.value)
    assert "TWILIO_AUTH_TOKEN is not" in str(err.value)


def test_webhook_config_reads_secrets_without_showing_them():
    env = {
        "AFTERSALE_WEBHOOK_PUBLIC_URL": "https://hooks.northwind.example",
        "TWILIO_AUTH_TOKEN": TOKEN,
    }
    config = webhook_config(env, secret_lookup={"sendgrid-webhook-public-key": "MFkw"}.get)
    assert (config.twilio_auth_token, config.sendgrid_public_key) == (TOKEN, "MFkw")
    assert config.notes == (
        "twilio webhooks: on (auth token from environment)",
        "sendgrid webhooks: on (key from Secret block 'sendgrid-webhook-public-key')",
        "shopify webhooks: off",
        "woocommerce webhooks: off",
    )
    assert TOKEN not in repr(config)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TWILIO_AUTH_TOKEN": TOKEN}, "AFTERSALE_WEBHOOK_PUBLIC_URL is not set"),
        (
            {"AFTERSALE_WEBHOOK_PUBLIC_URL": "https://hooks.northwind.example"},
            "none of TWILIO_AUTH_TOKEN, SENDGRID_WEBHOOK_PUBLIC_KEY, SHOPIFY_WEBHOOK_SECRET, "
            "WOOCOMMERCE_WEBHOOK_SECRET is set",
        ),
    ],
)
def test_webhook_config_errors(env, message):
    with pytest.raises(ConfigError, match=message):
        webhook_config(env)
