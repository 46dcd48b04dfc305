"""Keyed pseudonyms for account ids, handles and names, and raw bodies rewritten with them.

A pseudonym is `p_` + the first 16 hex digits of HMAC-SHA256(key, identifier lower-cased), so
the same account gets the same pseudonym in raw payloads and in every export made with the same
key: shared data still joins, but names nobody. Without the key nobody can recompute the mapping.
The key comes from the environment only and is never stored or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Iterable
from typing import Any

KEY_ENV = "RESONANZ_PSEUDONYM_KEY"
MIN_TEXT_MATCH = 3  # shorter identifiers are replaced only where a key names them, never in free text
PSEUDONYM = re.compile(r"p_[0-9a-f]{16}")
# JSON keys whose string value is an account's id, handle or name (X, Reddit, RSS JSON shapes).
ACCOUNT_KEYS = frozenset({
    "author_id", "username", "screen_name", "user_id", "in_reply_to_user_id", "handle", "author",
    "author_fullname", "display_name", "user", "user_name",
})
# In an object that is an account (it has one of these keys), `id` and `name` are the account's too.
ACCOUNT_MARKERS = frozenset({"username", "screen_name", "handle"})
WORD = re.compile(r"[A-Za-z0-9_]+")


class MissingPseudonymKey(RuntimeError):
    """The pseudonymisation key is not set."""


def pseudonym_key() -> bytes:
    """Read the pseudonymisation key from the environment or raise a one-line explanation."""
    key = os.environ.get(KEY_ENV, "")
    if not key:
        raise MissingPseudonymKey(f"set the environment variable {KEY_ENV} to a secret to pseudonymise "
                                  "(keep it: the same key gives the same pseudonyms; it is never stored)")
    return key.encode()


def pseudonym(value: str, key: bytes) -> str:
    """Return the keyed pseudonym of an identifier; an existing pseudonym is returned unchanged."""
    if PSEUDONYM.fullmatch(value):
        return value
    return "p_" + hmac.new(key, value.lower().encode(), hashlib.sha256).hexdigest()[:16]


def replace_words(text: str, mapping: dict[str, str]) -> str:
    """Replace whole words (e.g. a handle after "@") that `mapping` knows, case-insensitively."""
    if not mapping:
        return text
    return WORD.sub(lambda m: mapping.get(m.group(0).lower(), m.group(0)), text)


def word_mapping(identifiers: Iterable[str], key: bytes) -> dict[str, str]:
    """Map lower-cased identifiers that are single words of at least MIN_TEXT_MATCH characters."""
    return {i.lower(): pseudonym(i, key) for i in identifiers
            if len(i) >= MIN_TEXT_MATCH and WORD.fullmatch(i) and not PSEUDONYM.fullmatch(i)}


def _is_account_value(key: str, obj: dict[str, Any]) -> bool:
    return key in ACCOUNT_KEYS or (key in ("id", "name") and not ACCOUNT_MARKERS.isdisjoint(obj))


def _collect(value: Any, found: set[str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str | int) and not isinstance(v, bool) and _is_account_value(k, value):
                found.add(str(v))
            else:
                _collect(v, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _rewrite(value: Any, key: bytes, mapping: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: (pseudonym(str(v), key)
                    if isinstance(v, str | int) and not isinstance(v, bool) and _is_account_value(k, value)
                    else _rewrite(v, key, mapping))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(item, key, mapping) for item in value]
    if isinstance(value, str):
        return replace_words(value, mapping)
    return value


def pseudonymise_body(body: str, key: bytes, known: Iterable[str] = ()) -> str:
    """Rewrite a raw body with account ids, handles and names replaced by pseudonyms.

    JSON: values of account keys are replaced, and those identifiers (plus `known` ones, e.g. the
    accounts loaded from this payload) wherever they appear as words in other strings. Anything
    else (RSS/XML) gets the word replacement of `known`. An unchanged body is returned as is.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        return replace_words(body, word_mapping(known, key))
    found = set(known)
    _collect(parsed, found)
    rewritten = _rewrite(parsed, key, word_mapping(found, key))
    return body if rewritten == parsed else json.dumps(rewritten, ensure_ascii=False)
