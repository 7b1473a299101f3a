"""greenmark.radioactivity: the tape from Python, checked against an independent count with
numpy + scipy (exact binomial tail), closed and open mode, and errors."""

import math

import numpy as np
import pytest
from scipy import stats

import greenmark
from greenmark.radioactivity import RadioactivityTest

V = 500


def key(b: int) -> greenmark.Key:
    return greenmark.Key.from_hex(f"{b:02x}" * 32)


def green(watermarker: greenmark.Watermarker, prev: int) -> np.ndarray:
    """The green list after token `prev` (lefthash h=1), through the bias."""
    row = np.zeros(V, dtype=np.float32)
    watermarker.bias(row, np.array([prev]))
    return row > 0


def test_pooled_result_matches_an_independent_count_and_scipy():
    config = greenmark.WatermarkConfig(V, delta=1.0)
    wm = greenmark.Watermarker(key(3), config)
    rng = np.random.default_rng(0)
    texts = [rng.integers(0, V, size=rng.integers(1, 80)) for _ in range(50)]
    prompt = rng.integers(0, V, size=30)
    test = RadioactivityTest([key(3)], config)
    test.exclude_prompt(prompt)
    for t in texts:
        test.score_text(t)
    r = test.result()["keys"][0]
    # Independent count: distinct (prev, token) pairs (lefthash h=1: the seed is a PRF of
    # prev), prompt windows excluded, colours from the Watermarker's bias.
    excluded = set(prompt.tolist())
    seen = set()
    g = 0
    for t in texts:
        for prev, tok in zip(t[:-1].tolist(), t[1:].tolist()):
            if prev in excluded or (prev, tok) in seen:
                continue
            seen.add((prev, tok))
            g += bool(green(wm, prev)[tok])
    assert (r["n_scored"], r["n_green"]) == (len(seen), g)
    gamma = r["expected_green_fraction"]
    expected = stats.binom.logsf(g - 1, len(seen), gamma) / math.log(10)
    assert r["log10_p_value"] == pytest.approx(expected, abs=1e-9)


def test_open_mode_from_logits_numpy_and_torch_agree_and_detect_a_learned_watermark():
    torch = pytest.importorskip("torch")
    config = greenmark.WatermarkConfig(V, delta=3.0)
    wm = greenmark.Watermarker(key(5), config)
    rng = np.random.default_rng(1)
    ids = rng.integers(0, V, size=400)
    # A suspect that learned the watermark: its logits favour the green list after each token.
    logits = rng.normal(size=(400, V)).astype(np.float32)
    wm.bias(logits, np.stack([ids[: j + 1][-1:] for j in range(400)]))
    results = []
    for arr in (logits, torch.from_numpy(logits)):
        test = RadioactivityTest([key(5), key(6)], config, max_tuples=300)
        test.score_logits(ids, arr)
        results.append(test.result())
    assert results[0] == results[1]
    r = results[0]
    assert r["strongest_key"] == 0 and r["log10_p_value"] < -6
    assert r["keys"][1]["log10_p_value"] > -3
    assert r["keys"][0]["n_scored"] == 300 and not r["exploratory"]


def test_docstring_example_runs():
    import doctest

    import greenmark.radioactivity

    assert doctest.testmod(greenmark.radioactivity).failed == 0


def test_errors_are_value_and_type_errors_that_say_what_to_fix():
    config = greenmark.WatermarkConfig(V)
    with pytest.raises(ValueError, match="at least one key"):
        RadioactivityTest([], config)
    with pytest.raises(TypeError, match="list of greenmark.Key"):
        RadioactivityTest(key(1), config)
    test = RadioactivityTest([key(1)], config)
    with pytest.raises(ValueError, match="one row per input position"):
        test.score_logits(np.arange(5), np.zeros((4, V), dtype=np.float32))
    with pytest.raises(ValueError, match="padding columns"):
        test.score_logits(np.arange(3), np.eye(3, V + 10, k=V + 2, dtype=np.float32))
    with pytest.raises(ValueError, match="out of range"):
        test.score_text(np.array([1, V]))
    test.score_text(np.arange(10))
    with pytest.raises(ValueError, match="before the first scored text"):
        test.exclude_prompt(np.arange(3))


def test_gumbel_tape_detects_a_suspect_that_learned_the_gumbel_choice():
    """A suspect whose top-1 is the Gumbel-max token of vLLM key 42 (context width 2) is
    radioactive for that key and not for another; the pooled p-value is the Gamma(n, 1) upper
    tail of the summed scores (mpmath far out, scipy where floats hold it)."""
    from greenmark.gumbel import GumbelWatermarker

    V = 500
    wm = GumbelWatermarker(42, context_width=2, deduplicate_contexts="none")
    rng = np.random.default_rng(3)
    flat = np.zeros(V, dtype=np.float32)
    hot = RadioactivityTest.gumbel([42], V, context_width=2, max_tuples=300)
    cold = RadioactivityTest.gumbel([43, 44], V, context_width=2, max_tuples=300)
    assert hot.config is None and hot.scheme == "greenmark/gumbel-vllm/v1"
    for _ in range(10):
        ids = rng.integers(0, V, 40)
        preds = np.array([wm.sample(flat, ids[: j + 1]) for j in range(len(ids))])
        hot.score_predictions(ids, preds)
        cold.score_predictions(ids, preds)
    h, c = hot.result(), cold.result()
    k = h["keys"][0]
    assert k["n_scored"] == 300 and k["n_green"] == 0
    assert h["log10_p_value"] < -50
    # Far below float range: the tail in mpmath's arbitrary precision.
    import mpmath

    mpmath.mp.dps = 50
    want = float(mpmath.log(mpmath.gammainc(k["n_scored"], k["score"], mpmath.inf, regularized=True)))
    assert math.isclose(k["ln_p_value"], want, rel_tol=1e-9)
    assert c["log10_p_value"] > -3
    # Moderate evidence, where scipy's float tail is exact: an unmarked suspect.
    calm = RadioactivityTest.gumbel([42], V, context_width=2)
    for _ in range(5):
        calm.score_text(rng.integers(0, V, 60))
    r = calm.result()["keys"][0]
    assert math.isclose(r["ln_p_value"], stats.gamma.logsf(r["score"], r["n_scored"]), rel_tol=1e-9)
    with pytest.raises(ValueError, match="vocab_size"):
        RadioactivityTest.gumbel([42], 0)
    with pytest.raises(TypeError):
        RadioactivityTest.gumbel(["not a key"], V)


def test_budget_reached_is_in_the_result():
    """`budget_reached` (overall and per key) says whether the budget was spent."""
    config = greenmark.WatermarkConfig(V)
    text = np.arange(60)  # 59 distinct tuples
    for max_tuples, reached in ((None, False), (59, True), (20, True), (60, False)):
        test = RadioactivityTest([key(1), key(2)], config, max_tuples=max_tuples)
        test.score_text(text)
        r = test.result()
        assert r["budget_reached"] is reached, max_tuples
        assert [k["budget_reached"] for k in r["keys"]] == [reached, reached]
        assert r["keys"][0]["n_scored"] == min(59, max_tuples or 59)
