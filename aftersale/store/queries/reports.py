"""What the period report reads: messages per day, delivered parcels against their
promise, delay messages and what became of their parcels."""

from __future__ import annotations

from datetime import datetime

from aftersale.models import ChannelKind, EventKind, MessageState, Status
from aftersale.store.backend import Backend
from aftersale.store.records import DelayNotice, DeliveredShipment, MessageStat
from aftersale.store.rows import from_db, to_db

#: Statuses before a parcel is handed to the carrier: its transit starts after them.
_NOT_HANDED_OVER = [Status.PENDING.value, Status.LABEL_CREATED.value]


class Reports(Backend):
    def message_stats(self, start: datetime, end: datetime) -> list[MessageStat]:
        p = self.dialect.param
        rows = self.rows(
            "SELECT CAST(coalesce(sent_at, updated_at) AS DATE), rule_id, channel, state, "
            "delivery_state, count(opened_at), count(clicked_at), count(*) FROM messages "
            f"WHERE coalesce(sent_at, updated_at) >= {p} AND coalesce(sent_at, updated_at) < {p} "
            "AND NOT test GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5",
            [to_db(start), to_db(end)],
        )
        return [
            MessageStat(r[0], r[1], ChannelKind(r[2]), MessageState(r[3]), r[4], r[5], r[6], r[7])
            for r in rows
        ]

    def delivered_shipments(self, start: datetime, end: datetime) -> list[DeliveredShipment]:
        d = self.dialect
        p = d.param
        rows = self.rows(
            "SELECT s.shipment_id, s.carrier, coalesce(o.shipping_country, c.country), "
            "c.time_zone, coalesce(o.promised_delivery, s.first_estimate), "
            "(SELECT min(t.occurred_at) FROM tracking_events t WHERE t.shipment_id = "
            f"s.shipment_id AND t.status IS NOT NULL AND {d.not_in_list('t.status')}), "
            "s.delivered_at, "
            "(SELECT t.location FROM tracking_events t WHERE t.shipment_id = s.shipment_id "
            "AND t.location <> '' ORDER BY t.occurred_at LIMIT 1) "
            "FROM shipments s JOIN orders o ON o.order_id = s.order_id "
            "JOIN customers c ON c.customer_id = o.customer_id "
            f"WHERE s.status = {p} AND s.delivered_at >= {p} AND s.delivered_at < {p} "
            "ORDER BY s.delivered_at, s.shipment_id",
            [_NOT_HANDED_OVER, Status.DELIVERED.value, to_db(start), to_db(end)],
        )
        return [
            DeliveredShipment(
                r[0], r[1] or "", r[2], r[3], r[4], from_db(r[5]), from_db(r[6]), r[7]
            )
            for r in rows
        ]

    def delay_notices(self, start: datetime, end: datetime) -> list[DelayNotice]:
        p = self.dialect.param
        rows = self.rows(
            "SELECT m.message_id, m.shipment_id, s.carrier, m.sent_at, c.time_zone, "
            "coalesce(o.promised_delivery, s.first_estimate), s.status, s.delivered_at "
            "FROM messages m JOIN domain_events e ON e.event_id = m.event_id "
            "JOIN shipments s ON s.shipment_id = m.shipment_id "
            "JOIN orders o ON o.order_id = m.order_id "
            "JOIN customers c ON c.customer_id = o.customer_id "
            f"WHERE e.kind = {p} AND m.state = {p} AND m.sent_at >= {p} AND m.sent_at < {p} "
            "ORDER BY m.sent_at, m.message_id",
            [EventKind.DELAYED.value, MessageState.SENT.value, to_db(start), to_db(end)],
        )
        return [
            DelayNotice(r[0], r[1], r[2] or "", from_db(r[3]), r[4], r[5], r[6], from_db(r[7]))
            for r in rows
        ]
