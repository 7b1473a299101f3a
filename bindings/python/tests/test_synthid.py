"""SynthID Text against transformers 5.24 itself (`SynthIDTextWatermarkLogitsProcessor`): the
sampling table, g-values, context repetition mask and the watermarked logits over several steps;
`model.generate(watermarking_config=...)` on the embedded SmolLM2 reproduced token for token by
greenmark's processor and detected; p-values checked against scipy and mpmath."""

import json
import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import stats

import greenmark
from greenmark.synthid import SynthIdDetector, SynthIdLogitsProcessor, config_json
from transformers import SynthIDTextWatermarkingConfig

CONFIGS = [
    dict(ngram_len=2, keys=[5, 77, 1000003]),
    dict(ngram_len=3, keys=[654, 400, 836, 123, 340, 443, 597, 160, 57]),
    dict(ngram_len=4, keys=[-5, 2**62, 12345, -(2**63)], sampling_table_size=1000, sampling_table_seed=42),
    dict(ngram_len=5, keys=list(range(1, 31)), sampling_table_size=64, sampling_table_seed=7, context_history_size=16),
    dict(ngram_len=5, keys=[9, 8, 7], sampling_table_seed=2**32 + 3, skip_first_ngram_calls=True),
]
IDS = ["n2", "n3-default-keys", "n4-table1000", "n5-table64-history16", "n5-skip-first"]


def hf(cfg, vocab_size=49152):
    return SynthIDTextWatermarkingConfig(**cfg).construct_processor(vocab_size, torch.device("cpu"))


def sample_ids(seed, length, vocab=49152):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (1, length), generator=gen)
    if length >= 120:
        ids[0, 50:90] = ids[0, 10:50]  # a repeated stretch: repeated contexts and ngrams
        ids[0, 100:120] = 3
    return ids


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_sampling_table_g_values_and_masks_equal_transformers(cfg):
    proc = hf(cfg)
    det = SynthIdDetector(SynthIDTextWatermarkingConfig(**cfg))
    table = proc.sampling_table.numpy()
    np.testing.assert_array_equal(det.sampling_table(), table.astype(np.uint8))
    assert det.p0 == table.mean()
    for seed in range(3):
        ids = sample_ids(seed, 300)
        want = proc.compute_g_values(ids)[0].numpy()
        np.testing.assert_array_equal(det.g_values(ids[0].numpy()), want.astype(np.uint8))
        mask = proc.compute_context_repetition_mask(ids)[0].numpy()
        np.testing.assert_array_equal(np.array(det.context_repetition_mask(ids[0].numpy())), mask)
        assert not mask.all()  # the repeated stretch is masked


# Every config at V = 1000; the full SmolLM2 vocabulary for two of them (transformers' processor
# costs seconds per call there on 2 busy cores).
LOGITS_CASES = [(cfg, 1000) for cfg in CONFIGS] + [(CONFIGS[1], 49152), (CONFIGS[3], 49152)]
LOGITS_IDS = [f"{i}-1000" for i in IDS] + [f"{IDS[1]}-49152", f"{IDS[3]}-49152"]


@pytest.mark.parametrize("cfg, vocab", LOGITS_CASES, ids=LOGITS_IDS)
def test_watermarked_logits_equal_transformers_over_steps(cfg, vocab):
    """Both processors see the same input_ids and scores for several steps (3 rows, a row cut
    as by top-k, a row that repeats one token so its contexts repeat). Unwatermarked rows
    (skipped calls, repeated contexts) must be returned bit for bit. Watermarked rows cannot be:
    both compute softmax and the per-depth update in float32, but torch sums each row's
    probability mass with its vectorized float32 reduction while greenmark accumulates it in
    float64, so the masses differ in their last bits; and a token with g = 0 is multiplied by
    1 - mass, which cancels when the g = 1 tokens hold most of the mass, so a last-bit difference
    of the mass becomes a relative difference of the factor, compounded over the depths (with 30
    depths, log-probabilities of 1e-10-probability tokens differ by 1e-2, and a probability of
    ~1e-24 can round to exactly 0 on one side only). That error is transformers' own: so the
    reference is transformers' processor run in float64, and greenmark's float32 result must be
    about as close to it as transformers' float32 result is (log-probabilities where p > 1e-13:
    mean error at most twice transformers', largest error at most 4 times + 1e-5; the two are
    random roundings of the same ill-conditioned product, each row sometimes one ahead, sometimes
    the other); and greenmark's probabilities at most twice as far from float64 as
    transformers' (or within 1e-6). At V = 49152 transformers' float32 mass is the less accurate
    (measured probability error 4.1e-6 against greenmark's 1.5e-6 or less)."""
    theirs, ours, exact = hf(cfg, vocab), SynthIdLogitsProcessor(cfg), hf(cfg, vocab)
    gen = torch.Generator().manual_seed(11)
    input_ids = torch.randint(0, vocab, (3, 6), generator=gen)
    worst_p = worst_p_theirs = 0.0
    errors = {"ours": [0.0, 0.0, 0], "theirs": [0.0, 0.0, 0]}  # sum, max, count
    unchanged = 0
    bit_equal = []
    steps = 14 if vocab <= 1000 else 6
    for step in range(steps):
        scores = torch.randn(3, vocab, generator=gen) * 4
        scores[1, : vocab // 10] = -math.inf  # as after top-k
        want = theirs(input_ids, scores.clone())
        got = ours(input_ids, scores.clone())
        ref = exact(input_ids, scores.double())
        assert got.dtype == torch.float32 and got.shape == scores.shape
        for row in range(3):
            if torch.equal(want[row], scores[row]):
                unchanged += 1
                assert torch.equal(got[row], scores[row]), (step, row)
                assert torch.equal(ref[row], scores[row].double())
                continue
            p_ref = ref[row].exp()
            worst_p = max(worst_p, (got[row].double().exp() - p_ref).abs().max().item())
            worst_p_theirs = max(worst_p_theirs, (want[row].double().exp() - p_ref).abs().max().item())
            live = ref[row] > -30
            for name, out in (("ours", got), ("theirs", want)):
                err = (out[row][live].double() - ref[row][live]).abs()
                acc = errors[name]
                acc[0] += err.sum().item()
                acc[1] = max(acc[1], err.max().item())
                acc[2] += err.numel()
            bit_equal.append((got[row] == want[row]).float().mean().item())
        next_ids = want.argmax(dim=1, keepdim=True)
        next_ids[2] = 17  # row 2 repeats itself: its contexts repeat
        input_ids = torch.cat([input_ids, next_ids], dim=1)
    (s_o, m_o, n_o), (s_t, m_t, n_t) = errors["ours"], errors["theirs"]
    print(
        f"\nlog-prob error vs float64: greenmark mean {s_o / n_o:.1e} max {m_o:.1e}, transformers "
        f"mean {s_t / n_t:.1e} max {m_t:.1e}; probability error max: greenmark {worst_p:.1e}, "
        f"transformers {worst_p_theirs:.1e}; "
        f"bit-equal entries {np.mean(bit_equal):.0%}"
    )
    assert s_o / n_o <= 2 * s_t / n_t + 1e-7 and m_o <= 4 * m_t + 1e-5
    assert worst_p <= max(2 * worst_p_theirs, 1e-6)
    assert unchanged >= steps - cfg["ngram_len"]  # row 2's repeated contexts, skipped calls


def test_config_json_round_trip_and_errors():
    cfg = SynthIDTextWatermarkingConfig(ngram_len=5, keys=[1, 2, 3])
    det = SynthIdDetector(cfg)
    assert json.loads(det.config_json) == cfg.to_dict()
    assert json.loads(config_json(cfg)) == cfg.to_dict()
    for bad, needle in [
        ({"ngram_len": 5, "keys": []}, "keys"),
        ({"ngram_len": 0, "keys": [1]}, "ngram_len"),
        ({"ngram_len": 5, "keys": [1], "sampling_table_size": 2**24 + 1}, "sampling_table_size"),
        ({"ngram_len": 5, "keys": [1], "sampling_table_seed": -1}, "sampling_table_seed"),
        ({"ngram_len": 5, "keys": [1, 1]}, "distinct"),
        ({"ngram_len": 5, "keys": [1], "ngram_length": 3}, "ngram_length"),
    ]:
        with pytest.raises(ValueError, match=needle) as info:
            SynthIdDetector(bad)
        assert isinstance(info.value, greenmark.ConfigError)
    with pytest.raises(TypeError, match="SynthIDTextWatermarkingConfig"):
        SynthIdDetector(42)
    with pytest.raises(greenmark.TokenError, match="out of range"):
        SynthIdDetector({"ngram_len": 2, "keys": [1]}, vocab_size=10).detect([1, 2, 10])
    with pytest.raises(ValueError, match="threshold"):
        SynthIdDetector({"ngram_len": 2, "keys": [1]}, threshold=2.0)
    proc = SynthIdLogitsProcessor({"ngram_len": 2, "keys": [1]})
    with pytest.raises(ValueError, match="batch"):
        proc(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 10))


def mp_binomial_tail(k, n, p):
    p = mpmath.mpf(p)
    return mpmath.fsum(mpmath.binomial(n, j) * p**j * (1 - p) ** (n - j) for j in range(k, n + 1))


def exact_weighted_tail(weights, counts, ones, size, s):
    """ln P(sum_d w_d X_d >= s), X_d ~ Bin(n_d, ones/size), by exact integer polynomials."""
    poly = [1]
    for w, n in zip(weights, counts):
        new = [0] * (len(poly) + w * n)
        terms = [math.comb(n, j) * ones**j * (size - ones) ** (n - j) for j in range(n + 1)]
        for v, a in enumerate(poly):
            if a:
                for j, b in enumerate(terms):
                    new[v + w * j] += a * b
        poly = new
    num, den = sum(poly[s:]), size ** sum(counts)
    return float(mpmath.log(mpmath.mpf(num) / mpmath.mpf(den))) if num else -math.inf


M64 = 6364136223846793005


def shift_null_tails(cfg, ids, ones_per_depth, weights, stat_mean, stat_weighted):
    """The shift null by brute force over the keys: for every key residue k < size (a key
    matters only mod a power-of-two size), the ones counted through transformers' hash with
    the context repetition mask and the dedup by entry; the histogram convolved over depths in
    exact integers; ln P(T >= t) for the mean and (when small) weighted statistics."""
    n, size = cfg["ngram_len"], cfg.get("sampling_table_size", 65536)
    history = cfg.get("context_history_size", 1024)
    table = torch.randint(0, 2, (size,), generator=torch.Generator().manual_seed(cfg.get("sampling_table_seed", 0))).numpy().astype(np.int64)
    mask = (1 << 64) - 1
    hashes, recent = [], []
    for j in range(len(ids) - n + 1):
        ctx = tuple(int(x) for x in ids[j : j + n - 1])
        repeated = ctx in recent
        recent = (recent + [ctx])[-history:] if history else []
        if repeated:
            continue
        h = 1
        for x in ids[j : j + n]:
            h = ((h + int(x)) * M64 + 1) & mask
        hashes.append(h)
    def ones(key):
        seen = {((h + key) * M64 + 1) & mask & (size - 1) for h in hashes}
        return int(sum(table[i] for i in seen))
    for key, o in zip(cfg["keys"], ones_per_depth):
        assert ones(key) == o
    hist = {}
    for k in range(size):
        c = ones(k)
        hist[c] = hist.get(c, 0) + 1
    def tail(ws, t):
        poly = {0: 1}
        for w in ws:
            new = {}
            for v, a in poly.items():
                for c, b in hist.items():
                    new[v + w * c] = new.get(v + w * c, 0) + a * b
            poly = new
        num = sum(a for v, a in poly.items() if v >= t)
        return float(mpmath.log(mpmath.mpf(num) / mpmath.mpf(size) ** len(ws))) if num else -math.inf
    depth = len(weights)
    return tail([1] * depth, stat_mean), (tail(weights, stat_weighted) if depth <= 9 else None)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3]], ids=[IDS[0], IDS[3]])
def test_shift_null_p_values_equal_brute_force_over_the_keys(cfg):
    mpmath.mp.dps = 60
    det = SynthIdDetector(cfg)
    depth = len(cfg["keys"])
    c = [1] if depth == 1 else [10 * (depth - 1) - 9 * i for i in range(depth)]
    for seed in range(2):
        ids = sample_ids(seed, 12 if depth > 10 else 40)[0].numpy()
        d = det.detect(ids)
        assert d.null == "shift-exact"
        want_mean, want_weighted = shift_null_tails(cfg, ids, d.ones_per_depth, c, sum(d.ones_per_depth), d.weighted_statistic)
        if d.mean_method == "exact":
            assert d.mean_ln_p_value == pytest.approx(want_mean, rel=1e-9, abs=1e-11)
        else:
            assert d.mean_ln_p_value >= want_mean
        if want_weighted is not None:
            if d.weighted_method == "exact":
                assert d.weighted_ln_p_value == pytest.approx(want_weighted, rel=1e-9, abs=1e-11)
            else:
                assert d.weighted_ln_p_value >= want_weighted


@pytest.mark.parametrize("cfg", CONFIGS[:4], ids=IDS[:4])
def test_p_values_equal_scipy_and_mpmath(cfg):
    mpmath.mp.dps = 60
    det = SynthIdDetector(cfg)
    depth = len(cfg["keys"])
    for seed in range(3):
        ids = sample_ids(seed, 12 if depth > 10 else 40)[0].numpy()
        d = det.detect(ids)
        ones, n = sum(d.ones_per_depth), d.n_g_values
        assert n == sum(d.scored_per_depth) > 0
        if d.null == "shift-exact":
            continue  # power-of-two table: test_shift_null_p_values_equal_brute_force_over_the_keys
        assert d.mean_ln_p_value == pytest.approx(math.log(stats.binom.sf(ones - 1, n, d.p0)), rel=1e-9, abs=1e-12)
        assert d.mean_ln_p_value == pytest.approx(float(mpmath.log(mp_binomial_tail(ones, n, d.p0))), rel=1e-10, abs=1e-12)
        c = [1] if depth == 1 else [10 * (depth - 1) - 9 * i for i in range(depth)]
        assert d.weighted_statistic == sum(w * o for w, o in zip(c, d.ones_per_depth))
        table = det.sampling_table()
        want = exact_weighted_tail(c, d.scored_per_depth, int(table.sum()), len(table), d.weighted_statistic)
        if d.weighted_method == "exact":
            assert d.weighted_ln_p_value == pytest.approx(want, rel=1e-9, abs=1e-11)
        else:
            assert d.weighted_ln_p_value >= want


GEN_CONFIG = dict(ngram_len=5, keys=[654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990])
PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle works to a ten-year-old, step by step.",
]


def _generate(model, tokenizer, n=150, **kwargs):
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chats = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in PROMPTS
    ]
    batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(4321)
    with torch.no_grad():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            min_new_tokens=n,
            max_new_tokens=n,
            pad_token_id=tokenizer.pad_token_id,
            **kwargs,
        )
    return out[:, batch["input_ids"].shape[1] :].numpy()


def test_generate_with_transformers_synthid_is_reproduced_and_detected(smollm2):
    from transformers import LogitsProcessorList

    model, tokenizer = smollm2
    # transformers' processor costs seconds per step on 2 busy cores (V = 49152, 16 depths), so
    # the token-for-token comparison runs 24 steps; greenmark's processor then generates the
    # 150-token texts that detection is tested on.
    theirs = _generate(model, tokenizer, n=24, watermarking_config=SynthIDTextWatermarkingConfig(**GEN_CONFIG))
    ours_short = _generate(model, tokenizer, n=24, logits_processor=LogitsProcessorList([SynthIdLogitsProcessor(GEN_CONFIG)]))
    # Same seed, same processor order (after temperature / top-k / top-p): the same tokens.
    np.testing.assert_array_equal(ours_short, theirs)
    ours = _generate(model, tokenizer, logits_processor=LogitsProcessorList([SynthIdLogitsProcessor(GEN_CONFIG)]))
    np.testing.assert_array_equal(ours[:, :24], theirs)
    plain = _generate(model, tokenizer)
    det = SynthIdDetector(GEN_CONFIG, eos_token_id=tokenizer.eos_token_id, vocab_size=model.config.vocab_size)
    for marked, unmarked in zip(ours, plain):
        d, p = det.detect(marked), det.detect(unmarked)
        print(f"\nwatermarked {d}\nplain       {p}")
        assert d.is_watermarked and d.weighted_log10_p_value < -4, d.to_dict()
        assert p.weighted_p_value > 1e-3 and p.mean_p_value > 1e-3, p.to_dict()
    # Plain text under many random keys: the p-values are uniform or conservative.
    rng = np.random.default_rng(0)
    pvals = []
    for _ in range(300):
        keys = [int(k) for k in rng.integers(-(2**63), 2**63 - 1, size=8, dtype=np.int64)]
        d = SynthIdDetector({"ngram_len": 5, "keys": keys}).detect(plain[rng.integers(0, 2)])
        pvals.append((d.mean_p_value, d.weighted_p_value))
    pvals = np.array(pvals)
    for level in (0.05, 0.2, 0.5):
        # Upper 1e-6 bound of Binomial(300, level): a correct test exceeds it almost never.
        bound = stats.binom.isf(1e-6, 300, level)
        assert (pvals <= level).sum(axis=0).max() <= bound, (level, (pvals <= level).mean(axis=0))


def test_keyring_scores_synthid_and_gumbel_configs_beside_greenmark_keys():
    """One Bonferroni correction over a greenmark key, a vLLM Gumbel config and a SynthID config;
    each entry is the engine's own detection (checked against the detectors run alone)."""
    from greenmark.gumbel import GumbelDetector

    config = greenmark.WatermarkConfig(49152)
    key = greenmark.Key.from_hex("cd" * 32)
    synthid = SynthIdDetector({"ngram_len": 3, "keys": [5, 6, 7, 8]})
    gumbel = GumbelDetector.from_vllm_config('{"key": 7}')
    ring = greenmark.Keyring([greenmark.Detector(key, config)])
    mixed = ring.with_gumbel("vllm-prod", gumbel).with_synthid("hf-synthid", synthid)
    assert len(ring) == 1 and len(mixed) == 3
    assert mixed.labels == [key.id, "vllm-prod", "hf-synthid"]
    ids = sample_ids(3, 200)[0]
    d = mixed.detect(ids)
    kinds = [type(k).__name__ for k in d.keys]
    assert kinds == ["Detection", "GumbelDetection", "SynthIdDetection"]
    alone = [
        greenmark.Detector(key, config).detect(ids).ln_p_value,
        gumbel.detect(ids).ln_p_value_bound,
        synthid.detect(ids).weighted_ln_p_value,
    ]
    got = [d.keys[0].ln_p_value, d.keys[1].ln_p_value_bound, d.keys[2].weighted_ln_p_value]
    assert got == pytest.approx(alone, rel=1e-12, abs=1e-12)
    strongest = min(range(3), key=lambda i: alone[i])
    assert d.strongest_key == strongest and d.key_id == mixed.labels[strongest]
    assert d.ln_p_value == pytest.approx(min(0.0, math.log(3) + alone[strongest]), rel=1e-12, abs=1e-12)
    record = d.to_dict()
    assert [k["key_id"] for k in record["keys"]] == mixed.labels  # configs by label, never key
    with pytest.raises(greenmark.ConfigError, match="labelled"):
        mixed.with_synthid("hf-synthid", synthid)
    with pytest.raises(greenmark.ConfigError, match="label"):
        ring.with_gumbel("bad label!", gumbel)
    with pytest.raises(greenmark.GreenmarkError, match="span search"):
        mixed.find_span(ids)
    with pytest.raises(TypeError):
        ring.with_synthid("x", gumbel)
