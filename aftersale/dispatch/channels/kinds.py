"""Every kind of channel and its facts, looked up by kind: no stage branches on email
versus SMS. A kind without facts stops the program at import, never passes as email."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from aftersale.dispatch.channels.base import ChannelSpec
from aftersale.dispatch.channels.email import EMAIL
from aftersale.dispatch.channels.sms import SMS
from aftersale.models import ChannelKind

CHANNELS: Mapping[ChannelKind, ChannelSpec] = MappingProxyType(
    {spec.kind: spec for spec in (EMAIL, SMS)}
)

_missing = [kind.value for kind in ChannelKind if kind not in CHANNELS]
if _missing:
    raise ImportError(f"channel kinds without facts in channels/kinds.py: {_missing}")


def spec_of(kind: ChannelKind | str) -> ChannelSpec:
    """The facts of `kind` (a ChannelKind or its value, as the store keeps it)."""
    try:  # a StrEnum member and its value are the same key: no conversion per message
        return CHANNELS[kind]  # type: ignore[index]
    except KeyError:
        return CHANNELS[ChannelKind(kind)]  # ValueError naming an unknown kind
