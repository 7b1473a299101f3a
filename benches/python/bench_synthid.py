"""greenmark's SynthID Text vs transformers' own implementation, side by side in one run.

Detection: transformers has no detector without a trained Bayesian module, so its side is the
work `SynthIDTextWatermarkDetector.__call__` does before that module: `compute_eos_token_mask`,
`compute_context_repetition_mask` and `compute_g_values` (CPU torch). greenmark's side is
`SynthIdDetector.detect` through the Python binding (masks, g-values, dedup and both p-values).
Generation: one `SynthIDTextWatermarkLogitsProcessor.__call__` on a (1, V) float32 row vs
greenmark's `SynthIdLogitsProcessor.__call__` (torch in and out, one copy of the row) and the
native `SynthIdWatermarker.apply` on a numpy row. Every row first checks that the two agree
(g-values exactly; logits to 2e-5).

Run: python3 benches/python/bench_synthid.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from transformers import SynthIDTextWatermarkingConfig

from greenmark.synthid import SynthIdDetector, SynthIdLogitsProcessor, SynthIdWatermarker, config_json


def best_of(f, repeat, number=1):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            f()
        times.append((time.perf_counter() - start) / number)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    repeat = 3 if args.quick else 7
    torch.set_num_threads(torch.get_num_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("\ndetection (per call; tokens/s)")
    print(
        f"{'tokens':>7} {'depth':>5} {'transformers g-values+masks':>28} {'greenmark g-values':>19} "
        f"{'ratio':>6} {'greenmark detect (+ exact p-values)':>36} {'ratio':>6}"
    )
    for depth in (9, 30):
        cfg = SynthIDTextWatermarkingConfig(ngram_len=5, keys=[1000 + 37 * d for d in range(depth)])
        proc = cfg.construct_processor(49152, torch.device("cpu"))
        det = SynthIdDetector(cfg)
        for n in (1000, 10000):
            ids = torch.randint(0, 49152, (1, n), generator=torch.Generator().manual_seed(n))
            np_ids = ids[0].numpy()
            assert np.array_equal(det.g_values(np_ids), proc.compute_g_values(ids)[0].numpy())

            def theirs():
                proc.compute_eos_token_mask(ids, 2)
                proc.compute_context_repetition_mask(ids)
                proc.compute_g_values(ids)

            t_hf = best_of(theirs, 1 if n >= 10000 else repeat)
            # Like for like: the g-values alone (transformers computes no p-value: its detector
            # is a trained classifier), then the whole detection with both exact p-values.
            t_g = best_of(lambda: det.g_values(np_ids), repeat, number=20)
            t_gm = best_of(lambda: det.detect(np_ids), repeat, number=20)
            print(
                f"{n:>7} {depth:>5} {t_hf * 1e3:>12.1f} ms ({n / t_hf:>9,.0f}/s) "
                f"{t_g * 1e6:>10.0f} us {t_hf / t_g:>5.0f}x "
                f"{t_gm * 1e6:>16.0f} us ({n / t_gm:>11,.0f}/s) {t_hf / t_gm:>5.0f}x"
            )
    print("\nlogits step, one row (per call)")
    print(f"{'vocab':>7} {'depth':>5} {'transformers':>14} {'greenmark (torch)':>18} {'native':>10} {'ratio':>7}")
    for vocab in (49152, 128256):
        scores = torch.randn(1, vocab, generator=torch.Generator().manual_seed(vocab)) * 3
        ids = torch.tensor([[5, 6, 7, 8]])
        for depth in (9, 30):
            cfg = SynthIDTextWatermarkingConfig(ngram_len=5, keys=[1000 + 37 * d for d in range(depth)])
            want = cfg.construct_processor(vocab, torch.device("cpu"))(ids, scores.clone())
            got = SynthIdLogitsProcessor(cfg)(ids, scores.clone())
            # float32 on both sides, different orders of operations: at depth 30 the far tail
            # (logits near -34) differs by 2.3e-5 absolute, 7e-7 relative.
            assert torch.allclose(got, want, rtol=2e-6, atol=2e-5), (got - want).abs().max().item()

            def theirs():
                cfg.construct_processor(vocab, torch.device("cpu"))(ids, scores)

            def ours():
                SynthIdLogitsProcessor(cfg)(ids, scores)

            wm = SynthIdWatermarker(config_json(cfg))
            row = scores.numpy().copy()
            last = np.array([8])

            def native():
                wm.apply(wm.states(1), last, row)

            # Both sides build their processor (sampling table) inside the timed call: subtract
            # the construction, measured alone, so the figures are one __call__.
            t_hf = best_of(theirs, repeat) - best_of(lambda: cfg.construct_processor(vocab, torch.device("cpu")), repeat)
            t_ours = best_of(ours, repeat) - best_of(lambda: SynthIdLogitsProcessor(cfg), repeat)
            t_nat = best_of(native, repeat, number=5)
            print(
                f"{vocab:>7} {depth:>5} {t_hf * 1e3:>11.2f} ms {t_ours * 1e3:>15.2f} ms "
                f"{t_nat * 1e3:>7.2f} ms {t_hf / t_nat:>6.0f}x"
            )


if __name__ == "__main__":
    main()
