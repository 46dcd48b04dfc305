"""Find configured brands, products and competitors in post text (EN and DE).

Matching rules, in order of precedence:

* `@handle` and `#hashtag` forms from the config match case-insensitively, because X, Reddit
  and Mastodon treat both as case-insensitive.
* Aliases match on word boundaries, case-insensitively ("flixbus", "FLIXBUS"), except short
  all-caps aliases (≤ 4 characters, e.g. "DB", "ICE", "PS4"), which match only as written so
  the English word "ice" or "db" (decibel) is not a train.
* German compounds do not count: "Bahnhof", "Autobahn" and "Bahnsteig" are not "Bahn" (most are
  about places and roads, not the company). A hyphenated compound does count ("Bahn-Chaos",
  "ICE-Ausfall"), since the hyphen makes the brand its own word. Product aliases may carry a
  plural/genitive "s" ("iPhones", "ICEs", "BahnCards").
* Overlaps resolve to the longest match: "Amazon Prime" is the product Prime (whose owner is
  Amazon), "Deutsche Bahn" is one mention, not two.

A compiled regex is used rather than spaCy's PhraseMatcher because the matcher must mix
case-sensitive and case-insensitive patterns, work on raw character offsets independent of how
each language's tokenizer splits "@DB_Bahn" or "#DeutscheBahn", and apply the compound rule at
character level; one regex pass per post also keeps it fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

SHORT_CAPS_MAX = 4


class BrandConfig(Protocol):
    """What the matcher reads from a configured brand (resonanz.settings.Brand fits)."""

    name: str
    kind: str
    owner: str | None
    aliases: list[str]
    handles: list[str]
    hashtags: list[str]


@dataclass(frozen=True, slots=True)
class BrandMatch:
    """One brand found in a text: its configured name, kind, owner and where it was written."""

    brand: str
    kind: str
    owner: str | None
    matched_text: str
    start_char: int
    end_char: int


class BrandMatcher:
    """Match a fixed brand list against texts; build once, call `find` per post."""

    def __init__(self, brands: list[BrandConfig]) -> None:
        self._brands = {brand.name: brand for brand in brands}
        exact: dict[str, str] = {}  # written form -> brand name (case-sensitive patterns)
        folded: dict[str, str] = {}  # casefolded form -> brand name
        plural: set[str] = set()  # forms (as keyed above) that may take an "s"
        for brand in brands:
            for alias in brand.aliases:
                if _is_short_caps(alias):
                    exact.setdefault(alias, brand.name)
                else:
                    folded.setdefault(alias.casefold(), brand.name)
                if brand.kind == "product":
                    plural.add(alias if _is_short_caps(alias) else alias.casefold())
            for handle in brand.handles:
                folded.setdefault("@" + handle.lstrip("@").casefold(), brand.name)
            for tag in brand.hashtags:
                folded.setdefault("#" + tag.lstrip("#").casefold(), brand.name)
        self._exact = exact
        self._folded = folded
        self._exact_re = _compile(exact, plural, flags=0)
        self._folded_re = _compile(folded, plural, flags=re.IGNORECASE)

    @property
    def names(self) -> list[str]:
        """Return the configured brand names."""
        return list(self._brands)

    def owner_of(self, name: str) -> str | None:
        """Return the owner brand of a product (None for brands and competitors)."""
        return self._brands[name].owner

    def find(self, text: str) -> list[BrandMatch]:
        """Return the non-overlapping brand matches in `text`, in reading order."""
        candidates: list[tuple[int, int, str]] = []
        for regex, table, fold in ((self._exact_re, self._exact, False), (self._folded_re, self._folded, True)):
            if regex is None:
                continue
            for match in regex.finditer(text):
                name = _lookup(match.group(), table, fold)
                if name is not None:
                    candidates.append((match.start(), match.end(), name))
        # Longest match wins, then the earliest; overlapping shorter matches are dropped.
        candidates.sort(key=lambda c: (c[0], -(c[1] - c[0])))
        found: list[BrandMatch] = []
        last_end = -1
        for start, end, name in candidates:
            if start < last_end:
                continue
            brand = self._brands[name]
            found.append(BrandMatch(name, brand.kind, brand.owner, text[start:end], start, end))
            last_end = end
        return found


def _is_short_caps(alias: str) -> bool:
    return len(alias) <= SHORT_CAPS_MAX and alias.isupper()


def _compile(forms: dict[str, str], plural: set[str], flags: int) -> re.Pattern[str] | None:
    if not forms:
        return None
    # Longest first: Python alternation takes the first branch that fits, not the longest.
    parts = []
    for form in sorted(forms, key=len, reverse=True):
        body = re.escape(form).replace(r"\ ", r"\s+")
        parts.append(body + ("(?:s|'s|’s)?" if form in plural else ""))
    # (?<![\w@#]) keeps "DB" out of "@DB_Bahn" and "Bahn" out of "#Bahn" (the tag matches itself);
    # (?!\w) is the compound rule: "Bahnhof" continues with letters, so it is not "Bahn".
    pattern = r"(?<![\w@#])(?:" + "|".join(parts) + r")(?!\w)"
    return re.compile(pattern, flags)


def _lookup(written: str, table: dict[str, str], fold: bool) -> str | None:
    key = " ".join(written.split())
    key = key.casefold() if fold else key
    if key in table:
        return table[key]
    for suffix in ("'s", "’s", "s"):
        if key.endswith(suffix) and key[: -len(suffix)] in table:
            return table[key[: -len(suffix)]]
    return None
