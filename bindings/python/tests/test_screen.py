"""Key screening through the binding: its KS and tail tests recomputed independently with scipy
from the chunks' own detections, a key that colours a common passage green rejected, and bad
input raising the matching exceptions."""

import math

import numpy as np
import pytest
from scipy import stats

import greenmark

V = 4096
CONFIG = greenmark.WatermarkConfig(V)


def zipf_documents(n_docs: int, length: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, V + 1) ** 1.1
    weights /= weights.sum()
    return [rng.choice(V, size=length, p=weights).astype(np.uint32) for _ in range(n_docs)]


def poisson_binomial_sf(probabilities, k: int) -> float:
    """P(S >= k) by plain convolution of the full distribution."""
    pmf = np.array([1.0])
    for p in probabilities:
        pmf = np.convolve(pmf, [1.0 - p, p])
    return float(pmf[k:].sum())


def null_rate(n: int, gamma: float, threshold: float) -> float:
    """P(p < threshold) for a chunk of n scored tuples: scipy's binomial tail at the smallest
    green count whose p-value, P(X >= g) = binom.sf(g - 1), is below the threshold."""
    for g in range(n + 1):
        tail = stats.binom.sf(g - 1, n, gamma)
        if tail < threshold:
            return float(tail)
    return 0.0


def test_ks_and_tail_tests_match_scipy():
    chunk = 150
    docs = {"a": zipf_documents(3, 1600, 1), "b": zipf_documents(3, 1600, 2)}
    corpus = greenmark.ScreenCorpus(chunk)
    for name, d in docs.items():
        corpus.add_genre(name, d)
    assert corpus.genres == [("a", 30), ("b", 30)]
    key = greenmark.Key.from_hex("5e" * 32)
    detector = greenmark.Detector(key, CONFIG)
    threshold = 0.05  # high enough that the count is not 0
    report = corpus.screen(detector, level=0.01, tail_threshold=threshold)
    assert report["n_tests"] == 4
    assert report["passed"] == all(g["passed"] for g in report["genres"])
    for genre in report["genres"]:
        chunks = [doc[i : i + chunk] for doc in docs[genre["genre"]] for i in range(0, 1500, chunk)]
        detections = [detector.detect(c) for c in chunks]
        ln_p = [d.ln_p_value for d in detections]
        assert genre["ln_p_values"] == pytest.approx(ln_p, rel=1e-12)
        p = np.exp(ln_p)

        # One-sided KS against Uniform(0, 1): scipy's statistic and its exact ksone tail.
        ks = stats.kstest(p, "uniform", alternative="greater")
        assert genre["ks"]["d_plus"] == pytest.approx(ks.statistic, abs=1e-12)
        assert math.exp(genre["ks"]["ln_p_value"]) == pytest.approx(
            stats.ksone.sf(ks.statistic, len(p)), rel=1e-9
        )

        # Tail count against the exact Poisson-binomial null.
        rates = [null_rate(d.n_scored, d.gamma, threshold) for d in detections]
        count = int(sum(d.p_value < threshold for d in detections))
        assert genre["tail"]["count"] == count
        assert genre["tail"]["expected"] == pytest.approx(sum(rates), rel=1e-9)
        assert math.exp(genre["tail"]["ln_p_value"]) == pytest.approx(
            poisson_binomial_sf(rates, count), rel=1e-9
        )
        for fpr in genre["fpr"]:
            want = sum(null_rate(d.n_scored, d.gamma, fpr["threshold"]) for d in detections)
            assert fpr["expected"] == pytest.approx(want, rel=1e-9, abs=1e-300)
            assert fpr["count"] == sum(d.p_value < fpr["threshold"] for d in detections)


def green_path(key, length: int) -> list:
    """Tokens whose every lefthash tuple is green under key: boilerplate this key colours
    green."""
    wm = greenmark.Watermarker(key, CONFIG)
    path = [17]
    while len(path) < length:
        mask = wm.green_mask(np.array([[path[-1]]]))
        green = np.unpackbits(mask.view(np.uint8), bitorder="little")[:V].astype(bool)
        path.append(next(t for t in range(1000, V) if green[t] and t not in path))
    return path


def test_a_key_that_colours_a_common_passage_green_is_rejected():
    key = greenmark.Key.from_hex("77" * 32)
    boilerplate = green_path(key, 60)
    text = zipf_documents(1, 40 * 140, 3)[0]
    chunks = [boilerplate + text[i : i + 140].tolist() for i in range(0, 40 * 140, 140)]
    corpus = greenmark.ScreenCorpus(200)
    corpus.add_genre("boilerplate", chunks)
    report = corpus.screen(greenmark.Detector(key, CONFIG))
    genre = report["genres"][0]
    assert not report["passed"] and not genre["ks"]["passed"] and not genre["tail"]["passed"]
    assert genre["fpr"][1]["count"] == 40
    other = greenmark.Detector(greenmark.Key.from_hex("78" * 32), CONFIG)
    assert corpus.screen(other)["genres"][0]["fpr"][2]["count"] == 0


def test_bad_input_raises_the_matching_exception():
    with pytest.raises(greenmark.ConfigError, match="chunk_tokens"):
        greenmark.ScreenCorpus(1)
    corpus = greenmark.ScreenCorpus(100)
    detector = greenmark.Detector(greenmark.Key.from_hex("01" * 32), CONFIG)
    with pytest.raises(greenmark.ConfigError, match="no genre"):
        corpus.screen(detector)
    with pytest.raises(greenmark.ConfigError, match="no document of at least 100 tokens"):
        corpus.add_genre("short", [[1, 2, 3]])
    with pytest.raises(TypeError):
        corpus.add_genre("text", "not ids")
    corpus.add_genre("big", [[V + 5] * 100])
    with pytest.raises(greenmark.TokenError, match="out of range"):
        corpus.screen(detector)
    with pytest.raises(greenmark.ConfigError, match="level"):
        corpus.screen(detector, level=2.0)
