"""greenmark.evaluate / python -m greenmark.eval: the core's robustness evaluation from Python,
on token ids watermarked here with the real tokenizer's vocabulary."""

import json
import subprocess
import sys

import numpy as np
import pytest

import greenmark
from conftest import TOKENIZER

VOCAB = 49152


def _texts(key, config, n=10, length=80):
    """Watermarked ids (greedy over pseudo-random logits, biased) and plain ids (same logits,
    unbiased) over ids 1000..5000 (ordinary word pieces of the SmolLM2 vocabulary)."""
    wm = greenmark.Watermarker(key, config)
    rng = np.random.default_rng(0)
    marked, plain = [], []
    for _ in range(n):
        for out, bias in ((marked, True), (plain, False)):
            ids = [int(rng.integers(1000, 5000))]
            for _ in range(length):
                logits = np.full(VOCAB, -1e9, dtype=np.float32)
                logits[1000:5000] = rng.random(4000, dtype=np.float32) * 4
                if bias:
                    wm.bias(logits, ids)
                ids.append(int(np.argmax(logits)))
            out.append(ids[1:])
    return marked, plain


@pytest.fixture(scope="module")
def setup():
    key = greenmark.Key.from_hex("ab" * 32)
    config = greenmark.WatermarkConfig(VOCAB, gamma=0.25, delta=4.0)
    return key, config, *_texts(key, config)


def test_evaluate_measures_attacks(setup):
    key, config, marked, plain = setup
    result = greenmark.evaluate(
        key=key, config=config, watermarked=marked, plain=plain, tokenizer=TOKENIZER,
        attacks=["clean", "sub-tokens:0.5", "upper"], seed=3,
    )
    rows = {(r["attack"], r["reading"]): r for r in result["attacks"]}
    assert set(rows) == {("clean", "ids"), ("sub-tokens:0.5", "ids"), ("upper", "text"), ("upper", "normalized_text")}
    clean = rows[("clean", "ids")]
    assert clean["tpr_at_1e3"] == 1.0 and clean["auc"] == 1.0 and clean["n_texts"] == 10
    assert clean["watermark_size"] is not None
    # Substituting half the tokens weakens the evidence (measured, not pinned).
    assert rows[("sub-tokens:0.5", "ids")]["median_log10_p"] > clean["median_log10_p"]
    assert [r["reading"] for r in result["plain"]] == ["ids", "text", "normalized_text"]
    # The same seed gives the same result; the Python facade is the Rust evaluation.
    again = greenmark.evaluate(
        key=key, config=config, watermarked=marked, plain=plain, tokenizer=TOKENIZER,
        attacks=["clean", "sub-tokens:0.5", "upper"], seed=3,
    )
    assert again == result


def test_span_search_scores_a_paste_without_diluting_it(setup):
    key, config, marked, plain = setup
    run = lambda **kw: greenmark.evaluate(
        key=key, config=config, watermarked=marked, plain=plain, tokenizer=TOKENIZER,
        attacks=["copy-paste:0.25"], seed=1, **kw,
    )
    whole, span = run(), run(span_min_tokens=8)
    assert (whole["scored_by"], span["scored_by"]) == ("whole text", "span search")
    assert span["attacks"][0]["median_log10_p"] < whole["attacks"][0]["median_log10_p"]
    with pytest.raises(greenmark.ConfigError, match="min_tokens"):
        run(span_min_tokens=1)


def test_bad_input_raises_typed_errors(setup):
    key, config, marked, plain = setup
    with pytest.raises(greenmark.ConfigError, match="unknown attack"):
        greenmark.evaluate(key=key, config=config, watermarked=marked, plain=plain, tokenizer=TOKENIZER, attacks=["rot13"])
    with pytest.raises(greenmark.ConfigError, match="paraphrase needs a language model"):
        greenmark.evaluate(key=key, config=config, watermarked=marked, plain=plain, tokenizer=TOKENIZER, attacks=["paraphrase"])
    with pytest.raises(greenmark.ConfigError, match="plain"):
        greenmark.evaluate(key=key, config=config, watermarked=marked, plain=[], tokenizer=TOKENIZER, attacks=["clean"])
    with pytest.raises(greenmark.TextError):
        greenmark.evaluate(key=key, config=config, watermarked=marked, plain=plain, tokenizer="/nonexistent.json")


def test_module_entry_point(setup, tmp_path):
    key, config, marked, plain = setup
    key_file = tmp_path / "key.json"
    key.save(key_file, config=config)
    for name, texts in (("w.jsonl", marked), ("p.jsonl", plain)):
        (tmp_path / name).write_text("".join(json.dumps({"ids": t}) + "\n" for t in texts))
    out = subprocess.run(
        [sys.executable, "-m", "greenmark.eval", "--key-file", str(key_file), "--tokenizer", str(TOKENIZER),
         "--watermarked", str(tmp_path / "w.jsonl"), "--plain", str(tmp_path / "p.jsonl"),
         "--attacks", "clean,del-tokens:0.3"],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(out.stdout)
    assert [r["attack"] for r in result["attacks"]] == ["clean", "del-tokens:0.3"]
    assert result["attacks"][0]["tpr_at_1e3"] == 1.0
