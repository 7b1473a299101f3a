"""Packs teacher runs (teacher.py output directories, possibly stopped mid-way) into one
committed corpus: the answers whose id is in all three variant files, sorted by id, gzipped,
with the experiment's key files. students.py and ablation.py read the packed directory like a
run (`--runs scripts/radioactivity/corpus`), and a later teacher run (`--skip` past the packed
ids) can be added next to it (`--runs scripts/radioactivity/corpus /tmp/radio-c`).

    python3 scripts/radioactivity/pack.py --runs /tmp/radio-a /tmp/radio-b --out scripts/radioactivity/corpus
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from students import VARIANTS, load  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    answers = load(args.runs)
    ids = [r["id"] for r in answers["plain"]]
    if len(set(ids)) != len(ids):
        sys.exit("the runs answer some prompt twice: give runs with disjoint --skip ranges")
    (args.out / "keys").mkdir(parents=True, exist_ok=True)
    for key in sorted((args.runs[0] / "keys").glob("*.json")):
        shutil.copy(key, args.out / "keys" / key.name)
    for v in VARIANTS:
        # mtime 0: the same answers give the same bytes.
        with open(args.out / f"teacher-{v}.jsonl.gz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
                for row in answers[v]:
                    f.write((json.dumps(row) + "\n").encode())
    tokens = {v: sum(len(r["ids"]) for r in answers[v]) for v in VARIANTS}
    print(json.dumps({"prompts": len(ids), "tokens": tokens}))


if __name__ == "__main__":
    main()
