"""Throughput of greenmark.ray's radioactivity pipeline against the single-process test.

Writes a corpus of random token ids (parquet, several files) and times, on the same corpus:

- single process: read the files with pyarrow, then ``RadioactivityTest.score_text`` per text
  in corpus order (one core);
- the Ray Data pipeline (``greenmark.ray.radioactivity``) on a local Ray instance with
  ``--workers`` sift workers (``ray.init(num_cpus=workers)``; start-up timed apart).

Both results are checked equal (every count, the p-value, the curve) and the rates printed in
tuples offered per second. Run from the repository root after installing the wheel:

    python3 benches/python/bench_ray.py --texts 20000 --length 250
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import greenmark
from greenmark.radioactivity import RadioactivityTest

VOCAB = 49152


def make_test(max_tuples=None):
    return RadioactivityTest([greenmark.Key.from_hex("5a" * 32)], greenmark.WatermarkConfig(VOCAB), max_tuples=max_tuples)


def write_corpus(root: pathlib.Path, texts: int, length: int, files: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    per_file = -(-texts // files)
    doc = 0
    for f in range(files):
        n = min(per_file, texts - doc)
        flat = rng.integers(0, VOCAB, n * length, dtype=np.int64)
        ids = pa.LargeListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int64) * length), pa.array(flat))
        pq.write_table(pa.table({"id": np.arange(doc, doc + n, dtype=np.int64), "ids": ids}), root / f"part-{f:03}.parquet")
        doc += n
    return texts * (length - 1)  # tuples offered (window 1)


def single_process(root: pathlib.Path, max_tuples):
    test = make_test(max_tuples)
    for path in sorted(root.glob("*.parquet")):
        table = pq.read_table(path)
        ids = table.column("ids").combine_chunks()
        values = ids.values.to_numpy()
        offsets = ids.offsets.to_numpy()
        for i in np.argsort(table.column("id").to_numpy()):
            test.score_text(values[offsets[i] : offsets[i + 1]])
    return test


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=20000)
    parser.add_argument("--length", type=int, default=250, help="tokens per text")
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--max-tuples", type=int, default=None)
    args = parser.parse_args()

    import ray

    import greenmark.ray as gray

    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        t = time.perf_counter()
        tuples = write_corpus(root, args.texts, args.length, args.files, seed=0)
        print(f"corpus: {args.texts} texts x {args.length} tokens = {tuples:,} tuples in {args.files} parquet files ({time.perf_counter() - t:.1f} s to write)")

        t = time.perf_counter()
        direct = single_process(root, args.max_tuples)
        single_s = time.perf_counter() - t
        print(f"single process (pyarrow read + score_text per text): {single_s:.2f} s, {tuples / single_s / 1e6:.2f} M tuples/s")

        t = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray.data.DataContext.get_current().enable_progress_bars = False
        print(f"ray.init(num_cpus={args.workers}): {time.perf_counter() - t:.1f} s")
        try:
            runs = []
            for _ in range(2):  # the first run also starts the worker processes
                t = time.perf_counter()
                test = gray.radioactivity(
                    lambda: make_test(args.max_tuples),
                    root,
                    partitions=args.partitions,
                    batch_size=args.batch_size,
                    workers=args.workers,
                )
                runs.append(time.perf_counter() - t)
            for i, s in enumerate(runs):
                print(f"ray pipeline, {args.workers} workers, run {i + 1}: {s:.2f} s, {tuples / s / 1e6:.2f} M tuples/s")
        finally:
            ray.shutdown()
        a, b = test.result(), direct.result()
        a.pop("memory_bytes")
        b.pop("memory_bytes")
        assert a == b, "the pipeline's result differs from the single-process one"
        k = a["keys"][0]
        print(f"results equal: {k['n_scored']:,} scored, {k['n_repeated']:,} repeated, {k['n_over_budget']:,} over budget, log10 p {k['log10_p_value']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
