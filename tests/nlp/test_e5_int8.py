"""int8 e5 passes ([nlp] e5_precision = "int8"): fixed calibrated ranges, so a post's answer does
not depend on its batch; SmoothQuant keeps the float32 answers; ranges that do not belong to the
adapter are refused with what to do."""

from __future__ import annotations

import logging
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from nlp.calibrate_int8 import write_ranges
from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
from nlp.e5_torch import (
    int8_kernels,
    int8_ranges_path,
    load_adapter_file,
    native_bf16,
    native_int8,
    read_int8_ranges,
    resolve_precision,
)
from nlp.entities import EntityExtractor
from nlp.errors import ModelMissingError

LINEAR_LAYERS = 12 * 4  # q, k and v as one, attention out, FFN in, FFN out per layer


@pytest.fixture(scope="module")
def int8_model() -> FineTunedSentimentModel:
    return FineTunedSentimentModel(precision="int8")


@pytest.mark.parametrize("lang", ["en", "de"])
def test_an_answer_does_not_depend_on_the_batch(
    lang: str, int8_model: FineTunedSentimentModel, en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:120]]
    alone = int8_model.probabilities(texts[:20], lang)
    # The same 20 posts at the end of a reversed batch of 120: other neighbours, other padding.
    mixed = int8_model.probabilities(texts[::-1], lang)[::-1][:20]
    assert np.array_equal(alone.argmax(axis=1), mixed.argmax(axis=1))
    np.testing.assert_allclose(alone, mixed, atol=1e-5)


def test_the_bundled_ranges_cover_every_channel_of_every_layer_of_their_adapter() -> None:
    ranges = read_int8_ranges(FINETUNED_PATH)
    assert len(ranges) == LINEAR_LAYERS
    encoder = load_adapter_file(FINETUNED_PATH).encoder
    encoder.fuse_qkv()  # as int8 runs it (and as nlp.calibrate_int8 measures it)
    widths = {name: module.weight.shape[1] for name, module in encoder.linear_layers()}
    assert ranges.keys() == widths.keys()
    for name, (low, high) in ranges.items():
        assert low.shape == high.shape == (widths[name],) and (low <= high).all(), name
    # The outliers SmoothQuant is for: in the FFN's input some channels reach 8-14x as far as the
    # median channel (measured in layers 0, 5 and 11).
    reach = np.maximum(np.abs(ranges["layers.5.fi"][0]), np.abs(ranges["layers.5.fi"][1]))
    assert reach.max() > 5 * np.median(reach)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_smoothing_keeps_the_float32_answers(
    lang: str, int8_model: FineTunedSentimentModel, en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in (en_tweets if lang == "en" else de_tweets)]
    reference = FineTunedSentimentModel(precision="fp32").probabilities(texts, lang)
    found = int8_model.probabilities(texts, lang)
    # Measured on these 300 tweets: 99.7% (EN) and 99.0% (DE) of labels as float32's, probabilities
    # 0.007 and 0.008 apart on average; before smoothing (one range per layer) 96% and 94%.
    assert np.mean(found.argmax(axis=1) == reference.argmax(axis=1)) >= 0.97
    assert np.abs(found - reference).mean() < 0.015


@pytest.fixture()
def adapter_copy(tmp_path: Path) -> Path:
    copy = tmp_path / FINETUNED_PATH.name
    shutil.copy(FINETUNED_PATH, copy)
    return copy


def test_missing_or_stale_ranges_are_refused_with_what_to_do(adapter_copy: Path) -> None:
    with pytest.raises(ModelMissingError, match="needs activation ranges.*nlp.calibrate_int8"):
        load_adapter_file(adapter_copy, "int8")
    with np.load(int8_ranges_path(FINETUNED_PATH)) as bundled:
        stale = {name: bundled[name] for name in bundled.files} | {"adapter_sha256": np.array("0" * 16)}
    np.savez(int8_ranges_path(adapter_copy), **stale)
    with pytest.raises(ModelMissingError, match="measured for another version"):
        load_adapter_file(adapter_copy, "int8")


def test_auto_runs_an_adapter_without_its_ranges_in_a_float_precision(adapter_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    fallback = "bf16" if native_bf16() else "fp32"
    assert resolve_precision("auto", FINETUNED_PATH) == ("int8" if native_int8() else fallback)
    with caplog.at_level(logging.WARNING, logger="nlp.e5_torch"):
        assert resolve_precision("auto", adapter_copy) == fallback
    if native_int8():  # only a CPU that would have run int8 has anything to say
        assert "nlp.calibrate_int8" in caplog.text
    assert FineTunedSentimentModel(path=adapter_copy).precision == fallback


def test_calibration_writes_ranges_the_adapter_loads_with(
    adapter_copy: Path, en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in en_tweets[:16] + de_tweets[:16]]
    written = write_ranges(adapter_copy, texts, "32 test tweets")
    with np.load(written) as stored:
        assert str(stored["adapter"]) == adapter_copy.name and str(stored["calibration"]) == "32 test tweets"
    ranges = read_int8_ranges(adapter_copy)
    assert len(ranges) == LINEAR_LAYERS
    assert ranges["layers.3.fo"][0].shape == (1536,)  # the FFN's output layer reads its 1,536 channels
    model = FineTunedSentimentModel(path=adapter_copy, precision="int8")
    reference = FineTunedSentimentModel(precision="fp32")
    # Ranges from 32 tweets still keep most answers on 150 others (the bundled ranges: 99.7% on 300).
    scored = [text for _, text in en_tweets[16:166]]
    agree = np.mean(model.probabilities(scored, "en").argmax(axis=1) == reference.probabilities(scored, "en").argmax(axis=1))
    assert agree >= 0.9
    # Other ranges give other answers, so they give another version: the next run re-enriches.
    bundled = FineTunedSentimentModel(precision="int8")
    assert model.weights_version == bundled.weights_version and model.model_version != bundled.model_version
    assert EntityExtractor([], engine="shared", sentiment=model).model("de")[1] != \
        EntityExtractor([], engine="shared", sentiment=bundled).model("de")[1]


def test_the_int8_kernels_are_found_on_x86() -> None:
    # Elsewhere "int8" stops with a message that names "auto" instead of failing in a kernel call.
    if platform.machine().lower() in ("x86_64", "amd64"):
        assert int8_kernels()
