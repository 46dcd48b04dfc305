"""Text clean-up shared by the models: safe strings, tweet normalisation, letters-only views."""

from __future__ import annotations

import re
import unicodedata

# Long posts are cut before any model sees them: sentiment and language are decided early in a
# post, and the embedder truncates at 512 tokens anyway; this keeps a 1 MB paste from stalling a batch.
MAX_CHARS = 5_000

URL_RE = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
HANDLE_RE = re.compile(r"(?<!\w)@\w{1,30}")
HASH_SIGN_RE = re.compile(r"(?<!\w)#(?=\w)")
SPACE_RE = re.compile(r"\s+")
# "RT @user: " (after handle normalisation) carries no sentiment; without it a retweet is its original.
REPOST_PREFIX_RE = re.compile(r"^(?:RT\s+@user:?\s*)+", re.IGNORECASE)


def safe_text(text: object) -> str:
    """Return `text` as a valid UTF-8 string: lone surrogates and NULs replaced, never raising."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace").replace("\x00", " ")
    value = str(text)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Surrogates from broken JSON escapes: re-pair the valid halves, swap lone ones for U+FFFD.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", " ")


def for_sentiment(text: str) -> str:
    """Normalise a post the way the sentiment training tweets were (TweetEval/UMSAB style)."""
    text = URL_RE.sub("http", text[:MAX_CHARS])
    text = HANDLE_RE.sub("@user", text)
    return SPACE_RE.sub(" ", text).strip()


def repost_key(text: str) -> str:
    """Return `for_sentiment(text)` without a leading "RT @user:": a retweet reads as its original."""
    return REPOST_PREFIX_RE.sub("", for_sentiment(text))


def for_language(text: str) -> str:
    """Strip what carries no language signal: URLs, @handles, #-signs, emoji and symbols."""
    text = URL_RE.sub(" ", text[:MAX_CHARS])
    text = HANDLE_RE.sub(" ", text)
    text = HASH_SIGN_RE.sub("", text)
    kept = [ch if _is_word_char(ch) else " " for ch in text]
    return SPACE_RE.sub(" ", "".join(kept)).strip()


def letter_count(text: str) -> int:
    """Count alphabetic characters (any script)."""
    return sum(1 for ch in text if ch.isalpha())


def _is_word_char(ch: str) -> bool:
    # Letters, marks, digits and the punctuation inside words survive; emoji (So), other symbols
    # and control characters go, so "😡😡 Bahn!!" is judged on "Bahn".
    category = unicodedata.category(ch)
    return category[0] in "LMN" or ch in " '’-.,!?;:"
