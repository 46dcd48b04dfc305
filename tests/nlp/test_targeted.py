"""Sentiment toward each brand mention, on real posts (EN TWCS customer tweets, DE GermEval-2017)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

from nlp.sentiment import SentimentModel, SentimentResult
from nlp.targeted import MentionQuery, TargetedSentiment
from nlp.text import MAX_CHARS

FIXTURE = Path(__file__).parents[1] / "fixtures" / "nlp" / "targeted" / "targets_en_de.tsv"
LABELS = ["negative", "neutral", "positive"]

# A real TWCS customer tweet (6600) naming two airlines, used for the edge cases below.
EN_SWITCH = ("@AmericanAir #greed comes to mind every time I fly with you. I am considering switching to "
             "@Delta even if it means longer flights as they rock!")
# A real GermEval-2017 dev tweet comparing Flixbus with the Bahn (gold aspect: Ticketkauf negative).
DE_PRICES = "@500gMehl @maikliebtessen Flixbus / MeinFernbus haben allgemein richtig gute Preise im Vergleich zur Bahn. ☺"


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return SentimentModel()


@pytest.fixture(scope="module")
def targeted(model: SentimentModel) -> TargetedSentiment:
    return TargetedSentiment(model)


def spans_of(text: str, *names: str) -> list[tuple[int, int]]:
    return [(text.index(name), text.index(name) + len(name)) for name in names]


def read_targets(lang: str) -> dict[str, tuple[str, list[tuple[int, int]], list[str]]]:
    """Return post_id -> (text, spans, gold labels) for one language of the fixture."""
    posts: dict[str, tuple[str, list[tuple[int, int]], list[str]]] = {}
    with FIXTURE.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            if row["lang"] == lang:
                _, spans, gold = posts.setdefault(row["post_id"], (row["text"], [], []))
                spans.append((int(row["start"]), int(row["end"])))
                gold.append(row["label"])
    return posts


@pytest.mark.parametrize(
    ("lang", "post_id", "expected"),
    [
        # "Always used delta … Flew southwest … was great … But idk still team delta but getting weak"
        # (gold: Delta negative, Southwest positive): Southwest right, Delta not positive.
        ("en", "3207", {1: "positive", 0: "not positive"}),
        # "Adobe Lightroom is terrible … Sony A9 file takes 15sec" (gold: Adobe negative, Sony neutral).
        ("en", "2324", {0: "negative", 1: "neutral"}),
        # News on the end of the GDL strike (gold: strike end positive twice, "Tarifkonflikt" negative).
        ("de", "http://www.mt.de/weltnews/wirtschaft/wirtschaft_ueberblick/20464878_Lokfuehrer-Streik-vorerst-beendet.html",
         {0: "positive", 1: "positive", 2: "not positive"}),
    ],
)
def test_targets_in_one_real_post_get_different_answers(
    targeted: TargetedSentiment, model: SentimentModel, lang: str, post_id: str, expected: dict[int, str]
) -> None:
    text, spans, _ = read_targets(lang)[post_id]
    found = [r.label for r in targeted.predict(text, lang, spans, model.predict([text], lang)[0])]
    assert len(set(found)) >= 2
    for index, label in expected.items():
        if label.startswith("not "):
            assert found[index] != label.removeprefix("not ")
        else:
            assert found[index] == label


@pytest.mark.parametrize("lang", ["en", "de"])
def test_per_target_quality_beats_post_level_baseline(targeted: TargetedSentiment, model: SentimentModel, lang: str) -> None:
    posts = read_targets(lang)
    texts = [text for text, _, _ in posts.values()]
    gold, baseline, ours = [], [], []
    for (text, spans, labels), post in zip(posts.values(), model.predict(texts, lang)):
        gold += labels
        baseline += [post.label] * len(spans)
        ours += [r.label for r in targeted.predict(text, lang, spans, post)]
    # Measured on this fixture: EN 0.574 -> 0.639, DE 0.415 -> 0.445 (the DE post-level model got better,
    # so the margin shrank from 0.084); bench/eval_targeted.py has the full sets (DE 0.365 -> 0.405).
    assert f1_score(gold, ours, labels=LABELS, average="macro") >= f1_score(gold, baseline, labels=LABELS, average="macro") + 0.02


class CountingModel:
    """The post model, counting its calls (predict_many must make one per language)."""

    def __init__(self, model: SentimentModel) -> None:
        self.model, self.calls = model, []

    @property
    def languages(self) -> tuple[str, ...]:
        return self.model.languages

    def predict(self, texts: list[str], lang: str) -> list[SentimentResult | None]:
        self.calls.append((lang, len(texts)))
        return self.model.predict(texts, lang)


def test_many_posts_at_once_get_the_answers_they_get_one_by_one(targeted: TargetedSentiment, model: SentimentModel) -> None:
    queries = []
    for lang in ("en", "de"):
        posts = read_targets(lang)
        texts = [text for text, _, _ in posts.values()]
        queries += [MentionQuery(text, lang, spans, post) for (text, spans, _), post in zip(posts.values(), model.predict(texts, lang))]
    counting = CountingModel(model)
    together = TargetedSentiment(counting).predict_many(queries)
    alone = [targeted.predict(*query) for query in queries]
    assert [[r and r.label for r in post] for post in together] == [[r and r.label for r in post] for post in alone]
    # Scores agree up to float rounding: a batched matrix product adds in another order.
    pairs = [(a.score, b.score) for x, y in zip(together, alone) for a, b in zip(x, y) if a is not None and b is not None]
    assert pairs and all(abs(a - b) < 1e-5 for a, b in pairs)
    # Posts whose targets sit in different clauses need the model; both languages have some.
    assert sorted(lang for lang, _ in counting.calls) == ["de", "en"]
    assert all(rows > 1 for _, rows in counting.calls)


def test_one_target_keeps_the_post_sentiment(targeted: TargetedSentiment) -> None:
    post = SentimentResult("negative", 0.8)
    text = "@DB_Bahn Durch einen Türschaden in Duisburg jetzt +25min. Personal vs Fabian heute 1:0 im Verstecken spielen."
    assert targeted.predict(text, "de", spans_of(text, "@DB_Bahn"), post) == [post]


def test_edge_cases_give_one_defined_result_per_span(targeted: TargetedSentiment) -> None:
    post = SentimentResult("neutral", 0.5)
    assert targeted.predict(EN_SWITCH, "en", [], post) == []
    assert targeted.predict(EN_SWITCH, "sw", spans_of(EN_SWITCH, "@AmericanAir", "@Delta"), post) == [None, None]
    assert targeted.predict("", "en", [(0, 0), (0, 0)], None) == [None, None]
    emoji = "😍😍 @Delta 😡 @AmericanAir"
    assert len(targeted.predict(emoji, "en", spans_of(emoji, "@Delta", "@AmericanAir"), post)) == 2
    # A ~1 MB paste: the pipeline passes the first MAX_CHARS; mentions beyond keep the post sentiment.
    huge = (EN_SWITCH + " ") * 7000
    spans = [(m.start(), m.end()) for m in re.finditer("@Delta|@AmericanAir", huge)]
    found = targeted.predict(huge[:MAX_CHARS], "en", spans, post)
    assert len(found) == len(spans) == 14000 and found[-1] == post


def test_clauses_split_at_sentences_and_contrast_and_comparison_markers(targeted: TargetedSentiment) -> None:
    clauses = [(DE_PRICES[c.start:c.end].strip(), c.compared) for c in targeted.clauses(DE_PRICES, "de", spans_of(DE_PRICES, "Bahn"))]
    assert clauses == [
        ("@500gMehl @maikliebtessen Flixbus / MeinFernbus haben allgemein richtig gute Preise", False),
        ("im Vergleich zur Bahn", True),
        (".", False),
        ("☺", False),
    ]
    text = ("@116455 @116452 @Delta Always used delta for years for business. Flew southwest last week for the first "
            "time was great and free checked bags. But idk still team delta but getting weak")
    assert [text[c.start:c.end] for c in targeted.clauses(text, "en")] == [
        "@116455 @116452 @Delta Always used delta for years for business.",
        "Flew southwest last week for the first time was great and free checked bags.",
        "But idk still team delta ",
        "but getting weak",
    ]
