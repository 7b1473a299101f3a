"""Perplexity of saved eval texts under the embedded model, per text, and whether the
watermarked-minus-plain gap is more than the draw of texts.

`greenmark eval --perplexity-texts N` reads with candle one position at a time (candle's
quantized llama returns only the last position's logits): on the 2 shared cores it read 0.7-0.9
positions/s, an estimated 3 hours for 32 + 32 answers of 140 positions. This script reads the same texts
with transformers (the same GGUF weights, dequantized to float32), one forward pass per text,
in seconds, and tests the gap with its own numpy implementation of what `greenmark eval`
reports (`greenmark::eval::gap::mean_gap`): the difference of mean per-text log-perplexities, a
Monte Carlo permutation p-value `(1 + hits) / (1 + B)` (valid for any B), and a percentile
bootstrap 95% interval.

Usage (repository root; texts as `greenmark eval --save-texts` writes them):

    python3 scripts/eval/perplexity_gap.py PLAIN.jsonl NAME=WATERMARKED.jsonl [NAME=...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys

import numpy as np
import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bindings" / "python" / "tests"))
from conftest import gguf_path  # noqa: E402  (the embedded GGUF, fetched and SHA-256 checked)

RESAMPLES = 20_000


def load(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return [(r["prompt_ids"], r["ids"]) for r in rows if r.get("prompt_ids") and r.get("ids")]


def log_ppl(model, texts):
    """Per text: -mean ln p(token | prompt, earlier tokens) over the answer's tokens."""
    out = []
    with torch.no_grad():
        for prompt, ids in texts:
            seq = torch.tensor([prompt + ids])
            logp = torch.log_softmax(model(seq).logits[0, :-1].double(), dim=-1)
            targets = seq[0, 1:]
            lp = logp[torch.arange(len(targets)), targets][len(prompt) - 1 :]
            out.append(-lp.mean().item())
    return np.array(out)


def gap(a, b, resamples=RESAMPLES, seed=0):
    rng = np.random.default_rng(seed)
    diff = a.mean() - b.mean()
    pooled = np.concatenate([a, b])
    hits = 0
    for _ in range(resamples):
        perm = rng.permutation(pooled)
        if abs(perm[: len(a)].mean() - perm[len(a) :].mean()) >= abs(diff) * (1 - 1e-12):
            hits += 1
    boots = np.array(
        [rng.choice(a, len(a)).mean() - rng.choice(b, len(b)).mean() for _ in range(resamples)]
    )
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return {"diff": diff, "p_value": (1 + hits) / (1 + resamples), "ci95": [lo, hi]}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("plain")
    parser.add_argument("watermarked", nargs="+", help="NAME=PATH")
    parser.add_argument("--json")
    args = parser.parse_args()
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32).eval()
    plain = log_ppl(model, load(args.plain))
    report = {"oracle": "SmolLM2-135M-Instruct (the generator), GGUF Q4_1 dequantized, transformers float32",
              "plain": {"n_texts": len(plain), "median_ppl": math.exp(np.median(plain)), "per_text_log_ppl": plain.tolist()}}
    print(f"{'config':<16} {'n':>3} {'median ppl':>10} {'gap (nats)':>10} {'95% CI':>17} {'perm. p':>8}")
    print(f"{'plain':<16} {len(plain):>3} {math.exp(np.median(plain)):>10.2f}")
    for spec in args.watermarked:
        name, file = spec.split("=", 1)
        w = log_ppl(model, load(file))
        g = gap(w, plain)
        report[name] = {"n_texts": len(w), "median_ppl": math.exp(np.median(w)), "per_text_log_ppl": w.tolist(), "gap": g}
        print(f"{name:<16} {len(w):>3} {math.exp(np.median(w)):>10.2f} {g['diff']:>+10.3f} "
              f"[{g['ci95'][0]:+.3f}, {g['ci95'][1]:+.3f}] {g['p_value']:>8.4f}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
