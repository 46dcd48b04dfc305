"""bfloat16 e5 passes ([nlp] e5_precision): the same answers as float32 on real EN and DE posts,
recorded in every model version, chosen from the configuration."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("torch")

from nlp.e5_sentiment import FineTunedSentimentModel
from nlp.e5_torch import native_bf16, resolve_precision
from nlp.entities import EntityExtractor
from nlp.pipeline import build_enricher
from resonanz.settings import NlpSettings

SLICE = 150


@pytest.fixture(scope="module")
def models() -> dict[str, FineTunedSentimentModel]:
    return {precision: FineTunedSentimentModel(precision=precision) for precision in ("fp32", "bf16")}


def test_auto_follows_the_cpu_and_unknown_values_are_refused() -> None:
    assert resolve_precision("auto") == ("bf16" if native_bf16() else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="e5_precision must be one of auto, fp32, bf16"):
        resolve_precision("fp16")
    with pytest.raises(ValidationError):
        NlpSettings(e5_precision="int8")


@pytest.mark.parametrize("lang", ["en", "de"])
def test_bfloat16_gives_the_float32_answers_on_real_tweets(
    lang: str, models: dict[str, FineTunedSentimentModel],
    en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:SLICE]]
    full, half = (models[p].probabilities(texts, lang) for p in ("fp32", "bf16"))
    # Measured on these slices: 1 (EN) and 0 (DE) of 150 labels differ; probabilities differ by
    # 0.0007 on average, 0.009 at most.
    assert np.mean(full.argmax(axis=1) == half.argmax(axis=1)) >= 0.97
    assert np.abs(full - half).mean() < 0.005


@pytest.mark.parametrize("lang", ["en", "de"])
def test_shared_entities_in_bfloat16_match_float32(
    lang: str, models: dict[str, FineTunedSentimentModel],
    en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:SLICE]]
    found = {
        p: EntityExtractor([], engine="shared", sentiment=FineTunedSentimentModel(precision=p)).extract(texts, lang)
        for p in ("fp32", "bf16")
    }
    assert sum(map(len, found["fp32"])) > 50  # measured 265 (EN) and 101 (DE) entities to agree on
    same = np.mean([a == b for a, b in zip(found["fp32"], found["bf16"])])
    assert same >= 0.95  # measured 0.993 (EN) and 0.980 (DE) of posts with the same entities


def test_precision_is_part_of_every_model_version(models: dict[str, FineTunedSentimentModel]) -> None:
    assert models["bf16"].model_version == models["fp32"].model_version + "+bf16"
    assert models["bf16"].weights_version == models["fp32"].weights_version
    for engine in ("shared", "e5"):
        versions = {p: EntityExtractor([], engine=engine, sentiment=models[p], precision=p).model("de")[1] for p in ("fp32", "bf16")}
        assert "+bf16" in versions["bf16"] and "bf16" not in versions["fp32"]


def test_the_configured_precision_reaches_sentiment_and_entities() -> None:
    for precision in ("fp32", "bf16"):
        versions = build_enricher([], NlpSettings(e5_precision=precision)).model_versions()
        tagged = [v for k, v in versions.items() if k.startswith(("sentiment", "entities"))]
        assert tagged and all(("+bf16" in v) == (precision == "bf16") for v in tagged), versions
