"""Sentiment toward each brand mention: classify the clause that holds the mention, not the whole post.

A post such as "Lyft got me home in 10 minutes, but Uber cancelled twice" has one post-level
sentiment, yet the author praises one brand and attacks the other. `TargetedSentiment` splits
the post into sentences and then into clauses at contrast markers (but/aber/jedoch/while/
whereas/…) and classifies each clause that holds a mention with the post sentiment model.

Three rules keep the post sentiment where a clause would know less than the post:

* a post with one mention, or with every mention in one clause, keeps the post sentiment;
* a mention in the leading block of @handles (the people and brands a reply is addressed to)
  is judged on every clause that names no other target, since "you" in a reply is them; if
  every clause names another target, it keeps the post sentiment;
* a clause too short to judge (fewer than MIN_WORDS words besides the mention) is merged with
  its neighbour before it is classified.

Comparisons ("way better than Uber", "im Gegensatz zur Bahn") put the compared brand in a
clause of its own whose sentiment is the opposite of the rest of its sentence: praising the
winner of a comparison is criticising the loser.

Measured per target (bench/eval_targeted.py, frozen-e5 sentiment model, macro-F1, post-level
baseline -> this): GermEval-2017 dev opinion targets, DE, 964 targets 0.365 -> 0.405 (0.260 -> 0.366
where a post's targets disagree); TWCS tweets naming two companies, EN, 117 hand-labelled targets
0.575 -> 0.645 (0.428 -> 0.594 where they disagree). The default model's figures are in the README.
The clause model is the post model, so short clauses ("Der ICE war pünktlich,") are its weak spot.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from nlp.sentiment import SentimentResult

# Clause-opening contrast markers; the clause runs from the marker to the next one or to the
# end of the sentence. German "doch" and "während" are ambiguous but mostly contrastive in posts.
CONTRAST = {
    "en": r"but|however|though|although|whereas|while|yet|except|meanwhile|on the other hand",
    "de": r"aber|jedoch|doch|allerdings|sondern|während|wohingegen|dagegen|hingegen|trotzdem|obwohl|nur leider",
}
# Markers that introduce the compared (losing) side of a comparison; their clause ends at the
# next comma or clause marker and takes the opposite polarity of the rest of the sentence.
# "than"/"als" cut after the comparative, so "Lyft is faster" stays with the winner; German "als"
# counts only after a comparative ("pünktlicher als", "mehr als"), since alone it also means "when".
COMPARED = {
    "en": r"unlike|instead of|rather than|compared to|compared with|than|vs\.?|versus",
    "de": r"im Gegensatz zu[mr]?|anders als|im Vergleich zu[mr]?|verglichen mit|statt|anstatt|(?<=er )als|(?<=mehr )als",
}
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+|\s+[|•]\s+|;\s+")
LEADING_HANDLES = re.compile(r"^\s*(?:[@＠]\w+[\s,:]*)+")
WORD = re.compile(r"\w+")
MIN_WORDS = 3
COMPARED_WORDS = 3  # "than the Deutsche Bahn": the compared side is a short noun phrase
FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


class PostSentimentModel(Protocol):
    """What TargetedSentiment needs from a post-level model (nlp.sentiment.SentimentModel fits)."""

    @property
    def languages(self) -> tuple[str, ...]: ...

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]: ...


@dataclass(frozen=True, slots=True)
class Clause:
    """A stretch [start, end) of the post; `compared` marks the losing side of a comparison."""

    start: int
    end: int
    sentence: int
    compared: bool = False


class MentionQuery(NamedTuple):
    """One post for TargetedSentiment: its text and language, its mention spans, its post sentiment."""

    text: str
    lang: str
    spans: list[tuple[int, int]]
    post_sentiment: SentimentResult | None


@dataclass(frozen=True, slots=True)
class MentionPlan:
    """What one post needs judged, and how the answers map back to its mentions.

    Making one needs no sentiment yet, so the pipeline judges the clause texts in the same model
    call as the posts (`texts`), then `resolve`s.
    """

    lang: str
    mentions: int
    settled: Literal["post", "unknown"] | None  # without the model: the post's sentiment stands, or None each
    owners: list[Clause | None] = field(default_factory=list)  # per mention; None for addressees
    addressed: list[bool] = field(default_factory=list)
    clause_texts: dict[Clause, str] = field(default_factory=dict)
    to_them: str = ""

    @property
    def texts(self) -> list[str]:
        """Return the texts the model must judge for this post."""
        return list(self.clause_texts.values()) + ([self.to_them] if self.to_them.strip() else [])

    def resolve(self, judged: dict[str, SentimentResult | None], post_sentiment: SentimentResult | None) -> list[SentimentResult | None]:
        """Return one answer per mention from the model's answers by text (a text the model
        could not judge, or left out, keeps the post's sentiment)."""
        if self.settled is not None:
            return [post_sentiment if self.settled == "post" else None] * self.mentions
        out: list[SentimentResult | None] = []
        for owner, is_addressee in zip(self.owners, self.addressed):
            if is_addressee:
                result = judged.get(self.to_them) if self.to_them.strip() else None
            else:
                result = judged.get(self.clause_texts[owner]) if owner is not None else None
            if result is None:
                out.append(post_sentiment)  # nothing left to judge: the post's sentiment stands
            elif owner is not None and owner.compared:
                out.append(SentimentResult(FLIP[result.label], result.score))
            else:
                out.append(result)
        return out


class TargetedSentiment:
    """Give each brand mention in a post the sentiment of the clause that holds it."""

    def __init__(self, model: PostSentimentModel) -> None:
        self._model = model
        self._contrast = {lang: _marker_re(words) for lang, words in CONTRAST.items()}
        self._compared = {lang: _marker_re(words) for lang, words in COMPARED.items()}

    def predict(
        self,
        text: str,
        lang: str,
        spans: list[tuple[int, int]],
        post_sentiment: SentimentResult | None,
    ) -> list[SentimentResult | None]:
        """Return one result per mention span (start, end) in `text`; None where unknown."""
        return self.predict_many([MentionQuery(text, lang, spans, post_sentiment)])[0]

    def predict_many(self, queries: Sequence[MentionQuery]) -> list[list[SentimentResult | None]]:
        """Return `predict`'s answers for many posts, with one model call per language.

        A model call costs far more than its rows on short clause texts (a batch of 3 clauses
        took ~15 ms with the e5 model), so the clauses of many posts go together. The answers
        are the ones `predict` gives post by post: the model answers each text alone.
        """
        plans = [self.plan(q.text, q.lang, q.spans) for q in queries]
        judged: dict[str, dict[str, SentimentResult | None]] = {}
        for lang, texts in wanted_texts(plans).items():
            judged[lang] = dict(zip(texts, self._model.predict(texts, lang)))
        return [plan.resolve(judged.get(plan.lang, {}), q.post_sentiment) for plan, q in zip(plans, queries)]

    def plan(self, text: str, lang: str, spans: list[tuple[int, int]]) -> MentionPlan:
        """Work out which clause texts one post needs judged, or settle it without the model."""
        if not spans:
            return MentionPlan(lang, 0, "unknown")
        if lang not in self._model.languages or lang not in self._contrast:
            return MentionPlan(lang, len(spans), "unknown")
        clauses = self.clauses(text, lang, spans)
        addressed_end = _leading_handles_end(text)
        addressed = [start < addressed_end for start, _ in spans]
        starts = [c.start for c in clauses]
        owners = [None if to_them else _clause_of(clauses, starts, start) for (start, _), to_them in zip(spans, addressed)]
        # The addressees of a reply count as one more target group next to the clauses.
        groups = {owner for owner, to_them in zip(owners, addressed) if not to_them} | ({"to"} if any(addressed) else set())
        if len(groups) < 2:
            return MentionPlan(lang, len(spans), "post")  # one target, or all in one clause: the post says it
        needed = sorted({owner for owner in owners if owner is not None}, key=lambda c: c.start)
        # A compared clause ("than Uber") is judged by the rest of its sentence, then flipped.
        clause_texts = {c: _sentence_rest(text, clauses, c) if c.compared else text[c.start:c.end] for c in needed}
        # Addressees are judged on every clause that names no other target ("you" is them).
        to_them = " ".join(text[c.start:c.end] for c in clauses if c not in needed) if any(addressed) else ""
        return MentionPlan(lang, len(spans), None, owners, addressed, clause_texts, to_them)

    def clauses(self, text: str, lang: str, spans: Sequence[tuple[int, int]] = ()) -> list[Clause]:
        """Split `text` into sentences, then clauses at contrast and comparison markers.

        A comparison's clause ends right after the first mention span it holds, if any.
        """
        clauses: list[Clause] = []
        mentions = sorted(spans)
        for number, (start, end) in enumerate(_sentences(text)):
            cuts: list[tuple[int, bool]] = [(start, False)]
            for match in self._contrast[lang].finditer(text, start, end):
                cuts.append((match.start(), False))
            for match in self._compared[lang].finditer(text, start, end):
                cuts.append((match.start(), True))
                stop = _comparison_end(text, match.end(), end, mentions)
                if stop < end:
                    cuts.append((stop, False))
            cuts.sort()
            pieces = [
                Clause(a, b, number, compared)
                for (a, compared), (b, _) in zip(cuts, cuts[1:] + [(end, False)])
                if text[a:b].strip()
            ]
            clauses.extend(_merge_short(text, pieces))
        return clauses


def wanted_texts(plans: Sequence[MentionPlan | None]) -> dict[str, list[str]]:
    """Return the distinct texts the plans (None: a post without mentions) need judged, per
    language, in first-seen order."""
    wanted: dict[str, dict[str, None]] = {}
    for plan in plans:
        if plan is not None and plan.settled is None:
            wanted.setdefault(plan.lang, {}).update(dict.fromkeys(plan.texts))
    return {lang: list(texts) for lang, texts in wanted.items()}


def _marker_re(words: str) -> re.Pattern[str]:
    # A marker counts only as a whole word, after a space or punctuation, in any case.
    return re.compile(rf"(?<![\w@#])(?:{words})(?!\w)", re.IGNORECASE)


def _sentences(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for match in SENTENCE_END.finditer(text):
        if match.start() > start:
            spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return spans


def _merge_short(text: str, pieces: list[Clause]) -> list[Clause]:
    """Merge clauses with fewer than MIN_WORDS words into their neighbour; comparisons stay apart."""
    merged: list[Clause] = []
    for piece in pieces:
        short = len(WORD.findall(text[piece.start:piece.end])) < MIN_WORDS
        if merged and short and not piece.compared and not merged[-1].compared:
            last = merged.pop()
            merged.append(Clause(last.start, piece.end, last.sentence, last.compared))
        else:
            merged.append(piece)
    if len(merged) > 1 and not (merged[0].compared or merged[1].compared) and len(WORD.findall(text[merged[0].start:merged[0].end])) < MIN_WORDS:
        first, second = merged[0], merged[1]
        merged[:2] = [Clause(first.start, second.end, first.sentence, second.compared)]
    return merged


def _comparison_end(text: str, after: int, end: int, mentions: list[tuple[int, int]]) -> int:
    """Return where the compared side ends: after its mention, at a comma, or COMPARED_WORDS words on.

    `mentions` are the mention spans sorted by start.
    """
    comma = text.find(",", after, end)
    words = list(WORD.finditer(text, after, end))
    stop = min(comma + 1 if comma != -1 else end, words[COMPARED_WORDS - 1].end() if len(words) >= COMPARED_WORDS else end)
    first = bisect.bisect_left(mentions, (after, -1))
    return mentions[first][1] if first < len(mentions) and mentions[first][0] < stop else stop


def _clause_of(clauses: list[Clause], starts: list[int], offset: int) -> Clause | None:
    # Clauses are sorted and disjoint; bisect keeps a 1 MB post with thousands of mentions fast.
    i = bisect.bisect_right(starts, offset) - 1
    return clauses[i] if i >= 0 and offset < clauses[i].end else None


def _leading_handles_end(text: str) -> int:
    match = LEADING_HANDLES.match(text)
    return match.end() if match else 0


def _sentence_rest(text: str, clauses: list[Clause], compared: Clause) -> str:
    """Return the text of the other clauses of `compared`'s sentence (what the comparison praises)."""
    rest = [text[c.start:c.end] for c in clauses if c.sentence == compared.sentence and c != compared]
    return " ".join(rest) if rest else text[compared.start:compared.end]
