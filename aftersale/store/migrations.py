"""Ordered schema migrations. Append only: a migration that has shipped is never edited.

Times are stored as naive TIMESTAMP holding UTC; `aftersale.store` converts at the edge.
"""

from __future__ import annotations

MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "orders, customers, items, shipments, tracking events, messages, runs",
        """
        CREATE TABLE customers (
            customer_id   VARCHAR PRIMARY KEY,
            name          VARCHAR NOT NULL,
            email         VARCHAR,
            phone         VARCHAR,
            locale        VARCHAR NOT NULL,
            time_zone     VARCHAR NOT NULL,
            consent_email BOOLEAN NOT NULL,
            consent_sms   BOOLEAN NOT NULL,
            country       VARCHAR,
            tags          VARCHAR[] NOT NULL
        );
        CREATE TABLE orders (
            order_id          VARCHAR PRIMARY KEY,
            customer_id       VARCHAR NOT NULL,
            placed_at         TIMESTAMP NOT NULL,
            promised_delivery DATE,
            shipping_country  VARCHAR,
            source            VARCHAR NOT NULL,
            imported_at       TIMESTAMP NOT NULL
        );
        CREATE TABLE items (
            order_id        VARCHAR NOT NULL,
            line            INTEGER NOT NULL,
            sku             VARCHAR NOT NULL,
            name            VARCHAR NOT NULL,
            category        VARCHAR NOT NULL,
            quantity        INTEGER NOT NULL,
            price           DECIMAL(12, 2) NOT NULL,
            currency        VARCHAR NOT NULL,
            warranty_months INTEGER,
            PRIMARY KEY (order_id, line)
        );
        CREATE TABLE shipments (
            shipment_id        VARCHAR PRIMARY KEY,
            order_id           VARCHAR NOT NULL,
            carrier            VARCHAR,
            carrier_candidates VARCHAR[] NOT NULL,
            tracking_number    VARCHAR NOT NULL,
            status             VARCHAR NOT NULL,
            code               VARCHAR,
            description        VARCHAR,
            estimated_delivery DATE,
            first_estimate     DATE,
            window_start       TIMESTAMP,
            window_end         TIMESTAMP,
            delivered_at       TIMESTAMP,
            pickup_point       VARCHAR,
            last_event_at      TIMESTAMP,
            status_since       TIMESTAMP,
            last_polled_at     TIMESTAMP,
            next_check_at      TIMESTAMP,
            created_at         TIMESTAMP NOT NULL,
            problem            VARCHAR,
            poll_failures      INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE tracking_events (
            shipment_id VARCHAR NOT NULL,
            occurred_at TIMESTAMP NOT NULL,
            code        VARCHAR NOT NULL,
            location    VARCHAR NOT NULL,  -- '' when the carrier gives none (part of the key)
            status      VARCHAR,           -- NULL: informational, kept the previous status
            description VARCHAR NOT NULL,
            recorded_at TIMESTAMP NOT NULL,
            PRIMARY KEY (shipment_id, occurred_at, code, location)
        );
        CREATE TABLE domain_events (
            event_id    VARCHAR PRIMARY KEY,
            kind        VARCHAR NOT NULL,
            order_id    VARCHAR NOT NULL,
            shipment_id VARCHAR,
            item_sku    VARCHAR,
            status      VARCHAR,
            reason      VARCHAR,
            occurred_at TIMESTAMP NOT NULL,
            facts       JSON NOT NULL,
            run_id      VARCHAR,
            detected_at TIMESTAMP NOT NULL
        );
        CREATE TABLE messages (
            message_id      VARCHAR PRIMARY KEY,
            idempotency_key VARCHAR NOT NULL UNIQUE,
            rule_id         VARCHAR NOT NULL,
            template        VARCHAR NOT NULL,
            channel         VARCHAR NOT NULL,
            marketing       BOOLEAN NOT NULL,
            order_id        VARCHAR NOT NULL,
            shipment_id     VARCHAR,
            item_sku        VARCHAR,
            customer_id     VARCHAR NOT NULL,
            event_id        VARCHAR NOT NULL,
            -- pending -> sending -> sent | failed ; pending -> cancelled | suppressed ;
            -- sending left by a crash -> unknown (never resent automatically)
            state           VARCHAR NOT NULL,
            due_at          TIMESTAMP NOT NULL,
            created_at      TIMESTAMP NOT NULL,
            updated_at      TIMESTAMP NOT NULL,
            recipient       VARCHAR,
            subject         VARCHAR,
            body_text       VARCHAR,
            sms_segments    INTEGER,
            provider        VARCHAR,
            provider_id     VARCHAR,
            error_code      VARCHAR,
            error_text      VARCHAR,
            attempts        INTEGER NOT NULL DEFAULT 0,
            sent_at         TIMESTAMP,
            delivery_state  VARCHAR,
            run_id          VARCHAR,
            test            BOOLEAN NOT NULL DEFAULT FALSE
        );
        CREATE TABLE runs (
            run_id      VARCHAR PRIMARY KEY,
            kind        VARCHAR NOT NULL,
            started_at  TIMESTAMP NOT NULL,
            finished_at TIMESTAMP,
            clock       TIMESTAMP NOT NULL,
            summary     JSON
        );
        CREATE TABLE rejections (
            source      VARCHAR NOT NULL,
            line        INTEGER NOT NULL,
            reason      VARCHAR NOT NULL,
            rejected_at TIMESTAMP NOT NULL
        );
        CREATE TABLE suppressions (
            address    VARCHAR NOT NULL,
            channel    VARCHAR NOT NULL,
            reason     VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (address, channel)
        );
        """,
    ),
)
