"""Purchase intent with the sentiment encoder's pooled states (nlp/models/intent/intent_e5states.npz),
on real EN and DE posts: held-out quality, reuse of the sentiment pass, versions, refusals, and the
trainer's folded scaling."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel, PooledStates
from nlp.errors import ModelMissingError
from nlp.intent import MODEL_NAME, MODEL_PATH, STATES_MODEL_NAME, STATES_MODEL_PATH, IntentFeatures, IntentModel, IntentWeights
from nlp.pipeline import Enricher, build_enricher
from nlp.records import PostText
from nlp.train_intent import (
    STATE_SCALE,
    dense_coef,
    encoder_states,
    featurise,
    fit,
    held_out_fold,
    read_labelled,
    scaled_states,
    train_intent,
    train_states_weights,
    with_states,
)
from resonanz.settings import NlpSettings

# A little under fold 0 of the seed-13 split with the states (fitted on the other four folds, float32
# states): measured EN 0.610 (0.580 without states), DE 0.340 (0.371 without: one fold of 110 German
# posts; over four fold splits German gains 0.007 on average, see the model card).
EN_HELD_OUT_FLOOR = 0.60
DE_HELD_OUT_FLOOR = 0.31

# Real posts (TWCS, CC BY-NC-SA 4.0; GermEval-2017, CC BY 4.0), also in the labelled set.
EN_POSTS = [
    "Two fake items in one day. Time to cancel my Amazon Prime membership. @AmazonHelp",
    ("@AmazonHelp 3 different people have given 3 different answers and I still don't have my order. "
     "Says delivered Saturday, was not, I was home all day"),
]
DE_POSTS = [
    ("@DB_Bahn Ok jetzt hab ich es verstanden. Habe vorgestern erst die BahnCard gekauft. "
     "Wie kann ich diese stornieren? Kein Bedarf mehr an DB."),
    "Main-Weser-Bahn, sehr zu empfehlen für idyllische Aussicht. https://t.co/vwo1gyLTy7",
]


@pytest.fixture(scope="module")
def labelled():
    return read_labelled()


@pytest.fixture(scope="module")
def states(labelled) -> np.ndarray:
    return encoder_states(list(labelled.texts), FINETUNED_PATH)


@pytest.fixture(scope="module")
def sentiment() -> FineTunedSentimentModel:
    return FineTunedSentimentModel(precision="auto")


def test_held_out_quality_floor_with_states_en_and_de(labelled, states: np.ndarray) -> None:
    held_out = held_out_fold(labelled, states=states)
    assert held_out["en"]["macro_f1"] >= EN_HELD_OUT_FLOOR
    assert held_out["de"]["macro_f1"] >= DE_HELD_OUT_FLOOR


def test_stored_weights_equal_the_fitted_model_on_scaled_states(labelled, states: np.ndarray) -> None:
    # The trainer folds standardisation and STATE_SCALE into the state weights and the intercept:
    # the stored model must score exactly what the fitted one scores on the scaled features.
    weights = train_states_weights(labelled, states, 13, FINETUNED_PATH)
    x = featurise(labelled, IntentFeatures())
    scaled = scaled_states(states)[0]
    clf = fit(with_states(x, scaled), labelled.labels, 13)
    coef, intercept = dense_coef(clf)
    expected = np.asarray(with_states(x, scaled) @ coef.T) + intercept
    assert np.allclose(weights.logits(x, states), expected, atol=1e-3)
    assert STATE_SCALE == 0.05 and weights.state_coef.shape == (6, states.shape[1])


def test_real_english_and_german_posts(sentiment: FineTunedSentimentModel) -> None:
    model = IntentModel(states=sentiment)
    assert model.model_path == STATES_MODEL_PATH and model.model_name == STATES_MODEL_NAME
    assert [r.label for r in model.predict(EN_POSTS, "en")] == ["churn", "complaint"]
    assert [r.label for r in model.predict(DE_POSTS, "de")] == ["churn", "recommend"]


def test_the_sentiment_pass_hands_over_its_states(sentiment: FineTunedSentimentModel) -> None:
    sentiment.pooled_states = PooledStates()
    sentiment.predict(EN_POSTS, "en")
    kept = sentiment.pooled_states
    assert all(kept.lookup("en", text) is not None for text in EN_POSTS)
    before = len(kept._kept)
    handed = sentiment.states_for(EN_POSTS, "en")
    assert len(kept._kept) == before  # read from the sentiment pass, nothing encoded again
    # A retweet reads as its original; a post the sentiment step did not see is encoded once.
    retweet = "RT @AmazonHelp: " + EN_POSTS[0]
    assert np.array_equal(sentiment.states_for([retweet], "en")[0], handed[0])
    fresh = sentiment.states_for(["Ich will mir morgen eine neue BahnCard 100 kaufen"], "de")
    assert fresh.shape == (1, handed.shape[1]) and np.abs(fresh).sum() > 0
    assert len(kept._kept) > before


def test_the_enricher_picks_the_states_weights_only_where_the_pass_runs_on_every_post(demo_brands) -> None:
    posts = [PostText("x", "en1", EN_POSTS[0], "en"), PostText("x", "de1", DE_POSTS[0], "de")]
    default = Enricher(demo_brands)
    rows = [a for a in default.enrich(posts).annotations if a.task == "intent"]
    assert {a.model_name for a in rows} == {STATES_MODEL_NAME}
    assert [a.label for a in rows] == ["churn", "churn"]
    sentiment_version = next(a.model_version for a in default.enrich(posts).annotations if a.task == "sentiment")
    assert rows[0].model_version.endswith("+states." + sentiment_version)
    # brand_posts scope: intent runs on every post but the encoder does not, so the n-gram weights run.
    scoped = Enricher(demo_brands, model_scope="brand_posts")
    assert scoped.model_versions()["intent"].startswith(MODEL_NAME + "@linear.")
    assert "+states." not in scoped.model_versions()["intent"]


def test_intent_mode_ngrams_keeps_the_ngram_weights(demo_brands) -> None:
    # For installations that would rather not re-read their stored posts for the new intent model.
    chosen = build_enricher(demo_brands, NlpSettings(intent_mode="ngrams")).model_versions()["intent"]
    assert chosen == f"{MODEL_NAME}@{IntentModel().model_version}"
    assert build_enricher(demo_brands, NlpSettings()).model_versions()["intent"].startswith(STATES_MODEL_NAME + "@")
    with pytest.raises(ValueError, match="intent_mode must be one of states, ngrams"):
        Enricher(demo_brands, intent_mode="embeddings")
    with pytest.raises(ValidationError):
        NlpSettings(intent_mode="embeddings")


def test_weights_from_another_sentiment_model_are_refused(tmp_path: Path, sentiment: FineTunedSentimentModel) -> None:
    weights = IntentWeights.load(STATES_MODEL_PATH)
    stale = tmp_path / STATES_MODEL_PATH.name
    IntentWeights(weights.columns, weights.coef, weights.intercept, weights.lexicon, weights.state_coef, "000000000000").save(stale)
    with pytest.raises(ModelMissingError, match="another sentiment model"):
        IntentModel(stale, states=sentiment).predict(EN_POSTS[:1], "en")
    with pytest.raises(ModelMissingError, match="is missing; rebuild it with `python -m nlp.train_intent`"):
        IntentModel(tmp_path / "absent.npz", states=sentiment).predict(EN_POSTS[:1], "en")
    ngram_only = tmp_path / "ngrams.npz"
    shutil.copy(STATES_MODEL_PATH.with_name("intent_linear.npz"), ngram_only)
    with pytest.raises(ModelMissingError, match="no weights for the sentiment encoder's states"):
        IntentModel(ngram_only, states=sentiment).predict(DE_POSTS[:1], "de")


def test_pooled_states_stay_bounded() -> None:
    kept = PooledStates(max_entries=4)
    kept.observe("de", [f"Post Nummer {i}" for i in range(10)], np.eye(10, 384, dtype=np.float32))
    assert len(kept._kept) <= 4
    assert kept.lookup("de", "Post Nummer 9") is not None and kept.lookup("de", "Post Nummer 0") is None


def test_the_trainer_rebuilds_both_bundled_weights(tmp_path: Path) -> None:
    # `resonanz train intent` (without its cross-validation) lands on the bundled weights, fitted on the
    # bundled sentiment file. Both fits run to nlp.train_sentiment.SOLVER_TOL, so they reach the optimum
    # whatever the CPU: float32 kernels differ in the last bits between CPUs, and states perturbed by 1e-6
    # (relative) moved the states weights by 1.4e-5 here (by 4e-4 at 1e-4). At sklearn's default tolerance
    # an Intel Xeon's fit and an AMD EPYC's were 0.05 apart.
    metrics = train_intent(tmp_path, None, cross_validated=False)
    assert metrics["states_artefact"]["sentiment_file"] == str(FINETUNED_PATH)
    for name in (MODEL_PATH.name, STATES_MODEL_PATH.name):
        rebuilt, bundled = IntentWeights.load(tmp_path / name), IntentWeights.load(STATES_MODEL_PATH.with_name(name))
        assert np.array_equal(rebuilt.columns, bundled.columns)
        assert np.allclose(rebuilt.coef, bundled.coef, atol=1e-3) and np.allclose(rebuilt.intercept, bundled.intercept, atol=1e-3)
        assert rebuilt.sentiment == bundled.sentiment and rebuilt.lexicon == bundled.lexicon
        if bundled.state_coef is not None:
            assert np.allclose(rebuilt.state_coef, bundled.state_coef, atol=1e-3)
