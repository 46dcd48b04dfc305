"""Read the labelled NER sets (GermEval-2014 DE, WNUT-17 EN) onto the project's entity labels.

Both sets are pre-tokenised. A sentence keeps its tokens and token-level spans; `text` joins
the tokens with single spaces, which is also the text the evaluation feeds the real pipeline,
so gold character offsets and predicted ones index the same string.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

# GermEval-2014 outer tags. OTH (titles, events, languages, products...) is the project's MISC.
# The *deriv (adjectives such as "deutsche") and *part (compounds such as "EU-Kommission") tags
# mark words that contain or derive from a name but are not one; a listening team filters on
# names, so they count as no entity in training and evaluation alike.
GERMEVAL_LABELS: dict[str, str] = {"PER": "PER", "LOC": "LOC", "ORG": "ORG", "OTH": "MISC"}

# WNUT-17 types. "group" (bands, teams, parties) is an organisation; "creative-work" is MISC.
WNUT_LABELS: dict[str, str] = {
    "person": "PER",
    "location": "LOC",
    "corporation": "ORG",
    "group": "ORG",
    "product": "PRODUCT",
    "creative-work": "MISC",
}

GERMEVAL_FILE = Path("ner_germeval2014_de") / "NER-de-dev.tsv"
WNUT_TRAIN_FILE = Path("ner_wnut17_en") / "wnut17train.conll"
WNUT_DEV_FILE = Path("ner_wnut17_en") / "emerging.dev.conll"
# The official test files, used for training only when present in the data folder (same
# upstream copies as the dev files; see the model cards). Neither is ever scored on: the
# project reports on WNUT-17 dev and on the held-out part of the GermEval-2014 dev file.
GERMEVAL_TEST_FILE = Path("ner_germeval2014_de") / "NER-de-test.tsv"
# Copies of both test files kept in the repository (nlp/train_data/PROVENANCE.md), so that
# `resonanz train ner` rebuilds the shipped models from any data folder that has the dev files.
# Not package data: only training reads them.
REPO_TRAIN_DATA = Path(__file__).resolve().parent / "train_data"
WNUT_TEST_FILE = Path("ner_wnut17_en") / "emerging.test.annotated"


@dataclass(frozen=True, slots=True)
class Sentence:
    """One labelled sentence: tokens, token spans [start, end) with a project label, its document."""

    words: tuple[str, ...]
    spans: tuple[tuple[int, int, str], ...]
    doc_id: str = ""

    @property
    def text(self) -> str:
        """Return the tokens joined by single spaces."""
        return " ".join(self.words)

    def char_spans(self) -> set[tuple[int, int, str]]:
        """Return the gold spans as (start_char, end_char, label) over `text`."""
        starts, offset = [], 0
        for word in self.words:
            starts.append(offset)
            offset += len(word) + 1
        return {(starts[s], starts[e - 1] + len(self.words[e - 1]), label) for s, e, label in self.spans}


def bio_spans(tags: list[str], labels: dict[str, str]) -> tuple[tuple[int, int, str], ...]:
    """Return token spans of a BIO tag sequence, keeping only types in `labels` (mapped)."""
    spans: list[list] = []
    current: list | None = None
    for i, tag in enumerate(tags):
        kind = tag[2:]
        if tag.startswith("I-") and current is not None and kind == current[3]:
            current[1] = i + 1
            continue
        current = None
        # A stray I- (no matching B-) opens a span, as conlleval does.
        if tag[:2] in {"B-", "I-"} and kind in labels:
            current = [i, i + 1, labels[kind], kind]
            spans.append(current)
    return tuple((s, e, label) for s, e, label, _ in spans)


def read_germeval(path: Path) -> list[Sentence]:
    """Return the sentences of a GermEval-2014 TSV file (outer tags only)."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    doc_id = ""
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.startswith("#\t"):
            doc_id = line.split("\t")[1]
        elif line.strip():
            _, word, outer = line.split("\t")[:3]
            words.append(word)
            tags.append(outer)
        elif words:
            sentences.append(Sentence(tuple(words), bio_spans(tags, GERMEVAL_LABELS), doc_id))
            words, tags = [], []
    return sentences


def read_wnut(path: Path) -> list[Sentence]:
    """Return the posts of a WNUT-17 CoNLL file."""
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            word, tag = line.split("\t")[:2]
            words.append(word)
            tags.append(tag.strip())
        elif words:
            sentences.append(Sentence(tuple(words), bio_spans(tags, WNUT_LABELS), f"{path.name}:{len(sentences)}"))
            words, tags = [], []
    return sentences


def split_by_document(
    sentences: list[Sentence], fractions: tuple[float, ...], seed: int
) -> list[list[Sentence]]:
    """Split into parts of about `fractions` of the sentences; a document never spans two parts.

    Documents are shuffled with `seed`; the last part takes what is left. GermEval-2014 samples
    nearly one sentence per source page (2,183 pages for 2,200 sentences), so this is close to a
    sentence split, but sentences of one page stay together.
    """
    docs: dict[str, list[Sentence]] = {}
    for sentence in sentences:
        docs.setdefault(sentence.doc_id, []).append(sentence)
    order = sorted(docs)
    random.Random(seed).shuffle(order)
    parts: list[list[Sentence]] = [[] for _ in range(len(fractions) + 1)]
    bounds = [sum(fractions[: i + 1]) * len(sentences) for i in range(len(fractions))]
    taken = 0
    for doc_id in order:
        index = next((i for i, bound in enumerate(bounds) if taken < bound), len(fractions))
        parts[index].extend(docs[doc_id])
        taken += len(docs[doc_id])
    return parts


def germeval_splits(data_dir: Path, seed: int = 13) -> dict[str, list[Sentence]]:
    """Return the GermEval-2014 dev file split 70/10/20 into train / tune / heldout, by document.

    The project reports on `heldout`, which no training step (nor model selection: that uses
    `tune`) sees. When the official test file is in the data folder, its sentences join
    `train`, except those from a source page that also has a sentence in tune or heldout
    (17 of 5,100), so no page is both trained on and scored.
    """
    test, tune, train = split_by_document(read_germeval(data_dir / GERMEVAL_FILE), (0.20, 0.10), seed)
    if (extra := extra_file(data_dir, GERMEVAL_TEST_FILE)) is not None:
        scored_docs = {s.doc_id for s in tune + test}
        train += [s for s in read_germeval(extra) if s.doc_id not in scored_docs]
    return {"train": train, "tune": tune, "heldout": test}


def wnut_splits(data_dir: Path, seed: int = 13) -> dict[str, list[Sentence]]:
    """Return WNUT-17 train (90%, plus the annotated test set when present) / tune (10%) / official dev.

    The test set (Twitter, Reddit, YouTube, StackExchange, like dev) is only trained on; the
    tune part, which picks the checkpoint, stays drawn from the train file, and dev is only scored.
    """
    tune, train = split_by_document(read_wnut(data_dir / WNUT_TRAIN_FILE), (0.10,), seed)
    if (extra := extra_file(data_dir, WNUT_TEST_FILE)) is not None:
        train += read_wnut(extra)
    return {"train": train, "tune": tune, "heldout": read_wnut(data_dir / WNUT_DEV_FILE)}


def extra_file(data_dir: Path, relative: Path) -> Path | None:
    """Return an optional training file from the data folder, else the repository's copy, else None."""
    for candidate in (data_dir / relative, REPO_TRAIN_DATA / relative):
        if candidate.is_file():
            return candidate
    return None


def missing_extra_data(data_dir: Path, lang: str) -> list[Path]:
    """Return the optional training sources for `lang` found neither in `data_dir` nor in the repository."""
    wanted = GERMEVAL_TEST_FILE if lang == "de" else WNUT_TEST_FILE
    return [] if extra_file(data_dir, wanted) is not None else [wanted]


def score_spans(gold: list[set], pred: list[set]) -> dict[str, float]:
    """Return micro precision, recall, F1 (exact span and label) and recall of spans whatever the label."""
    hits = sum(len(g & p) for g, p in zip(gold, pred))
    n_gold, n_pred = sum(map(len, gold)), sum(map(len, pred))
    precision, recall = hits / max(n_pred, 1), hits / max(n_gold, 1)
    spans_hit = sum(len({x[:2] for x in g} & {x[:2] for x in p}) for g, p in zip(gold, pred))
    return {
        "micro_f1": 2 * precision * recall / max(precision + recall, 1e-9),
        "precision": precision,
        "recall": recall,
        "span_recall_any_label": spans_hit / max(n_gold, 1),
    }
