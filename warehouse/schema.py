"""The DuckDB schema as an ordered list of forward migrations.

A migration is applied once, inside a transaction, and recorded in `schema_version`; opening a
database applies whatever is missing. Never edit a released migration: append a new one.
Natural keys are the primary keys, so every load is an idempotent upsert.
"""

from __future__ import annotations

from warehouse.views import VIEWS_SQL_V3, VIEWS_SQL_V40

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
    (
        2,
        "customer invoices and customer value",
        """
        -- One row per invoice (the CRM's transactions aggregated per invoice: what value models need).
        CREATE TABLE customer_invoices (
            invoice_no      VARCHAR PRIMARY KEY,
            customer_id     VARCHAR NOT NULL,
            invoice_date    TIMESTAMP NOT NULL,      -- the shop's local time, as exported
            n_lines         BIGINT,
            quantity        BIGINT,
            amount          DOUBLE NOT NULL,         -- negative for a cancellation
            country         VARCHAR,
            crm_source      VARCHAR NOT NULL,
            loaded_at       TIMESTAMPTZ NOT NULL
        );
        -- Recomputed as a whole from customer_invoices (see warehouse/customer_value.py).
        CREATE TABLE customer_value (
            customer_id     VARCHAR PRIMARY KEY,
            abc_class       VARCHAR NOT NULL,        -- A: top 80 % of revenue, B: next 15 %, C: rest
            rfm_segment     VARCHAR NOT NULL,
            rfm_score       VARCHAR NOT NULL,        -- recency, frequency, monetary quintiles, e.g. '545'
            recency_days    INTEGER NOT NULL,        -- days from last purchase to the end of the data
            frequency       INTEGER NOT NULL,        -- purchase invoices
            monetary        DOUBLE NOT NULL,         -- net revenue (cancellations subtracted)
            p_alive         DOUBLE,                  -- BG/NBD probability the customer is still active
            clv_12m         DOUBLE,                  -- BG/NBD + Gamma-Gamma, next 12 months
            computed_at     TIMESTAMPTZ NOT NULL
        );
        """,
    ),
    (3, "analyst views", VIEWS_SQL_V3),
    (
        10,
        "alert deliveries and dead letters",
        """
        -- One row per attempt to deliver a batch of alerts to one channel. A row with ok = false
        -- is a dead letter: `payload` keeps what was to be sent, so it can be resent later.
        -- Targets are redacted (a webhook URL's path is its secret); no secret is stored.
        CREATE TABLE deliveries (
            delivery_id     VARCHAR PRIMARY KEY,     -- channel + target + alert ids
            channel         VARCHAR NOT NULL,        -- email | webhook:slack | webhook:teams | webhook:json
            target          VARCHAR NOT NULL,
            alert_ids       VARCHAR[] NOT NULL,
            ok              BOOLEAN NOT NULL,
            attempts        INTEGER NOT NULL,
            status          INTEGER,                 -- last HTTP status or SMTP reply code
            error           VARCHAR,
            payload         JSON,                    -- only for dead letters
            attempted_at    TIMESTAMPTZ NOT NULL
        );
        CREATE VIEW v_dead_letters AS
        SELECT * FROM deliveries WHERE NOT ok;
        """,
    ),
    (
        20,
        "influence groups, bot scores, rising influencers, brand standings, example posts",
        """
        -- Like influence_scores, every table below is keyed by the ranking's as_of: re-ranking the
        -- same data window replaces its rows; a new window adds a point to each time series.
        CREATE TABLE communities (
            as_of           TIMESTAMPTZ NOT NULL,
            community_id    INTEGER NOT NULL,        -- 0 = the largest group of this ranking
            size            INTEGER NOT NULL,
            influence       DOUBLE NOT NULL,         -- sum of the members' scores
            leaders         VARCHAR[] NOT NULL,      -- 'source/account_id', best first
            brands          JSON,                    -- brand -> interactions inside the group
            net_sentiment   DOUBLE,
            explanation     VARCHAR NOT NULL,
            run_id          VARCHAR NOT NULL,
            PRIMARY KEY (as_of, community_id)
        );
        CREATE TABLE community_members (
            as_of             TIMESTAMPTZ NOT NULL,
            source            VARCHAR NOT NULL,
            account_id        VARCHAR NOT NULL,
            community_id      INTEGER NOT NULL,
            rank_in_community INTEGER NOT NULL,
            PRIMARY KEY (as_of, source, account_id)
        );
        CREATE TABLE bot_scores (
            as_of           TIMESTAMPTZ NOT NULL,
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            bot_score       DOUBLE NOT NULL,         -- 0 human-looking .. 1 every known signal says automated
            likely_bot      BOOLEAN NOT NULL,        -- down-weighted in influence_scores
            explanation     VARCHAR NOT NULL,
            signals         JSON,
            PRIMARY KEY (as_of, source, account_id)
        );
        CREATE TABLE rising_influencers (
            as_of           TIMESTAMPTZ NOT NULL,
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            rank            INTEGER NOT NULL,
            rise            DOUBLE NOT NULL,         -- robust z-score against the account's own history
            score           DOUBLE NOT NULL,
            previous_median DOUBLE NOT NULL,
            history_points  INTEGER NOT NULL,
            explanation     VARCHAR NOT NULL,
            PRIMARY KEY (as_of, source, account_id)
        );
        CREATE TABLE brand_influence (
            as_of           TIMESTAMPTZ NOT NULL,
            brand           VARCHAR NOT NULL,
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            rank            INTEGER NOT NULL,
            pagerank        DOUBLE NOT NULL,         -- inside the brand's subgraph
            engagement      DOUBLE NOT NULL,
            PRIMARY KEY (as_of, brand, source, account_id)
        );
        CREATE TABLE influence_examples (
            as_of           TIMESTAMPTZ NOT NULL,
            source          VARCHAR NOT NULL,
            account_id      VARCHAR NOT NULL,
            position        INTEGER NOT NULL,        -- 1 = the post that drew most engagement
            post_id         VARCHAR NOT NULL,
            PRIMARY KEY (as_of, source, account_id, position)
        );
        """,
    ),
    (
        30,
        "collect runs: per-source statistics and coverage",
        """
        -- One row per source per collect run: what was fetched, the rate-limit waits and
        -- retries it cost, and how it ended. Together with `cursors` this is the record of
        -- each source's coverage and data quality that analysts can query.
        CREATE TABLE source_runs (
            run_id            VARCHAR NOT NULL,
            source_name       VARCHAR NOT NULL,
            connector         VARCHAR NOT NULL,
            stream            VARCHAR NOT NULL,
            started_at        TIMESTAMPTZ NOT NULL,
            finished_at       TIMESTAMPTZ NOT NULL,
            status            VARCHAR NOT NULL,      -- completed | failed
            pages             BIGINT NOT NULL,
            posts             BIGINT NOT NULL,
            quarantined       BIGINT NOT NULL,
            requests          BIGINT,
            retries           BIGINT,
            rate_limit_waits  BIGINT,
            waited_seconds    DOUBLE,
            skipped           JSON,                  -- reason -> pages or streams given up
            error             VARCHAR,
            PRIMARY KEY (run_id, source_name)
        );
        CREATE VIEW v_source_coverage AS
        SELECT r.source_name,
               any_value(r.connector) AS connector,
               any_value(r.stream) AS stream,
               max(r.finished_at) FILTER (WHERE r.status = 'completed') AS last_success,
               max(r.finished_at) FILTER (WHERE r.status = 'failed') AS last_failure,
               count(*) AS runs,
               sum(r.pages) AS pages,
               sum(r.posts) AS posts,
               sum(r.quarantined) AS quarantined,
               sum(r.rate_limit_waits) AS rate_limit_waits,
               sum(r.waited_seconds) AS waited_seconds,
               sum(r.retries) AS retries,
               any_value(c.state) AS cursor_state
        FROM source_runs r
        LEFT JOIN cursors c ON c.source_name = r.source_name AND c.stream = r.stream
        GROUP BY r.source_name;
        """,
    ),
    (40, "purchase intent in the analyst views", VIEWS_SQL_V40),
    (
        41,
        "one person across sources in the ranking",
        """
        -- Accounts the CRM links to one customer are ranked as one node; each account keeps its
        -- own row, and person_id (the customer id) says which rows are the same person.
        ALTER TABLE influence_scores ADD COLUMN person_id VARCHAR;
        """,
    ),
]

LATEST_VERSION = max(version for version, _, _ in MIGRATIONS)

# Tables whose rows are data (not logs): a re-run over the same input must leave their counts
# unchanged. pipeline_runs is a log and grows by one row per run.
DATA_TABLES: tuple[str, ...] = (
    "raw_payloads", "posts", "accounts", "interactions", "quarantine", "cursors", "annotations",
    "entities", "brand_mentions", "influence_scores", "customers", "customer_identities",
    "account_customer_links", "alerts", "customer_invoices", "customer_value",
    "deliveries", "communities", "community_members", "bot_scores", "rising_influencers",
    "brand_influence", "influence_examples",
)
