"""The alert period: the rules' last week by default, or every collected post for an archive."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime, timedelta

import pytest

from act.alerts import evaluation_window
from connectors.records import Cursor, Page, Post, Provenance, RawPayload
from warehouse.db import open_warehouse
from warehouse.load import load_pages


def test_alert_windows(tmp_path):
    first, last = datetime(2015, 5, 20, 22, 17, 51, tzinfo=UTC), datetime(2016, 12, 12, 6, 19, 59, tzinfo=UTC)
    posts = [Post("x", "1", "a", "Schon wieder Verspätung @DB_Bahn", first),
             Post("x", "2", "b", "ICE pünktlich, danke @DB_Bahn", last)]
    raw = RawPayload(Provenance("x", "test", last, "t"), "{}")
    with closing(open_warehouse(tmp_path / "w.duckdb")) as con:
        assert evaluation_window(con, "all") == (None, None)  # nothing collected yet
        load_pages(con, [Page(raw, Cursor("s", "q"), posts)])
        assert evaluation_window(con, "last-week") == (None, None)
        assert evaluation_window(con, "all") == (first, last + timedelta(seconds=1))
        with pytest.raises(ValueError, match="last-week"):
            evaluation_window(con, "yesterday")
