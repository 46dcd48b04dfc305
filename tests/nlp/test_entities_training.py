"""The NER trainer runs spaCy's real training on a real GermEval slice and is reproducible (a few steps only)."""

from __future__ import annotations

import random
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from nlp import ner_data, train_ner
from nlp.entities import EntityExtractor, artefact_digest
from nlp.ner_data import (
    GERMEVAL_FILE,
    GERMEVAL_TEST_FILE,
    extra_file,
    germeval_splits,
    missing_extra_data,
)

SLICE = Path(__file__).parents[1] / "fixtures" / "nlp" / "ner" / "ner_de_germeval2014_heldout_150.tsv"


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # The 150-sentence slice stands in for the GermEval dev file; 20 steps keep this fast.
    (tmp_path / "data" / GERMEVAL_FILE).parent.mkdir(parents=True)
    shutil.copy(SLICE, tmp_path / "data" / GERMEVAL_FILE)
    monkeypatch.setitem(train_ner.MAX_STEPS, "de", 20)
    return tmp_path / "data"


@contextmanager
def busy_random_thread() -> Iterator[None]:
    """Draw from the global `random` and numpy generators in another thread, as a Prefect server does."""
    stop = threading.Event()

    def draw() -> None:
        while not stop.is_set():
            random.random()
            np.random.random()
            time.sleep(0.0005)

    worker = threading.Thread(target=draw, daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def test_training_writes_a_loadable_reproducible_artefact(data_dir: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    # CI once got two different artefacts from one seed: the session's Prefect server thread
    # moved the global generators spaCy trains with. Training now runs in its own process.
    with busy_random_thread():
        for out in (first, second):
            assert train_ner.main([str(data_dir), "--lang", "de", "--out", str(out), "--seed", "13"]) == 0
    assert artefact_digest(first / "ner_de") == artefact_digest(second / "ner_de")
    assert "/tmp" not in (first / "ner_de" / "config.cfg").read_text(encoding="utf-8")
    extractor = EntityExtractor([], models_dir=first, engine="spacy")
    assert extractor.model("de")[1].split("+")[1] == artefact_digest(first / "ner_de")
    (spans,) = extractor.extract(["Angela Merkel besucht Siemens in München."], "de")
    assert all(e.label in {"PER", "ORG", "LOC", "PRODUCT", "MISC"} for e in spans)


def test_training_says_when_data_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert train_ner.main([str(tmp_path), "--lang", "all", "--out", str(tmp_path / "out")]) == 2
    assert "not found" in capsys.readouterr().out
    assert not (tmp_path / "out").exists()


def test_repository_copies_of_the_test_files_are_found(tmp_path: Path) -> None:
    assert missing_extra_data(tmp_path, "de") == [] and missing_extra_data(tmp_path, "en") == []
    assert extra_file(tmp_path, GERMEVAL_TEST_FILE) == ner_data.REPO_TRAIN_DATA / GERMEVAL_TEST_FILE


def test_official_test_file_joins_training_but_never_a_scored_page(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ner_data, "REPO_TRAIN_DATA", tmp_path / "no-repo-copy")  # only the data folder counts
    before = germeval_splits(data_dir, seed=13)
    assert missing_extra_data(data_dir, "de") == [GERMEVAL_TEST_FILE]
    # The real slice stands in for the test file too, so every page of it is also in the dev
    # file: pages in tune/heldout must be left out, the training part's pages come in again.
    shutil.copy(SLICE, data_dir / GERMEVAL_TEST_FILE)
    after = germeval_splits(data_dir, seed=13)
    assert missing_extra_data(data_dir, "de") == []
    assert after["tune"] == before["tune"] and after["heldout"] == before["heldout"]
    scored = {s.doc_id for s in after["tune"] + after["heldout"]}
    assert not scored & {s.doc_id for s in after["train"]}
    assert len(after["train"]) == 2 * len(before["train"])


@pytest.mark.parametrize(("trainer_name", "engine"), [("train_e5_ner", "e5"), ("train_e5_shared_ner", "shared")])
def test_e5_training_writes_a_loadable_reproducible_artefact(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trainer_name: str, engine: str
) -> None:
    pytest.importorskip("torch")
    import importlib

    from nlp.e5_ner import adapter_path, file_digest
    from nlp.e5_shared import shared_head_path

    trainer = importlib.import_module(f"nlp.{trainer_name}")
    artefact = adapter_path if engine == "e5" else shared_head_path
    # 32 real GermEval sentences and one epoch: the real recipe, small enough for CI (the shared
    # head reads the shipped sentiment encoder's states).
    real_splits = trainer.germeval_splits

    def small(folder: Path, seed: int) -> dict[str, list]:
        parts = real_splits(folder, seed)
        return {"train": parts["train"][:32], "tune": parts["tune"], "heldout": parts["heldout"][:10]}

    monkeypatch.setattr(trainer, "germeval_splits", small)
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        assert trainer.main([str(data_dir), "--lang", "de", "--out", str(out), "--epochs", "1"]) == 0
    assert file_digest(artefact(first, "de")) == file_digest(artefact(second, "de"))
    extractor = EntityExtractor([], models_dir=first, engine=engine)
    assert extractor.model("de")[1].split("+")[2] == file_digest(artefact(first, "de"))
    (spans,) = extractor.extract(["Angela Merkel besucht Siemens in München."], "de")
    assert all(e.label in {"PER", "ORG", "LOC", "MISC"} for e in spans)
    assert trainer.main([str(tmp_path / "nothing"), "--lang", "de", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "c").exists()


def test_shared_heads_train_on_the_sentiment_model_in_the_output_folder(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `resonanz train sentiment --out DIR` writes the new sentiment model to DIR, then trains the
    # shared heads on it; choosing their epoch once read the bundled model instead and stopped.
    pytest.importorskip("torch")
    from nlp import train_e5_shared_ner as trainer
    from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
    from nlp.e5_shared import load_piece_tagger, sentiment_digest, shared_head_path

    out = tmp_path / "out"
    out.mkdir()
    with np.load(FINETUNED_PATH, allow_pickle=False) as stored:
        arrays = {name: stored[name] for name in stored.files}
    arrays["head_bias"] = arrays["head_bias"] + np.float32(1e-3)  # another model, as a retrained one would be
    np.savez(out / FINETUNED_PATH.name, **arrays)
    real_splits = trainer.germeval_splits
    monkeypatch.setattr(trainer, "germeval_splits", lambda folder, seed: {
        name: part[:32] for name, part in real_splits(folder, seed).items()})
    assert trainer.main([str(data_dir), "--lang", "de", "--out", str(out), "--epochs", "1"]) == 0
    _, _, digest = load_piece_tagger(shared_head_path(out, "de"))
    assert digest == sentiment_digest(out / FINETUNED_PATH.name) != sentiment_digest(FINETUNED_PATH)
    sentiment = FineTunedSentimentModel(out / FINETUNED_PATH.name, precision="fp32")
    (spans,) = EntityExtractor([], models_dir=out, engine="shared", sentiment=sentiment).extract(
        ["Angela Merkel besucht Siemens in München."], "de")
    assert all(e.label in {"PER", "ORG", "LOC", "MISC"} for e in spans)
