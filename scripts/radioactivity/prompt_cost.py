"""What `--prompts` costs: the share of tuples lost when the windows of ALL prompts are excluded
from every text, against excluding only the windows of each text's own prompt.

Counted on the plain teacher answers of the corpus (a stand-in for a suspect's text), with the
SmolLM2 tokenizer and the experiment's lefthash scheme, whose window acts through its leftmost
token only (the tape compares windows by the seed they give), so window 2 loses about as much
as window 1. `greenmark radioactivity closed` with and without `--prompts` gives the same
all-prompts figures (see docs/radioactivity.md).

    python3 scripts/radioactivity/prompt_cost.py [--runs scripts/radioactivity/corpus]  # 3 s
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from students import TOKENIZER, load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", default=[Path(__file__).resolve().parent / "corpus"])
    args = ap.parse_args()
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER))
    rows = load(args.runs)["plain"]
    prompts = [tok.encode(r["prompt"], add_special_tokens=False).ids for r in rows]
    answers = [tok.encode(r["text"], add_special_tokens=False).ids for r in rows]
    for h in common.WINDOWS:
        own = [{p[i] for i in range(len(p) - h + 1)} for p in prompts]  # leftmost tokens
        every = set().union(*own)
        n = n_all = n_own = 0
        distinct, lost_all, lost_own = set(), set(), set()
        for a, mine in zip(answers, own):
            for p in range(h, len(a)):
                window, t = a[p - h], (a[p - h], a[p])
                n += 1
                distinct.add(t)
                if window in every:
                    n_all += 1
                    lost_all.add(t)
                if window in mine:
                    n_own += 1
                    lost_own.add(t)
        share = lambda part, whole: f"{100 * part / whole:.1f}%"  # noqa: E731
        print(
            f"window {h}: {n} tuples, {len(distinct)} distinct; {len(every)} distinct prompt windows. "
            f"All prompts exclude {share(len(lost_all), len(distinct))} of the distinct tuples "
            f"({share(n_all, n)} of occurrences); each text's own prompt only "
            f"{share(len(lost_own), len(distinct))} ({share(n_own, n)})"
        )


if __name__ == "__main__":
    main()
