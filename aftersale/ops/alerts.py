"""What needs a human, as values: each alert becomes a Prefect event (`aftersale.*`) that
the automations in `automations/aftersale.yaml` turn into a notification. Pure.

The event names, in one place (docs/operations.md, "Alerts", says what to do about each):
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

CARRIER_DOWN = "aftersale.carrier.down"  # most polls failed; repeated while it lasts
CARRIER_RECOVERED = "aftersale.carrier.recovered"  # it answers again: the outage is over
CHANNEL_DOWN = "aftersale.channel.down"  # most sends failed; repeated while it lasts
CHANNEL_RECOVERED = "aftersale.channel.recovered"
RULESET_INVALID = "aftersale.ruleset.invalid"  # nothing is decided until it is fixed
MESSAGES_UNKNOWN = "aftersale.messages.unknown"  # a run died mid-send: check, then release
RUN_DEGRADED = "aftersale.run.degraded"  # feed only: the down alerts above notify
ALERTS_TEST = "aftersale.alerts.test"  # `aftersale alerts test`

#: The events the automation "aftersale · needs a human" notifies about.
NOTIFIED = (
    CARRIER_DOWN,
    CARRIER_RECOVERED,
    CHANNEL_DOWN,
    CHANNEL_RECOVERED,
    RULESET_INVALID,
    MESSAGES_UNKNOWN,
    ALERTS_TEST,
)


@dataclass(frozen=True, slots=True)
class Alert:
    """Something an operator must act on (or may stop worrying about), emitted as a
    Prefect event by the flow that saw it."""

    event: str  # one of the names above
    resource_id: str  # what it is about, e.g. "aftersale.carrier.dhl"
    message: str  # what happened and what to do, in a sentence or two
    payload: Mapping[str, Any] = field(default_factory=dict)


def ruleset_alert(problems: Sequence[str]) -> Alert:
    """The rule set does not load: nothing is decided or sent until it is fixed."""
    shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    return Alert(
        RULESET_INVALID,
        "aftersale.ruleset",
        f"rule set invalid, {len(problems)} problem(s): {shown}",
        {"problems": list(problems[:20])},
    )


def unknown_alert(total: int, new: int, found_by: str = "this run") -> Alert:
    """Messages whose fate is unknown: a human checks the provider, then releases them."""
    return Alert(
        MESSAGES_UNKNOWN,
        "aftersale.messages",
        f"{total} messages in `unknown` ({new} new, found by {found_by}): check the provider, "
        "then `aftersale messages release`",
        {"unknown": total, "new": new},
    )
