"""The llama-cpp-python logits processor: identical to the core on every array layout, and end to
end with the real library on the embedded SmolLM2-135M GGUF."""

import contextlib
import os
import time
import warnings

import numpy as np
import pytest

import greenmark
from conftest import TOKENIZER, gguf_path
from greenmark.llama_cpp import WatermarkLogitsProcessor

try:
    import llama_cpp
    import llama_cpp.llama as llama_module
except ImportError as err:  # pragma: no cover - depends on the environment
    if os.environ.get("CI"):
        raise  # CI installs llama-cpp-python (make test-python): its absence is a failure there
    reason = (
        f"LLAMA-CPP-PYTHON IS NOT INSTALLED ({err}): the llama.cpp adapter's end-to-end tests did "
        "NOT run. Install it with `python3 -m pip install llama-cpp-python` (builds from source, "
        "about 7.5 minutes on 2 cores) or run `make test-python`."
    )
    warnings.warn(reason)
    llama_cpp = None

KEY = greenmark.Key.from_hex("5eed" * 16)
V = 49152


def core_bias(scores, input_ids, config):
    expected = np.array(scores, dtype=np.float32, copy=True, order="C")
    greenmark.Watermarker(KEY, config).bias(expected, np.asarray(input_ids))
    return expected


def token_data(vocab, rng):
    """An array laid out as llama.cpp's llama_token_data (id, logit, p), as llama-cpp-python
    views it: its `logit` field is a float32 view with a 12-byte stride."""
    data = np.zeros(vocab, dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True))
    data["id"] = np.arange(vocab)
    data["logit"] = rng.standard_normal(vocab).astype(np.float32)
    return data


@pytest.mark.parametrize("scheme, window", [("lefthash", 1), ("minhash", 3), ("unigram", None)])
def test_contiguous_scores_biased_in_place_like_core(scheme, window):
    config = greenmark.WatermarkConfig(V, scheme=scheme, window=window, delta=1.5)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, V, 12).astype(np.intc)
    scores = rng.standard_normal(V).astype(np.float32)
    expected = core_bias(scores, ids, config)
    out = WatermarkLogitsProcessor(KEY, config)(ids, scores)
    assert out is scores
    np.testing.assert_array_equal(out, expected)
    assert not np.array_equal(out, core_bias(scores, ids[:-1], config))  # the window matters


def test_strided_scores_like_llama_cpp_biased_in_place():
    config = greenmark.WatermarkConfig(V)
    rng = np.random.default_rng(1)
    data = token_data(V, rng)
    view = data["logit"]
    assert view.strides == (12,) and not view.flags.c_contiguous
    before = view.copy()
    ids = np.array([7, 8, 9], dtype=np.intc)
    processor = WatermarkLogitsProcessor(KEY, config)
    out = processor(ids, view)
    assert out is view
    np.testing.assert_array_equal(data["logit"], core_bias(before, ids, config))
    np.testing.assert_array_equal(data["id"], np.arange(V))  # neighbouring fields untouched
    assert (data["p"] == 0).all()
    # the scratch buffer is reused: a second call on other data is still exact
    second = token_data(V, rng)
    second_before = second["logit"].copy()
    processor(ids[:2], second["logit"])
    np.testing.assert_array_equal(second["logit"], core_bias(second_before, ids[:2], config))


def test_read_only_scores_get_a_biased_copy():
    config = greenmark.WatermarkConfig(V)
    scores = np.random.default_rng(2).standard_normal(V).astype(np.float32)
    scores.flags.writeable = False
    before = scores.copy()
    ids = np.array([3, 4], dtype=np.intc)
    out = WatermarkLogitsProcessor(KEY, config)(ids, scores)
    assert out is not scores
    np.testing.assert_array_equal(scores, before)
    np.testing.assert_array_equal(out, core_bias(before, ids, config))


def test_bad_input_is_a_clear_error():
    config = greenmark.WatermarkConfig(V)
    processor = WatermarkLogitsProcessor(KEY, config)
    ids = np.array([1, 2], dtype=np.intc)
    with pytest.raises(TypeError, match="float32 numpy.ndarray.*float64"):
        processor(ids, np.zeros(V))
    with pytest.raises(TypeError, match="got list"):
        processor(ids, [0.0] * V)
    with pytest.raises(greenmark.ShapeError, match=r"vocab size is 49152.*\(49216,\).*n_vocab"):
        processor(ids, np.zeros(V + 64, dtype=np.float32))
    with pytest.raises(greenmark.ShapeError, match="shape"):
        processor(ids, np.zeros((1, V), dtype=np.float32))
    scores = np.zeros(V, dtype=np.float32)
    with pytest.raises(greenmark.TokenError, match="vocab|-1"):
        processor(np.array([1, -1], dtype=np.intc), scores)
    with pytest.raises(TypeError, match="integer token ids"):
        processor(np.array([1.0, 2.0]), scores)
    assert (scores == 0).all()
    with pytest.raises(TypeError, match="greenmark.Key"):
        WatermarkLogitsProcessor("ab" * 32, config)
    strided = token_data(V, np.random.default_rng(3))["logit"]
    before = strided.copy()
    with pytest.raises(greenmark.TokenError):
        processor(np.array([V + 5], dtype=np.intc), strided)
    np.testing.assert_array_equal(strided, before)


# ---- the real library -------------------------------------------------------------------------

needs_llama = pytest.mark.skipif(llama_cpp is None, reason="llama-cpp-python is not installed (see the warning)")


@contextlib.contextmanager
def no_extra_buffer_types():
    """llama-cpp-python 0.3.36 built with GGML_NATIVE on an AMX CPU segfaults in
    ggml_backend_amx_mul_mat on this Q4_1 GGUF (measured here). `Llama()` does not expose the
    model parameter `use_extra_bufts`, so set it in the defaults it starts from, then restore."""
    original = llama_module.llama_cpp.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False
        return params

    llama_module.llama_cpp.llama_model_default_params = defaults
    try:
        yield
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


@pytest.fixture(scope="module")
def llm():
    path = gguf_path()
    start = time.perf_counter()
    with no_extra_buffer_types():
        # One thread: with OpenMP, a second thread on a busy 2-core machine is 10x slower.
        model = llama_cpp.Llama(str(path), n_ctx=512, n_threads=1, seed=1234, verbose=False)
    print(f"\nloaded {path.name} with llama.cpp in {time.perf_counter() - start:.1f} s")
    return model


PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def generate(llm, processors, n=150):
    """`n` tokens from the chat prompt, end-of-text suppressed (as `min_new_tokens` does)."""
    eos = llm.token_eos()
    end_turn = llm.tokenize(b"<|im_end|>", add_bos=False, special=True)

    def no_stop(input_ids, scores):
        scores[eos] = -np.inf
        scores[end_turn] = -np.inf
        return scores

    chat = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    prompt = llm.tokenize(chat.encode(), add_bos=False, special=True)
    llm.set_seed(99)
    tokens = []
    start = time.perf_counter()
    stream = llm.generate(
        prompt,
        temp=1.0,
        top_k=0,
        top_p=0.95,
        min_p=0.0,
        logits_processor=llama_cpp.LogitsProcessorList([*processors, no_stop]),
    )
    for token in stream:
        tokens.append(token)
        if len(tokens) == n:
            break
    stream.close()
    elapsed = time.perf_counter() - start
    print(f"llama.cpp generated {n} tokens in {elapsed:.1f} s ({n / elapsed:.1f} tokens/s)")
    text = llm.detokenize(tokens).decode("utf-8", errors="replace")
    return np.array(prompt), np.array(tokens), text


@needs_llama
def test_generate_with_llama_cpp_and_detect(llm):
    config = greenmark.WatermarkConfig(llm.n_vocab(), gamma=0.25, delta=2.0)
    assert config.vocab_size == V
    processor = WatermarkLogitsProcessor(KEY, config)
    calls = []

    def recording(input_ids, scores):
        # What llama-cpp-python passes and what the processor hands back, first steps only.
        if len(calls) < 4:
            before = scores.copy()
            out = processor(input_ids, scores)
            calls.append((input_ids.copy(), scores.strides, before, out.copy()))
            return out
        return processor(input_ids, scores)

    prompt, ids, text = generate(llm, [recording])
    assert len(ids) == 150
    for input_ids, strides, before, after in calls:
        np.testing.assert_array_equal(after, core_bias(before, input_ids, config))
        assert (after != before).sum() > V // 8
    print(f"llama.cpp passed scores with strides {calls[0][1]}; first input_ids {calls[0][0].shape}")

    detector = greenmark.Detector(KEY, config)
    from_ids = detector.detect(ids, prompt=prompt)
    from_text = greenmark.TextDetector(TOKENIZER, KEY, config).detect(text)
    print(f"\nwatermarked: ids {from_ids}\n             text {from_text}\n  {text[:100]!r}")
    assert from_ids.p_value < 1e-6, (from_ids, text)
    assert from_text.p_value < 1e-6, (from_text, text)

    pprompt, pids, ptext = generate(llm, [])
    plain_ids = detector.detect(pids, prompt=pprompt)
    plain_text = greenmark.TextDetector(TOKENIZER, KEY, config).detect(ptext)
    print(f"plain:       ids {plain_ids}\n             text {plain_text}")
    assert plain_ids.p_value > 1e-3, (plain_ids, ptext)
    assert plain_text.p_value > 1e-3, (plain_text, ptext)


@needs_llama
def test_readme_example_runs(llm):
    """The README's llama-cpp-python block, with the model this module already loaded."""
    import pathlib

    from conftest import readme_blocks

    (block,) = [b for b in readme_blocks() if "llama_cpp" in b]
    block = "\n".join(line for line in block.splitlines() if "doctest: loaded by the test" not in line)
    namespace = {"greenmark": greenmark, "key": KEY, "llm": llm, "home": pathlib.Path(gguf_path()).parent}
    exec(compile(block, "README.md", "exec"), namespace)
    assert len(namespace["text"]) > 100
    detection = greenmark.TextDetector(TOKENIZER, KEY, namespace["config"]).detect(namespace["text"])
    print(f"\nREADME llama.cpp example: {detection}")
    assert detection.p_value < 1e-3, detection
