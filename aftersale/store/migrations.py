"""Ordered schema migrations for both backends. Append only: a migration that has shipped
is never edited.

An entry is (version, description, SQL). The SQL is one string when DuckDB and PostgreSQL
take the same text, or a mapping backend -> SQL ("duckdb", "postgres") where the dialects
or the needs differ; a backend missing from the mapping (or given "") records the version
and runs nothing. Times are stored as naive TIMESTAMP holding UTC; `aftersale.store`
converts at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping

#: The backends a migration may name.
BACKENDS = ("duckdb", "postgres")


def migration_sql(sql: str | Mapping[str, str], backend: str) -> str:
    """The statements migration `sql` runs on `backend` ("" for none)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; one of {', '.join(BACKENDS)}")
    return sql if isinstance(sql, str) else sql.get(backend, "")


MIGRATIONS: tuple[tuple[int, str, str | Mapping[str, str]], ...] = (
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
    (
        2,
        "PostgreSQL: leases on shipments and messages for several workers; indexes",
        {
            # DuckDB keeps one writer process, so it needs no leases; its scans need no
            # indexes either (an ART index slows its bulk writes).
            "postgres": """
            ALTER TABLE shipments ADD COLUMN lease_owner VARCHAR,
                                  ADD COLUMN lease_until TIMESTAMP;
            ALTER TABLE messages ADD COLUMN lease_owner VARCHAR,
                                 ADD COLUMN lease_until TIMESTAMP;
            CREATE INDEX shipments_order ON shipments (order_id);
            CREATE INDEX shipments_tracking_number ON shipments (tracking_number);
            CREATE INDEX shipments_next_check ON shipments (next_check_at)
                WHERE next_check_at IS NOT NULL;
            CREATE INDEX orders_customer ON orders (customer_id);
            CREATE INDEX domain_events_order_kind ON domain_events (order_id, kind);
            CREATE INDEX domain_events_shipment ON domain_events (shipment_id)
                WHERE shipment_id IS NOT NULL;
            CREATE INDEX domain_events_occurred ON domain_events (occurred_at);
            CREATE INDEX messages_due ON messages (due_at, message_id)
                WHERE state = 'pending';
            CREATE INDEX messages_sending ON messages (updated_at)
                WHERE state = 'sending';
            CREATE INDEX messages_customer ON messages (customer_id);
            CREATE INDEX messages_state ON messages (state, updated_at);
            """,
        },
    ),
    (
        3,
        "customers' data as of an order time, and their history of changes",
        """
        ALTER TABLE customers ADD COLUMN updated_at TIMESTAMP;
        CREATE TABLE customer_changes (
            customer_id VARCHAR NOT NULL,
            order_id    VARCHAR NOT NULL,
            source      VARCHAR NOT NULL,
            as_of       TIMESTAMP NOT NULL,  -- the order's placed_at
            applied     BOOLEAN NOT NULL,    -- did this order's data win
            changes     JSON NOT NULL,       -- {field: [stored, this order's]}
            recorded_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        4,
        "health of carriers and channels across runs; when a message was opened, clicked",
        """
        CREATE TABLE health (
            component         VARCHAR NOT NULL,  -- carrier | channel
            name              VARCHAR NOT NULL,  -- its slug: dhl, email
            state             VARCHAR NOT NULL,  -- ok | failing
            since             TIMESTAMP NOT NULL,
            checked_at        TIMESTAMP NOT NULL,
            last_ok_at        TIMESTAMP,
            calls             INTEGER NOT NULL,
            failures          INTEGER NOT NULL,
            errors            JSON NOT NULL,
            last_error        VARCHAR,
            breaker_opened_at TIMESTAMP,
            alerted_at        TIMESTAMP,
            PRIMARY KEY (component, name)
        );
        ALTER TABLE messages ADD COLUMN opened_at TIMESTAMP;
        ALTER TABLE messages ADD COLUMN clicked_at TIMESTAMP;
        """,
    ),
    (
        5,
        "what a shop platform (Shopify, WooCommerce) last said about an order",
        """
        CREATE TABLE platform_orders (
            order_id          VARCHAR PRIMARY KEY,
            platform          VARCHAR NOT NULL,
            platform_order_id VARCHAR NOT NULL,
            updated_at        TIMESTAMP NOT NULL,
            cancelled_at      TIMESTAMP,
            cancel_reason     VARCHAR,
            refunded          VARCHAR NOT NULL,
            refund_currency   VARCHAR
        );
        """,
    ),
    (
        6,
        "shipments: the items each parcel carries (split shipments)",
        "ALTER TABLE shipments ADD COLUMN items VARCHAR[];",
    ),
    (
        7,
        "how far each pull from a shop platform's API got (the reconcile checkpoints)",
        """
        CREATE TABLE sync_state (
            source     VARCHAR PRIMARY KEY,  -- what is pulled: shopify-admin:<shop>
            checkpoint TIMESTAMP NOT NULL,   -- the newest platform updated_at applied
            updated_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        8,
        "PostgreSQL: carriers' request budgets shared by every worker (token buckets)",
        {
            # DuckDB has one process, whose own token buckets hold the limits.
            "postgres": """
            CREATE TABLE rate_buckets (
                carrier    VARCHAR PRIMARY KEY,
                tokens     DOUBLE PRECISION NOT NULL,  -- saved up, at most the capacity
                updated_at TIMESTAMPTZ NOT NULL,       -- server clock of the last take
                day        DATE NOT NULL,              -- UTC day day_used counts
                day_used   INTEGER NOT NULL
            );
            """,
        },
    ),
    (
        9,
        "erasures: that a customer's personal data was erased on request, and the counts",
        """
        CREATE TABLE erasures (
            subject_hash VARCHAR PRIMARY KEY,  -- sha256 of the customer id, never the id
            erased_id    VARCHAR NOT NULL,     -- what the customer id became
            erased_at    TIMESTAMP NOT NULL,
            counts       JSON NOT NULL
        );
        """,
    ),
    (
        10,
        "signing keys shared by the processes on one database (unsubscribe links)",
        """
        CREATE TABLE signing_keys (
            name       VARCHAR PRIMARY KEY,
            value      VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL
        );
        """,
    ),
    (
        11,
        "shipments: where the parcel is handed over (home, locker, pickup or access point), "
        "its collect-by time and opening hours",
        """
        ALTER TABLE shipments ADD COLUMN delivery_type VARCHAR;
        ALTER TABLE shipments ADD COLUMN pickup_deadline TIMESTAMP;
        ALTER TABLE shipments ADD COLUMN pickup_hours VARCHAR;
        """,
    ),
    (
        12,
        "refunds and returns a shop platform reported, and parcels customers send back",
        """
        CREATE TABLE order_refunds (
            order_id   VARCHAR NOT NULL,
            refund_id  VARCHAR NOT NULL,  -- the platform's own id
            amount     VARCHAR NOT NULL,  -- a decimal, positive
            currency   VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            PRIMARY KEY (order_id, refund_id)
        );
        CREATE TABLE order_returns (
            order_id     VARCHAR NOT NULL,
            return_id    VARCHAR NOT NULL,  -- the platform's own id
            status       VARCHAR NOT NULL,  -- requested | open | closed | declined | cancelled
            requested_at TIMESTAMP NOT NULL,
            updated_at   TIMESTAMP NOT NULL,
            PRIMARY KEY (order_id, return_id)
        );
        ALTER TABLE shipments ADD COLUMN return_id VARCHAR;
        """,
    ),
    (
        13,
        "DuckDB: the message columns a dispatch writes are stored uncompressed",
        {
            # DuckDB compresses text (dictionary, FSST) per row group: every claim and
            # result UPDATE wrote into compressed segments, and every checkpoint compressed
            # them again, at a cost growing with the messages stored, so a cycle's dispatch
            # grew faster than its messages (bench/store.py). The same table, rebuilt with
            # those columns plain; PostgreSQL stores them as they are.
            "duckdb": """
            CREATE TABLE messages_rebuilt (
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
                state           VARCHAR NOT NULL USING COMPRESSION uncompressed,
                due_at          TIMESTAMP NOT NULL,
                created_at      TIMESTAMP NOT NULL,
                updated_at      TIMESTAMP NOT NULL,
                recipient       VARCHAR USING COMPRESSION uncompressed,
                subject         VARCHAR USING COMPRESSION uncompressed,
                body_text       VARCHAR USING COMPRESSION uncompressed,
                sms_segments    INTEGER,
                provider        VARCHAR USING COMPRESSION uncompressed,
                provider_id     VARCHAR USING COMPRESSION uncompressed,
                error_code      VARCHAR USING COMPRESSION uncompressed,
                error_text      VARCHAR USING COMPRESSION uncompressed,
                attempts        INTEGER NOT NULL DEFAULT 0,
                sent_at         TIMESTAMP,
                delivery_state  VARCHAR,
                run_id          VARCHAR USING COMPRESSION uncompressed,
                test            BOOLEAN NOT NULL DEFAULT FALSE,
                opened_at       TIMESTAMP,
                clicked_at      TIMESTAMP
            );
            INSERT INTO messages_rebuilt SELECT * FROM messages;
            DROP TABLE messages;
            ALTER TABLE messages_rebuilt RENAME TO messages;
            """,
        },
    ),
    (
        14,
        "what each send attempt sent (subject, text) in a table of its own, written once",
        {
            # A claim wrote the message's subject and text into its `messages` row: an
            # UPDATE of its widest columns, so every checkpoint rewrote those texts for the
            # whole row group (at 50,000 shipments a dispatch's peak memory was ~165 MB more
            # for it, bench/cycle.py). Appended here instead, one row per attempt, never
            # updated; no index: it is read by message id only for people and in-doubt sends.
            "duckdb": """
            CREATE TABLE message_texts (
                message_id VARCHAR NOT NULL,
                attempt    INTEGER NOT NULL,
                subject    VARCHAR,
                body_text  VARCHAR,
                written_at TIMESTAMP NOT NULL
            );
            INSERT INTO message_texts
                SELECT message_id, attempts, subject, body_text, updated_at FROM messages
                WHERE subject IS NOT NULL OR body_text IS NOT NULL;
            CREATE TABLE messages_rebuilt (
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
                state           VARCHAR NOT NULL USING COMPRESSION uncompressed,
                due_at          TIMESTAMP NOT NULL,
                created_at      TIMESTAMP NOT NULL,
                updated_at      TIMESTAMP NOT NULL,
                recipient       VARCHAR USING COMPRESSION uncompressed,
                sms_segments    INTEGER,
                provider        VARCHAR USING COMPRESSION uncompressed,
                provider_id     VARCHAR USING COMPRESSION uncompressed,
                error_code      VARCHAR USING COMPRESSION uncompressed,
                error_text      VARCHAR USING COMPRESSION uncompressed,
                attempts        INTEGER NOT NULL DEFAULT 0,
                sent_at         TIMESTAMP,
                delivery_state  VARCHAR,
                run_id          VARCHAR USING COMPRESSION uncompressed,
                test            BOOLEAN NOT NULL DEFAULT FALSE,
                opened_at       TIMESTAMP,
                clicked_at      TIMESTAMP
            );
            INSERT INTO messages_rebuilt
                SELECT message_id, idempotency_key, rule_id, template, channel, marketing,
                    order_id, shipment_id, item_sku, customer_id, event_id, state, due_at,
                    created_at, updated_at, recipient, sms_segments, provider, provider_id,
                    error_code, error_text, attempts, sent_at, delivery_state, run_id, test,
                    opened_at, clicked_at
                FROM messages;
            DROP TABLE messages;
            ALTER TABLE messages_rebuilt RENAME TO messages;
            """,
            "postgres": """
            CREATE TABLE message_texts (
                message_id VARCHAR NOT NULL,
                attempt    INTEGER NOT NULL,
                subject    VARCHAR,
                body_text  VARCHAR,
                written_at TIMESTAMP NOT NULL,
                PRIMARY KEY (message_id, attempt)
            );
            INSERT INTO message_texts
                SELECT message_id, attempts, subject, body_text, updated_at FROM messages
                WHERE subject IS NOT NULL OR body_text IS NOT NULL;
            ALTER TABLE messages DROP COLUMN subject, DROP COLUMN body_text;
            """,
        },
    ),
    (
        15,
        "PostgreSQL: the due messages' index in their new order (due time, order, id)",
        {
            # Dispatch pages through due messages by (due_at, order_id, message_id), an
            # order's messages side by side (records.DueCursor); the index serves that ORDER
            # BY and the page's row comparison as one range. DuckDB keeps no such index.
            "postgres": """
            CREATE INDEX messages_due_by_order ON messages (due_at, order_id, message_id)
                WHERE state = 'pending';
            DROP INDEX messages_due;
            """,
        },
    ),
)
