"""The period report as one self-contained HTML page (`aftersale report --out FILE`) and as
markdown (the daily `report` artifact): key figures, charts, and the tables behind them.

The page has no script and loads nothing: styles are inline and each chart is an SVG in
a data URI, so it opens the same from a mail attachment, a file share or an offline laptop.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from html import escape

from aftersale.ops import charts
from aftersale.ops.trends import Trends

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1c2430; margin: 0 auto; max-width: 1000px; padding: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; } h2 { font-size: 20px; margin: 36px 0 8px; }
.range { color: #5a6472; margin: 0 0 20px; }
.figures { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.figure { border: 1px solid #d8dee6; border-radius: 8px; padding: 10px 14px; min-width: 150px; }
.figure b { display: block; font-size: 24px; } .figure span { color: #5a6472; font-size: 13px; }
img.chart { width: 100%; height: auto; display: block; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e8ee; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
th { background: #f3f5f8; } p.note { color: #5a6472; font-size: 13px; }
details summary { cursor: pointer; color: #1565c0; }
"""


def render_html(trends: Trends, generated: datetime) -> str:
    title = f"aftersale report {_range(trends)}"
    body = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="range">Days in UTC. Generated {generated:%Y-%m-%d %H:%M} UTC.</p>',
        _figures_html(trends),
        "<h2>Messages</h2>",
        _chart(charts.messages_per_day(trends), "Messages per day by outcome"),
        _html_table(*_rule_channel_table(trends)),
        "<details><summary>Per day, rule and channel</summary>",
        _html_table(*_day_rule_channel_table(trends)),
        "</details>",
        "<h2>What providers reported</h2>",
        _chart(charts.provider_reports(trends), "Provider reports per day"),
    ]
    if not trends.has_provider_reports():
        body.append(
            '<p class="note">No delivery reports in this range: they arrive through '
            "`aftersale webhooks serve` (SendGrid event webhook, Twilio status callbacks); "
            "opens and clicks only where SendGrid tracking is on.</p>"
        )
    body += [
        _html_table(*_provider_table(trends)),
        "<h2>Delivery: on time and transit times</h2>",
        _chart(charts.on_time_by_lane(trends), "On-time delivery by carrier and lane"),
        _chart(charts.transit_times(trends), "Transit time by carrier and lane"),
        _html_table(*_lane_table(trends)),
        '<p class="note">A lane is the country of the first scan that names one (? when the '
        "carrier gives none) to the order's shipping country. On time: delivered on or "
        "before the promised day in the customer's time zone (the shop's promise, else the "
        "carrier's first estimate). Transit: from the first scan past label creation.</p>",
        "<h2>Delay messages</h2>",
        _chart(charts.delay_outcomes(trends), "What followed a delay message"),
        _html_table(*_delay_table(trends)),
        '<p class="note">Precision: of the delay messages whose parcel has settled, the '
        "share followed by a late delivery or none at all.</p>",
    ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def render_markdown(trends: Trends) -> str:
    """The daily `report` artifact: the key figures, the charts (images in data URIs, which
    the Prefect UI shows inline) and the tables."""
    out = [f"# report {_range(trends)}", ""]
    out += [f"- {label}: **{value}**" for label, value in _figures(trends)]
    out += ["", "## Messages by rule, channel and outcome", ""]
    out += [_md_chart(charts.messages_per_day(trends), "messages per day"), ""]
    out += _md_table(*_rule_channel_table(trends))
    out += ["## What providers reported", ""]
    out += [_md_chart(charts.provider_reports(trends), "provider reports per day"), ""]
    out += _md_table(*_provider_table(trends))
    out += ["## On time and transit times by carrier and lane", ""]
    out += [_md_chart(charts.on_time_by_lane(trends), "on-time delivery by lane"), ""]
    out += [_md_chart(charts.transit_times(trends), "transit times by lane"), ""]
    out += _md_table(*_lane_table(trends))
    out += ["## Delay messages", ""]
    out += [_md_chart(charts.delay_outcomes(trends), "what followed a delay message"), ""]
    out += _md_table(*_delay_table(trends))
    return "\n".join(out).rstrip() + "\n"


# --- content ---------------------------------------------------------------------------

Table = tuple[Sequence[str], list[list[object]]]


def _range(trends: Trends) -> str:
    last = trends.days()[-1]
    return f"{trends.start:%Y-%m-%d} → {last:%Y-%m-%d}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f} %"


def _hours(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} h"


def _figures(trends: Trends) -> list[tuple[str, str]]:
    delivered = sum(lane.delivered for lane in trends.lanes)
    notices = sum(d.notices for d in trends.delay)
    return [
        ("messages sent", str(trends.total("sent"))),
        ("failed", str(trends.total("failed"))),
        ("suppressed", str(trends.total("suppressed"))),
        ("parcels delivered", str(delivered)),
        ("delivered on time", _percent(trends.on_time_rate())),
        (f"delay messages right ({notices} sent)", _percent(trends.delay_precision())),
    ]


def _rule_channel_table(trends: Trends) -> Table:
    states = trends.states()
    rows: list[list[object]] = [
        [rule, channel, *(c[s] or "" for s in states), sum(c.values())]
        for (rule, channel), c in trends.by_rule_channel().items()
    ]
    return ("rule", "channel", *states, "total"), rows


def _day_rule_channel_table(trends: Trends) -> Table:
    states = trends.states()
    rows: list[list[object]] = [
        [f"{day:%Y-%m-%d}", rule, channel, *(c[s] or "" for s in states)]
        for (day, rule, channel), c in trends.by_day_rule_channel().items()
    ]
    return ("day", "rule", "channel", *states), rows


def _provider_table(trends: Trends) -> Table:
    rows: list[list[object]] = [
        [f"{p.day:%Y-%m-%d}", p.sent, p.delivered, p.bounced, p.opened, p.clicked]
        for p in trends.provider_days()
        if p.sent
    ]
    return ("day", "sent", "delivered", "bounced", "opened", "clicked"), rows


def _lane_table(trends: Trends) -> Table:
    rows: list[list[object]] = [
        [
            lane.carrier,
            f"{lane.origin} → {lane.destination}",
            lane.delivered,
            lane.on_time,
            lane.late,
            _percent(lane.on_time_rate),
            _hours(lane.percentile(50)),
            _hours(lane.percentile(90)),
            _hours(lane.percentile(95)),
        ]
        for lane in trends.lanes
    ]
    header = ("carrier", "lane", "delivered", "on time", "late", "on-time rate")
    return (*header, "transit p50", "p90", "p95"), rows


def _delay_table(trends: Trends) -> Table:
    rows: list[list[object]] = [
        [
            d.carrier,
            d.notices,
            d.late,
            d.not_delivered,
            d.on_time,
            d.moving,
            d.no_promise,
            _percent(d.precision),
        ]
        for d in trends.delay
    ]
    header = ("carrier", "sent", "then late", "never delivered", "then on time", "moving")
    return (*header, "no promise", "precision"), rows


# --- markup ----------------------------------------------------------------------------


def _figures_html(trends: Trends) -> str:
    cells = "".join(
        f'<div class="figure"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
        for label, value in _figures(trends)
    )
    return f'<div class="figures">{cells}</div>'


def _chart(svg: str, alt: str) -> str:
    return f'<img class="chart" alt="{escape(alt)}" src="{charts.data_uri(svg)}">'


def _md_chart(svg: str, alt: str) -> str:
    return f"![{alt}]({charts.data_uri(svg)})"


def _html_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = list(rows)
    if not rows:
        return '<p class="note">Nothing in this range.</p>'
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(cell: object) -> str:
    """Words align left; numbers, percentages and hours right."""
    text = str(cell)
    words = isinstance(cell, str) and not (text[:1].isdigit() or text == "–")
    return f'<td class="text">{escape(text)}</td>' if words else f"<td>{escape(text)}</td>"


def _md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    rows = list(rows)
    if not rows:
        return ["Nothing in this range.", ""]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines + [""]
