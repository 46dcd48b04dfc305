"""Purchase intent on real EN and DE posts: a held-out quality floor, bad input, versions, missing artefact."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nlp.errors import ModelMissingError
from nlp.intent import LABELS, MODEL_PATH, IntentModel, IntentResult, IntentWeights
from nlp.train_intent import held_out_fold, read_labelled

# A little under what fold 0 of the seed-13 stratified 5-fold split scores when the model is
# fitted on the other four folds of the hand-labelled set (no weak rows): see the model card.
EN_HELD_OUT_MACRO_F1_FLOOR = 0.55  # measured 0.580 on 90 EN posts
DE_HELD_OUT_MACRO_F1_FLOOR = 0.34  # measured 0.370 on 110 DE posts


@pytest.fixture(scope="module")
def model() -> IntentModel:
    return IntentModel()


@pytest.fixture(scope="module")
def held_out() -> dict:
    return held_out_fold(read_labelled())


def test_held_out_quality_floor_en_and_de(held_out: dict) -> None:
    assert held_out["en"]["n"] > 60 and held_out["de"]["n"] > 60
    assert held_out["en"]["macro_f1"] >= EN_HELD_OUT_MACRO_F1_FLOOR
    assert held_out["de"]["macro_f1"] >= DE_HELD_OUT_MACRO_F1_FLOOR


def test_held_out_model_beats_majority_class(held_out: dict) -> None:
    # Always answering "none" scores macro-F1 = F1(none) / 6 < 0.15 on either language.
    for lang in ("en", "de"):
        assert held_out[lang]["macro_f1"] > 0.15
        assert held_out[lang]["f1"]["none"] > 0.5


def test_real_english_posts(model: IntentModel) -> None:
    # Real customer tweets from TWCS (CC BY-NC-SA 4.0), also in the labelled set.
    results = model.predict([
        "Two fake items in one day. Time to cancel my Amazon Prime membership. @AmazonHelp",
        ("@AmazonHelp 3 different people have given 3 different answers and I still don't have my order. "
        "Says delivered Saturday, was not, I was home all day"),
    ], "en")
    assert [r.label for r in results] == ["churn", "complaint"]


def test_real_german_posts(model: IntentModel) -> None:
    # Real GermEval-2017 Deutsche-Bahn posts (CC BY 4.0), also in the labelled set.
    results = model.predict([
        ("@DB_Bahn Ok jetzt hab ich es verstanden. Habe vorgestern erst die BahnCard gekauft. "
        "Wie kann ich diese stornieren? Kein Bedarf mehr an DB."),
        "Main-Weser-Bahn, sehr zu empfehlen für idyllische Aussicht. https://t.co/vwo1gyLTy7",
    ], "de")
    assert [r.label for r in results] == ["churn", "recommend"]


def test_results_are_labels_with_probabilities(model: IntentModel) -> None:
    data = read_labelled()
    texts = [t for t, lang in zip(data.texts, data.langs) if lang == "de"][:40]
    results = model.predict(texts, "de")
    assert all(isinstance(r, IntentResult) and r.label in LABELS for r in results)
    scores = np.array([r.score for r in results])
    assert ((scores > 1 / len(LABELS)) & (scores <= 1)).all()


def test_bad_input_gets_none_or_a_label_never_an_error(model: IntentModel) -> None:
    texts = ["", "   ", "😡😡😡", "https://t.co/abc http://x.y", "@user @DB_Bahn", "\ud800 kaputt \udfff Zug",
             "Ich kündige mein Abo. " * 50_000]
    results = model.predict(texts, "de")
    assert results[:5] == [None] * 5
    assert results[5] is not None and results[6] is not None
    assert model.predict([], "en") == []


def test_unsupported_language_gives_none(model: IntentModel) -> None:
    assert model.predict(["Nataka kununua simu mpya kesho"], "sw") == [None]
    assert model.languages == ("en", "de")


def test_version_changes_with_the_artefact(tmp_path: Path, model: IntentModel) -> None:
    copy = tmp_path / MODEL_PATH.name
    shutil.copy(MODEL_PATH, copy)
    assert IntentModel(copy).model_version == model.model_version
    weights = IntentWeights.load(MODEL_PATH)
    changed = tmp_path / "changed" / MODEL_PATH.name
    IntentWeights(weights.columns, weights.coef, weights.intercept + 0.01, weights.lexicon).save(changed)
    other = IntentModel(changed)
    assert other.model_version != model.model_version
    assert other.predict(["I want to order fooood @ChipotleTweets"], "en")[0] is not None


def test_missing_artefact_says_how_to_rebuild(tmp_path: Path) -> None:
    missing = IntentModel(tmp_path / "absent.npz")
    assert missing.model_version.startswith("linear.missing")
    with pytest.raises(ModelMissingError, match="nlp.train_intent"):
        missing.predict(["Der Zug ist schon wieder zu spät"], "de")


def test_artefact_from_another_lexicon_is_refused(tmp_path: Path) -> None:
    weights = IntentWeights.load(MODEL_PATH)
    stale = tmp_path / MODEL_PATH.name
    IntentWeights(weights.columns, weights.coef, weights.intercept, "00000000").save(stale)
    with pytest.raises(ModelMissingError, match="cue lexicon"):
        IntentModel(stale).predict(["Ich kündige meine BahnCard"], "de")
