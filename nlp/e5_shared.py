"""Entities from the sentiment model's own encoder pass: one e5 pass per post for both tasks.

The default engines run e5-small twice per post, once fine-tuned for sentiment and once per
language for entities, and those two passes are nearly all of enrich's time. With
`ner_engine = "shared"`, the fine-tuned *sentiment* encoder's token states (layers 4, 6, 8, 10
and 12) feed a small per-language tagger instead: a projection, one bidirectional LSTM and a
BIO layer over the word pieces (`nlp/models/ner_e5/shared_{de,en}.npz`, built by
`python -m nlp.train_e5_shared_ner` on the same splits as the other NER engines). The
sentiment model calls `SharedEntityHeads.observe` on every batch it encodes, the heads tag the
pieces at once, and the entity step reads those tags per text: no second pass. Only the tags
are kept (a few bytes per piece), for the most recent texts.

A post's pieces are the sentiment model's own (e5's "passage: " prefix, links as `http`,
handles as `@user`), with the character offset in the post where each piece starts, so a
spaCy token takes the tag of the piece its first character falls in.
"""

from __future__ import annotations

import hashlib
import re
from bisect import bisect_right
from collections import OrderedDict
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np

from nlp.e5_torch import MAX_TOKENS, Tokenizer, native_bf16, require_torch
from nlp.errors import ModelMissingError
from nlp.text import HANDLE_RE, MAX_CHARS, URL_RE, repost_key

SHARED_LAYERS = (4, 6, 8, 10, 12)  # ascending; the last is the one sentiment pools
HIDDEN = 384
PROJECTION, LSTM_HIDDEN = 256, 128
PREFIX = "passage: "  # e5's prefix for text that is not a search query
KEPT_TEXTS = 20_000  # tagged texts remembered between the sentiment and the entity step (~0.5 KB each)
WORD_RE = re.compile(r"\S+")
PREFIX_START = -1
REPOST = "repost"  # marks tags kept under a repost key (SharedEntityHeads._kept)


def shared_head_path(models_dir: Path, lang: str) -> Path:
    """Return where the shared-pass entity head for `lang` lives under a models folder."""
    return models_dir / "ner_e5" / f"shared_{lang}.npz"


def post_pieces(tokenizer: Tokenizer, text: str) -> tuple[list[int], list[int]]:
    """Return the sentiment model's pieces for `text` and where in `text` each piece starts.

    The pieces equal `tokenizer.encode("passage: " + for_sentiment(text))`: each whitespace
    word is normalised on its own (a link becomes `http`, a handle `@user`). Prefix pieces start
    at -1; the pieces of a word that normalising changed all start where the word does.
    """
    words = list(WORD_RE.finditer(text[:MAX_CHARS]))
    pieces = tokenizer.encode(PREFIX if not words else PREFIX.strip())
    starts = [PREFIX_START] * len(pieces)
    for number, match in enumerate(words, 1):
        word = match.group()
        normalised = HANDLE_RE.sub("@user", URL_RE.sub("http", word))
        ids = tokenizer.encode(normalised, ends_text=number == len(words))
        lengths = tokenizer.piece_lengths(ids)
        if normalised == word and sum(lengths) == len(word):
            starts.extend(accumulate(lengths[:-1], initial=match.start()))
        else:
            starts.extend([match.start()] * len(ids))
        pieces.extend(ids)
    return pieces[:MAX_TOKENS], starts[:MAX_TOKENS]


def build_piece_tagger(n_tags: int) -> Any:
    """Return the head: projection of the layer states, a BiLSTM over the pieces, BIO logits."""
    torch = require_torch()
    nn = torch.nn

    class PieceTagger(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.drop = nn.Dropout(0.3)
            self.proj = nn.Linear(HIDDEN * len(SHARED_LAYERS), PROJECTION)
            self.lstm = nn.LSTM(PROJECTION, LSTM_HIDDEN, batch_first=True, bidirectional=True)
            self.out = nn.Linear(2 * LSTM_HIDDEN + PROJECTION, n_tags)

        def forward(self, states: Any, lengths: Any) -> Any:
            """Return BIO logits (batch, pieces, tags) for layer states (batch, pieces, 1920)."""
            projected = nn.functional.gelu(self.proj(self.drop(states)))
            packed = nn.utils.rnn.pack_padded_sequence(projected, lengths, batch_first=True, enforce_sorted=False)
            context, _ = self.lstm(packed)
            context, _ = nn.utils.rnn.pad_packed_sequence(context, batch_first=True, total_length=states.shape[1])
            return self.out(self.drop(torch.cat([context, projected], -1)))

        def tag(self, states: Any, lengths: Any) -> Any:
            """Return the logits `forward` gives on the pieces (inference only), for states
            (batch, pieces + 2, 1920) that still hold <s> and </s>, and the piece counts `lengths`.

            Same numbers, 1.3x as fast (measured on the bench.enrich mix): a packed sequence sends
            the LSTM down PyTorch's step-by-step path, a padded one to oneDNN's fused kernel. A
            right-padded row is read correctly left to right; for the right-to-left direction each
            row is reversed within its length first. The projection reads the contiguous states
            and the two end positions are dropped after it, which copies 256 columns, not 1920.
            """
            projected = nn.functional.gelu(self.proj(states))[:, 1:-1]
            ahead = self._one_direction(projected, "")
            flip = reversed_positions(lengths, projected.shape[1])
            behind = self._one_direction(projected.gather(1, flip.expand(-1, -1, projected.shape[2])), "_reverse")
            behind = behind.gather(1, flip.expand(-1, -1, behind.shape[2]))
            return self.out(torch.cat([ahead, behind, projected], -1))

        def _one_direction(self, x: Any, suffix: str) -> Any:
            """Run one direction of the bidirectional LSTM (weights named with `suffix`) over padded x."""
            weights = [getattr(self.lstm, f"{name}_l0{suffix}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            start = x.new_zeros(1, x.shape[0], LSTM_HIDDEN)
            # torch.lstm is what nn.LSTM calls: input, (h0, c0), weights, has_biases, layers,
            # dropout, train, bidirectional, batch_first.
            return torch.lstm(x, (start, start), weights, True, 1, 0.0, False, False, True)[0]

    return PieceTagger()


def reversed_positions(lengths: Any, width: int) -> Any:
    """Return (batch, width, 1) indices that reverse each row's first `lengths[row]` positions
    and leave its padding where it is (the same indices undo it)."""
    torch = require_torch()
    positions = torch.arange(width)
    flipped = lengths[:, None] - 1 - positions[None, :]
    return torch.where(flipped >= 0, flipped, positions[None, :])[:, :, None]


def save_piece_tagger(path: Path, tagger: Any, tags: list[str], sentiment_digest: str) -> None:
    """Write the head's weights (float16) with its tag names and the sentiment file it was trained on."""
    arrays = {name: tensor.detach().numpy().astype(np.float16) for name, tensor in tagger.state_dict().items()}
    np.savez(path, tags=np.array(tags), sentiment_digest=np.array(sentiment_digest), **arrays)


def load_piece_tagger(path: Path) -> tuple[Any, list[str], str]:
    """Read a head written by `save_piece_tagger`; return (tagger in eval mode, tags, sentiment digest)."""
    torch = require_torch()
    with np.load(path, allow_pickle=False) as stored:
        tags = [str(t) for t in stored["tags"]]
        digest = str(stored["sentiment_digest"])
        weights = {name: torch.from_numpy(stored[name].astype(np.float32)) for name in stored.files if name not in {"tags", "sentiment_digest"}}
    tagger = build_piece_tagger(len(tags))
    tagger.load_state_dict(weights)
    tagger.eval()
    return tagger, tags, digest


def sentiment_digest(path: Path) -> str:
    """Return 12 hex of the sentiment adapter file's sha256: the encoder a shared head reads."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class PieceTags:
    """One text's pieces (prefix dropped): their ids, start offsets (ascending) and BIO tags."""

    ids: np.ndarray  # int32
    starts: np.ndarray  # int64
    tags: tuple[str, ...]

    def moved_to(self, ids: list[int], starts: list[int]) -> PieceTags | None:
        """Return these tags on a longer text whose pieces end with these ones, else None.

        A text cache in front of the sentiment model sends a retweet's text without its
        "RT @user:" (nlp.text.repost_key); the post's own pieces then end with the ones tagged.
        """
        n = len(self.ids)
        if n > len(ids) or not np.array_equal(ids[len(ids) - n :], self.ids):
            return None
        return PieceTags(self.ids, np.array(starts[len(starts) - n :], dtype=np.int64), self.tags)

    def token_tags(self, token_starts: list[int]) -> list[str]:
        """Return a tag per token: the tag of the piece its first character falls in."""
        out = []
        for start in token_starts:
            piece = bisect_right(self.starts, start) - 1
            out.append(self.tags[piece] if piece >= 0 else "O")
        return out


class SharedEntityHeads:
    """Per-language entity heads over the sentiment encoder's states, and the tags of recent texts."""

    def __init__(self, models_dir: Path, sentiment_path: Path, precision: str = "fp32") -> None:
        """`precision` is the sentiment encoder's, resolved. Below float32 the heads multiply in
        bfloat16 too, where the CPU does so natively: the heads were a tenth of enrich's time,
        and bfloat16 took 0.24 s to 0.17 s per 500 posts; entity F1 on WNUT-17 dev / GermEval-2014
        held-out under int8 was 0.5863 / 0.8208 with float32 heads, 0.5854 / 0.8208 with these."""
        self._models_dir, self._sentiment_path = models_dir, sentiment_path
        self.bf16 = precision != "fp32" and native_bf16()
        self._heads: dict[str, tuple[Any, list[str]]] = {}
        # (lang, text) -> the text's tags; (lang, repost key, REPOST) -> the tags of a post with that key,
        # whose offsets are that post's (only `moved_to` reads them, with the retweet's own offsets).
        self._kept: OrderedDict[tuple[str, ...], PieceTags] = OrderedDict()

    @property
    def version_suffix(self) -> str:
        """Return what the entity model version adds for how the heads multiply."""
        return "+heads-bf16" if self.bf16 else ""

    def path(self, lang: str) -> Path:
        """Return the head file for `lang`."""
        return shared_head_path(self._models_dir, lang)

    def wants(self, lang: str) -> bool:
        """Return True if a head for `lang` exists (the sentiment model then keeps layer states)."""
        return lang in self._heads or self.path(lang).is_file()

    def head(self, lang: str) -> tuple[Any, list[str]]:
        """Return (tagger, tags) for `lang`, loading it on first use; a missing or stale file says what to run."""
        if lang not in self._heads:
            path = self.path(lang)
            rebuild = f"rebuild it with `python -m nlp.train_e5_shared_ner DATA_DIR --lang {lang}`"
            if not path.is_file():
                raise ModelMissingError(f"shared-pass entity head {path} is missing; {rebuild}")
            tagger, tags, digest = load_piece_tagger(path)
            if self._sentiment_path.is_file() and digest != sentiment_digest(self._sentiment_path):
                raise ModelMissingError(
                    f"shared-pass entity head {path} was trained on another sentiment model than "
                    f"{self._sentiment_path}; {rebuild}, or set ner_engine = \"e5\""
                )
            self._heads[lang] = (tagger, tags)
        return self._heads[lang]

    def observe(self, lang: str, texts: list[str], ids: list[list[int]], starts: list[list[int]], states: Any, mask: Any) -> None:
        """Tag one encoded batch: the pieces and offsets of `post_pieces`, and `states` (batch,
        positions, 1920) with <s> first, as the encoder returns them."""
        tagger, tags = self.head(lang)
        lengths = mask.sum(1) - 2  # without <s> and </s>
        with require_torch().autocast("cpu", dtype=require_torch().bfloat16, enabled=self.bf16):
            best = tagger.tag(states, lengths).argmax(-1).tolist()
        for text, row_ids, row_starts, row in zip(texts, ids, starts, best):
            # The prefix's pieces come first and only they start at PREFIX_START.
            first = row_starts.count(PREFIX_START)
            found = PieceTags(
                np.array(row_ids[first:], dtype=np.int32),
                np.array(row_starts[first:], dtype=np.int64),
                tuple(map(tags.__getitem__, row[first : len(row_ids)])),
            )
            self._remember(lang, text, found=found)
            # A later retweet of this post is looked up by its repost key (the text cache answers
            # it without a pass): the tags move onto its pieces from there.
            if (key := repost_key(text)) != text:
                self._remember(lang, key, REPOST, found=found)

    def lookup(self, lang: str, text: str, tokenizer: Tokenizer) -> PieceTags | None:
        """Return the tags of `text` if it, or its repost key, was observed recently; else None."""
        found = self._kept.get((lang, text))
        if found is None:
            key = repost_key(text)
            keyed = self._kept.get((lang, key)) or self._kept.get((lang, key, REPOST))
            if keyed is not None:
                found = keyed.moved_to(*post_pieces(tokenizer, text))
        return found

    def _remember(self, *kept_as: str, found: PieceTags) -> None:
        self._kept[kept_as] = found
        self._kept.move_to_end(kept_as)
        while len(self._kept) > KEPT_TEXTS:
            self._kept.popitem(last=False)

