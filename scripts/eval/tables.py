"""Markdown tables of `greenmark eval` JSON results, configs side by side (docs/robustness.md).

    python3 scripts/eval/tables.py NAME=docs/robustness/X.json [NAME=...]

Each cell: TPR at FPR 1e-3 / TPR at 1e-6 / ROC AUC / watermark size (median tokens to p < 1e-3;
inf when more than half never get there). Text attacks have a row per reading (text, and
text+norm: after greenmark's normalization).
"""

import json
import sys

READING = {"ids": "", "text": " (text)", "normalized_text": " (text+norm)"}


def cell(r):
    size = "inf" if r["watermark_size"] is None else f"{r['watermark_size']:.0f}"
    auc = "-" if r["auc"] is None else f"{r['auc']:.3f}"
    return f"{r['tpr_at_1e3']:.3f} / {r['tpr_at_1e6']:.3f} / {auc} / {size}"


def main(args):
    runs = []
    for a in args:
        name, path = a.rsplit("=", 1)
        runs.append((name, json.load(open(path))))
    order, rows = [], {}
    for name, d in runs:
        for r in d["attacks"]:
            label = r["attack"] + READING[r["reading"]]
            if label not in rows:
                order.append(label)
                rows[label] = {}
            rows[label][name] = cell(r)
    names = [n for n, _ in runs]
    print("| attack | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print("| texts (wm / plain) | " + " | ".join(f"{d['n_watermarked']} / {d['n_plain']}" for _, d in runs) + " |")
    for label in order:
        print(f"| {label} | " + " | ".join(rows[label].get(n, "not run") for n in names) + " |")
    print("| plain FPR@1e-3 (ids / text / text+norm) | " + " | ".join(
        " / ".join(f"{p['fpr_at_1e3']:.4f}" for p in d["plain"]) for _, d in runs) + " |")
    print("| plain FPR@1e-6 (ids / text / text+norm) | " + " | ".join(
        " / ".join(f"{p['fpr_at_1e6']:.4f}" for p in d["plain"]) for _, d in runs) + " |")
    print("| perplexity under the generator, median (wm / plain) | " + " | ".join(
        (f"{d['perplexity']['watermarked']['median']:.2f} / {d['perplexity']['plain']['median']:.2f}"
         if isinstance(d.get("perplexity"), dict) and "watermarked" in d["perplexity"] else "not measured")
        for _, d in runs) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
