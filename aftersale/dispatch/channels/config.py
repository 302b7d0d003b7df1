"""Choose the live channel per kind from configuration: a provider when its credentials
are set, the local outbox otherwise. The notes say which and why, and never hold a secret.

Environment (or Prefect Secret blocks for the secrets, through `secret_lookup`):

    email  SENDGRID_API_KEY             secret; absent -> outbox
           AFTERSALE_SENDGRID_HOST      e.g. https://api.eu.sendgrid.com, or a local mock
           AFTERSALE_SENDGRID_SANDBOX   1/0: SendGrid validates but delivers nothing
           AFTERSALE_SENDGRID_ASM_GROUP unsubscribe group id for marketing email
    sms    TWILIO_ACCOUNT_SID           AC + 32 hex; absent (with the token) -> outbox
           TWILIO_AUTH_TOKEN            secret
           TWILIO_MESSAGING_SERVICE_SID MG + 32 hex, or
           TWILIO_FROM                  an E.164 sender number
           TWILIO_STATUS_CALLBACK       https URL of `aftersale webhooks serve` + /twilio/status
           AFTERSALE_TWILIO_BASE_URL    a local mock instead of https://api.twilio.com
           AFTERSALE_TWILIO_MPS         messages per second per sender (default 1)
    hooks  AFTERSALE_WEBHOOK_PUBLIC_URL the receiver's URL as the providers call it
           SENDGRID_WEBHOOK_PUBLIC_KEY  the signed event webhook's verification key
           (the Twilio auth token verifies Twilio's webhooks)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formataddr
from pathlib import Path
from urllib.parse import urlsplit

import phonenumbers

from aftersale.dispatch.channels.base import Channel
from aftersale.dispatch.channels.kinds import CHANNELS
from aftersale.dispatch.channels.outbox import OutboxChannel
from aftersale.dispatch.channels.sendgrid import SendGridChannel
from aftersale.dispatch.channels.twilio import TwilioChannel
from aftersale.errors import ConfigError
from aftersale.intake.shops import PLATFORMS
from aftersale.models import ChannelKind
from aftersale.settings import Shop

#: Secret environment variable -> Prefect Secret block name looked up when it is unset.
SECRET_BLOCKS: Mapping[str, str] = {
    "SENDGRID_API_KEY": "sendgrid-api-key",
    "TWILIO_ACCOUNT_SID": "twilio-account-sid",
    "TWILIO_AUTH_TOKEN": "twilio-auth-token",
    "SENDGRID_WEBHOOK_PUBLIC_KEY": "sendgrid-webhook-public-key",
}

SecretLookup = Callable[[str], "str | None"]

_ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_ALPHA_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True, slots=True)
class ChannelSetup:
    """The channel to use for each kind, and one human line per kind saying why."""

    channels: dict[ChannelKind, Channel]
    notes: list[str] = field(default_factory=list)

    def live(self, kind: ChannelKind) -> bool:
        """True when `kind` goes to a real provider (not the outbox)."""
        return not isinstance(self.channels[kind], OutboxChannel)


def build_channels(
    env: Mapping[str, str],
    shop: Shop,
    outbox_dir: Path,
    *,
    secret_lookup: SecretLookup | None = None,
    dry_run: bool = False,
) -> ChannelSetup:
    """Build one channel per kind. Raises ConfigError for a half-done or malformed setup
    (a provider partly configured is a mistake to fix, not a reason to fall back silently).
    `dry_run` forces the outbox for every kind."""
    source = _Source(env, secret_lookup)
    channels: dict[ChannelKind, Channel] = {}
    notes: list[str] = []
    problems: list[str] = []
    for kind in CHANNELS:
        if dry_run:
            channels[kind] = OutboxChannel(
                outbox_dir, kind, sender=formataddr((shop.from_name, shop.from_email))
            )
            notes.append(f"{kind}: outbox (dry run)")
            continue
        provider = PROVIDERS.get(kind)
        try:
            built = provider.build(source, shop) if provider else None
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        if built is None:
            channels[kind] = OutboxChannel(
                outbox_dir, kind, sender=formataddr((shop.from_name, shop.from_email))
            )
            why = f"{provider.turned_on_by} not set" if provider else "no provider for it"
            notes.append(f"{kind}: outbox ({why}) -> {outbox_dir}")
        else:
            channels[kind], note = built
            notes.append(note)
    if problems:
        raise ConfigError("channel configuration: " + "; ".join(problems))
    return ChannelSetup(channels=channels, notes=notes)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """What `build_webhook_app` needs; a None secret turns that provider's routes off."""

    public_url: str
    twilio_auth_token: str | None = field(repr=False)
    sendgrid_public_key: str | None = field(repr=False)
    notes: tuple[str, ...] = ()
    #: shop platform -> webhook secret (SHOPIFY_WEBHOOK_SECRET, WOOCOMMERCE_WEBHOOK_SECRET)
    shop_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)


def webhook_config(
    env: Mapping[str, str], *, secret_lookup: SecretLookup | None = None
) -> WebhookConfig:
    """Read the webhook receiver's settings; ConfigError if no provider could be verified."""
    source = _Source(env, secret_lookup)
    public_url = source.get("AFTERSALE_WEBHOOK_PUBLIC_URL")
    if public_url is None:
        raise ConfigError(
            "AFTERSALE_WEBHOOK_PUBLIC_URL is not set: the https URL the providers call "
            "(Twilio signs it), e.g. https://hooks.example.com"
        )
    _check_url("AFTERSALE_WEBHOOK_PUBLIC_URL", public_url)
    token, token_origin = source.secret("TWILIO_AUTH_TOKEN")
    key, key_origin = source.secret("SENDGRID_WEBHOOK_PUBLIC_KEY")
    shops = {
        platform: secret
        for platform, name in SHOP_SECRETS.items()
        if (secret := source.secret(name)[0])
    }
    if token is None and key is None and not shops:
        raise ConfigError(
            "webhooks: none of TWILIO_AUTH_TOKEN, SENDGRID_WEBHOOK_PUBLIC_KEY, "
            f"{', '.join(SHOP_SECRETS.values())} is set, so no request could be verified"
        )
    notes = (
        f"twilio webhooks: {'on (auth token from ' + token_origin + ')' if token else 'off'}",
        f"sendgrid webhooks: {'on (key from ' + key_origin + ')' if key else 'off'}",
        *(
            f"{name} webhooks: " + (f"on (POST /webhooks/{name})" if name in shops else "off")
            for name in SHOP_SECRETS
        ),
    )
    return WebhookConfig(public_url, token, key, notes, shops)


#: shop platform -> the environment variable (or Secret block) holding its webhook secret
SHOP_SECRETS = {name: platform.secret_env for name, platform in PLATFORMS.items()}


class _Source:
    """Plain settings from the environment; secrets from it or from Secret blocks."""

    def __init__(self, env: Mapping[str, str], lookup: SecretLookup | None) -> None:
        self.env = env
        self.lookup = lookup

    def get(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def secret(self, name: str) -> tuple[str | None, str]:
        """The value and where it came from ('environment' or 'Secret block x')."""
        value = self.get(name)
        if value:
            return value, "environment"
        block = SECRET_BLOCKS.get(name)
        if block and self.lookup is not None:
            found = self.lookup(block)
            if found and found.strip():
                return found.strip(), f"Secret block {block!r}"
        return None, "unset"


def _email(source: _Source, shop: Shop) -> tuple[Channel, str] | None:
    api_key, origin = source.secret("SENDGRID_API_KEY")
    if api_key is None:
        return None
    host = source.get("AFTERSALE_SENDGRID_HOST")
    if host:
        _check_url("AFTERSALE_SENDGRID_HOST", host)
    sandbox = _flag(source, "AFTERSALE_SENDGRID_SANDBOX")
    group = _int(source, "AFTERSALE_SENDGRID_ASM_GROUP")
    channel = SendGridChannel(
        api_key, shop, host=host, sandbox_mode=sandbox, unsubscribe_group_id=group
    )
    details = [f"SENDGRID_API_KEY from {origin}", f"from {shop.from_email}"]
    if host:
        details.append(f"host {host}")
    if sandbox:
        details.append("sandbox mode: nothing is delivered")
    details.append(
        f"unsubscribe group {group}"
        if group is not None
        else "no unsubscribe group for marketing (AFTERSALE_SENDGRID_ASM_GROUP not set)"
    )
    return channel, f"email: sendgrid ({'; '.join(details)})"


def _sms(source: _Source, shop: Shop) -> tuple[Channel, str] | None:
    sid, sid_origin = source.secret("TWILIO_ACCOUNT_SID")
    token, token_origin = source.secret("TWILIO_AUTH_TOKEN")
    if sid is None and token is None:
        return None
    if sid is None or token is None:
        have, lack = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")[:: 1 if sid else -1]
        raise ConfigError(f"{have} is set but {lack} is not: set both, or neither for the outbox")
    if not _ACCOUNT_SID.match(sid):
        raise ConfigError("TWILIO_ACCOUNT_SID must be 'AC' followed by 32 hex digits")
    service = source.get("TWILIO_MESSAGING_SERVICE_SID")
    from_number = source.get("TWILIO_FROM")
    if service is None and from_number is None:
        raise ConfigError(
            "Twilio credentials are set but no sender: set TWILIO_MESSAGING_SERVICE_SID "
            "(recommended) or TWILIO_FROM"
        )
    if service is not None and not _SERVICE_SID.match(service):
        raise ConfigError("TWILIO_MESSAGING_SERVICE_SID must be 'MG' followed by 32 hex digits")
    if from_number is not None and service is None:
        from_number = _sender("TWILIO_FROM", from_number)
    callback = source.get("TWILIO_STATUS_CALLBACK")
    if callback:
        _check_url("TWILIO_STATUS_CALLBACK", callback)
    base_url = source.get("AFTERSALE_TWILIO_BASE_URL")
    if base_url:
        _check_url("AFTERSALE_TWILIO_BASE_URL", base_url)
    mps = _float(source, "AFTERSALE_TWILIO_MPS", default=1.0)
    channel = TwilioChannel(
        sid,
        token,
        from_number=None if service else from_number,
        messaging_service_sid=service,
        status_callback=callback,
        base_url=base_url,
        max_per_second=mps,
    )
    origin = (
        f"credentials from {sid_origin}"
        if sid_origin == token_origin
        else f"TWILIO_ACCOUNT_SID from {sid_origin}, TWILIO_AUTH_TOKEN from {token_origin}"
    )
    sender = f"messaging service {service}" if service else f"from {from_number}"
    details = [origin, sender, f"{mps:g} msg/s per sender"]
    if base_url:
        details.append(f"base URL {base_url}")
    details.append(f"status callback {callback}" if callback else "no status callback")
    return channel, f"sms: twilio ({'; '.join(details)})"


@dataclass(frozen=True, slots=True)
class _Provider:
    """A channel kind's real provider: built when its credentials are set, else None."""

    build: Callable[[_Source, Shop], tuple[Channel, str] | None]
    turned_on_by: str  # what the note says is missing when it is off


#: The provider of each kind of channel; a kind without one goes to the outbox.
PROVIDERS: Mapping[ChannelKind, _Provider] = {
    ChannelKind.EMAIL: _Provider(_email, "SENDGRID_API_KEY is"),
    ChannelKind.SMS: _Provider(_sms, "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are"),
}


def _flag(source: _Source, name: str) -> bool:
    raw = (source.get(name) or "").lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _int(source: _Source, name: str) -> int | None:
    raw = source.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r}: expected a positive number")
    return value


def _float(source: _Source, name: str, *, default: float) -> float:
    raw = source.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected a number, e.g. 1 or 0.5") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r}: must be greater than 0")
    return value


def _sender(name: str, raw: str) -> str:
    """An E.164 number (normalised), or an alphanumeric sender ID where carriers allow one."""
    if _ALPHA_SENDER.match(raw):
        return raw
    try:
        number = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise ConfigError(
            f"{name}={raw!r}: expected an E.164 number like +48221002030 "
            "or an alphanumeric sender ID (up to 11 letters, digits, spaces)"
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _check_url(name: str, raw: str) -> None:
    u = urlsplit(raw)
    if "@" in u.netloc:
        raise ConfigError(f"{name}: put credentials in their own variables, not in the URL")
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ConfigError(f"{name}={raw!r}: expected an absolute http(s) URL")
