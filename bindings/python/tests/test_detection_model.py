"""The CLI and the Python package share one detection model (the core's): the same scheme name
gives the same config, and the same ids, prompt, keys and span search give the same numbers."""

import json
import pathlib
import subprocess

import numpy as np
import pytest

import greenmark
from conftest import REPO, TOKENIZER

SCHEMES = ["lefthash", "minhash", "sumhash", "selfhash", "unigram"]


def keygen(cli, path, *args) -> pathlib.Path:
    subprocess.run([cli, "keygen", "--out", path, *args], check=True, capture_output=True)
    return path


@pytest.mark.parametrize("scheme", SCHEMES)
def test_a_scheme_name_gives_the_same_config_in_the_cli_and_python(cli, tmp_path, scheme):
    key, stored = greenmark.Key.load_with_config(keygen(cli, tmp_path / "k.json", "--scheme", scheme))
    assert stored == greenmark.WatermarkConfig(49152, scheme=scheme), stored.to_json()
    # Explicit parameters agree too.
    if scheme != "unigram":
        _, stored = greenmark.Key.load_with_config(
            keygen(cli, tmp_path / "w.json", "--scheme", scheme, "--window", "3", "--gamma", "0.4")
        )
        assert stored == greenmark.WatermarkConfig(49152, scheme=scheme, window=3, gamma=0.4)


def test_unknown_scheme_and_misplaced_top_k_are_config_errors():
    with pytest.raises(greenmark.ConfigError, match='unknown scheme "left-hash".*lefthash, minhash'):
        greenmark.WatermarkConfig(1000, scheme="left-hash")
    with pytest.raises(greenmark.ConfigError, match="top_k applies to selfhash only"):
        greenmark.WatermarkConfig(1000, scheme="minhash", top_k=8)


def watermarked_ids(key, config, n, seed):
    """Ids sampled from random logits biased by the watermark (a model that follows the bias)."""
    rng = np.random.default_rng(seed)
    wm = greenmark.Watermarker(key, config)
    ids = [int(rng.integers(config.vocab_size))]
    for _ in range(n):
        logits = rng.normal(size=config.vocab_size).astype(np.float32)
        wm.bias(logits, np.asarray(ids))
        ids.append(int(np.argmax(logits)))
    return ids[1:]


def test_the_cli_and_python_give_the_same_detections(cli, tmp_path):
    a_path = keygen(cli, tmp_path / "a.json", "--window", "2")
    b_path = keygen(cli, tmp_path / "b.json", "--window", "2")
    (a, config), (b, _) = greenmark.Key.load_with_config(a_path), greenmark.Key.load_with_config(b_path)
    rng = np.random.default_rng(0)
    human = [int(t) for t in rng.integers(0, 49152, size=300)]
    paste = watermarked_ids(b, config, 60, seed=1)
    lines = [
        {"ids": human[:150] + paste + human[150:], "prompt_ids": [5, 6, 7]},
        {"ids": human, "prompt_ids": []},
        {"ids": paste, "prompt_ids": [9]},
    ]
    corpus = tmp_path / "ids.jsonl"
    corpus.write_text("".join(json.dumps(line) + "\n" for line in lines))
    ring = greenmark.Keyring([greenmark.Detector(a, config), greenmark.Detector(b, config)])
    single = greenmark.Detector(b, config)
    runs = {
        "keys+span": (["--key-file", a_path, "--key-file", b_path, "--span", "--min-span-tokens", "30"],
                      lambda l: ring.find_span(l["ids"], prompt=l["prompt_ids"], min_tokens=30)),
        "keys": (["--key-file", a_path, "--key-file", b_path], lambda l: ring.detect(l["ids"], prompt=l["prompt_ids"])),
        "span": (["--key-file", b_path, "--span", "--min-span-tokens", "30"],
                 lambda l: single.find_span(l["ids"], prompt=l["prompt_ids"], min_tokens=30)),
        "one key": (["--key-file", b_path], lambda l: single.detect(l["ids"], prompt=l["prompt_ids"])),
    }
    for name, (flags, python) in runs.items():
        out = subprocess.run(
            [cli, "detect", *flags, "--ids-field", "ids", "--prompt-ids-field", "prompt_ids", "--json", corpus],
            capture_output=True, text=True, check=True,
        )
        records = [json.loads(line) for line in out.stdout.splitlines()]
        assert len(records) == len(lines), name
        for record, line in zip(records, lines):
            result = python(line)
            expected = result.to_dict()
            expected.pop("normalizations", None)  # text only; ids have none
            for field, value in expected.items():
                assert record[field] == value, (name, field)
            assert record["watermarked"] == result.is_significant(1e-6), name
    # The paste is found under key b, named as the key that fired.
    found = ring.find_span(lines[0]["ids"], prompt=lines[0]["prompt_ids"], min_tokens=30)
    assert found.key_id == b.id and found.strongest_key == 1 and found.is_significant(1e-6)
    assert found.log10_p_value == pytest.approx(found.keys[1].log10_p_value + np.log10(2))
    assert "uncorrected_log10_p_value" in found.to_dict()["keys"][1]["span"]


def test_span_search_on_text_and_its_errors():
    key = greenmark.Key.from_hex("11" * 32)
    config = greenmark.WatermarkConfig(49152)
    detector = greenmark.TextDetector(TOKENIZER, key, config)
    text = "A plain sentence, written by a person, about the weather and the sea. " * 20
    span = detector.find_span(text, min_tokens=20)
    assert 0 <= span.start < span.end <= len(detector.encode(text))
    assert span.windows_tried > 1 and not span.is_significant()
    assert span.p_value >= span.span.p_value  # corrected: never below the span's own
    with pytest.raises(greenmark.ConfigError, match="min_tokens >= 2"):
        detector.find_span(text, min_tokens=1)
    with pytest.raises(greenmark.ConfigError, match="strictly between 0 and 1"):
        span.is_significant(1.5)
    with pytest.raises(greenmark.TextError, match="empty"):
        detector.find_span("   \u200b ")
    # The prompt is context, not scored: it changes only the first window.
    plain = detector.detect("the river ran on")
    prompted = detector.detect("the river ran on", prompt="Tell me about")
    assert prompted.n_tokens == plain.n_tokens and prompted.n_scored == plain.n_scored + 1


def test_keyring_bad_input():
    config = greenmark.WatermarkConfig(100)
    with pytest.raises(greenmark.ConfigError, match="at least one key"):
        greenmark.Keyring([])
    with pytest.raises(TypeError, match="each detector must be a greenmark.Detector"):
        greenmark.Keyring([config])
    with pytest.raises(TypeError, match="detectors must be"):
        greenmark.Keyring(3)
    key = greenmark.Key.from_hex("22" * 32)
    same = greenmark.Keyring([greenmark.Detector(key, config), greenmark.Detector(key, greenmark.WatermarkConfig(100, delta=4.0))])
    assert len(same) == 1  # delta does not change scoring: one test
    with pytest.raises(greenmark.TokenError):
        same.detect([1, 2, 500])


def test_config_rules_for_models_and_tokenizers():
    config = greenmark.WatermarkConfig(49152, scheme="minhash", window=3)
    assert config.history_len == 3
    assert greenmark.WatermarkConfig(49152, skip_repeated_windows=True).history_len is None
    config.check_logits_width(49152)
    config.check_tokenizer_vocab(49152)
    with pytest.raises(greenmark.ConfigError, match="logits have 49216 entries per row"):
        config.check_logits_width(49216)
    with pytest.raises(greenmark.TextError, match="tokenizer has 128256 tokens"):
        config.check_tokenizer_vocab(128256)
