"""`python -m nlp.train_e5_sentiment --reblend`: after the n-gram model is retrained, the fine-tuned
model keeps its adapters and head and only its blend with the new n-gram model is re-fitted."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from nlp import train_e5_sentiment
from nlp.e5_sentiment import FINETUNED_PATH, FineTunedSentimentModel
from nlp.sentiment import LABELS, LEXICAL_PATH

Rows = list[tuple[str, str]]


def write_split(folder: Path, split: str, rows: Rows) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}_text.txt").write_text("".join(text + "\n" for _, text in rows), encoding="utf-8")
    (folder / f"{split}_labels.txt").write_text("".join(f"{LABELS.index(label)}\n" for label, _ in rows), encoding="utf-8")


def write_docs(path: Path, rows: Rows) -> None:
    lines = ["id\ttext\trelevance\tsentiment"]
    lines += [f"http://twitter.com/db/status/{i}\t{text}\ttrue\t{label}" for i, (label, text) in enumerate(rows)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path: Path, en_tweets: Rows, de_tweets: Rows) -> Path:
    """The data sets' layout (nlp/sentiment_data.py), filled with the real fixture tweets."""
    root = tmp_path / "data"
    write_split(root / "sentiment_tweeteval_en", "val", en_tweets[:40])
    umsab = root / "sentiment_xlmt_umsab_en_de"
    write_split(umsab / "english", "train", en_tweets[40:80])
    write_split(umsab / "english", "test", en_tweets[80:120])
    write_split(umsab / "german", "train", de_tweets[:40])
    write_split(umsab / "german", "val", de_tweets[40:130])
    write_split(umsab / "german", "test", de_tweets[130:170])
    semeval = root / "sentiment_semeval2017_en_train" / "train.tsv"
    semeval.parent.mkdir(parents=True)
    semeval.write_text("id\tyear\tlabel\tin_tweeteval_val\ttext\n"
                       + "".join(f"{i}\t2016\t{label}\t0\t{text}\n" for i, (label, text) in enumerate(en_tweets[120:300])),
                       encoding="utf-8")
    write_docs(root / "sentiment_germeval2017_de" / "dev_v1.4_docs.tsv", de_tweets[170:230])
    write_docs(root / "sentiment_germeval2017_de" / "test_dia_docs.tsv", de_tweets[230:300])
    return root


def test_reblend_keeps_the_model_and_refits_the_blend_for_the_new_ngram_model(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "models"
    out.mkdir()
    # A retrained n-gram model whose English half leans harder on its words than the bundled one.
    with np.load(LEXICAL_PATH, allow_pickle=False) as stored:
        lexical = {name: stored[name] for name in stored.files}
    lexical["coef"] = lexical["coef"].copy()
    lexical["coef"][0] *= 3
    np.savez_compressed(out / LEXICAL_PATH.name, **lexical)

    assert train_e5_sentiment.main([str(data_dir), "--out", str(out), "--reblend"]) == 0

    with np.load(FINETUNED_PATH, allow_pickle=False) as bundled, np.load(out / FINETUNED_PATH.name, allow_pickle=False) as rebuilt:
        assert bundled.files == rebuilt.files
        kept = [name for name in bundled.files if name not in train_e5_sentiment.CALIBRATION]
        assert all(np.array_equal(bundled[name], rebuilt[name]) for name in kept)  # adapters, head, outputs
        # The blend was re-fitted: here against the changed English n-gram model and these few rows.
        assert rebuilt["blend_temperature"][0] != bundled["blend_temperature"][0]
        assert all(np.isfinite(rebuilt[name]).all() and (rebuilt[name] >= 0).all() for name in train_e5_sentiment.CALIBRATION)

    metrics = json.loads((out / "sentiment_e5ft_metrics.json").read_text(encoding="utf-8"))
    assert metrics["runs"] == json.loads(FINETUNED_PATH.with_name("sentiment_e5ft_metrics.json").read_text())["runs"]
    assert set(metrics["reblended"]) == {"seed", "n_gram_model_sha256"}
    assert 0.0 <= metrics["tweeteval_val_macro_recall_en"] <= 1.0

    model = FineTunedSentimentModel(out / FINETUNED_PATH.name, out / LEXICAL_PATH.name, precision="fp32")
    results = model.predict(["Ich liebe diesen Zug, endlich pünktlich!", "Worst service ever, never again."], "de")
    assert all(result is not None and result.label in LABELS for result in results)


def test_reblend_and_whole_pool_do_not_go_together(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stopped:
        train_e5_sentiment.main([str(data_dir), "--out", str(tmp_path), "--reblend", "--whole-pool"])
    assert stopped.value.code == 2
