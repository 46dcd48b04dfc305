"""store and link: the DuckDB schema, idempotent loads, CRM linking and analyst views."""
