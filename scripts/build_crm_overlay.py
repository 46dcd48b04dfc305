"""Build the SYNTHETIC social-identity overlay for the demo CRM (dev tool, run once).

The UCI Online Retail customers are real but carry no names, handles or e-mails, so nothing
real can link them to social accounts. For the demo we assign handles of accounts in the
bundled X sample to randomly chosen real customer ids, with a fixed seed, and label every row
as synthetic. Usage: python scripts/build_crm_overlay.py
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[1] / "resonanz" / "sample"
NOTE = "SYNTHETIC demo overlay: UCI Online Retail has no social identities"


def authors(folder: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for page in sorted(folder.glob("page-*.json")):
        for tweet in json.loads(page.read_text(encoding="utf-8")).get("data", []):
            counts[tweet["author_id"]] += 1
    return counts


def main() -> None:
    rng = random.Random(7)
    with (SAMPLE / "crm" / "customers.csv").open(encoding="utf-8") as f:
        customer_ids = sorted(r["CustomerID"] for r in csv.DictReader(f) if float(r["total_spend_gbp"]) > 0)
    # TWCS anonymised customers have numeric ids; brand accounts keep their names.
    en = [a for a, _ in authors(SAMPLE / "x_twcs_en").most_common() if a.isdigit()]
    de_counts = authors(SAMPLE / "x_germeval_db_de")
    de = [a for a, _ in de_counts.most_common() if not a.lower().startswith(("db_", "dbbahn", "sbahn"))]
    chosen = en[:30] + rng.sample(en[30:], 20) + de[:10] + rng.sample(de[10:], 10)
    customers = rng.sample(customer_ids, len(chosen))
    out = SAMPLE / "crm" / "identity_overlay.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["customer_id", "source", "handle", "display_name", "note"])
        for customer_id, handle in sorted(zip(customers, chosen)):
            writer.writerow([customer_id, "x", handle, "", NOTE])
    print(f"wrote {len(chosen)} synthetic identities to {out}")


if __name__ == "__main__":
    main()
