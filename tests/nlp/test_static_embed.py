"""The static e5 student: real artefact, EN/DE quality floors, OOV fallback, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, recall_score

from nlp.errors import ModelMissingError
from nlp.static_embed import (
    HEAD_PATH,
    STUDENT_PATH,
    StaticSentimentModel,
    StudentTables,
    tokenize,
)
from nlp.text import safe_text

# A little under what the shipped student scores on these exact 300-tweet slices (its MODEL_CARD.md).
EN_MACRO_RECALL_FLOOR = 0.61  # measured 0.638 (TweetEval val slice; 0.641 before the heads were refitted)
DE_MACRO_F1_FLOOR = 0.53  # measured 0.558 (UMSAB DE test slice; 0.562 before)


@pytest.fixture(scope="module")
def student() -> StaticSentimentModel:
    return StaticSentimentModel()


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_artefact_is_small_plain_arrays() -> None:
    assert STUDENT_PATH.stat().st_size < 10 * 1024 * 1024
    tables = StudentTables.load(STUDENT_PATH)
    assert len(tables.words) > 10_000
    assert tables.vectors.shape == (len(tables.words), tables.dim)
    assert tables.to_e5.shape == (tables.dim + 1, 384)
    assert {"bahn", "verspätung", "love", "hate", "😡"} <= set(tables.words)
    with np.load(STUDENT_PATH, allow_pickle=False) as data:  # would raise if anything were pickled
        assert all(data[k].dtype != object for k in data.files)


def test_tokenize_keeps_emoji_and_german_words() -> None:
    assert tokenize("@DB_Bahn Danke!!! 😡 wieder 40 Min Verspätung #fail https://t.co/x") == [
        "userhandle", "danke", "!", "!", "!", "😡", "wieder", "40", "min", "verspätung", "fail", "http"]


def test_embeddings_are_unit_vectors_and_similar_texts_are_close(student: StaticSentimentModel) -> None:
    vectors = student.embedder.embed([
        "Der Zug hat schon wieder 40 Minuten Verspätung",
        "Mein ICE hat wieder eine Stunde Verspätung",
        "I love my new iPhone, the camera is amazing",
    ])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2])


def test_unknown_words_get_ngram_vectors_near_their_known_form(student: StaticSentimentModel) -> None:
    tables = student.embedder.tables
    assert "verspätungen" not in tables.words or "verspätungg" not in tables.words
    typo = student.embedder._oov_vector("verspätungg")
    known = tables.vectors[tables.words.index("verspätung")]
    unrelated = tables.vectors[tables.words.index("iphone")]
    assert cosine(typo, known) > cosine(typo, unrelated)


def test_e5_map_approximates_the_real_encoder(student: StaticSentimentModel, de_tweets: list[tuple[str, str]]) -> None:
    from nlp.sentiment import SentimentModel

    texts = [t for _, t in de_tweets[:16]]
    approx = student.embedder.embed_e5(texts)
    real = SentimentModel().embed(texts)
    assert float((approx * real).sum(axis=1).mean()) > 0.8


def test_english_quality_floor(student: StaticSentimentModel, en_tweets: list[tuple[str, str]]) -> None:
    results = student.predict([t for _, t in en_tweets], "en")
    assert recall_score([g for g, _ in en_tweets], [r.label for r in results], average="macro") >= EN_MACRO_RECALL_FLOOR


def test_german_quality_floor(student: StaticSentimentModel, de_tweets: list[tuple[str, str]]) -> None:
    results = student.predict([t for _, t in de_tweets], "de")
    assert f1_score([g for g, _ in de_tweets], [r.label for r in results], average="macro") >= DE_MACRO_F1_FLOOR


def test_bad_input_gets_defined_results(student: StaticSentimentModel) -> None:
    texts = ["", " ", "😡😡😡", "https://t.co/abc http://x.y/z", "Bahn " * 200_000,
             safe_text("kaputt \ud83d Zug"), safe_text(b"\xff\xfe Zug"), "a" * 5000]
    results = student.predict(texts, "de")
    assert results[0] is None and results[1] is None
    assert all(r is not None and 1 / 3 <= r.score <= 1 for r in results[2:])
    assert student.predict(["Habari za asubuhi rafiki"], "sw") == [None]
    assert student.embedder.embed([]).shape == (0, student.embedder.tables.dim)


def test_version_changes_with_the_files(student: StaticSentimentModel) -> None:
    assert student.model_version.startswith("static.") and "+head." in student.model_version
    assert student.languages == ("en", "de")


def test_missing_artefact_says_how_to_rebuild(tmp_path) -> None:
    with pytest.raises(ModelMissingError, match="nlp.distill"):
        StaticSentimentModel(student_path=tmp_path / "absent.npz", head_path=HEAD_PATH).predict(["Zug kaputt"], "de")
    with pytest.raises(ModelMissingError, match="nlp.distill"):
        StaticSentimentModel(head_path=tmp_path / "absent.npz").predict(["Zug kaputt"], "de")


@pytest.mark.parametrize("fixture", ["en_tweets", "de_tweets"])
def test_student_head_is_fitted_to_the_optimum(fixture: str, request: pytest.FixtureRequest) -> None:
    # At sklearn's default tolerance the head's stop depended on the BLAS threads (0.77 apart on
    # one and two, which flipped its chosen C); nlp.distill now fits it with the sentiment
    # trainer's fit_balanced. On these 300 real tweets the default stops ~0.02 from the optimum.
    from sklearn.linear_model import LogisticRegression

    from nlp.sentiment import LABELS
    from nlp.sentiment_data import LabelledTexts
    from nlp.static_embed import StaticEmbedder
    from nlp.train_sentiment import fit_balanced

    rows = request.getfixturevalue(fixture)
    data = LabelledTexts(fixture, [t for _, t in rows], np.array([LABELS.index(label) for label, _ in rows]), fixture[:2])
    embedder = StaticEmbedder()
    fitted = fit_balanced([data], [1.0], 10.0, 13, lambda part: embedder.embed(part.texts))
    mass = np.bincount(data.labels, minlength=3).astype(float)
    optimum = LogisticRegression(C=10.0, tol=1e-12, max_iter=100_000).fit(
        embedder.embed(data.texts), data.labels, sample_weight=(mass.sum() / (3 * mass))[data.labels]
    )
    assert np.abs(fitted.coef_ - optimum.coef_).max() < 2e-3
