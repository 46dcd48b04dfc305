"""`resonanz train`: a missing data folder is one clear message; otherwise the real trainer runs.

A full training run takes minutes (sentiment embeds ~20k tweets with e5, NER trains spaCy for
1,200-1,500 steps, intent searches its regularisation), so these tests stop where each real
trainer checks its input: the trainer's own message shows the command reached it with the
folder it was given.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from resonanz.cli import app

runner = CliRunner()


@pytest.mark.parametrize("task", ["sentiment", "ner"])
def test_missing_data_folder_is_one_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: str) -> None:
    monkeypatch.chdir(tmp_path)  # no ./data here
    monkeypatch.delenv("RESONANZ_DATA", raising=False)
    result = runner.invoke(app, ["train", task], terminal_width=200)
    assert result.exit_code == 2
    assert "labelled data folder data not found" in result.output and "RESONANZ_DATA" in result.output
    assert "Traceback" not in result.output

    monkeypatch.setenv("RESONANZ_DATA", str(tmp_path / "elsewhere"))
    result = runner.invoke(app, ["train", task], terminal_width=200)
    assert result.exit_code == 2 and f"{tmp_path / 'elsewhere'} not found" in result.output


def test_sentiment_trainer_receives_the_data_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "sentiment", "--data", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 2
    assert "training sentiment with nlp.train_sentiment" in result.output
    assert f"labelled data not found under {tmp_path}" in result.output  # printed by nlp.train_sentiment


def test_ner_trainer_receives_folder_and_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESONANZ_DATA", str(tmp_path))
    result = runner.invoke(app, ["train", "ner", "--seed", "7", "--out", str(tmp_path / "models")],
                           terminal_width=200)
    assert result.exit_code == 2
    assert f"nlp.train_ner {tmp_path} --out {tmp_path / 'models'} --seed 7" in result.output
    assert "ner_wnut17_en not found" in result.output  # printed by nlp.train_ner
    assert not (tmp_path / "models").exists()


def test_unknown_task_names_the_known_ones() -> None:
    result = runner.invoke(app, ["train", "topics"])
    assert result.exit_code == 2 and "sentiment, ner, intent" in result.output
