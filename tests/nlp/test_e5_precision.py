"""bfloat16 and int8 e5 passes ([nlp] e5_precision): the float32 answers on real EN and DE posts,
recorded in every model version, chosen from the configuration."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

pytest.importorskip("torch")

from nlp.e5_sentiment import FineTunedSentimentModel
from nlp.e5_torch import native_bf16, native_int8, resolve_precision
from nlp.entities import EntityExtractor
from nlp.pipeline import build_enricher
from resonanz.settings import NlpSettings

SLICE = 150
FAST = ("bf16", "int8")


@pytest.fixture(scope="module")
def models() -> dict[str, FineTunedSentimentModel]:
    return {precision: FineTunedSentimentModel(precision=precision) for precision in ("fp32", *FAST)}


def test_auto_follows_the_cpu_and_unknown_values_are_refused() -> None:
    assert resolve_precision("auto") == ("int8" if native_int8() else "bf16" if native_bf16() else "fp32")
    assert [resolve_precision(p) for p in ("fp32", *FAST)] == ["fp32", *FAST]
    with pytest.raises(ValueError, match="e5_precision must be one of auto, fp32, bf16, int8"):
        resolve_precision("fp16")
    with pytest.raises(ValidationError):
        NlpSettings(e5_precision="fp16")


@pytest.mark.parametrize("precision", FAST)
@pytest.mark.parametrize("lang", ["en", "de"])
def test_faster_precisions_give_the_float32_answers_on_real_tweets(
    lang: str, precision: str, models: dict[str, FineTunedSentimentModel],
    en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:SLICE]]
    full, fast = (models[p].probabilities(texts, lang) for p in ("fp32", precision))
    # Measured on these slices, bf16: no label differs, probabilities by 0.0007 on average; int8
    # (SmoothQuant): 1 (EN) and 1 (DE) of 150 labels differ, probabilities by 0.006 and 0.009
    # (before smoothing: 8 and 12 labels, 0.021 and 0.029). Full test sets: bench/results/precision.json.
    floors = {"bf16": (0.97, 0.005), "int8": (0.96, 0.015)}[precision]
    assert np.mean(full.argmax(axis=1) == fast.argmax(axis=1)) >= floors[0]
    assert np.abs(full - fast).mean() < floors[1]


@pytest.mark.parametrize("precision", FAST)
@pytest.mark.parametrize("lang", ["en", "de"])
def test_shared_entities_in_faster_precisions_match_float32(
    lang: str, precision: str, models: dict[str, FineTunedSentimentModel],
    en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:SLICE]]
    found = {
        p: EntityExtractor([], engine="shared", sentiment=FineTunedSentimentModel(precision=p)).extract(texts, lang)
        for p in ("fp32", precision)
    }
    assert sum(map(len, found["fp32"])) > 50  # measured 250 (EN) and 144 (DE) entities to agree on
    same = np.mean([a == b for a, b in zip(found["fp32"], found[precision])])
    # Measured share of posts with the same entities, bf16: 0.993 (EN), 1.0 (DE); int8: 0.947, 0.960
    # (before SmoothQuant 0.840 and 0.747).
    assert same >= {"bf16": 0.95, "int8": 0.90}[precision]


def test_precision_is_part_of_every_model_version(models: dict[str, FineTunedSentimentModel]) -> None:
    assert models["bf16"].model_version == models["fp32"].model_version + "+bf16"
    # int8 also names its activation ranges (tests/nlp/test_e5_int8.py changes them).
    assert models["int8"].model_version.startswith(models["fp32"].model_version + "+int8.")
    for fast in FAST:
        assert models[fast].weights_version == models["fp32"].weights_version
    for engine in ("shared", "e5"):
        versions = {p: EntityExtractor([], engine=engine, sentiment=models[p], precision=p).model("de")[1] for p in models}
        for fast in FAST:
            assert f"+{fast}" in versions[fast] and fast not in versions["fp32"]


def test_the_configured_precision_reaches_sentiment_and_entities() -> None:
    for precision in ("fp32", *FAST):
        versions = build_enricher([], NlpSettings(e5_precision=precision)).model_versions()
        tagged = [v for k, v in versions.items() if k.startswith(("sentiment", "entities"))]
        suffixes = [[fast for fast in FAST if f"+{fast}" in v] for v in tagged]
        assert tagged and all(found == ([] if precision == "fp32" else [precision]) for found in suffixes), versions
