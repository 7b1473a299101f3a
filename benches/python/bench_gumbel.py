"""greenmark's Gumbel detector vs vLLM's own detector and a numpy implementation of the same math.

vLLM's detector (``vllm.v1.watermarking.GumbelWatermarkDetector``, vllm 0.33.0) is timed on
CPU torch from the ``--no-deps`` install that ``make test-python`` puts in
``target/vllm-site`` (or ``GREENMARK_VLLM_SITE``, or ``--vllm-site``); without it the vLLM
column reads "n/a". :func:`numpy_detect` is a direct, vectorized transcription of the algorithm
(Philox4x32-10 vectorized over the scored tokens with numpy, the context dedup as a Python loop
as vLLM's ``_prepare_inputs`` does, and the integer-shape gamma survival by log-sum-exp as
vLLM's ``_gamma_survival_integer_shape``). Every row first checks that the three agree
(scored count exactly, score to 1e-9); the tests pin greenmark against vLLM on hundreds of
sequences (``bindings/python/tests/test_gumbel_vs_vllm.py``) and the numpy reference on vLLM's
golden cases (``test_gumbel.py``).

Run: python3 benches/python/bench_gumbel.py [--quick] [--vllm-site DIR]
"""

from __future__ import annotations

import argparse
import math
import os
import pathlib
import statistics
import sys
import time
import timeit

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = np.uint64(0xFFFFFFFF)
CONTEXT_DOMAIN, TOKEN_DOMAIN = 0x574D4358, 0x574D544B


def philox(c, k0, k1):
    """Philox4x32-10 over arrays: c is a list of 4 uint64 arrays (32-bit values), keys too."""
    c0, c1, c2, c3 = c
    k0 = np.asarray(k0, dtype=np.uint64)
    k1 = np.asarray(k1, dtype=np.uint64)
    for r in range(10):
        p0 = c0 * M0
        p1 = c2 * M1
        c0, c1, c2, c3 = ((p1 >> np.uint64(32)) ^ c1 ^ k0) & MASK, p1 & MASK, ((p0 >> np.uint64(32)) ^ c3 ^ k1) & MASK, p0 & MASK
        if r != 9:
            k0 = (k0 + np.uint64(W0)) & MASK
            k1 = (k1 + np.uint64(W1)) & MASK
    return c0, c1, c2, c3


def uniforms(key: int, contexts: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """The uniform of each (context row, token): contexts (N, w) int64 with -1 padding."""
    n, w = contexts.shape
    ctx = contexts.astype(np.int64).astype(np.uint64) & MASK
    k0, k1 = np.uint64(key & 0xFFFFFFFF), np.uint64(key >> 32)
    state = [np.full(n, CONTEXT_DOMAIN, np.uint64), np.full(n, w, np.uint64), np.zeros(n, np.uint64), np.zeros(n, np.uint64)]
    for off in range(0, w, 4):
        block = [ctx[:, off + i] if off + i < w else np.full(n, 0xFFFFFFFF - i, np.uint64) for i in range(4)]
        state = philox([state[i] ^ block[i] for i in range(4)], k0 ^ np.uint64(off), k1)
    t = tokens.astype(np.uint64)
    out = philox([t >> np.uint64(2), state[0], state[1], state[2]], k0 ^ state[3], k1 ^ np.uint64(TOKEN_DOMAIN))
    word = np.choose((t & np.uint64(3)).astype(np.int64), out)
    return (((word >> np.uint64(8)) + np.uint64(1)).astype(np.float64) / (2.0**24 + 1.0)).astype(np.float32)


def gamma_survival_integer_shape(score: float, shape: int) -> float:
    """vLLM's formula: e^-S sum_{k<n} S^k / k!, by log-sum-exp (a float: underflows to 0)."""
    if shape <= 0 or score <= 0:
        return 1.0
    logs = np.concatenate(([0.0], np.cumsum(math.log(score) - np.log(np.arange(1, shape)))))
    m = logs.max()
    return min(1.0, math.exp(min(0.0, -score + m + math.log(np.exp(logs - m).sum()))))


def numpy_detect(key: int, token_ids, context_width: int = 4, dedup: bool = True):
    """(score, p_value, n_scored) for single-key Gumbel, as vLLM defines them."""
    contexts, targets, seen = [], [], set()
    prefix = [-1] * context_width
    for t in token_ids:
        ctx = tuple(prefix[-context_width:])
        if not dedup or ctx not in seen:
            seen.add(ctx)
            contexts.append(ctx)
            targets.append(t)
        prefix.append(t)
    if not targets:
        return 0.0, 1.0, 0
    u = uniforms(key, np.array(contexts, dtype=np.int64), np.array(targets, dtype=np.int64))
    score = float((-np.log1p(-u.astype(np.float64))).sum())
    return score, gamma_survival_integer_shape(score, len(targets)), len(targets)


def per_call(fn, number: int, repeat: int = 5) -> float:
    """Median seconds per call over `repeat` rounds of `number` calls (after one warm-up call)."""
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=repeat)) / number


def load_vllm(site):
    """vLLM's GumbelWatermarkDetector class, or None (with the reason printed)."""
    site = site or os.environ.get("GREENMARK_VLLM_SITE")
    if site is None:
        default = pathlib.Path(__file__).resolve().parents[2] / "target" / "vllm-site"
        site = str(default) if default.is_dir() else None
    if site and site not in sys.path:
        sys.path.append(site)
    try:
        from vllm.v1.watermarking import GumbelWatermarkDetector
    except ImportError as err:
        print(f"vLLM NOT IMPORTABLE ({err}): its column reads n/a (make test-python installs it)")
        return None
    return GumbelWatermarkDetector


def ms(t):
    return "n/a" if t is None else f"{t * 1e3:.3f}ms"


def ratio(t, t_gm):
    return "n/a" if t is None else f"{t / t_gm:.0f}x"


def main() -> None:
    from greenmark.gumbel import GumbelDetector

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    parser.add_argument("--vllm-site", help="directory holding vllm 0.33.0 (default: GREENMARK_VLLM_SITE or target/vllm-site)")
    args = parser.parse_args()
    start = time.perf_counter()
    scale = 1 if args.quick else 5
    rng = np.random.default_rng(7)
    detector = GumbelDetector(42)
    vllm_cls = load_vllm(args.vllm_site)
    vllm_detector = None if vllm_cls is None else vllm_cls(42, context_width=4, deduplicate_contexts=True)
    print("Gumbel detection (key 42, context width 4, dedup on), median per call; detect is one thread, detect_batch uses all cores")
    print("vLLM: vllm 0.33.0's own GumbelWatermarkDetector.detect on CPU torch (ids as a Python list, as it takes them)")
    print(f"{'tokens':>8} {'vLLM':>12} {'numpy':>12} {'greenmark':>12} {'vs vLLM':>8} {'vs numpy':>9} {'greenmark tok/s':>16}")
    for n in (200, 2_000, 20_000, 200_000):
        ids = rng.integers(0, 49152, n, dtype=np.int64)
        ids_list = ids.tolist()
        want = numpy_detect(42, ids_list)
        got = detector.detect(ids)
        assert got.n_scored == want[2] and math.isclose(got.score, want[0], rel_tol=1e-9)
        t_vl = None
        if vllm_detector is not None:
            v = vllm_detector.detect(ids_list)
            assert got.n_scored == v.num_scored_tokens and math.isclose(got.score, v.score, rel_tol=1e-9)
            t_vl = per_call(lambda: vllm_detector.detect(ids_list), max(1, scale * 200 // n), repeat=3 if n >= 20_000 else 5)
        t_np = per_call(lambda: numpy_detect(42, ids_list), max(1, scale * 2000 // n))
        t_gm = per_call(lambda: detector.detect(ids), max(1, scale * 200_000 // n))
        print(f"{n:>8} {ms(t_vl):>12} {ms(t_np):>12} {ms(t_gm):>12} {ratio(t_vl, t_gm):>8} {ratio(t_np, t_gm):>9} {n / t_gm:>16,.0f}")
    batch = [rng.integers(0, 49152, 200, dtype=np.int64) for _ in range(1000)]
    lists = [b.tolist() for b in batch]
    t_vl = None
    if vllm_detector is not None:
        t_vl = per_call(lambda: [vllm_detector.detect(b) for b in lists], 1, repeat=3)
    t_np = per_call(lambda: [numpy_detect(42, b) for b in lists], 1)
    t_gm = per_call(lambda: detector.detect_batch(batch), scale * 5)
    print(
        f"1000 texts x 200 tokens (greenmark detect_batch; the others a Python loop): vLLM {ms(t_vl)}, "
        f"numpy {ms(t_np)}, greenmark {ms(t_gm)}; {ratio(t_vl, t_gm)} vs vLLM, {ratio(t_np, t_gm)} vs numpy"
    )
    print(f"bench ran {time.perf_counter() - start:.1f} s (vLLM import included)")


if __name__ == "__main__":
    main()
