"""Prompt-window exclusion on real watermarked text: a clean suspect that quotes its prompt.

The real experiment's prompts are not watermarked, so dropping prompt exclusion changes
nothing there. Here the prompts are the watermarked teacher's answers ("Continue this text:
..."), and the suspect is clean: the *unwatermarked* teacher, whose answer starts by quoting
the first half of the prompt's text (as models often quote what they are asked about). It never
saw the key, so it is not radioactive; without prompt-window exclusion the quoted watermarked
n-grams make it look radioactive, with exclusion it does not. Both through the CLI
(`greenmark radioactivity closed`, with and without `--prompts`), at a fixed budget, for the
teacher's key and for 100 random wrong keys (whose p-values stay uniform either way).

    python3 scripts/radioactivity/ablation.py --runs scripts/radioactivity/corpus --out docs/radioactivity-ablation.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from students import TOKENIZER, cli, ks_uniform, load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--max-tuples", type=int, default=5000)
    ap.add_argument("--wrong-keys", type=int, default=100)
    args = ap.parse_args()
    start = time.time()
    rows = load(args.runs)
    plain = {r["id"]: r for r in rows["plain"]}
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for h in common.WINDOWS:
            wm = rows[f"w{h}"]
            prompts, outputs = [], []
            for r in wm:
                words = r["text"].split()
                quote = " ".join(words[: len(words) // 2])
                prompts.append({"prompt": f"Continue this text: {r['text']}"})
                outputs.append({"text": f"{quote} {plain[r['id']]['text']}"})
            common.write_jsonl(tmp / f"prompts-{h}.jsonl", prompts)
            common.write_jsonl(tmp / f"outputs-{h}.jsonl", outputs)
            key = args.runs[0] / "keys" / f"w{h}.json"
            for exclude in (True, False):
                base = ["closed", "--tokenizer", str(TOKENIZER), "--outputs", str(tmp / f"outputs-{h}.jsonl"),
                        "--max-tuples", str(args.max_tuples)]
                if exclude:
                    base += ["--prompts", str(tmp / f"prompts-{h}.jsonl")]
                # One pass for the teacher's key and the wrong keys (same window): keys[0] is
                # the teacher's, the others give the calibration.
                wrong = []
                for i in range(args.wrong_keys):
                    wrong += ["--key-file", str(tmp / f"wrong-{h}-{i}.json")]
                    common.write_key_file(tmp / f"wrong-{h}-{i}.json", h, label=f"ablation-wrong-{i}")
                result = cli([*base, "--key-file", str(key), *wrong])
                k = result["keys"][0]
                p_wrong = [10 ** w["log10_p_value"] for w in result["keys"][1:]]
                results.append({
                    "window": h, "prompt_exclusion": exclude, "n_scored": k["n_scored"],
                    "n_excluded": k["n_excluded"], "log10_p_teacher_key": k["log10_p_value"],
                    "ks_wrong_keys": ks_uniform(p_wrong),
                    "wrong_keys_below_0.01": sum(p < 0.01 for p in p_wrong),
                })
                print(json.dumps(results[-1]), flush=True)
    elapsed = time.time() - start
    doc = {"answers": len(rows["plain"]), "max_tuples": args.max_tuples, "seconds": round(elapsed), "results": results}
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"done in {elapsed:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
