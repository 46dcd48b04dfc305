"""Brand matching on real EN and DE posts: aliases, handles, hashtags, case and compound rules."""

from __future__ import annotations

import pytest

from nlp.brands import BrandMatcher
from resonanz.settings import Brand


@pytest.fixture(scope="module")
def matcher(demo_brands: list[Brand]) -> BrandMatcher:
    return BrandMatcher(demo_brands)


def found(matcher: BrandMatcher, text: str) -> list[tuple[str, str]]:
    return [(m.brand, m.matched_text) for m in matcher.find(text)]


# Real tweets: EN from the TWCS customer-support corpus, DE from GermEval-2017 (tests/fixtures/nlp/PROVENANCE.md).
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "@AskPlayStation I bought Lego Star Wars in the PlayStation store but it won't let me download it",
            [("PlayStation", "@AskPlayStation"), ("PlayStation", "PlayStation")],
        ),
        (
            "@XboxSupport can I change me sons Xbox live account to his Hotmail account",
            [("Xbox", "@XboxSupport"), ("Xbox", "Xbox live")],
        ),
        (
            "Just pulled another #Amazon delivery out of the bushes since the #amzl people can’t walk the extra 2 ft",
            [("Amazon", "#Amazon")],
        ),
        ("@AppleSupport I have the iPhone 6s Plus and just did the most recent update.", [("Apple", "@AppleSupport"), ("iPhone", "iPhone")]),
        (
            "@AmazonHelp Thats the thing I told customer service. I created a new email address for the Prime trial",
            [("Amazon", "@AmazonHelp"), ("Prime", "Prime")],
        ),
        ("@AskPlayStation My PS4 lets me load up games but then I can’t do anything in them", [("PlayStation", "@AskPlayStation"), ("PlayStation", "PS4")]),
    ],
)
def test_english_posts(matcher: BrandMatcher, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(matcher, text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ICE: Bahn will Gratis-WLAN für 2. Klasse bringen http://t.co/SVwc8657Sr via @AppyGeekGer", [("ICE", "ICE"), ("Deutsche Bahn", "Bahn")]),
        ("RT @ProtoRedTheGod: @kapungac Ach deswegen hat die Deutsche Bahn immer verspätungen o.o", [("Deutsche Bahn", "Deutsche Bahn")]),
        ("WTF! @DB_Bahn #RE3 nach Stralsund mit defekter Klimaanlage und Toilette!", [("Deutsche Bahn", "@DB_Bahn")]),
        ("Können wir die #ersteKlasse in der #bahn abschaffen bitte", [("Deutsche Bahn", "#bahn")]),
        ("RT @newya1207 : Hannover-Kassel : Bahn bestätigt Sperrung von ICE-Strecke ...", [("Deutsche Bahn", "Bahn"), ("ICE", "ICE")]),
        # Compound rule: "Bahnsteig" and "Hauptbahnhof" are not the company; the hashtag is.
        ("Morgenidylle. Nicht im Bild: Der volle Bahnsteig. #bahn @ Hauptbahnhof Koeln", [("Deutsche Bahn", "#bahn")]),
        ("Ich saß gerade fast 2 Stunden in Bonn Hauptbahnhof fest. Erste Bahn hatte 'ne Störung", [("Deutsche Bahn", "Bahn")]),
    ],
)
def test_german_posts(matcher: BrandMatcher, text: str, expected: list[tuple[str, str]]) -> None:
    assert found(matcher, text) == expected


def test_short_all_caps_aliases_match_only_as_written(matcher: BrandMatcher) -> None:
    assert found(matcher, "ice cream at 90 db, then the Ice Age") == []
    assert found(matcher, "Der ICE hält nicht, die DB schweigt") == [("ICE", "ICE"), ("Deutsche Bahn", "DB")]
    assert found(matcher, "my ps4 died") == []


def test_normal_aliases_handles_and_hashtags_ignore_case(matcher: BrandMatcher) -> None:
    assert found(matcher, "FLIXBUS statt bahn? @db_bahn #DEUTSCHEBAHN") == [
        ("Flixbus", "FLIXBUS"),
        ("Deutsche Bahn", "bahn"),
        ("Deutsche Bahn", "@db_bahn"),
        ("Deutsche Bahn", "#DEUTSCHEBAHN"),
    ]


def test_compounds_do_not_match_but_hyphenated_ones_do(matcher: BrandMatcher) -> None:
    assert found(matcher, "Autobahn, Bahnhof, Bahnsteig, Straßenbahn, Applepie") == []
    assert found(matcher, "Bahn-Chaos und ICE-Ausfall") == [("Deutsche Bahn", "Bahn"), ("ICE", "ICE")]


def test_longest_match_wins_and_products_carry_their_owner(matcher: BrandMatcher) -> None:
    matches = matcher.find("Amazon Prime und Deutsche  Bahn, two iPhones, zwei ICEs")
    assert [(m.brand, m.kind, m.owner, m.matched_text, m.start_char) for m in matches] == [
        ("Prime", "product", "Amazon", "Amazon Prime", 0),
        ("Deutsche Bahn", "brand", None, "Deutsche  Bahn", 17),
        ("iPhone", "product", "Apple", "iPhones", 37),
        ("ICE", "product", "Deutsche Bahn", "ICEs", 51),
    ]


def test_offsets_point_at_the_match(matcher: BrandMatcher) -> None:
    text = "Danke @DB_Bahn, der ICE war pünktlich!"
    for match in matcher.find(text):
        assert text[match.start_char : match.end_char] == match.matched_text
