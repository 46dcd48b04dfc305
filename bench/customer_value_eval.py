"""Check the CLV models on held-out real purchases of the bundled UCI Online Retail invoices.

The models are fitted exactly as warehouse.customer_value fits them (weekly periods, BG/NBD
with the same penalizer fallback, Gamma-Gamma without penalizer) on the invoices up to
2011-09-09 and asked how many purchases each customer makes in the 13 weeks after; the
answer is compared with what the customers really did, and with a naive baseline (each
customer keeps their calibration-period purchase rate). Prints the figures and writes
bench/results/customer_value_eval.json.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.machine import machine_info  # noqa: E402
from warehouse.customer_value import fit_bgnbd  # noqa: E402

INVOICES = ROOT / "resonanz" / "sample" / "crm" / "invoices.csv"
RESULTS = Path(__file__).with_name("results") / "customer_value_eval.json"
CALIBRATION_END = pd.Timestamp("2011-09-09")
OBSERVATION_END = pd.Timestamp("2011-12-10")


def main() -> None:
    from lifetimes import GammaGammaFitter
    from lifetimes.utils import calibration_and_holdout_data

    invoices = pd.read_csv(INVOICES, parse_dates=["invoice_date"], dtype={"customer_id": str})
    purchases = invoices[invoices["amount_gbp"] > 0]
    data = calibration_and_holdout_data(
        purchases, "customer_id", "invoice_date", calibration_period_end=CALIBRATION_END,
        observation_period_end=OBSERVATION_END, freq="W", monetary_value_col="amount_gbp")
    calibration = data.rename(columns={"frequency_cal": "frequency", "recency_cal": "recency", "T_cal": "T"})
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bgf = fit_bgnbd(calibration)
        weeks = float(data["duration_holdout"].iloc[0])
        predicted = bgf.conditional_expected_number_of_purchases_up_to_time(
            weeks, data["frequency_cal"], data["recency_cal"], data["T_cal"])
        repeat = data[(data["frequency_cal"] > 0) & (data["monetary_value_cal"] > 0)]
        ggf = GammaGammaFitter(penalizer_coef=0.0).fit(repeat["frequency_cal"], repeat["monetary_value_cal"])
        spend = ggf.conditional_expected_average_profit(repeat["frequency_cal"], repeat["monetary_value_cal"])
    seconds = time.perf_counter() - started
    actual = data["frequency_holdout"]
    baseline = data["frequency_cal"] / data["T_cal"].clip(lower=1) * weeks
    has_holdout_spend = repeat.index[repeat.index.isin(data.index[data["monetary_value_holdout"] > 0])]

    def mae(prediction: pd.Series) -> float:
        return float(np.mean(np.abs(prediction - actual)))

    results = {
        "data": "UCI Online Retail, 15 % customer sample aggregated per invoice (resonanz/sample/crm/invoices.csv)",
        "calibration_end": str(CALIBRATION_END.date()), "holdout_weeks": weeks,
        "customers": int(len(data)), "fit_seconds": round(seconds, 2),
        "bgnbd_params": {k: float(v) for k, v in bgf.params_.items()},
        "repeat_purchases_holdout": {"actual": int(actual.sum()), "bgnbd": round(float(predicted.sum()), 1),
                                     "baseline_rate": round(float(baseline.sum()), 1)},
        "per_customer_mae": {"bgnbd": round(mae(predicted), 3), "baseline_rate": round(mae(baseline), 3)},
        "per_customer_spearman": {
            "bgnbd": round(float(pd.Series(predicted).corr(actual, method="spearman")), 3),
            "baseline_rate": round(float(baseline.corr(actual, method="spearman")), 3)},
        "gamma_gamma_mean_spend": {
            "customers": int(len(has_holdout_spend)),
            "predicted": round(float(spend.loc[has_holdout_spend].mean()), 2),
            "actual_holdout": round(float(data.loc[has_holdout_spend, "monetary_value_holdout"].mean()), 2)},
        "machine": machine_info(),
    }
    print(f"{results['customers']} customers, calibration to {CALIBRATION_END.date()}, holdout {weeks:.0f} weeks")
    print(f"repeat purchases in holdout: actual {results['repeat_purchases_holdout']['actual']}, "
          f"BG/NBD {results['repeat_purchases_holdout']['bgnbd']}, "
          f"baseline {results['repeat_purchases_holdout']['baseline_rate']}")
    print(f"per-customer MAE: BG/NBD {results['per_customer_mae']['bgnbd']}, "
          f"baseline {results['per_customer_mae']['baseline_rate']}; Spearman: "
          f"BG/NBD {results['per_customer_spearman']['bgnbd']}, baseline {results['per_customer_spearman']['baseline_rate']}")
    print(f"mean spend per purchase (customers buying again in holdout): Gamma-Gamma "
          f"{results['gamma_gamma_mean_spend']['predicted']} GBP, actual {results['gamma_gamma_mean_spend']['actual_holdout']} GBP")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
