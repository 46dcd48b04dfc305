"""Analyst views: stable names over the clean tables, created by a schema migration.

The SQL below is the text of released migrations (see `warehouse.schema`); change a view by
appending a migration with `CREATE OR REPLACE VIEW`, never by editing a released string.

Conventions that hold for every view:
- `day` is the UTC calendar day (`timezone('UTC', ts)`), so a snapshot opened in another time
  zone shows the same days.
- Links with status 'rejected' never count. 'review' links (uncertain matches) appear in the
  per-account views with their `link_status`, but not in the portfolio flags.
- "Recent" social activity is measured against the newest post in the warehouse, not the
  wall clock, so a historical sample gives the same answer every day.
"""

from __future__ import annotations

import duckdb

# Columns of each view, for analysts (`describe_views`) and for docs/queries.md.
VIEW_COLUMNS: dict[str, dict[str, str]] = {
    "v_posts_enriched": {
        "source": "platform (x, reddit, rss, ...)", "post_id": "platform id",
        "author_id": "account id of the author", "author_handle": "author's handle, if known",
        "created_at": "when posted (UTC)", "day": "UTC day of created_at", "text": "post text",
        "url": "link to the post", "language": "language annotation (or the platform's hint)",
        "sentiment": "negative | neutral | positive", "sentiment_score": "model confidence",
        "intent": "purchase intent: buy | consider | recommend | complaint | churn | none",
        "intent_score": "model probability of that intent",
    },
    "v_intent_daily": {
        "day": "UTC day", "brand": "brand, product or competitor mentioned",
        "intent": "buy | consider | recommend | complaint | churn (posts with no intent are left out)",
        "posts": "distinct posts mentioning the brand with that intent",
    },
    "v_brand_mentions_daily": {
        "day": "UTC day", "source": "platform", "brand": "configured brand name",
        "brand_kind": "brand | product | competitor", "n_mentions": "mentions (a post may mention twice)",
        "n_posts": "distinct posts mentioning it", "n_positive": "of those posts, positive",
        "n_neutral": "neutral", "n_negative": "negative (sentiment toward the brand, else of the post)",
    },
    "v_share_of_voice": {
        "day": "UTC day", "brand": "brand or competitor (products are left out: they belong to a brand)",
        "brand_kind": "brand | competitor", "n_posts": "posts mentioning it that day, all sources",
        "share_of_voice": "n_posts / posts mentioning any brand or competitor that day (0..1)",
    },
    "v_sentiment_daily": {
        "day": "UTC day", "language": "language annotation", "n_posts": "posts",
        "n_positive": "positive posts", "n_neutral": "neutral posts", "n_negative": "negative posts",
        "n_unlabelled": "posts without a sentiment annotation",
        "net_sentiment": "(positive - negative) / labelled posts, -1..1",
    },
    "v_top_influencers": {
        "as_of": "the newest ranking of the source", "source": "platform", "account_id": "account",
        "handle": "handle", "display_name": "name", "followers_count": "followers",
        "rank": "1 = most influential", "score": "influence score", "pagerank": "PageRank",
        "in_degree": "weighted inbound interactions", "out_degree": "weighted outbound interactions",
        "explanation": "one line for a marketer", "factors": "JSON of the score's parts",
    },
    "v_customer_accounts": {
        "customer_id": "CRM customer", "source": "platform", "account_id": "linked account",
        "handle": "handle", "display_name": "name", "link_status": "auto | review | confirmed",
        "match_probability": "linker's probability", "link_method": "exact_handle | splink | ...",
    },
    "v_customer_social_profile": {
        "customer_id": "CRM customer", "country": "CRM country", "total_spend": "CRM total spend",
        "n_invoices": "CRM invoices", "last_purchase": "CRM last purchase", "source": "platform",
        "account_id": "linked account", "handle": "handle", "link_status": "auto | review | confirmed",
        "match_probability": "linker's probability", "n_posts": "posts by the account",
        "n_positive": "positive posts", "n_negative": "negative posts",
        "net_sentiment": "(positive - negative) / labelled posts", "last_post_at": "newest post",
        "influence_rank": "rank in the newest ranking (NULL = not ranked)",
        "influence_score": "score in the newest ranking", "influence_explanation": "why",
    },
    "v_customer_timeline": {
        "customer_id": "CRM customer", "occurred_at": "when (UTC; shop invoices are UK local time read as UTC)",
        "channel": "platform, or 'shop' for invoices", "event": "post | reply | received_<kind> | purchase | cancellation",
        "account_id": "the customer's account (social events)", "ref": "post id or invoice number",
        "detail": "post text", "amount": "invoice amount (shop events)", "sentiment": "post sentiment",
        "link_status": "status of the link that ties the account to the customer",
    },
    "v_customer_portfolio": {
        "customer_id": "CRM customer", "country": "CRM country", "abc_class": "A | B | C by revenue",
        "rfm_segment": "RFM segment", "clv_12m": "expected value of the next 12 months (BG/NBD + Gamma-Gamma)",
        "recency_days": "days since last purchase", "frequency": "purchases", "monetary": "net revenue",
        "n_linked_accounts": "auto or confirmed links", "best_influence_rank": "best rank of a linked account",
        "max_influence_score": "highest score of a linked account",
        "n_posts_recent": "posts in the 30 days before the newest post in the warehouse",
        "net_sentiment_recent": "net sentiment of those posts", "last_social_at": "newest post of a linked account",
        "quadrant": "value × influence: advocate | valuable_quiet | voice | base",
        "retention_flag": "A/B customer whose linked accounts turned negative recently",
        "winback_flag": "lapsed customer (at_risk | cant_lose | hibernating | lost) active on social media recently",
    },
}


VIEWS_SQL_V3 = """
CREATE VIEW v_posts_enriched AS
SELECT p.source, p.post_id, p.author_id, a.handle AS author_handle, p.created_at,
       CAST(timezone('UTC', p.created_at) AS DATE) AS day, p.text, p.url,
       coalesce(l.label, p.lang_hint) AS language, s.label AS sentiment, s.score AS sentiment_score
FROM posts p
LEFT JOIN accounts a ON a.source = p.source AND a.account_id = p.author_id
LEFT JOIN annotations l ON l.source = p.source AND l.post_id = p.post_id AND l.task = 'language'
LEFT JOIN annotations s ON s.source = p.source AND s.post_id = p.post_id AND s.task = 'sentiment';

CREATE VIEW v_brand_mentions_daily AS
SELECT CAST(timezone('UTC', p.created_at) AS DATE) AS day, b.source, b.brand, b.brand_kind,
       count(*) AS n_mentions,
       count(DISTINCT b.post_id) AS n_posts,
       count(DISTINCT b.post_id) FILTER (WHERE coalesce(b.sentiment, s.label) = 'positive') AS n_positive,
       count(DISTINCT b.post_id) FILTER (WHERE coalesce(b.sentiment, s.label) = 'neutral') AS n_neutral,
       count(DISTINCT b.post_id) FILTER (WHERE coalesce(b.sentiment, s.label) = 'negative') AS n_negative
FROM brand_mentions b
JOIN posts p ON p.source = b.source AND p.post_id = b.post_id
LEFT JOIN annotations s ON s.source = b.source AND s.post_id = b.post_id AND s.task = 'sentiment'
GROUP BY ALL;

CREATE VIEW v_share_of_voice AS
WITH per_brand AS (
    SELECT CAST(timezone('UTC', p.created_at) AS DATE) AS day, b.brand, b.brand_kind,
           count(DISTINCT b.source || ':' || b.post_id) AS n_posts
    FROM brand_mentions b
    JOIN posts p ON p.source = b.source AND p.post_id = b.post_id
    WHERE b.brand_kind IN ('brand', 'competitor')
    GROUP BY ALL
)
SELECT day, brand, brand_kind, n_posts,
       n_posts / sum(n_posts) OVER (PARTITION BY day) AS share_of_voice
FROM per_brand;

CREATE VIEW v_sentiment_daily AS
SELECT day, language,
       count(*) AS n_posts,
       count(*) FILTER (WHERE sentiment = 'positive') AS n_positive,
       count(*) FILTER (WHERE sentiment = 'neutral') AS n_neutral,
       count(*) FILTER (WHERE sentiment = 'negative') AS n_negative,
       count(*) FILTER (WHERE sentiment IS NULL) AS n_unlabelled,
       (count(*) FILTER (WHERE sentiment = 'positive') - count(*) FILTER (WHERE sentiment = 'negative'))
           / nullif(count(sentiment), 0) AS net_sentiment
FROM v_posts_enriched
GROUP BY ALL;

CREATE VIEW v_top_influencers AS
SELECT s.as_of, s.source, s.account_id, a.handle, a.display_name, a.followers_count,
       s.rank, s.score, s.pagerank, s.in_degree, s.out_degree, s.explanation, s.factors
FROM influence_scores s
JOIN (SELECT source, max(as_of) AS as_of FROM influence_scores GROUP BY source) latest
  ON latest.source = s.source AND latest.as_of = s.as_of
LEFT JOIN accounts a ON a.source = s.source AND a.account_id = s.account_id;

CREATE VIEW v_customer_accounts AS
SELECT k.customer_id, k.source, k.account_id, a.handle, a.display_name,
       k.status AS link_status, k.match_probability, k.method AS link_method
FROM account_customer_links k
LEFT JOIN accounts a ON a.source = k.source AND a.account_id = k.account_id
WHERE k.status IN ('auto', 'review', 'confirmed');

CREATE VIEW v_customer_social_profile AS
WITH post_stats AS (
    SELECT source, author_id AS account_id, count(*) AS n_posts,
           count(*) FILTER (WHERE sentiment = 'positive') AS n_positive,
           count(*) FILTER (WHERE sentiment = 'negative') AS n_negative,
           (count(*) FILTER (WHERE sentiment = 'positive') - count(*) FILTER (WHERE sentiment = 'negative'))
               / nullif(count(sentiment), 0) AS net_sentiment,
           max(created_at) AS last_post_at
    FROM v_posts_enriched
    GROUP BY ALL
)
SELECT c.customer_id, c.country, c.total_spend, c.n_invoices, c.last_purchase,
       l.source, l.account_id, l.handle, l.link_status, l.match_probability,
       coalesce(ps.n_posts, 0) AS n_posts, coalesce(ps.n_positive, 0) AS n_positive,
       coalesce(ps.n_negative, 0) AS n_negative, ps.net_sentiment, ps.last_post_at,
       t.rank AS influence_rank, t.score AS influence_score, t.explanation AS influence_explanation
FROM v_customer_accounts l
JOIN customers c ON c.customer_id = l.customer_id
LEFT JOIN post_stats ps ON ps.source = l.source AND ps.account_id = l.account_id
LEFT JOIN v_top_influencers t ON t.source = l.source AND t.account_id = l.account_id;

CREATE VIEW v_customer_timeline AS
SELECT l.customer_id, p.created_at AS occurred_at, p.source AS channel,
       CASE WHEN p.parent_post_id IS NULL THEN 'post' ELSE 'reply' END AS event,
       l.account_id, p.post_id AS ref, p.text AS detail, CAST(NULL AS DOUBLE) AS amount,
       s.label AS sentiment, l.link_status
FROM v_customer_accounts l
JOIN posts p ON p.source = l.source AND p.author_id = l.account_id
LEFT JOIN annotations s ON s.source = p.source AND s.post_id = p.post_id AND s.task = 'sentiment'
UNION ALL
SELECT l.customer_id, i.created_at, i.source, 'received_' || i.kind, l.account_id, i.post_id,
       p.text, NULL, NULL, l.link_status
FROM v_customer_accounts l
JOIN interactions i ON i.source = l.source AND i.dst_account_id = l.account_id
LEFT JOIN posts p ON p.source = i.source AND p.post_id = i.post_id
UNION ALL
SELECT v.customer_id, timezone('UTC', v.invoice_date), 'shop',
       CASE WHEN v.amount < 0 THEN 'cancellation' ELSE 'purchase' END,
       NULL, v.invoice_no, NULL, v.amount, NULL, NULL
FROM customer_invoices v;

CREATE VIEW v_customer_portfolio AS
WITH reference AS (SELECT max(created_at) AS newest FROM posts),
firm_links AS (
    SELECT * FROM v_customer_accounts WHERE link_status IN ('auto', 'confirmed')
),
social AS (
    SELECT l.customer_id,
           count(DISTINCT l.source || ':' || l.account_id) AS n_linked_accounts,
           min(t.rank) AS best_influence_rank,
           max(t.score) AS max_influence_score
    FROM firm_links l
    LEFT JOIN v_top_influencers t ON t.source = l.source AND t.account_id = l.account_id
    GROUP BY l.customer_id
),
recent AS (
    SELECT l.customer_id,
           count(*) FILTER (WHERE p.created_at > r.newest - INTERVAL 30 DAY) AS n_posts_recent,
           (count(*) FILTER (WHERE p.created_at > r.newest - INTERVAL 30 DAY AND p.sentiment = 'positive')
            - count(*) FILTER (WHERE p.created_at > r.newest - INTERVAL 30 DAY AND p.sentiment = 'negative'))
               / nullif(count(p.sentiment) FILTER (WHERE p.created_at > r.newest - INTERVAL 30 DAY), 0)
               AS net_sentiment_recent,
           max(p.created_at) AS last_social_at
    FROM firm_links l
    JOIN v_posts_enriched p ON p.source = l.source AND p.author_id = l.account_id
    CROSS JOIN reference r
    GROUP BY l.customer_id
)
SELECT v.customer_id, c.country, v.abc_class, v.rfm_segment, v.clv_12m, v.recency_days,
       v.frequency, v.monetary,
       coalesce(s.n_linked_accounts, 0) AS n_linked_accounts, s.best_influence_rank,
       s.max_influence_score, coalesce(r.n_posts_recent, 0) AS n_posts_recent,
       r.net_sentiment_recent, r.last_social_at,
       CASE WHEN v.abc_class = 'A' AND s.best_influence_rank <= 10 THEN 'advocate'
            WHEN v.abc_class = 'A' THEN 'valuable_quiet'
            WHEN s.best_influence_rank <= 10 THEN 'voice'
            ELSE 'base' END AS quadrant,
       coalesce(v.abc_class IN ('A', 'B') AND r.net_sentiment_recent < 0, false) AS retention_flag,
       coalesce(v.rfm_segment IN ('at_risk', 'cant_lose', 'hibernating', 'lost')
                AND r.n_posts_recent > 0, false) AS winback_flag
FROM customer_value v
LEFT JOIN customers c ON c.customer_id = v.customer_id
LEFT JOIN social s ON s.customer_id = v.customer_id
LEFT JOIN recent r ON r.customer_id = v.customer_id;
"""

VIEW_NAMES: tuple[str, ...] = tuple(VIEW_COLUMNS)


def describe_views(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[str, str, str]]]:
    """Each view's columns as (name, DuckDB type, meaning), read from the live database."""
    result: dict[str, list[tuple[str, str, str]]] = {}
    for view in VIEW_NAMES:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = ? ORDER BY ordinal_position", [view]
        ).fetchall()
        meaning = VIEW_COLUMNS[view]
        result[view] = [(name, dtype, meaning.get(name, "")) for name, dtype in rows]
    return result


# Migration 40: purchase intent (annotation task "intent") next to sentiment, and its daily
# counts per brand for the marketing report.
VIEWS_SQL_V40 = """
CREATE OR REPLACE VIEW v_posts_enriched AS
SELECT p.source, p.post_id, p.author_id, a.handle AS author_handle, p.created_at,
       CAST(timezone('UTC', p.created_at) AS DATE) AS day, p.text, p.url,
       coalesce(l.label, p.lang_hint) AS language, s.label AS sentiment, s.score AS sentiment_score,
       i.label AS intent, i.score AS intent_score
FROM posts p
LEFT JOIN accounts a ON a.source = p.source AND a.account_id = p.author_id
LEFT JOIN annotations l ON l.source = p.source AND l.post_id = p.post_id AND l.task = 'language'
LEFT JOIN annotations s ON s.source = p.source AND s.post_id = p.post_id AND s.task = 'sentiment'
LEFT JOIN annotations i ON i.source = p.source AND i.post_id = p.post_id AND i.task = 'intent';

CREATE VIEW v_intent_daily AS
SELECT CAST(timezone('UTC', p.created_at) AS DATE) AS day, b.brand, i.label AS intent,
       count(DISTINCT (b.source, b.post_id)) AS posts
FROM brand_mentions b
JOIN posts p ON p.source = b.source AND p.post_id = b.post_id
JOIN annotations i ON i.source = b.source AND i.post_id = b.post_id AND i.task = 'intent'
WHERE i.label IS NOT NULL AND i.label <> 'none'
GROUP BY ALL;
"""
