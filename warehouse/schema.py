"""The DuckDB schema as an ordered list of forward migrations.

A migration is applied once, inside a transaction, and recorded in `schema_version`; opening a
database applies whatever is missing. Never edit a released migration: append a new one.
Natural keys are the primary keys, so every load is an idempotent upsert.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "initial schema",
        """
        CREATE TABLE raw_payloads (
            raw_id            VARCHAR PRIMARY KEY,   -- sha256 of (source, endpoint, body)
            source            VARCHAR NOT NULL,
            endpoint          VARCHAR NOT NULL,
            retrieved_at      TIMESTAMPTZ NOT NULL,
            connector_version VARCHAR NOT NULL,
            content_type      VARCHAR NOT NULL,
            body              VARCHAR NOT NULL       -- exactly as received, never altered
        );
        CREATE TABLE posts (
            source          VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            author_id       VARCHAR,
            text            VARCHAR NOT NULL,
            title           VARCHAR,
            created_at      TIMESTAMPTZ,
            url             VARCHAR,
            lang_hint       VARCHAR,
            parent_post_id  VARCHAR,
            conversation_id VARCHAR,
            like_count      BIGINT,
            repost_count    BIGINT,
            reply_count     BIGINT,
            quote_count     BIGINT,
            raw_id          VARCHAR,
            loaded_at       TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, post_id)
        );
        CREATE TABLE accounts (
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            handle          VARCHAR,
            display_name    VARCHAR,
            description     VARCHAR,
            location        VARCHAR,
            url             VARCHAR,
            followers_count BIGINT,
            following_count BIGINT,
            post_count      BIGINT,
            created_at      TIMESTAMPTZ,
            verified        BOOLEAN,
            raw_id          VARCHAR,
            loaded_at       TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, account_id)
        );
        CREATE TABLE interactions (
            source          VARCHAR NOT NULL,
            kind            VARCHAR NOT NULL,        -- reply | repost | quote | mention | link
            src_account_id  VARCHAR NOT NULL,
            dst_account_id  VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            target_post_id  VARCHAR,
            created_at      TIMESTAMPTZ,
            loaded_at       TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, kind, src_account_id, dst_account_id, post_id)
        );
        CREATE TABLE quarantine (
            quarantine_id   VARCHAR PRIMARY KEY,
            source          VARCHAR NOT NULL,
            raw_id          VARCHAR,
            reason          VARCHAR NOT NULL,
            fragment        VARCHAR NOT NULL,
            quarantined_at  TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE cursors (
            source_name     VARCHAR NOT NULL,        -- the configured source (SourceSpec.name)
            stream          VARCHAR NOT NULL,
            state           JSON NOT NULL,
            pages_loaded    BIGINT NOT NULL,
            updated_at      TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source_name, stream)
        );
        -- One row per post and task (language, sentiment, intent); a new model replaces the row.
        CREATE TABLE annotations (
            source          VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            task            VARCHAR NOT NULL,
            label           VARCHAR,
            score           DOUBLE,
            model_name      VARCHAR NOT NULL,
            model_version   VARCHAR NOT NULL,
            annotated_at    TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, post_id, task)
        );
        CREATE TABLE entities (
            source          VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            start_char      INTEGER NOT NULL,
            end_char        INTEGER NOT NULL,
            label           VARCHAR NOT NULL,        -- PER | ORG | LOC | PRODUCT | MISC | BRAND
            text            VARCHAR NOT NULL,
            model_name      VARCHAR NOT NULL,
            model_version   VARCHAR NOT NULL,
            PRIMARY KEY (source, post_id, start_char, end_char, label)
        );
        CREATE TABLE brand_mentions (
            source          VARCHAR NOT NULL,
            post_id         VARCHAR NOT NULL,
            brand           VARCHAR NOT NULL,        -- the configured name
            brand_kind      VARCHAR NOT NULL,        -- brand | product | competitor
            matched_text    VARCHAR NOT NULL,
            start_char      INTEGER NOT NULL,
            sentiment       VARCHAR,                 -- sentiment toward this brand, if known
            PRIMARY KEY (source, post_id, brand, start_char)
        );
        -- Scores are keyed by the data window they were computed on (as_of = newest interaction
        -- in the window), so re-ranking the same data replaces rows and new data adds a point
        -- to each account's time series.
        CREATE TABLE influence_scores (
            as_of           TIMESTAMPTZ NOT NULL,
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            rank            INTEGER NOT NULL,
            score           DOUBLE NOT NULL,
            pagerank        DOUBLE,
            in_degree       DOUBLE,
            out_degree      DOUBLE,
            explanation     VARCHAR NOT NULL,
            factors         JSON,
            run_id          VARCHAR NOT NULL,
            PRIMARY KEY (as_of, source, account_id)
        );
        CREATE TABLE customers (
            customer_id     VARCHAR PRIMARY KEY,
            country         VARCHAR,
            first_purchase  TIMESTAMP,
            last_purchase   TIMESTAMP,
            n_invoices      BIGINT,
            total_spend     DOUBLE,
            crm_source      VARCHAR NOT NULL,
            loaded_at       TIMESTAMPTZ NOT NULL
        );
        -- Social identities the CRM knows for a customer (handle, e-mail, name).
        CREATE TABLE customer_identities (
            customer_id     VARCHAR NOT NULL,
            source          VARCHAR NOT NULL,        -- x | reddit | rss | email ...
            handle          VARCHAR NOT NULL,
            display_name    VARCHAR,
            note            VARCHAR,
            PRIMARY KEY (customer_id, source, handle)
        );
        CREATE TABLE account_customer_links (
            source            VARCHAR NOT NULL,
            account_id        VARCHAR NOT NULL,
            customer_id       VARCHAR NOT NULL,
            match_probability DOUBLE NOT NULL,
            method            VARCHAR NOT NULL,
            status            VARCHAR NOT NULL,      -- auto | review | confirmed | rejected
            linked_at         TIMESTAMPTZ NOT NULL,
            PRIMARY KEY (source, account_id, customer_id)
        );
        CREATE TABLE alerts (
            alert_id        VARCHAR PRIMARY KEY,     -- rule + subject + window: fires once
            rule            VARCHAR NOT NULL,
            subject         VARCHAR NOT NULL,        -- brand or account
            severity        VARCHAR NOT NULL,        -- info | warning | critical
            window_start    TIMESTAMPTZ,
            window_end      TIMESTAMPTZ,
            message         VARCHAR NOT NULL,
            evidence        JSON NOT NULL,
            fired_at        TIMESTAMPTZ NOT NULL
        );
        CREATE TABLE pipeline_runs (
            run_id          VARCHAR PRIMARY KEY,
            flow            VARCHAR NOT NULL,
            started_at      TIMESTAMPTZ NOT NULL,
            finished_at     TIMESTAMPTZ,
            status          VARCHAR NOT NULL,
            counts          JSON
        );
        """,
    ),
]

LATEST_VERSION = MIGRATIONS[-1][0]

# Tables whose rows are data (not logs): a re-run over the same input must leave their counts
# unchanged. pipeline_runs is a log and grows by one row per run.
DATA_TABLES: tuple[str, ...] = (
    "raw_payloads", "posts", "accounts", "interactions", "quarantine", "cursors", "annotations",
    "entities", "brand_mentions", "influence_scores", "customers", "customer_identities",
    "account_customer_links", "alerts",
)
