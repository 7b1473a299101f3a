"""greenmark's Gumbel detector vs a straightforward numpy implementation of the same math.

vLLM's own detector (``vllm.v1.watermarking.gumbel.GumbelWatermarkDetector``) cannot run
here: vllm 0.33 pins torch 2.14 and needs a CUDA-capable install, so this compares against
:func:`numpy_detect`, a direct transcription of the algorithm (Philox4x32-10 vectorized over
the scored tokens with numpy, the context dedup as a Python loop as vLLM's ``_prepare_inputs``
does, and the integer-shape gamma survival by log-sum-exp as vLLM's
``_gamma_survival_integer_shape``). The test suite checks that both give the same answers on
vLLM's golden cases (``bindings/python/tests/test_gumbel.py``).

Run: python3 benches/python/bench_gumbel.py [--quick]
"""

from __future__ import annotations

import argparse
import math
import statistics
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


def per_call(fn, number: int) -> float:
    """Median seconds per call over 5 rounds of `number` calls (after one warm-up call)."""
    fn()
    return statistics.median(timeit.repeat(fn, number=number, repeat=5)) / number


def main() -> None:
    from greenmark.gumbel import GumbelDetector

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="shorter timings")
    args = parser.parse_args()
    scale = 1 if args.quick else 5
    rng = np.random.default_rng(7)
    detector = GumbelDetector(42)
    print("Gumbel detection (key 42, context width 4, dedup on), median per call; detect is one thread, detect_batch uses all cores")
    print(f"{'tokens':>8} {'numpy':>12} {'greenmark':>12} {'speedup':>9} {'greenmark tok/s':>16}")
    for n in (200, 2_000, 20_000, 200_000):
        ids = rng.integers(0, 49152, n, dtype=np.int64)
        want = numpy_detect(42, ids.tolist())
        got = detector.detect(ids)
        assert got.n_scored == want[2] and math.isclose(got.score, want[0], rel_tol=1e-9)
        ids_list = ids.tolist()
        t_np = per_call(lambda: numpy_detect(42, ids_list), max(1, scale * 2000 // n))
        t_gm = per_call(lambda: detector.detect(ids), max(1, scale * 200_000 // n))
        print(f"{n:>8} {t_np * 1e3:>10.2f}ms {t_gm * 1e3:>10.3f}ms {t_np / t_gm:>8.0f}x {n / t_gm:>16,.0f}")
    batch = [rng.integers(0, 49152, 200, dtype=np.int64) for _ in range(1000)]
    lists = [b.tolist() for b in batch]
    t_np = per_call(lambda: [numpy_detect(42, b) for b in lists], 1)
    t_gm = per_call(lambda: detector.detect_batch(batch), scale * 5)
    print(f"1000 texts x 200 tokens (detect_batch): numpy {t_np * 1e3:.1f} ms, greenmark {t_gm * 1e3:.2f} ms, {t_np / t_gm:.0f}x")


if __name__ == "__main__":
    main()
