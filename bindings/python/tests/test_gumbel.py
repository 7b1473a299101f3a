"""The Gumbel family from Python: vLLM's golden cases (generation and detection), the log-space
p-value against scipy/mpmath, the numpy reference of the bench, and errors."""

import doctest
import importlib.util
import json
import math

import numpy as np
import pytest

import greenmark
import greenmark.gumbel
from greenmark.gumbel import GumbelDetector, GumbelWatermarker, load_vllm_config

from conftest import REPO

GOLDENS = json.loads((REPO / "crates/greenmark/tests/vectors/vllm-watermarking-goldens.json").read_text())
CASES = GOLDENS["cases"]
ROUTING = np.array(GOLDENS["extra"]["ROUTING"], dtype=np.float32)


def fixture_logits(vocab, pos, dominant, bias):
    t = np.arange(vocab, dtype=np.int64)
    num = ((t * 37 + pos * 17) % 131 - 56).astype(np.float64)
    if dominant is not None:
        num[dominant] += bias
    return (num / 16.0).astype(np.float32)


def test_all_23_cases_detect_as_vllm():
    assert len(CASES) == 23
    for c in CASES:
        common = dict(algorithm=c["scheme"], alpha=c["det_alpha"], context_width=c["context_width"])
        det = GumbelDetector(c["det_key"], dedup=c["det_dedup"], threshold=c["threshold"], **common)
        d = det.detect(np.array(c["generated"]))
        assert d.n_scored == c["n_scored"], c["id"]
        assert math.isclose(d.score, c["score"], rel_tol=1e-9), c["id"]
        assert math.isclose(d.p_value, c["p_value"], rel_tol=1e-9), c["id"]
        # vLLM's verdict is its p-value against the threshold; greenmark's is_watermarked
        # uses the exact-or-conservative p-value, the same one whenever d.exact.
        assert (d.p_value <= c["threshold"]) == (c["p_value"] <= c["threshold"]), c["id"]
        assert d.is_watermarked == (math.exp(d.ln_p_value_bound) <= c["threshold"]), c["id"]
        if c["key"] != c["det_key"]:
            assert d.p_value > 0.05


def test_all_23_cases_generate_as_vllm():
    for c in CASES:
        common = dict(algorithm=c["scheme"], alpha=c["gen_alpha"], context_width=c["context_width"])
        # vLLM's goldens come from its CPU reference path, which marks the first positions
        # (as vLLM 0.33 served; 0.34's server skips them, greenmark's default).
        wm = GumbelWatermarker(
            c["key"],
            deduplicate_contexts=c["gen_dedup"],
            max_history=c["max_history"],
            partial_contexts="watermark",
            **common,
        )
        generated = []
        for pos in range(c["n_steps"]):
            logits = fixture_logits(c["vocab_size"], pos, c["dominant_token"], c["dominant_bias"])
            if wm.is_watermarked_position(generated, prompt=c["prompt"]):
                token = wm.sample(logits, generated, route_u=float(ROUTING[pos % len(ROUTING)]))
            else:
                token = int(np.argmax(logits))
            generated.append(token)
        assert generated == c["generated"], c["id"]


def test_all_23_cases_generate_as_vllm_through_a_kept_request():
    """The same goldens through `request()`: one state across steps, no replay."""
    for c in CASES:
        common = dict(algorithm=c["scheme"], alpha=c["gen_alpha"], context_width=c["context_width"])
        # vLLM's goldens come from its CPU reference path, which marks the first positions
        # (as vLLM 0.33 served; 0.34's server skips them, greenmark's default).
        wm = GumbelWatermarker(
            c["key"],
            deduplicate_contexts=c["gen_dedup"],
            max_history=c["max_history"],
            partial_contexts="watermark",
            **common,
        )
        request = wm.request(c["prompt"])
        for pos in range(c["n_steps"]):
            logits = fixture_logits(c["vocab_size"], pos, c["dominant_token"], c["dominant_bias"])
            if request.next_is_watermarked():
                token = request.sample(logits, route_u=float(ROUTING[pos % len(ROUTING)]))
            else:
                token = int(np.argmax(logits))
            request.push(token)
        assert request.generated == c["generated"], c["id"]
        assert 0 < request.n_watermarked <= c["n_steps"]
    with pytest.raises(ValueError, match="padding"):
        GumbelWatermarker(1).request().push(2**32 - 1)


def test_first_positions_follow_vllm_034_unless_asked():
    """vLLM 0.34 samples the first context_width positions normally (their contexts hold
    padding); partial_contexts="watermark" marks them as 0.33 did."""
    for partial, want in (("skip", [False] * 4 + [True] * 3), ("watermark", [True] * 7)):
        wm = GumbelWatermarker(42, partial_contexts=partial)
        marks = [wm.is_watermarked_position(list(range(1, n + 1))) for n in range(7)]
        assert marks == want, partial
        request = wm.request([5, 6, 7])
        for t in range(1, 8):
            request.push(t)
        assert request.n_watermarked == sum(want)
    with pytest.raises(greenmark.ConfigError, match='partial_contexts must be "skip"'):
        GumbelWatermarker(42, partial_contexts="0.33")


def test_log_p_where_the_float_underflows_matches_mpmath_and_scipy():
    mpmath = pytest.importorskip("mpmath")
    from scipy.special import gammaincc

    # A 3000-token watermarked answer, as vLLM would score it: p far below 1e-308.
    rng = np.random.default_rng(1)
    ids = rng.integers(0, 49152, 3000)
    wm = GumbelWatermarker(42)
    logits = rng.normal(size=(3000, 512)).astype(np.float32) * 2
    generated = []
    for row in logits:
        generated.append(wm.sample(row, generated))
    d = GumbelDetector(42).detect(generated)
    assert d.p_value == 0.0 and d.log10_p_value < -308
    mpmath.mp.dps = 50
    want = mpmath.log10(mpmath.gammainc(d.n_scored, d.score, mpmath.inf, regularized=True))
    assert abs(d.log10_p_value - float(want)) < 1e-9 * abs(float(want))
    # Where scipy's float does not underflow, they agree too.
    d = GumbelDetector(42).detect(ids)
    assert math.isclose(d.p_value, gammaincc(d.n_scored, d.score), rel_tol=1e-10)


def test_numpy_reference_of_the_bench_agrees():
    spec = importlib.util.spec_from_file_location("bench_gumbel", REPO / "benches/python/bench_gumbel.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    ids = np.random.default_rng(3).integers(0, 49152, 5000)
    score, p, n = bench.numpy_detect(42, ids.tolist())
    d = GumbelDetector(42).detect(ids)
    assert d.n_scored == n and math.isclose(d.score, score, rel_tol=1e-9)
    assert math.isclose(d.p_value, p, rel_tol=1e-9)


def test_vllm_config_file_and_native_keys(tmp_path):
    path = tmp_path / "cfg.json"
    path.write_text('{"key": 42, "algorithm": "dual_key_gumbel", "alpha": 0.1}')
    det = load_vllm_config(path)
    assert det.scheme == "greenmark/dual-key-gumbel-vllm/v1"
    native = GumbelDetector(greenmark.Key.from_hex("ab" * 32))
    assert native.scheme == "greenmark/gumbel/v1"
    d = det.detect_batch([[1, 2, 3], np.arange(50)])
    assert [x.n_tokens for x in d] == [3, 50]
    assert not d[1].exact and d[1].ln_p_value_bound >= d[1].ln_p_value


def test_bad_input_raises_value_and_type_errors():
    with pytest.raises(greenmark.ConfigError, match="algorithm"):
        GumbelDetector(1, algorithm="sbw")
    with pytest.raises(greenmark.ConfigError, match="alpha"):
        GumbelDetector(1, algorithm="dual_key_gumbel", alpha=1.5)
    with pytest.raises(greenmark.ConfigError, match="context_width"):
        GumbelWatermarker(1, context_width=0)
    with pytest.raises(greenmark.ConfigError, match="deduplicate_contexts"):
        GumbelWatermarker(1, deduplicate_contexts="sometimes")
    with pytest.raises(ValueError, match="key must be an integer"):
        GumbelDetector.from_vllm_config('{"key": -5}')
    with pytest.raises(greenmark.InvalidKeyError, match="2\\*\\*64"):
        GumbelDetector(2**64)
    with pytest.raises(TypeError):
        GumbelDetector("42")
    with pytest.raises(TypeError):
        GumbelWatermarker(1).sample(np.zeros(8, dtype=np.float64), [1])
    with pytest.raises(greenmark.ShapeError):
        GumbelWatermarker(1).sample(np.zeros((2, 8), dtype=np.float32), [1])
    with pytest.raises(TypeError):
        GumbelDetector(1).detect([0.5, 1.5])


def test_docstrings():
    result = doctest.testmod(greenmark.gumbel, raise_on_error=False)
    assert result.failed == 0 and result.attempted >= 3


def test_vllm_users_detect_from_greenmark_vllm_without_vllm_installed():
    """`greenmark.vllm` gives the Gumbel detector with vLLM unimportable; only the logits
    processor needs vLLM, and says so when asked for."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['vllm'] = None\n"
        "import greenmark.vllm as gv, doctest\n"
        "assert doctest.testmod(gv).failed == 0\n"
        "d = gv.load_vllm_config.__name__, gv.GumbelDetector(42).scheme\n"
        "print(d)\n"
        "try:\n"
        "    gv.GreenmarkLogitsProcessor\n"
        "except ImportError as e:\n"
        "    print('processor needs vllm:', type(e).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "greenmark/gumbel-vllm/v1" in out.stdout
    assert "processor needs vllm" in out.stdout
    with pytest.raises(AttributeError):
        import greenmark.vllm as gv

        gv.not_a_name
