"""int8 e5 passes ([nlp] e5_precision = "int8"): fixed calibrated ranges, so a post's answer does
not depend on its batch; ranges that do not belong to the adapter are refused with what to do."""

from __future__ import annotations

import json
import platform
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from nlp.calibrate_int8 import write_ranges
from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
from nlp.e5_torch import int8_kernels, int8_ranges_path, load_adapter_file, read_int8_ranges
from nlp.entities import EntityExtractor
from nlp.errors import ModelMissingError

LINEAR_LAYERS = 12 * 6  # q, k, v, attention out, FFN in, FFN out per layer


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


def test_the_bundled_ranges_cover_every_layer_of_their_adapter() -> None:
    ranges = read_int8_ranges(FINETUNED_PATH)
    assert len(ranges) == LINEAR_LAYERS
    assert all(low < 0 < high for low, high in ranges.values())


@pytest.fixture()
def adapter_copy(tmp_path: Path) -> Path:
    copy = tmp_path / FINETUNED_PATH.name
    shutil.copy(FINETUNED_PATH, copy)
    return copy


def test_missing_or_stale_ranges_are_refused_with_what_to_do(adapter_copy: Path) -> None:
    with pytest.raises(ModelMissingError, match="needs activation ranges.*nlp.calibrate_int8"):
        load_adapter_file(adapter_copy, "int8")
    stale = json.loads(int8_ranges_path(FINETUNED_PATH).read_text(encoding="utf-8")) | {"adapter_sha256": "0" * 16}
    int8_ranges_path(adapter_copy).write_text(json.dumps(stale), encoding="utf-8")
    with pytest.raises(ModelMissingError, match="measured for another version"):
        load_adapter_file(adapter_copy, "int8")


def test_calibration_writes_ranges_the_adapter_loads_with(
    adapter_copy: Path, en_tweets: list[tuple[str, str]], de_tweets: list[tuple[str, str]],
) -> None:
    texts = [text for _, text in en_tweets[:16] + de_tweets[:16]]
    written = write_ranges(adapter_copy, texts, "32 test tweets")
    stored = json.loads(written.read_text(encoding="utf-8"))
    assert stored["adapter"] == adapter_copy.name and stored["calibration"] == "32 test tweets"
    ranges = read_int8_ranges(adapter_copy)
    assert len(ranges) == LINEAR_LAYERS
    # q, k and v read the same states, so they see the same range.
    assert ranges["layers.3.q"] == ranges["layers.3.k"] == ranges["layers.3.v"]
    model = FineTunedSentimentModel(path=adapter_copy, precision="int8")
    reference = FineTunedSentimentModel(precision="fp32")
    # Ranges from 32 tweets still keep most answers on 150 others (the bundled ranges: 96% on 300).
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
