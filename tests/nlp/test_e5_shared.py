"""The shared-pass entity engine: one fine-tuned e5 pass per post for sentiment and entities, EN and DE."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from nlp.e5_sentiment import FineTunedSentimentModel
from nlp.e5_shared import PREFIX, PieceTags, post_pieces, shared_head_path
from nlp.e5_torch import MAX_TOKENS
from nlp.entities import MODELS_DIR, EntityExtractor
from nlp.errors import ModelMissingError
from nlp.pipeline import Enricher
from nlp.records import PostText
from nlp.text import for_sentiment
from nlp.text_cache import CachedSentiment
from resonanz.settings import Brand

# Real posts: TWCS customer-support tweets (EN) and GermEval-2017 Bahn tweets (DE); see
# tests/fixtures/nlp/PROVENANCE.md and resonanz/sample.
EN_POST = "@115845 They sent the feckin' order to Germany! Some dozy driver is looking for an address in the wrong country! I'm so done with Amazon!"
DE_POST = "Schon wieder Verspätung in Frankfurt, die Deutsche Bahn kriegt es einfach nicht hin. https://t.co/abc @DB_Bahn"


@pytest.fixture(scope="module")
def sentiment() -> FineTunedSentimentModel:
    return FineTunedSentimentModel()


def test_pieces_are_the_sentiment_models_own(sentiment: FineTunedSentimentModel, en_tweets: list, de_tweets: list) -> None:
    tokenizer = sentiment._load()[0].tokenizer
    texts = [t for _, t in en_tweets + de_tweets] + [EN_POST, DE_POST, "tabs\tand\nnewlines  twice", "😂🔥 #Bahn"]
    # Characters the normalisation drops (seen in GermEval-2017 documents) and empty posts.
    texts += ["wie möglich.\ufeff -Article", "DB Bahn \u200b Ich habe", "Ende \ufeff", "", "   "]
    for text in texts:
        pieces, starts = post_pieces(tokenizer, text)
        assert pieces == tokenizer.encode(PREFIX + for_sentiment(text))[:MAX_TOKENS]
        assert len(starts) == len(pieces) and starts == sorted(starts)


def test_piece_offsets_point_into_the_post(sentiment: FineTunedSentimentModel) -> None:
    tokenizer = sentiment._load()[0].tokenizer
    _, starts = post_pieces(tokenizer, DE_POST)
    words = {start for start in starts if start >= 0}
    assert DE_POST.index("Frankfurt") in words and DE_POST.index("Deutsche") in words and DE_POST.index("Bahn ") in words
    # A link and a handle are normalised as a whole ("http", "@user"): all their pieces start at the word.
    assert starts[-1] == DE_POST.index("@DB_Bahn")


def test_a_token_takes_the_tag_of_the_piece_it_starts_in() -> None:
    found = PieceTags(np.array([7, 8, 9]), np.array([0, 6, 10]), ("B-ORG", "I-ORG", "O"))
    assert found.token_tags([0, 6, 8, 10, 12]) == ["B-ORG", "I-ORG", "I-ORG", "O", "O"]
    # Tags found on a retweet's repost key move onto the retweet's own pieces (offsets shift).
    moved = found.moved_to([1, 2, 7, 8, 9], [-1, 0, 12, 18, 22])
    assert moved is not None and moved.starts.tolist() == [12, 18, 22] and moved.tags == found.tags
    assert found.moved_to([1, 7, 8, 5], [-1, 0, 6, 10]) is None  # other pieces: no guess


def test_reposts_behind_the_text_cache_cost_no_extra_pass() -> None:
    # The product runs sentiment behind a text cache, which sends the model a retweet's repost
    # key ("RT @user:" dropped, handles and links normalised) once; entities still need no pass.
    model = FineTunedSentimentModel()
    retweet = "RT @zugfan: " + DE_POST
    posts = [PostText("x", "1", DE_POST, "de"), PostText("x", "2", retweet, "de"), PostText("x", "3", EN_POST, "en")]
    enricher = Enricher([], sentiment=CachedSentiment(model), ner_engine="shared")
    encoder = model._load()[0].encoder
    passes: list[int] = []
    original = encoder.layer_states
    encoder.layer_states = lambda ids, mask, wanted: passes.append(ids.shape[0]) or original(ids, mask, wanted)
    try:
        out = enricher.enrich(posts)
    finally:
        del encoder.layer_states
    assert sum(passes) == 2  # the DE original and its retweet share one text; EN is the other
    frankfurt = [(e.post_id, e.start_char) for e in out.entities if e.text == "Frankfurt"]
    assert frankfurt == [("1", DE_POST.index("Frankfurt")), ("2", retweet.index("Frankfurt"))]


def test_a_post_written_as_another_posts_repost_key_keeps_its_own_offsets() -> None:
    # The cache asks the model about the first post as written, so the heads keep its tags with its
    # offsets; a post that is literally its normalised form ("@user" for "@115845", 2 characters
    # shorter before "Germany") shares the cache answer and must get its entities at its own offsets.
    literal = for_sentiment(EN_POST)
    assert literal != EN_POST and literal.index("Germany") != EN_POST.index("Germany")
    enricher = Enricher([], sentiment=CachedSentiment(FineTunedSentimentModel()), ner_engine="shared")
    out = enricher.enrich([PostText("x", "1", EN_POST, "en"), PostText("x", "2", literal, "en")])
    found = {(e.post_id, e.text, e.label, e.start_char) for e in out.entities}
    assert ("1", "Germany", "LOC", EN_POST.index("Germany")) in found
    assert ("2", "Germany", "LOC", literal.index("Germany")) in found


@pytest.mark.parametrize(("lang", "text", "expected"), [
    ("en", EN_POST, ("Germany", "LOC")),
    ("de", DE_POST, ("Frankfurt", "LOC")),
])
def test_entities_on_real_posts(sentiment: FineTunedSentimentModel, lang: str, text: str, expected: tuple[str, str]) -> None:
    (spans,) = EntityExtractor([], engine="shared", sentiment=sentiment).extract([text], lang)
    assert expected in {(e.text, e.label) for e in spans}
    assert all(text[e.start_char : e.end_char] == e.text for e in spans)


def test_one_encoder_pass_per_post_for_both_tasks(demo_brands: list[Brand]) -> None:
    posts = [PostText("x", "1", EN_POST, "en"), PostText("x", "2", DE_POST, "de")]
    shared = Enricher(demo_brands, ner_engine="shared")
    separate = Enricher(demo_brands, ner_engine="e5")
    model = shared._sentiment
    assert isinstance(model, FineTunedSentimentModel) and model.entity_heads is not None
    encoder = model._load()[0].encoder
    passes: list[int] = []
    original = encoder.layer_states
    encoder.layer_states = lambda ids, mask, wanted: passes.append(ids.shape[0]) or original(ids, mask, wanted)
    try:
        # Without brands no clause is re-judged, so the post-level batch is the only pass.
        out = Enricher([], sentiment=model, ner_engine="shared").enrich(posts)
    finally:
        del encoder.layer_states  # back to the class's method
    assert sum(passes) == len(posts)
    by_post = {(e.post_id, e.text, e.label) for e in out.entities}
    assert ("1", "Germany", "LOC") in by_post and ("2", "Frankfurt", "LOC") in by_post
    # The sentiment answers are the same as without sharing.
    def labels(enrichment: object) -> list:
        return [(a.post_id, a.label, round(a.score, 5)) for a in enrichment.annotations if a.task == "sentiment"]
    assert labels(shared.enrich(posts)) == labels(separate.enrich(posts))
    entities = dict(shared.model_versions())["entities"]
    assert "en:e5-shared-ner/en@" in entities and "de:e5-shared-ner/de+brand-ruler@" in entities


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_fast_tagging_path_gives_the_training_paths_answers(
    sentiment: FineTunedSentimentModel, en_tweets: list, de_tweets: list, lang: str
) -> None:
    import torch

    from nlp.e5_shared import SHARED_LAYERS, SharedEntityHeads
    from nlp.e5_torch import native_bf16, pad_batch

    model = sentiment._load()[0]
    tweets = [text for _, text in (en_tweets if lang == "en" else de_tweets)[:48]]  # lengths 5 to 60 pieces
    pieces = [post_pieces(model.tokenizer, text)[0] for text in tweets]
    ids, mask = pad_batch(model.tokenizer, pieces)
    heads = SharedEntityHeads(MODELS_DIR, sentiment.path)
    tagger, _ = heads.head(lang)
    lengths = mask.sum(1) - 2
    real = torch.arange(ids.shape[1] - 2)[None, :] < lengths[:, None]
    with torch.inference_mode():
        states = torch.cat(model.encoder.layer_states(ids, mask, SHARED_LAYERS), -1)
        packed = tagger(states[:, 1:-1], lengths)  # what training runs: a packed sequence
        fast = tagger.tag(states, lengths)  # oneDNN's padded LSTM, each row reversed in place
        assert torch.allclose(fast[real], packed[real], atol=1e-4)
        assert torch.equal(fast.argmax(-1)[real], packed.argmax(-1)[real])
        if native_bf16():  # below float32 the heads multiply in bfloat16 (SharedEntityHeads.bf16)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                low = tagger.tag(states, lengths).float()
            agree = (low.argmax(-1) == packed.argmax(-1))[real].float().mean().item()
            assert agree >= 0.99  # measured 1.000 (EN) and 0.999 (DE) of the pieces


def test_a_missing_head_says_how_to_rebuild(tmp_path: Path, sentiment: FineTunedSentimentModel) -> None:
    extractor = EntityExtractor([], models_dir=tmp_path, engine="shared", sentiment=FineTunedSentimentModel())
    assert "+missing+" in extractor.model("de")[1]
    with pytest.raises(ModelMissingError, match="nlp.train_e5_shared_ner"):
        extractor.extract(["Berlin ist schön"], "de")


def test_a_head_trained_on_another_sentiment_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ner_e5").mkdir()
    shutil.copyfile(shared_head_path(MODELS_DIR, "de"), shared_head_path(tmp_path, "de"))
    other_sentiment = tmp_path / "sentiment_e5ft.npz"
    other_sentiment.write_bytes(b"not the encoder the head was trained on")
    extractor = EntityExtractor([], models_dir=tmp_path, engine="shared", sentiment=FineTunedSentimentModel(other_sentiment))
    with pytest.raises(ModelMissingError, match="another sentiment model"):
        extractor.extract(["Berlin ist schön"], "de")
