"""Shared fixtures for the enrich room: the demo brand list, one Enricher, the labelled slices."""

from __future__ import annotations

import csv
import tomllib
from pathlib import Path

import pytest

from nlp.pipeline import Enricher
from resonanz.settings import BUNDLED_DEFAULTS, Brand

NLP_FIXTURES = Path(__file__).parents[1] / "fixtures" / "nlp"


def read_labelled(name: str) -> list[tuple[str, str]]:
    """Return (label, text) rows of a labelled fixture file."""
    with (NLP_FIXTURES / name).open(encoding="utf-8", newline="") as handle:
        return [(row["label"], row["text"]) for row in csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]


@pytest.fixture(scope="session")
def demo_brands() -> list[Brand]:
    """The brand list shipped in resonanz/defaults.toml."""
    config = tomllib.loads(BUNDLED_DEFAULTS.read_text(encoding="utf-8"))
    return [Brand.model_validate(item) for item in config["brands"]]


@pytest.fixture(scope="session")
def enricher(demo_brands: list[Brand]) -> Enricher:
    """One Enricher for the session: models load once, as in a flow run."""
    return Enricher(demo_brands)


@pytest.fixture(scope="session")
def en_tweets() -> list[tuple[str, str]]:
    """300 real English tweets from TweetEval validation with sentiment labels."""
    return read_labelled("sentiment_en_tweeteval_val_300.tsv")


@pytest.fixture(scope="session")
def de_tweets() -> list[tuple[str, str]]:
    """300 real German tweets from the UMSAB (SB-10k) test split with sentiment labels."""
    return read_labelled("sentiment_de_umsab_test_300.tsv")
