"""Draw the real posts that were hand-labelled for purchase intent (nlp/data/intent/).

Run `python -m nlp.sample_intent [DATA_DIR] --out FILE [--seed 13]`. Keywords only decide
which posts are *drawn* (strata), so that rare intents (buy, consider, recommend, churn) show up
often enough to learn and score; every drawn post was then labelled by reading it, following
docs/intent_guidelines.md. A post's stratum is kept in the output for the record, never as a label.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from pathlib import Path

import numpy as np

MIN_CHARS, MAX_CHARS = 15, 400  # long news/forum articles are not social posts; they take ages to read

# stratum -> pattern, per language; a post falls into the first stratum whose pattern matches.
EN_STRATA = {
    "buy": r"\b(buy|buying|bought|order(ed|ing)?|purchas\w*|pre-?order\w*|subscrib\w*|sign(ed|ing)? up|book(ed|ing)?|upgrad\w*|getting (a|the|an|my)|gonna get|going to get)\b",
    "consider": r"(should i\b|which (one|plan|is|should)|worth it|\bvs\.?\b|thinking (of|about)|deciding|compar\w+|or should|\bany(one)? (suggest|recommend)|what('s| is) the best|\bbetter\b.*\?)",
    "recommend": r"(recommend|you should (try|get|check|buy|go)|check (it |this )?out|must (see|have|try|buy)|highly|go (get|buy|see)|love (my|this|the|it)|best \w+ ever)",
    "churn": r"(cancel\w*|switch\w* (to|from|over|back)|leav(e|ing) (you|\w+ for)|done with|never (again|using|buying|flying|ordering|shop)|refund|return(ing)? (it|this|my|the)|unsubscrib\w*|close my account|goodbye|moving to|last time (i|we)|lost a customer|won't be (back|using|buying|flying|ordering))",
}
DE_STRATA = {
    "buy": r"(kauf|bestell|\bbuch(e|en|t)\b|gebucht|\babo\b|abonn|bahncard|fahrkarte|reservier|sparpreis|ticket (holen|gekauft|kaufen))",
    "consider": r"(lohnt|soll(te)? ich|welche[rsn]? .*\?|oder lieber|überleg|vergleich|alternative|weiß jemand|kennt jemand|hat jemand|was meint ihr)",
    "recommend": r"(empfehl|empfiehl|\bnehmt\b|probier|unbedingt|klasse|super|toll|genial|perfekt)",
    "churn": r"(kündig|nie wieder|nie mehr|nicht mehr mit|\bauto\b|flixbus|fernbus|mitfahrgelegenheit|blablacar|fliege|fliegen|umsteigen auf|wechsel|das letzte mal|zurückgeb|erstatt|reicht('s)? mir|schnauze voll)",
}
# Round 2 targets the first-person phrasings of the rare intents, because round 1 drew
# mostly complaints and news (German Deutsche-Bahn talk especially).
EN_STRATA_2 = {
    "consider": r"(should i (buy|get|switch|go)|which .* (buy|get|choose)|thinking (of|about) (buying|getting)|worth (it|buying|the money)|(buy|get) .* or .*\?|any (suggestions|recommendations)|anyone tried)",
    "recommend": r"(you (should|need to|must|have to) (try|get|buy|see|watch|check|go)|highly recommend|i recommend|recommend(ed|s)? (it|this|them)|best .* i('ve| have) ever)",
    "buy": r"\b(i|we)('m| am| are|'ll| will| just| finally)? ?(going to|gonna|about to|want to|wanna|need to|plan to)? ?(buy|order|book|subscribe|pre-?order|get)\b",
}
DE_STRATA_2 = {
    "consider": r"(lohnt (es|sich) .*\?|soll(te)? ich|(oder|besser) .*\?|tipps?\b.*\?|erfahrung(en)? mit|was haltet ihr)",
    "recommend": r"(empfehl|empfiehl|kann ich nur|lohnt sich|müsst ihr|solltet ihr|probiert)",
    "churn": r"(kündig|nie wieder|nie mehr|fahre (ich )?(lieber|nur noch|jetzt)|steige .* um|umgestiegen|flixbus|fernbus|blablacar|zurückgeb|abbestell)",
    "buy": r"(\b(ich|wir)\b.*\b(kauf|bestell|buch|hol)|gebucht|gekauft|bestellt|abonniert|bahncard)",
}
# Round 3 tops up the rarest German intents from the general-tweet sets (UMSAB all splits,
# GermEval-2018) and English consider/recommend from SemEval; one broad cue stratum each.
EN_STRATA_3 = {
    "consider": r"(should i\b|worth (it|buying|the)|or should|which (one|is better)|can't decide|torn between|thinking (of|about) (buying|getting|switching))",
    "recommend": r"(recommend|you (should|need to|must|gotta|have to) (try|get|buy|see|watch|check|read|listen))",
}
DE_STRATA_3 = {
    "cue": r"(kauf|bestell|gebucht|\babo\b|empfehl|empfiehl|kündig|nie wieder|lohnt|soll(te)? ich|probier|hol(e)? mir|holen)",
}
# How many posts to draw per (source, stratum); "other" = posts matching no stratum.
PLAN = {
    "conversations_twcs_en": {"buy": 45, "consider": 30, "recommend": 20, "churn": 45, "other": 70},
    "sentiment_semeval2017_en_train": {"buy": 40, "consider": 20, "recommend": 40, "churn": 10, "other": 10},
    "germeval2017_db_de": {"buy": 55, "consider": 35, "recommend": 35, "churn": 55, "other": 70},
    "sentiment_xlmt_umsab_en_de": {"buy": 15, "consider": 5, "recommend": 15, "churn": 5, "other": 10},
    "offensive_germeval2018_de": {"buy": 10, "consider": 0, "recommend": 5, "churn": 5, "other": 0},
}
PLAN_2 = {
    "conversations_twcs_en": {"consider": 15, "recommend": 10, "buy": 10},
    "sentiment_semeval2017_en_train": {"consider": 25, "recommend": 25, "buy": 10},
    "germeval2017_db_de": {"consider": 30, "recommend": 30, "churn": 40, "buy": 40},
    "sentiment_xlmt_umsab_en_de": {"consider": 10, "recommend": 15, "buy": 15},
}
PLAN_3 = {
    "sentiment_semeval2017_en_train": {"consider": 25, "recommend": 20},
    "umsab_de_all": {"cue": 45},
    "offensive_germeval2018_de": {"cue": 40},
}
ROUNDS = (
    (EN_STRATA, DE_STRATA, PLAN, 0),
    (EN_STRATA_2, DE_STRATA_2, PLAN_2, 1),
    (EN_STRATA_3, DE_STRATA_3, PLAN_3, 2),
)


def read_sources(data: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Return source -> [(id, lang, text)] for every source in PLAN."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    with (data / "conversations_twcs_en" / "tweets.csv").open(encoding="utf-8", newline="") as f:
        out["conversations_twcs_en"] = [
            (f"twcs:{r['tweet_id']}", "en", r["text"]) for r in csv.DictReader(f) if r["inbound"] == "True"
        ]
    with (data / "sentiment_semeval2017_en_train" / "train.tsv").open(encoding="utf-8") as f:
        lines = f.read().splitlines()[1:]
    out["sentiment_semeval2017_en_train"] = [
        (f"semeval:{p[1]}", "en", p[4]) for p in (line.split("\t") for line in lines) if len(p) >= 5
    ]
    # GermEval-2017 dev (conversation sample) plus the diachronic test documents.
    db: list[tuple[str, str, str]] = []
    with (data / "conversations_germeval2017_db_de" / "posts.csv").open(encoding="utf-8", newline="") as f:
        db += [(f"germeval17_dev:{r['doc_id']}", "de", r["text"]) for r in csv.DictReader(f)]
    with (data / "sentiment_germeval2017_de" / "test_dia_docs.tsv").open(encoding="utf-8") as f:
        for line in f.read().splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 2:
                db.append((f"germeval17_test_dia:{parts[0]}", "de", parts[1]))
    out["germeval2017_db_de"] = db
    texts = (data / "sentiment_xlmt_umsab_en_de" / "german" / "train_text.txt").read_text(encoding="utf-8").splitlines()
    out["sentiment_xlmt_umsab_en_de"] = [(f"umsab_de_train:{i}", "de", t) for i, t in enumerate(texts)]
    out["umsab_de_all"] = [
        (f"umsab_de_{split}:{i}", "de", t)
        for split in ("train", "val", "test")
        for i, t in enumerate((data / "sentiment_xlmt_umsab_en_de" / "german" / f"{split}_text.txt").read_text(encoding="utf-8").splitlines())
    ]
    lines = (data / "offensive_germeval2018_de" / "germeval2018.training.txt").read_text(encoding="utf-8").splitlines()
    out["offensive_germeval2018_de"] = [
        (f"germeval18_train:{i}", "de", line.split("\t")[0].replace("|LBR|", "\n")) for i, line in enumerate(lines)
    ]
    return out


# The data folder each id prefix was read from (the "source" column of the labelled set).
DATASETS = {
    "twcs": "conversations_twcs_en",
    "semeval": "sentiment_semeval2017_en_train",
    "germeval17_dev": "conversations_germeval2017_db_de",
    "germeval17_test_dia": "sentiment_germeval2017_de",
    "germeval18_train": "offensive_germeval2018_de",
}


def dataset_of(post_id: str) -> str:
    """Return the data folder a drawn post id comes from."""
    prefix = post_id.split(":", 1)[0]
    return "sentiment_xlmt_umsab_en_de" if prefix.startswith("umsab_de") else DATASETS[prefix]


def stratum(text: str, strata: dict[str, str]) -> str:
    """Return the first stratum whose pattern matches `text`, else "other"."""
    for name, pattern in strata.items():
        if re.search(pattern, text, flags=re.IGNORECASE):
            return name
    return "other"


def draw(data: Path, seed: int) -> list[dict[str, str]]:
    """Return the drawn posts of both rounds (deduplicated by text) with source, round and stratum."""
    sources = read_sources(data)
    drawn: set[str] = set()
    rows: list[dict[str, str]] = []
    for en_strata, de_strata, plan, round_no in ROUNDS:
        rng = np.random.default_rng(seed + round_no)
        for source, counts in plan.items():
            seen: set[str] = set()
            pools: dict[str, list[tuple[str, str, str]]] = {}
            for post in sources[source]:
                key = " ".join(post[2].lower().split())
                if not MIN_CHARS <= len(post[2]) <= MAX_CHARS or key in seen or key in drawn:
                    continue
                seen.add(key)
                strata = en_strata if post[1] == "en" else de_strata
                pools.setdefault(stratum(post[2], strata), []).append(post)
            for name, count in counts.items():
                pool = pools.get(name, [])
                for i in sorted(rng.choice(len(pool), size=min(count, len(pool)), replace=False)):
                    post_id, lang, text = pool[i]
                    drawn.add(" ".join(text.lower().split()))
                    rows.append({"id": post_id, "source": dataset_of(post_id), "lang": lang,
                                 "stratum": f"r{round_no + 1}:{name}", "text": text})
    return rows


def main(argv: list[str]) -> int:
    """Draw the sample and write it as CSV."""
    parser = argparse.ArgumentParser(prog="nlp.sample_intent")
    parser.add_argument("data", nargs="?", default=os.environ.get("RESONANZ_DATA", "/work/shared/data"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    data = Path(args.data)
    if not (data / "conversations_twcs_en").is_dir():
        print(f"source data not found under {data}; pass the data folder as the first argument")
        return 2
    rows = draw(data, args.seed)
    with open(args.out, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "source", "lang", "stratum", "text"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} posts to {args.out}")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
