"""Build the bundled X samples (X API v2 search-response pages) from the real datasets in /work/shared/data.

Dev tool, run once by a maintainer: `python scripts/build_sample.py [--data /work/shared/data]`.
The product never reads /work/shared/data; it reads what this writes to resonanz/sample/.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO / "resonanz" / "sample"
PAGE_SIZE = 100
TWCS_TARGET = 2000
# A handle is 1-15 word characters after an "@" that is not part of a word or an e-mail address.
MENTION = re.compile(r"(?<![\w@])@(\w{1,15})(?!\w)")


def iso(moment: datetime) -> str:
    """Format a UTC time the way X API v2 does: 2017-10-31T22:10:47.000Z."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def mentions_of(text: str) -> list[dict[str, object]]:
    """Return X-style entities.mentions (start/end are code-point offsets, like the API)."""
    return [{"start": m.start(), "end": m.end(), "username": m.group(1)} for m in MENTION.finditer(text)]


def user_id(handle: str) -> str:
    """The sample's stand-in for X's numeric user id: the handle, case-folded.

    X handles are case-insensitive (@DB_Bahn and @db_bahn are one account) and real user ids
    are numbers, so the id must not depend on how a handle was written; `username` keeps the
    written form.
    """
    return handle.lower()


def write_pages(folder: Path, tweets: list[dict], users_of: dict[str, dict], parents: dict[str, dict]) -> int:
    """Write tweets as page-NNNN.json search responses with includes and meta; return the page count."""
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("page-*.json"):  # PROVENANCE.md stays
        stale.unlink()
    chunks = [tweets[i : i + PAGE_SIZE] for i in range(0, len(tweets), PAGE_SIZE)]
    for number, chunk in enumerate(chunks, start=1):
        handles: dict[str, str] = {}  # user id -> handle as first written on this page
        included_tweets = []
        for tweet in chunk:
            handles.setdefault(tweet["author_id"], users_of.get(tweet["author_id"], tweet["author_id"]))
            for m in tweet.get("entities", {}).get("mentions", []):
                handles.setdefault(user_id(m["username"]), users_of.get(user_id(m["username"]), m["username"]))
            for ref in tweet.get("referenced_tweets", []):
                if ref["id"] in parents:
                    included_tweets.append(parents[ref["id"]])
                    parent_author = parents[ref["id"]]["author_id"]
                    handles.setdefault(parent_author, users_of.get(parent_author, parent_author))
        ids = sorted((t["id"] for t in chunk), key=int)
        meta: dict[str, object] = {"newest_id": ids[-1], "oldest_id": ids[0], "result_count": len(chunk)}
        if number < len(chunks):
            meta["next_token"] = f"page-{number + 1:04d}"
        includes: dict[str, object] = {"users": [{"id": uid, "username": name} for uid, name in handles.items()]}
        if included_tweets:
            unique = {t["id"]: t for t in included_tweets}
            includes["tweets"] = list(unique.values())
        body = {"data": chunk, "includes": includes, "meta": meta}
        (folder / f"page-{number:04d}.json").write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
    return len(chunks)


def build_twcs(data: Path) -> tuple[int, int]:
    """Take whole TWCS threads in file order until about TWCS_TARGET tweets; return (tweets, pages)."""
    rows = list(csv.DictReader((data / "conversations_twcs_en" / "tweets.csv").open(encoding="utf-8", newline="")))
    by_id = {row["tweet_id"]: row for row in rows}
    thread_order: dict[str, list[dict]] = {}
    for row in rows:
        thread_order.setdefault(row["thread_id"], []).append(row)
    chosen: list[dict] = []
    for members in thread_order.values():
        if len(chosen) >= TWCS_TARGET:
            break
        chosen.extend(members)
    chosen.sort(key=lambda row: rows.index(row))

    def created(row: dict) -> str:
        return iso(datetime.strptime(row["created_at"], "%a %b %d %H:%M:%S %z %Y"))

    def root_of(row: dict) -> str | None:
        # conversation_id is the thread's first tweet; unknown when the chain leaves the upstream cut.
        seen = set()
        while row["in_response_to_tweet_id"]:
            parent = by_id.get(row["in_response_to_tweet_id"])
            if parent is None or parent["tweet_id"] in seen:
                return None
            seen.add(row["tweet_id"])
            row = parent
        return row["tweet_id"]

    tweets = []
    parents: dict[str, dict] = {}
    written = {user_id(row["author_id"]): row["author_id"] for row in reversed(rows)}  # first written form
    for row in chosen:
        tweet: dict[str, object] = {
            "id": row["tweet_id"], "author_id": user_id(row["author_id"]), "text": row["text"], "created_at": created(row),
        }
        if (root := root_of(row)) is not None:
            tweet["conversation_id"] = root
        if parent_id := row["in_response_to_tweet_id"]:
            tweet["referenced_tweets"] = [{"type": "replied_to", "id": parent_id}]
            if parent := by_id.get(parent_id):
                tweet["in_reply_to_user_id"] = user_id(parent["author_id"])
                parents[parent_id] = {
                    "id": parent_id, "author_id": user_id(parent["author_id"]), "text": parent["text"],
                    "created_at": created(parent),
                }
        if mentions := mentions_of(row["text"]):
            tweet["entities"] = {"mentions": mentions}
        tweets.append(tweet)
    pages = write_pages(SAMPLE_DIR / "x_twcs_en", tweets, written, parents)
    return len(tweets), pages


def build_germeval(data: Path) -> tuple[int, int]:
    """Write every GermEval 2017 dev row that is a tweet; return (tweets, pages)."""
    path = data / "conversations_germeval2017_db_de" / "posts.csv"
    rows = [r for r in csv.DictReader(path.open(encoding="utf-8", newline="")) if r["source"] == "twitter"]
    tweets = []
    seen: set[str] = set()
    written = {user_id(row["author_handle"]): row["author_handle"] for row in reversed(rows)}
    for row in rows:
        if row["post_id"] in seen:  # the dev split lists one tweet twice; a search returns it once
            continue
        seen.add(row["post_id"])
        tweet: dict[str, object] = {"id": row["post_id"], "author_id": user_id(row["author_handle"]), "text": row["text"]}
        if row["created_at"]:
            tweet["created_at"] = iso(datetime.fromisoformat(row["created_at"]))
        if mentions := mentions_of(row["text"]):
            tweet["entities"] = {"mentions": mentions}
        tweets.append(tweet)
    pages = write_pages(SAMPLE_DIR / "x_germeval_db_de", tweets, written, {})
    return len(tweets), pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"))
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"source data folder not found: {args.data}")
    print("x_twcs_en: %d tweets in %d pages" % build_twcs(args.data))
    print("x_germeval_db_de: %d tweets in %d pages" % build_germeval(args.data))


if __name__ == "__main__":
    main()
