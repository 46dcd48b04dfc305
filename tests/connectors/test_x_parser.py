"""parse_x_page on real recorded X API v2 bodies and the bundled real-data sample."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.records import Cursor, Page, Provenance
from connectors.x import parse_x_page
from resonanz.settings import SAMPLE_DIR

FIXTURES = Path(__file__).parents[1] / "fixtures" / "x"
REAL_EDGES_PAGE = (FIXTURES / "public_api_sample_v2.json").read_text()


def parse(body: str) -> Page:
    provenance = Provenance("x", "https://api.twitter.com/2/tweets/search/recent", datetime.now(timezone.utc), "test")
    return parse_x_page(body, provenance, Cursor("test", "query"))


def test_recorded_search_page_yields_every_tweet_with_raw_body_kept() -> None:
    body = (FIXTURES / "search_recent_tweets.json").read_text()
    page = parse(body)
    expected = [t["id"] for t in json.loads(body)["data"]]
    assert [p.post_id for p in page.posts] == expected and len(expected) == 10
    assert page.raw.body == body
    assert all(p.raw_id == page.raw.raw_id and p.source == "x" for p in page.posts)
    assert page.posts[0].text == "2022-10-07 22:42:12.637103 tweepy"
    assert page.quarantined == [] and page.interactions == []


def test_edges_and_account_metrics_from_real_tweets() -> None:
    page = parse((FIXTURES / "public_api_sample_v2.json").read_text())
    assert len(page.posts) == 20 and page.quarantined == []
    robot = next(a for a in page.accounts if a.handle == "RobotPrincessFi")
    assert (robot.account_id, robot.followers_count, robot.following_count, robot.post_count) == ("815279070241955840", 1, 0, 66)
    kinds = Counter(edge.kind for edge in page.interactions)
    assert kinds == {"mention": 11, "reply": 3, "quote": 2, "repost": 2}
    # Every edge starts at the acting author; the reply to @jack's tweet points at @jack's account.
    assert {edge.src_account_id for edge in page.interactions} == {"815279070241955840"}
    reply = next(e for e in page.interactions if e.kind == "reply" and e.post_id == "867837275152842752")
    assert (reply.dst_account_id, reply.target_post_id) == ("2382763597", "861645830863822848")
    repost = next(e for e in page.interactions if e.kind == "repost" and e.post_id == "867478524235366400")
    assert repost.target_post_id is not None and repost.dst_account_id != repost.src_account_id
    post = next(p for p in page.posts if p.post_id == "867837275152842752")
    assert post.parent_post_id == "861645830863822848" and post.lang_hint == "en"
    assert post.url == "https://x.com/RobotPrincessFi/status/867837275152842752"


def test_broken_tweets_are_quarantined_and_the_rest_still_parses() -> None:
    payload = json.loads((FIXTURES / "get_users_mentions.json").read_text())
    del payload["data"][0]["text"]
    payload["data"][1]["created_at"] = "last tuesday"
    payload["data"][2]["referenced_tweets"] = "1578516068309794817"
    payload["data"][3]["text"] = "   "
    page = parse(json.dumps(payload))
    assert len(page.posts) == 6
    reasons = sorted(q.reason for q in page.quarantined)
    assert reasons == [
        "tweet: created_at is not ISO-8601: 'last tuesday'",
        "tweet: missing or empty text",
        "tweet: missing or empty text",
        "tweet: referenced_tweets is malformed: '1578516068309794817'",
    ]
    assert all(q.raw_id == page.raw.raw_id and q.fragment.startswith("{") for q in page.quarantined)


def test_body_that_is_not_json_is_kept_in_quarantine() -> None:
    page = parse('{"data": [{"id": "1", "text": "cut off')
    assert page.posts == [] and page.raw.body.startswith('{"data"')
    assert page.quarantined[0].reason.startswith("malformed JSON")


def test_bundled_twcs_thread_gives_reply_and_mention_edges() -> None:
    body = (SAMPLE_DIR / "x_twcs_en" / "page-0001.json").read_text()
    page = parse(body)
    data = json.loads(body)["data"]
    assert len(page.posts) == len(data) == 100
    # Tweet 1: @sprintcare answers customer 115712's tweet 3.
    edges = {(e.kind, e.src_account_id, e.dst_account_id, e.target_post_id) for e in page.interactions if e.post_id == "1"}
    assert edges == {("reply", "sprintcare", "115712", "3"), ("mention", "sprintcare", "115712", None)}
    replies_with_known_parent_author = sum(
        1 for t in data if t.get("in_reply_to_user_id") and t["in_reply_to_user_id"] != t["author_id"]
    )
    assert Counter(e.kind for e in page.interactions)["reply"] == replies_with_known_parent_author
    assert page.posts[0].created_at == datetime(2017, 10, 31, 22, 10, 47, tzinfo=timezone.utc)


def test_bundled_german_sample_parses_without_loss() -> None:
    pages = sorted((SAMPLE_DIR / "x_germeval_db_de").glob("page-*.json"))
    posts = [post for path in pages for post in parse(path.read_text()).posts]
    assert len(posts) == 1168 and len({p.post_id for p in posts}) == 1168  # 1,169 rows, one duplicated upstream
    assert any("@DB_Bahn" in p.text for p in posts)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
TWEET_KEYS = ["id", "text", "author_id", "created_at", "referenced_tweets", "entities", "public_metrics",
              "in_reply_to_user_id", "conversation_id", "lang"]


@settings(max_examples=150, deadline=None, database=None)
@given(damage=st.lists(st.tuples(st.integers(0, 19), st.sampled_from(TWEET_KEYS), JSON_VALUES), max_size=6))
def test_any_damage_to_real_tweets_never_raises_and_loses_nothing(damage: list[tuple[int, str, object]]) -> None:
    payload = json.loads(REAL_EDGES_PAGE)
    for index, key, value in damage:
        payload["data"][index][key] = value
    page = parse(json.dumps(payload))
    # Every tweet is a post (by id) or sits in quarantine verbatim, with a reason.
    post_ids = {post.post_id for post in page.posts}
    fragments = {q.fragment for q in page.quarantined if q.reason.startswith("tweet: ")}
    for tweet in payload["data"]:
        assert str(tweet.get("id")) in post_ids or json.dumps(tweet, ensure_ascii=False) in fragments
    assert all(q.reason for q in page.quarantined)
    assert all(isinstance(p.text, str) and p.text.strip() for p in page.posts)
