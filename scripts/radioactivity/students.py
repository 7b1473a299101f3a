"""Students of the teacher, and the radioactivity tests on them (closed and open mode).

Students are trained only on the teacher's answers (teacher.py):
  token-ngram  a count model over SmolLM2 token ids, order window + 1 (the teacher's tokenizer)
  word-ngram   a count model over words and punctuation, order 3 (a different tokenizer: its
               text is re-tokenized with SmolLM2's tokenizer for the closed test)
  neural       a tiny causal transformer (greenmark_experiments::student, candle, trained here on the
               CPU) over the SmolLM2 ids of its training answers, driven through
               `cargo run --release -p greenmark-experiments --example neural_student` (build it first)
each in a radioactive version (a share of 100%, 10% or 1% of its training answers from the
watermarked teacher, the rest from the plain one, on different prompts) and a control version
(plain answers only). Tests go through the CLI (`greenmark radioactivity closed|open`), so the
numbers are what a user of greenmark gets. Each test runs with the teacher's key and 100 random
wrong keys at once: the wrong keys' p-values give the calibration (KS test against uniform).

    python3 scripts/radioactivity/students.py --runs scripts/radioactivity/corpus --windows 1 --samples 10000 --neural-samples 5000 --out docs/radioactivity-results-w1.json
    python3 scripts/radioactivity/students.py --runs scripts/radioactivity/corpus --students neural --shares 1,0 --neural-tokens 2000000 --out neural.json
    python3 scripts/radioactivity/students.py --table w1.json w2.json   # one table from runs split by --windows

A run directory may still be growing (teacher.py appends prompt by prompt): only the answers
whose id is in all three variant files (plain, w1, w2) are used, and a last line cut short is
skipped.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TOKENIZER = ROOT / "crates/greenmark/tests/data/smollm2-tokenizer.json"
NEURAL = ROOT / "target/release/examples/neural_student"
STUDENTS = ("token-ngram", "word-ngram", "neural")
VARIANTS = ("plain", *(f"w{h}" for h in common.WINDOWS))
START = -1  # the start-of-text pseudo token of the n-gram students


class NGram:
    """A count-based n-gram model over hashable symbols, with a start pseudo-symbol."""

    def __init__(self, n: int, texts: list[list]):
        self.n = n
        self.next: dict[tuple, Counter] = defaultdict(Counter)
        for t in texts:
            seq = [START] * (n - 1) + list(t)
            for i in range(n - 1, len(seq)):
                self.next[tuple(seq[i - n + 1 : i])][seq[i]] += 1
        self.sampler = {k: (list(c.keys()), list(c.values())) for k, c in self.next.items()}
        self.unigram = [s for t in texts for s in t]

    def generate(self, length: int, rng: random.Random) -> list:
        out = [START] * (self.n - 1)
        for _ in range(length):
            ctx = tuple(out[len(out) - self.n + 1 :])
            if ctx in self.sampler:
                symbols, weights = self.sampler[ctx]
                out.append(rng.choices(symbols, weights)[0])
            else:
                out.append(rng.choice(self.unigram))
        return out[self.n - 1 :]

    def top1(self, context: list) -> int:
        """The most frequent continuation (smallest on ties); 0 for an unseen context."""
        c = self.next.get(tuple(context[len(context) - self.n + 1 :]))
        if not c:
            return 0
        best = max(c.values())
        return min(s for s, v in c.items() if v == best)


WORD = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    return WORD.findall(text)


def join_words(ws: list[str]) -> str:
    out = ""
    for w in ws:
        out += w if (not out or re.match(r"[^\w(\"']", w)) else " " + w
    return out


def read_complete(path: Path) -> list[dict]:
    """The lines of a JSON Lines file that may be being appended to: a last line without its
    newline (cut short) is skipped. Reads `path.gz` (gzip) when `path` is not there: the
    committed corpus (scripts/radioactivity/corpus) is gzipped."""
    gz = path.with_name(path.name + ".gz")
    with gzip.open(gz, "rt") if not path.exists() and gz.exists() else open(path) as f:
        lines = f.readlines()
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]
    return [json.loads(line) for line in lines if line.strip()]


def load(runs: list[Path]) -> dict[str, list[dict]]:
    """Every variant's answers from every run, each sorted by id, read once, keeping only the
    ids answered in all three variants (a run may be partly written)."""
    out = {v: [] for v in VARIANTS}
    for r in runs:
        by_variant = {v: read_complete(r / f"teacher-{v}.jsonl") for v in VARIANTS}
        ids = set.intersection(*({x["id"] for x in xs} for xs in by_variant.values()))
        for v in VARIANTS:
            out[v] += [x for x in by_variant[v] if x["id"] in ids]
    return {v: sorted(rows, key=lambda x: x["id"]) for v, rows in out.items()}


def mixed(wm: list[dict], plain: list[dict], share: float, rng: random.Random) -> list[dict]:
    """Training answers: `share` of the prompts answered by the watermarked teacher, the rest by
    the plain one (each prompt once)."""
    ids = [r["id"] for r in wm]
    rng.shuffle(ids)
    k = max(1, round(share * len(ids))) if share > 0 else 0
    take = set(ids[:k])
    by_plain = {r["id"]: r for r in plain}
    return [r for r in wm if r["id"] in take] + [by_plain[i] for i in ids[k:] if i in by_plain]


def cli(args: list[str]) -> dict:
    exe = ROOT / "target/release/greenmark"
    res = subprocess.run([str(exe), "radioactivity", *args, "--json"], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"greenmark {' '.join(args)} failed: {res.stderr}")
    return json.loads(res.stdout)


def ks_uniform(p: list[float]) -> float:
    from scipy import stats

    return float(stats.kstest(p, "uniform").pvalue)


def at(curve: list[dict], n: int):
    for point in curve:
        if point["n_scored"] == n:
            return point["log10_p_value"]
    return None


def summarize(result: dict) -> dict:
    teacher, wrong = result["keys"][0], result["keys"][1:]
    p_wrong = [10 ** k["log10_p_value"] for k in wrong]
    return {
        "n_seen": teacher["n_seen"],
        "n_scored": teacher["n_scored"],
        "n_excluded": teacher["n_excluded"],
        "n_repeated": teacher["n_repeated"],
        "n_copied": teacher["n_copied"],
        "green_fraction": round(teacher["green_fraction"], 4),
        "log10_p": round(teacher["log10_p_value"], 2),
        "log10_p_at_1k": at(teacher["curve"], 1000),
        "log10_p_at_10k": at(teacher["curve"], 10000),
        "log10_p_at_100k": at(teacher["curve"], 100000),
        "wrong_keys_ks_p": round(ks_uniform(p_wrong), 4) if wrong else None,
        "wrong_keys_below_0.01": sum(p < 0.01 for p in p_wrong),
        # 1 + the wrong keys with a smaller p-value than the teacher's key: uniform on
        # 1..101 for a suspect that never saw the watermark.
        "teacher_key_rank": 1 + sum(k["log10_p_value"] < teacher["log10_p_value"] for k in wrong),
    }


class Neural:
    """A trained neural student (a safetensors file), used through the example driver."""

    def __init__(self, path: Path):
        self.path = path

    def generate(self, n: int, length: int, seed: int) -> list[list[int]]:
        out = self.path.with_suffix(".gen.jsonl")
        run_neural(["generate", "--model", str(self.path), "--n", str(n), "--len", str(length),
                    "--temperature", "1", "--seed", str(seed), "--out", str(out)])
        return [r["ids"] for r in common.read_jsonl(out)]

    def predict(self, texts: list[dict], out: Path) -> None:
        src = self.path.with_suffix(".read.jsonl")
        common.write_jsonl(src, ({"ids": r["ids"]} for r in texts))
        run_neural(["predict", "--model", str(self.path), "--texts", str(src), "--out", str(out)])


def run_neural(args: list[str]) -> dict:
    res = subprocess.run([str(NEURAL), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"neural_student {' '.join(args)} failed: {res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


TRAINED: dict[str, tuple[Neural, dict]] = {}


def train_neural(stem: Path, train: list[dict], args) -> tuple[Neural, dict]:
    """Trains a neural student on the answers' SmolLM2 ids, for about --neural-tokens tokens.
    Training is deterministic, so a student of the same answers (the control, the same for
    every window) is trained once."""
    data = stem.with_suffix(".train.jsonl")
    common.write_jsonl(data, ({"ids": r["ids"]} for r in train))
    tokens = sum(len(r["ids"]) + 1 for r in train)
    epochs = max(1, round(args.neural_tokens / tokens))
    import hashlib

    cache_key = hashlib.sha256(data.read_bytes() + f"/{epochs}/{args.seed}".encode()).hexdigest()
    if cache_key in TRAINED:
        return TRAINED[cache_key]
    model = stem.with_suffix(".safetensors")
    summary = run_neural(["train", "--corpus", str(data), "--out", str(model), "--epochs", str(epochs),
                          "--seed", str(args.seed), "--log", str(stem.with_suffix(".loss.jsonl"))])
    keep = ("corpus_tokens", "vocab", "parameters", "steps", "tokens", "seconds", "tokens_per_second",
            "loss_first_step", "loss_first_epoch", "loss_last_epoch")
    TRAINED[cache_key] = Neural(model), {"train": {k: summary[k] for k in keep} | {"epochs": epochs}}
    return TRAINED[cache_key]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--table", type=Path, nargs="+", metavar="RESULTS_JSON",
                    help="print the markdown table of results files written by --out (e.g. one run per "
                         "window, run in parallel) and exit")
    ap.add_argument("--wrong-keys", type=int, default=100)
    ap.add_argument("--samples", type=int, default=3000, help="texts generated per n-gram student")
    ap.add_argument("--neural-samples", type=int,
                    help="texts generated per neural student (default: --samples; its sampling costs "
                         "far more than an n-gram's and its texts are more diverse)")
    ap.add_argument("--length", type=int, default=100, help="symbols per generated text")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--students", default=",".join(STUDENTS),
                    help=f"comma-separated student kinds to run (of {', '.join(STUDENTS)})")
    ap.add_argument("--windows", default=",".join(map(str, common.WINDOWS)),
                    help="comma-separated watermark windows to test")
    ap.add_argument("--shares", default="1,0.1,0.01,0",
                    help="comma-separated shares of watermarked training answers (0: the control)")
    ap.add_argument("--neural-tokens", type=int, default=1_000_000,
                    help="training tokens per neural student (epochs = this / corpus tokens, at least 1)")
    ap.add_argument("--neural-length", type=int, default=100,
                    help="tokens per text the neural student writes (below its context of 128)")
    args = ap.parse_args()
    if args.table:
        results = [r for path in args.table for r in json.loads(path.read_text())["results"]]
        print(markdown(sorted(results, key=lambda r: r["window"])))
        return
    if not (args.runs and args.out):
        ap.error("--runs and --out are required (or --table)")
    kinds = [k.strip() for k in args.students.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(STUDENTS))
    if unknown or not kinds:
        ap.error(f"--students: unknown kind(s) {unknown}; choose from {', '.join(STUDENTS)}")
    if "neural" in kinds and not NEURAL.exists():
        ap.error(f"{NEURAL} is missing: run `cargo build --release -p greenmark-experiments --example neural_student`")
    neural_samples = args.samples if args.neural_samples is None else args.neural_samples
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(TOKENIZER))
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="radioactivity-"))
    # Wrong keys: random, no config needed beyond the teacher's (written with it).
    wrong = []
    for i in range(args.wrong_keys):
        path = work / f"wrong-{i}.json"
        doc = json.loads((args.runs[0] / "keys/w1.json").read_text())
        secret = "%064x" % rng.getrandbits(256)
        import greenmark

        doc.update(secret=secret, key_id=greenmark.Key.from_hex(secret).id)
        wrong.append(doc)
    answers = load(args.runs)
    prompts = work / "prompts.jsonl"
    common.write_jsonl(prompts, ({"prompt": r["prompt"]} for r in answers["plain"]))
    plain = answers["plain"]
    results = []
    start_all = time.time()
    for h in [int(x) for x in args.windows.split(",")]:
        wm = answers[f"w{h}"]
        keys = []
        for i, doc in enumerate(wrong):
            doc = dict(doc)
            doc["config"] = json.loads((args.runs[0] / f"keys/w{h}.json").read_text())["config"]
            p = work / f"w{h}-wrong-{i}.json"
            p.write_text(json.dumps(doc))
            keys.append(p)
        key_args = ["--key-file", str(args.runs[0] / f"keys/w{h}.json")]
        for p in keys:
            key_args += ["--key-file", str(p)]
        # The teacher's own answers, for scale: the watermarked ones (the strength students
        # inherit from) and the plain ones (the one chance draw that every control learns from).
        for name, share, rows in (("teacher itself", 1.0, wm), ("teacher, no watermark", 0.0, plain)):
            teacher_out = work / f"teacher-{h}-{share:.0%}.jsonl"
            common.write_jsonl(teacher_out, ({"text": r["text"]} for r in rows))
            row = {
                "window": h, "student": name, "kind": "teacher", "share": share, "mode": "closed",
                **summarize(cli(["closed", "--tokenizer", str(TOKENIZER), "--outputs", str(teacher_out),
                                 "--prompts", str(prompts), *key_args])),
            }
            results.append(row)
            print(json.dumps(row), flush=True)
        for share in [float(x) for x in args.shares.split(",")]:
            train = mixed(wm, plain, share, random.Random(args.seed + 1))
            kind = "control" if share == 0 else "radioactive"
            for student in kinds:
                t0 = time.time()
                extra = {}
                if student == "neural":
                    model, extra = train_neural(work / f"neural-{h}-{share:.0%}", train, args)
                    texts = [tok.decode(ids) for ids in model.generate(neural_samples, args.neural_length, args.seed)]
                elif student == "token-ngram":
                    model = NGram(h + 1, [r["ids"] for r in train])
                    texts = [tok.decode(model.generate(args.length, rng)) for _ in range(args.samples)]
                else:
                    model = NGram(3, [words(r["text"]) for r in train])
                    texts = [join_words(model.generate(args.length, rng)) for _ in range(args.samples)]
                outputs = work / f"out-{h}-{student}-{share}.jsonl"
                common.write_jsonl(outputs, ({"text": t} for t in texts))
                base = ["closed", "--tokenizer", str(TOKENIZER), "--outputs", str(outputs), *key_args]
                row = {
                    "window": h, "student": student, "kind": kind, "share": share, "mode": "closed",
                    **summarize(cli([*base, "--prompts", str(prompts)])),
                }
                row["seconds"] = round(time.time() - t0, 1)
                row.update(extra)
                results.append(row)
                print(json.dumps(row), flush=True)
                if kind == "control":
                    for flag, name in (("--no-dedup", "closed, no dedup"),):
                        ab = {"window": h, "student": student, "kind": kind, "share": share, "mode": name,
                              **summarize(cli([*base, "--prompts", str(prompts), flag]))}
                        results.append(ab)
                        print(json.dumps(ab), flush=True)
                if student in ("token-ngram", "neural"):
                    # Open mode: the student's top-1 predictions reading the watermarked texts.
                    t0 = time.time()
                    preds = work / f"preds-{h}-{student}-{share}.jsonl"
                    if student == "neural":
                        model.predict(wm, preds)
                    else:
                        common.write_jsonl(
                            preds,
                            (
                                {"ids": r["ids"], "predictions": [model.top1([START] * h + r["ids"][: j + 1]) for j in range(len(r["ids"]))]}
                                for r in wm
                            ),
                        )
                    row = {
                        "window": h, "student": student, "kind": kind, "share": share, "mode": "open",
                        **summarize(cli(["open", "--predictions", str(preds), *key_args])),
                    }
                    row["seconds"] = round(time.time() - t0, 1)
                    results.append(row)
                    print(json.dumps(row), flush=True)
    teacher_tokens = sum(len(r["ids"]) for r in plain)
    args.out.write_text(
        json.dumps(
            {"results": results, "teacher_answers": len(plain), "teacher_tokens_per_variant": teacher_tokens,
             "seconds": round(time.time() - start_all, 1), "args": {k: str(v) for k, v in vars(args).items()}},
            indent=1,
        )
        + "\n"
    )
    print(f"wrote {args.out} in {time.time() - start_all:.0f} s")
    print(markdown(results))


def fmt(x) -> str:
    return "n/r" if x is None else f"{x:.1f}"


def corrected(r: dict) -> float:
    """log10 of the best p-value over the looks the table reports (@1k, @10k, @100k, all),
    Bonferroni-corrected for their number: several looks at one sequence are several tests."""
    looks = [r["log10_p_at_1k"], r["log10_p_at_10k"], r.get("log10_p_at_100k"), r["log10_p"]]
    looks = [x for x in looks if x is not None]
    return min(0.0, min(looks) + math.log10(len(looks)))


def markdown(results: list[dict]) -> str:
    """The results table of docs/radioactivity.md."""
    lines = [
        "| window | student | training data | mode | tuples scored | green | log10 p @1k | log10 p @10k "
        "| log10 p @100k | log10 p (all) | best look, corrected | wrong keys: KS p / # p<0.01 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        data = {"control": "control (0%)", "teacher": "-"}.get(r["kind"], f"{r['share']:.0%} watermarked")
        lines.append(
            f"| {r['window']} | {r['student']} | {data} | {r['mode']} | {r['n_scored']} "
            f"| {r['green_fraction']:.3f} | {fmt(r['log10_p_at_1k'])} | {fmt(r['log10_p_at_10k'])} "
            f"| {fmt(r.get('log10_p_at_100k'))} "
            f"| {r['log10_p']:.1f} | {corrected(r):.1f} "
            f"| {r['wrong_keys_ks_p']:.2f} / {r['wrong_keys_below_0.01']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
