"""Detection p-values against scipy's exact binomial tail (and mpmath where scipy underflows),
and the Detector against a naive oracle built from green masks."""

import math

import mpmath
import numpy as np
import pytest
from scipy import stats

import greenmark

KEY = greenmark.Key.from_hex("3c" * 32)
V = 997


def detection_for(n: int, g: int, gamma: float) -> greenmark.Detection:
    """Builds lefthash ids (no repeated tuples) with exactly g green among n scored tokens."""
    config = greenmark.WatermarkConfig(V, gamma=gamma)
    wm = greenmark.Watermarker(KEY, config)
    masks = wm.green_mask(np.arange(V).reshape(V, 1))  # the green list after each token
    green = np.unpackbits(masks.view(np.uint8), axis=-1, bitorder="little")[:, :V].astype(bool)
    ids = [0]
    seen = set()
    for i in range(n):
        prev = ids[-1]
        want = i < g
        nxt = next(t for t in range(V) if green[prev, t] == want and (prev, t) not in seen)
        seen.add((prev, nxt))
        ids.append(nxt)
    d = greenmark.Detector(KEY, config).detect(ids[1:], prompt=ids[:1])
    assert (d.n_scored, d.n_green) == (n, g)
    return d


@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.1])
@pytest.mark.parametrize("n", [1, 10, 57, 200])
def test_p_value_matches_scipy_binom_sf(gamma, n):
    for g in sorted({0, 1, n // 4, n // 2, (3 * n) // 4, n}):
        d = detection_for(n, g, gamma)
        expected = stats.binom.sf(g - 1, n, d.gamma)  # P(X >= g); sf(g) would be P(X > g)
        assert d.gamma == greenmark.WatermarkConfig(V, gamma=gamma).effective_gamma
        assert abs(d.gamma - gamma) < 1e-9
        assert math.isclose(d.p_value, expected, rel_tol=1e-9, abs_tol=1e-300), (n, g, d.p_value, expected)
        if expected > 0:
            assert math.isclose(d.log10_p_value, math.log10(expected), rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(d.ln_p_value, d.log10_p_value * math.log(10), rel_tol=1e-12, abs_tol=1e-12)
        if n > 0:
            z = (g - d.gamma * n) / math.sqrt(n * d.gamma * (1 - d.gamma))
            assert math.isclose(d.z_score, z, rel_tol=1e-12, abs_tol=1e-12)
            assert d.green_fraction == g / n


def test_log_p_value_far_below_double_range():
    # 700 of 700 green at gamma 0.25: p = 0.25**700 = 1e-421, below the smallest double.
    d = detection_for(700, 700, 0.25)
    assert stats.binom.sf(699, 700, 0.25) == 0.0  # scipy underflows
    assert d.p_value == 0.0
    exact = float(700 * mpmath.log10(mpmath.mpf(1) / 4))
    assert math.isclose(d.log10_p_value, exact, rel_tol=1e-12)
    # 650 of 700: the tail sum in big floats
    d = detection_for(700, 650, 0.25)
    mpmath.mp.dps = 50
    tail = mpmath.fsum(mpmath.binomial(700, k) * mpmath.mpf(0.25) ** k * mpmath.mpf(0.75) ** (700 - k) for k in range(650, 701))
    assert math.isclose(d.log10_p_value, float(mpmath.log10(tail)), rel_tol=1e-10)
    # scipy's log survival function agrees where it does not underflow
    assert math.isclose(d.ln_p_value, float(mpmath.log(tail)), rel_tol=1e-10)


def test_detector_matches_mask_oracle_and_dedups():
    rng = np.random.default_rng(0)
    # sumhash: the seed is a function of the window's sum, so the core dedups (sum, token)
    config = greenmark.WatermarkConfig(V, scheme="sumhash", window=2, gamma=0.4)
    wm = greenmark.Watermarker(KEY, config)
    ids = rng.integers(0, 40, size=300)  # small alphabet: many repeated tuples
    seen, green = set(), 0
    for i in range(2, len(ids)):
        mask = wm.green_mask(ids[i - 2:i])
        tup = (int(ids[i - 2:i].sum()), int(ids[i]))
        bit = bool((int(mask[ids[i] // 64]) >> (int(ids[i]) % 64)) & 1)
        if tup in seen:
            continue
        seen.add(tup)
        green += bit
    d = greenmark.Detector(KEY, config).detect(ids, annotate=True)
    assert (d.n_scored, d.n_green) == (len(seen), green)
    assert d.n_scored < len(ids) - 2  # duplicates were skipped ...
    assert list(d.annotations[:2]) == [-1, -1] and (d.annotations == -2).sum() == len(ids) - 2 - len(seen)
    no_dedup = greenmark.Detector(KEY, config, dedup=False).detect(ids)
    assert no_dedup.n_scored == len(ids) - 2 and not no_dedup.dedup  # ... unless asked not to
