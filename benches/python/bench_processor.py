"""greenmark vs transformers' own watermark, side by side on CPU torch.

1. Per generation step: greenmark.transformers.WatermarkLogitsProcessor vs
   transformers.WatermarkLogitsProcessor (gamma/greenlist_ratio 0.25, delta/bias 2.0, lefthash,
   context width 1) on float32 scores of shape (B, V), for V in 49152 and 128256 and B in
   1, 8, 32, both called through a LogitsProcessorList as `generate` calls them (greenmark is
   also timed called directly, which leaves out the list's per-call overhead). A floor (`scores.add_(0.0)`: one pass over the same memory) is printed beside them.
2. greenmark.llama_cpp.WatermarkLogitsProcessor on llama-cpp-python's strided scores view and on a
   contiguous float32 row (V=49152).
3. Detection: greenmark.Detector.detect_batch vs transformers.WatermarkDetector on texts of
   200 tokens: greenmark on 1,000 texts (transformers' detector draws a randperm(V) per token, so it runs on a subset and
   its per-text time is extrapolated; the number of texts each ran on is printed).

Run: python3 benches/python/bench_processor.py [--quick] [--torch-threads N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch
from transformers import LogitsProcessorList, PretrainedConfig
from transformers import WatermarkDetector as HfDetector
from transformers import WatermarkLogitsProcessor as HfProcessor

import greenmark
from greenmark.transformers import WatermarkLogitsProcessor

KEY = greenmark.Key.from_hex("42" * 32)


def per_call(fn, min_time: float, min_calls: int = 5) -> float:
    """Median seconds per call over at least `min_calls` calls and `min_time` seconds."""
    fn()  # warm up
    times = []
    start = time.perf_counter()
    while len(times) < min_calls or time.perf_counter() - start < min_time:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_processors(quick: bool) -> None:
    min_time = 0.2 if quick else 1.0
    print(f"## processor step time (median; torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
          f"{len(os.sched_getaffinity(0))} cores)\n")
    print("| V | batch | floor add_(0) | greenmark (direct call) | greenmark | transformers | transformers / greenmark |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for vocab in (49152, 128256):
        config = greenmark.WatermarkConfig(vocab, gamma=0.25, delta=2.0, scheme="lefthash")
        direct = WatermarkLogitsProcessor(KEY, config)
        ours = LogitsProcessorList([direct])
        theirs = LogitsProcessorList([HfProcessor(vocab, "cpu", greenlist_ratio=0.25, bias=2.0, seeding_scheme="lefthash", context_width=1)])
        for batch in (1, 8, 32):
            gen = torch.Generator().manual_seed(batch)
            input_ids = torch.randint(0, vocab, (batch, 64), generator=gen)
            scores = torch.randn(batch, vocab, generator=gen)
            floor = per_call(lambda: scores.add_(0.0), min_time)
            d = per_call(lambda: direct(input_ids, scores), min_time)
            g = per_call(lambda: ours(input_ids, scores), min_time)
            h = per_call(lambda: theirs(input_ids, scores), min_time)
            print(f"| {vocab} | {batch} | {floor*1e6:.0f} us | {d*1e6:.0f} us | {g*1e6:.0f} us | {h*1e6:.0f} us | {h/g:.1f}x |")
    print()


def bench_llama_cpp(quick: bool) -> None:
    """greenmark.llama_cpp's processor on the arrays llama-cpp-python hands it (V=49152)."""
    from greenmark.llama_cpp import WatermarkLogitsProcessor as LlamaProcessor

    min_time = 0.2 if quick else 1.0
    vocab = 49152
    proc = LlamaProcessor(KEY, greenmark.WatermarkConfig(vocab, gamma=0.25, delta=2.0))
    ids = np.random.default_rng(0).integers(0, vocab, 64).astype(np.intc)
    layout = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)
    data = np.zeros(vocab, dtype=layout)  # llama_token_data, as llama-cpp-python views it
    contiguous = np.random.default_rng(1).standard_normal(vocab).astype(np.float32)
    strided = per_call(lambda: proc(ids, data["logit"]), min_time)
    flat = per_call(lambda: proc(ids, contiguous), min_time)
    floor = per_call(lambda: np.add(contiguous, 0.0, out=contiguous), min_time)
    print(f"## llama-cpp-python processor, V={vocab} (direct call)\n")
    print("| scores layout | floor add(0) | greenmark |")
    print("|---|---:|---:|")
    print(f"| float32 contiguous (in place) | {floor*1e6:.0f} us | {flat*1e6:.0f} us |")
    print(f"| llama_token_data.logit, stride 12 B (gather, bias, scatter) | | {strided*1e6:.0f} us |\n")


def bench_detectors(quick: bool) -> None:
    vocab, length = 49152, 200
    n_ours = 200 if quick else 1000
    n_theirs = 3 if quick else 10
    rng = np.random.default_rng(0)
    texts = rng.integers(0, vocab, size=(n_ours, length))
    detector = greenmark.Detector(KEY, greenmark.WatermarkConfig(vocab, gamma=0.25, delta=2.0))
    ours = per_call(lambda: detector.detect_batch(list(texts)), 0.5, 3) / n_ours
    hf = HfDetector(PretrainedConfig(vocab_size=vocab, bos_token_id=1), "cpu",
                    {"greenlist_ratio": 0.25, "bias": 2.0, "hashing_key": 15485863,
                     "seeding_scheme": "lefthash", "context_width": 1})
    subset = torch.from_numpy(texts[:n_theirs])
    start = time.perf_counter()
    hf(subset, return_dict=True)
    theirs = (time.perf_counter() - start) / n_theirs
    print(f"## detection, {length}-token texts, V={vocab}\n")
    print("| detector | texts timed | per text | texts/s |")
    print("|---|---:|---:|---:|")
    print(f"| greenmark.Detector.detect_batch | {n_ours} | {ours*1e6:.1f} us | {1/ours:,.0f} |")
    print(f"| transformers.WatermarkDetector | {n_theirs} | {theirs*1e3:.1f} ms | {1/theirs:,.1f} |")
    print(f"\ngreenmark is {theirs/ours:,.0f}x faster per text "
          f"(1,000 texts: greenmark {1000*ours*1e3:.1f} ms, transformers about {1000*theirs:.0f} s extrapolated)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timings, fewer texts")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's own); 1 keeps torch's spinning thread pool "
        "from swamping the figures on a machine busy with other work",
    )
    args = parser.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    torch.set_grad_enabled(False)
    bench_processors(args.quick)
    bench_llama_cpp(args.quick)
    bench_detectors(args.quick)


if __name__ == "__main__":
    main()
