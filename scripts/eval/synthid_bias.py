"""Is SynthID's logits step unbiased in log-likelihood? For random Zipf rows and random contexts,
the mean over rows of E_q[log p] - E_p[log p] (q: the watermarked distribution greenmark computes,
bit-compatible with transformers'; p: the original). ~0 means the step does not move mass toward
likely tokens. Usage: python3 scripts/eval/synthid_bias.py (needs the greenmark wheel)."""
import json, numpy as np
from greenmark._greenmark import SynthIdWatermarker
cfg = {"ngram_len": 5, "keys": [654, 400, 836, 123, 340, 443, 597, 160, 57], "sampling_table_size": 65536,
       "sampling_table_seed": 0, "context_history_size": 1024, "skip_first_ngram_calls": False, "debug_mode": False}
wm = SynthIdWatermarker(json.dumps(cfg))
rng = np.random.default_rng(0)
V, B, steps = 2000, 64, 60
states = wm.states(B)
diff = []; ent = []
ranks = 1.0 / np.arange(1, V + 1) ** 1.1
for t in range(steps):
    logits = np.empty((B, V), dtype=np.float32)
    for b in range(B):
        perm = rng.permutation(V)
        logits[b] = np.log(ranks[perm] / ranks.sum()) * rng.uniform(0.5, 2.0)
    orig = logits.copy()
    last = rng.integers(0, V, size=B)
    out = wm.apply(states, last, logits)
    for b in range(B):
        p = np.exp(orig[b] - orig[b].max()); p /= p.sum()
        q = np.exp(logits[b].astype(np.float64) - logits[b].max()); q /= q.sum()
        lp = np.log(p)
        diff.append((q * lp).sum() - (p * lp).sum())
        ent.append(-(p * lp).sum())
print("statuses", set(out))
d = np.array(diff)
print(f"E_q[log p] - E_p[log p]: mean {d.mean():.4f} +- {d.std()/np.sqrt(len(d)):.4f} nats over {len(d)} rows; mean entropy {np.mean(ent):.2f}")
