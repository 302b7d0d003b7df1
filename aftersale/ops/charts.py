"""The period report's charts, drawn with matplotlib as SVG: no JavaScript, nothing fetched
when the page is opened (the report is read on machines without the internet).

Each function takes the figures (aftersale.ops.trends) and returns one SVG document as
text; `data_uri` makes it an <img> source, so charts never share element ids in a page.
matplotlib is imported on first use: the CLI and the flows that never chart stay quick.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aftersale.ops.trends import Trends

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: One colour per message state and provider report, the same in every chart.
COLOURS = {
    "sent": "#2e7d32",
    "pending": "#90a4ae",
    "sending": "#607d8b",
    "cancelled": "#bdbdbd",
    "suppressed": "#8e24aa",
    "failed": "#c62828",
    "unknown": "#ef6c00",
    "delivered": "#2e7d32",
    "bounced": "#c62828",
    "opened": "#1565c0",
    "clicked": "#00838f",
    "late": "#2e7d32",
    "not delivered": "#558b2f",
    "on time": "#c62828",
    "moving": "#90a4ae",
    "no promise": "#bdbdbd",
}
_WIDTH = 9.0  # inches at 100 dpi: about the report's column width


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def messages_per_day(trends: Trends) -> str:
    """Stacked bars: each day's messages by state."""
    by_day = trends.by_day()
    days = list(by_day)
    fig, ax = _figure(3.2)
    bottom = [0] * len(days)
    for state in trends.states():
        values = [by_day[d][state] for d in days]
        ax.bar(range(len(days)), values, bottom=bottom, label=state, color=COLOURS.get(state))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    _day_axis(ax, days)
    ax.set_ylabel("messages")
    return _finish(fig, ax, "Messages per day (UTC) by outcome", legend=bool(trends.messages))


def provider_reports(trends: Trends) -> str:
    """Grouped bars: per day, messages sent and what providers reported about them."""
    rows = trends.provider_days()
    fig, ax = _figure(3.2)
    kinds = ("delivered", "bounced", "opened", "clicked")
    width = 0.8 / (len(kinds) + 1)
    x = range(len(rows))
    ax.bar(
        [i - 0.4 + width / 2 for i in x],
        [r.sent for r in rows],
        width,
        label="sent",
        color="#cfd8dc",
    )
    for k, kind in enumerate(kinds, start=1):
        ax.bar(
            [i - 0.4 + width / 2 + k * width for i in x],
            [getattr(r, kind) for r in rows],
            width,
            label=kind,
            color=COLOURS[kind],
        )
    _day_axis(ax, [r.day for r in rows])
    ax.set_ylabel("messages")
    title = "What providers reported about the messages sent each day"
    return _finish(fig, ax, title, legend=True)


def on_time_by_lane(trends: Trends) -> str:
    """Horizontal bars: on-time rate per carrier and lane, with the parcels counted."""
    lanes = [lane for lane in trends.lanes if lane.on_time_rate is not None]
    fig, ax = _figure(0.9 + 0.32 * max(1, len(lanes)))
    rates = [100 * (lane.on_time_rate or 0) for lane in lanes]
    ax.barh(range(len(lanes)), rates, color=[_rate_colour(r) for r in rates])
    for i, lane in enumerate(lanes):
        ax.text(
            min(rates[i], 100) + 1,
            i,
            f"{rates[i]:.0f} % of {lane.on_time + lane.late}",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(lanes)), [lane.lane for lane in lanes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 118)
    ax.set_xlabel("delivered on or before the promised day (%)")
    return _finish(fig, ax, "On-time delivery by carrier and lane")


def transit_times(trends: Trends) -> str:
    """Per carrier and lane: the median transit time as a bar, the 90th percentile as a
    whisker (hours from handover to delivery)."""
    lanes = [lane for lane in trends.lanes if lane.transit_hours]
    fig, ax = _figure(0.9 + 0.32 * max(1, len(lanes)))
    p50 = [lane.percentile(50) or 0.0 for lane in lanes]
    p90 = [lane.percentile(90) or 0.0 for lane in lanes]
    ax.barh(range(len(lanes)), p50, color="#1565c0", label="median")
    ax.errorbar(
        p90,
        range(len(lanes)),
        xerr=[[p - m for p, m in zip(p90, p50, strict=True)], [0] * len(lanes)],
        fmt="|",
        color="#263238",
        label="90th percentile",
    )
    ax.set_yticks(range(len(lanes)), [lane.lane for lane in lanes], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("hours from handover to delivery")
    return _finish(fig, ax, "Transit time by carrier and lane", legend=bool(lanes))


def delay_outcomes(trends: Trends) -> str:
    """Stacked horizontal bars: per carrier, what became of the parcels a delay message
    was sent about (late or never delivered: the message was right)."""
    rows = trends.delay
    fig, ax = _figure(0.9 + 0.4 * max(1, len(rows)))
    parts = (
        ("late", "late"),
        ("not delivered", "not_delivered"),
        ("on time", "on_time"),
        ("moving", "moving"),
        ("no promise", "no_promise"),
    )
    left = [0] * len(rows)
    for label, attr in parts:
        values = [getattr(r, attr) for r in rows]
        ax.barh(range(len(rows)), values, left=left, label=label, color=COLOURS[label])
        left = [a + b for a, b in zip(left, values, strict=True)]
    ax.set_yticks(range(len(rows)), [r.carrier for r in rows], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("delay messages sent")
    return _finish(fig, ax, "What followed a delay message", legend=bool(rows))


# --- drawing ---------------------------------------------------------------------------


def _figure(height: float) -> tuple[Figure, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display; must precede pyplot
    from matplotlib import pyplot as plt

    # text stays text (small, selectable, any sans-serif font); ids are stable per chart
    plt.rcParams.update(
        {"svg.fonttype": "none", "svg.hashsalt": "aftersale", "font.family": "sans-serif"}
    )
    fig, ax = plt.subplots(figsize=(_WIDTH, height), dpi=100)
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def _day_axis(ax: Any, days: Sequence[Any]) -> None:
    step = max(1, len(days) // 14)  # at most about 14 labels
    ticks = list(range(0, len(days), step))
    ax.set_xticks(ticks, [f"{days[i]:%d %b}" for i in ticks], fontsize=8)


def _rate_colour(percent: float) -> str:
    return "#2e7d32" if percent >= 95 else "#f9a825" if percent >= 85 else "#c62828"


def _finish(fig: Figure, ax: Any, title: str, legend: bool = False) -> str:
    from matplotlib import pyplot as plt

    ax.set_title(title, loc="left", fontsize=11)
    if not ax.has_data():
        ax.text(0.5, 0.5, "no data in this range", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    elif legend:
        ax.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg", metadata={"Date": None})
    plt.close(fig)
    return out.getvalue()
