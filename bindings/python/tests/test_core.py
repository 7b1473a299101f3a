"""Biasing, masks, configs and keys against the committed known-answer vectors and a naive
oracle (the definition: logits + delta * green)."""

import json
import pickle

import numpy as np
import pytest

import greenmark
from conftest import VECTORS

CASES = json.loads(VECTORS.read_text())


def scheme_kwargs(scheme: dict) -> dict:
    kwargs = {"scheme": scheme["type"]}
    if "window" in scheme:
        kwargs["window"] = scheme["window"]
    if "top_k" in scheme:
        kwargs["top_k"] = scheme["top_k"]
    return kwargs


def unpack(mask: np.ndarray, vocab: int) -> np.ndarray:
    bits = np.unpackbits(mask.view(np.uint8), axis=-1, bitorder="little")
    return bits[..., :vocab].astype(bool)


def test_key_id_matches_vectors():
    for entry in CASES["keys"]:
        assert greenmark.Key.from_hex(entry["key"]).id == entry["key_id"]


@pytest.mark.parametrize("gamma", [0.25, 0.5])
def test_bias_and_mask_match_known_answer_vectors(gamma):
    checked = 0
    for case in CASES["cases"]:
        ids = case["context"] + [case["token"]]
        vocab = max(ids) + 1
        if vocab > 1 << 18:  # ids near 2**32 need a 4-billion-token vocabulary
            continue
        vocab = max(vocab, 2)
        key = greenmark.Key.from_hex(case["key"])
        config = greenmark.WatermarkConfig(vocab, gamma=gamma, delta=2.0, **scheme_kwargs(case["scheme"]))
        assert config.scheme_id == case["scheme_id"]
        wm = greenmark.Watermarker(key, config)
        expected = case[f"green_gamma_{gamma}"]
        mask = wm.green_mask(np.array(case["context"], dtype=np.int64))
        assert unpack(mask, vocab)[case["token"]] == expected, case
        if case["scheme"]["type"] != "selfhash":  # selfhash biases only the top-k candidates
            logits = np.zeros(vocab, dtype=np.float32)
            wm.bias(logits, np.array(case["context"], dtype=np.int64))
            assert logits[case["token"]] == (2.0 if expected else 0.0), case
        checked += 1
    assert checked >= 40


@pytest.mark.parametrize("scheme", ["lefthash", "minhash", "sumhash", "unigram"])
@pytest.mark.parametrize("vocab", [49152, 1000, 70])
def test_bias_is_logits_plus_delta_times_green(scheme, vocab):
    rng = np.random.default_rng(vocab)
    key = greenmark.Key.from_hex("5a" * 32)
    window = None if scheme == "unigram" else 3
    config = greenmark.WatermarkConfig(vocab, gamma=0.3, delta=1.75, scheme=scheme, window=window)
    wm = greenmark.Watermarker(key, config)
    ids = rng.integers(0, vocab, size=(8, 12))
    logits = rng.normal(size=(8, vocab)).astype(np.float32) * 5
    original = logits.copy()
    wm.bias(logits, ids)
    green = unpack(wm.green_mask(ids), vocab)
    assert green.shape == logits.shape
    np.testing.assert_array_equal(logits, original + np.float32(1.75) * green)
    # about gamma of the vocabulary is green in each row
    assert np.all(np.abs(green.mean(axis=1) - 0.3) < 8 * np.sqrt(0.21 / vocab) + 1e-9)
    # 1-D gives the same as a batch row
    row = original[3].copy()
    wm.bias(row, ids[3])
    np.testing.assert_array_equal(row, logits[3])
    np.testing.assert_array_equal(wm.green_mask(ids[3]), wm.green_mask(ids)[3])


def test_int_dtypes_lists_and_tails_agree():
    config = greenmark.WatermarkConfig(500, scheme="minhash", window=2)
    wm = greenmark.Watermarker(greenmark.Key.from_hex("01" * 32), config)
    ids = np.array([[1, 2, 3, 499], [7, 7, 7, 8]])
    expected = wm.green_mask(ids)
    for variant in (ids.astype(np.int32), ids.astype(np.uint16), ids.astype(np.uint64), ids.tolist(), ids[:, -2:]):
        np.testing.assert_array_equal(wm.green_mask(variant), expected)
    # a context shorter than the window is left alone
    logits = np.ones(500, dtype=np.float32)
    wm.bias(logits, np.array([3]))
    assert (logits == 1).all()
    assert not wm.green_mask(np.array([3])).any()


def test_config_round_trips_and_pickles():
    config = greenmark.WatermarkConfig(49152, gamma=0.5, delta=3.0, scheme="selfhash", window=4, top_k=20)
    assert greenmark.WatermarkConfig.from_json(config.to_json()) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert (config.vocab_size, config.gamma, config.delta, config.scheme, config.window, config.top_k) == (
        49152, 0.5, 3.0, "selfhash", 4, 20)
    assert config != greenmark.WatermarkConfig(49152)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        (dict(vocab_size=1000, gamma=1.5), "gamma must be"),
        (dict(vocab_size=1000, delta=-1.0), "delta must be"),
        (dict(vocab_size=1), "vocab size must be at least 2"),
        (dict(vocab_size=-3), "got -3"),
        (dict(vocab_size=1000, scheme="bogus"), "unknown scheme"),
        (dict(vocab_size=1000, window=0), "window must be between"),
        (dict(vocab_size=1000, scheme="unigram", window=2), "no window"),
        (dict(vocab_size=1000, top_k=3), "top_k applies"),
    ],
)
def test_bad_configs_raise_config_error(kwargs, needle):
    with pytest.raises(greenmark.ConfigError, match=needle) as info:
        greenmark.WatermarkConfig(**kwargs)
    assert isinstance(info.value, ValueError)


def test_bad_json_config():
    with pytest.raises(greenmark.ConfigError, match="gama"):
        greenmark.WatermarkConfig.from_json('{"vocab_size": 10, "gama": 0.5}')


def test_keys(tmp_path):
    key = greenmark.Key.generate()
    assert key != greenmark.Key.generate()
    assert greenmark.Key.from_hex(key.to_hex()) == key
    assert key.to_hex() not in repr(key) and key.id in repr(key)
    path = tmp_path / "k.hex"
    key.save(path)
    assert greenmark.Key.load(str(path)) == key
    with pytest.raises(FileExistsError):
        key.save(path)
    with pytest.raises(FileNotFoundError, match="cannot read key file"):
        greenmark.Key.load(tmp_path / "missing")
    with pytest.raises(greenmark.InvalidKeyError, match="64 hex digits") as info:
        greenmark.Key.from_hex("abc")
    assert isinstance(info.value, ValueError)
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(key)


def test_json_key_files_carry_and_check_the_config(tmp_path):
    key = greenmark.Key.from_hex("9a" * 32)
    config = greenmark.WatermarkConfig(49152, gamma=0.5, delta=1.5, scheme="minhash", window=3)
    path = tmp_path / "wm.json"
    key.save(path, config=config)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    text = path.read_text()
    assert json.loads(text)["key_id"] == key.id and json.loads(text)["format"] == "greenmark-key/v1"
    loaded, stored = greenmark.Key.load_with_config(path)
    assert loaded == key and stored == config
    assert greenmark.Key.load(path) == key
    assert greenmark.Key.load(path, config=config) == key
    # skip_repeated_windows does not change which tokens are green: accepted
    same = greenmark.WatermarkConfig(49152, gamma=0.5, delta=1.5, scheme="minhash", window=3, skip_repeated_windows=True)
    assert greenmark.Key.load(path, config=same) == key
    for other, field in [
        (greenmark.WatermarkConfig(49152, gamma=0.25, delta=1.5, scheme="minhash", window=3), "gamma"),
        (greenmark.WatermarkConfig(49152, gamma=0.5, delta=2.0, scheme="minhash", window=3), "delta"),
        (greenmark.WatermarkConfig(49152, gamma=0.5, delta=1.5), "scheme"),
        (greenmark.WatermarkConfig(32000, gamma=0.5, delta=1.5, scheme="minhash", window=3), "vocab_size"),
    ]:
        with pytest.raises(greenmark.ConfigError, match=f"mismatch on {field}"):
            greenmark.Key.load(path, config=other)
    # a hex key file has no config: nothing to check against
    hex_path = tmp_path / "wm.key"
    key.save(hex_path)
    assert greenmark.Key.load_with_config(hex_path) == (key, None)
    assert greenmark.Key.load(hex_path, config=config) == key
    with pytest.raises(FileExistsError):
        key.save(path, config=config)
    with pytest.raises(TypeError, match="greenmark.WatermarkConfig"):
        key.save(tmp_path / "x.json", config={"gamma": 0.5})
    # a corrupt JSON key file: the key id no longer matches the secret
    bad = tmp_path / "bad.json"
    bad.write_text(text.replace(key.id, "0" * 16))
    with pytest.raises(greenmark.InvalidKeyError, match="does not match its secret"):
        greenmark.Key.load_with_config(bad)
    assert key.to_hex() not in str(pytest.raises(greenmark.InvalidKeyError, greenmark.Key.load, bad).value)


def test_strided_and_fortran_ids_are_read_in_place_correctly():
    # int64 and int32 arrays are read through their strides (no numpy conversion): any layout
    # must give the same windows as a plain C-contiguous copy.
    config = greenmark.WatermarkConfig(1000, scheme="minhash", window=3, delta=1.0)
    wm = greenmark.Watermarker(greenmark.Key.from_hex("02" * 32), config)
    base = np.random.default_rng(5).integers(0, 1000, size=(4, 24))
    for dtype in (np.int64, np.int32):
        wide = base.astype(dtype)
        for view in (wide[:, ::2], wide[::-1], np.asfortranarray(wide), wide.T.copy().T, wide[1:3, 5:17:3]):
            want = wm.green_mask(np.ascontiguousarray(view))
            np.testing.assert_array_equal(wm.green_mask(view), want)
            logits = np.zeros((view.shape[0], 1000), dtype=np.float32)
            wm.bias(logits, view)
            np.testing.assert_array_equal(logits > 0, np.unpackbits(want.view(np.uint8), bitorder="little").reshape(view.shape[0], -1)[:, :1000].astype(bool))
        row = wide[2, ::3]
        np.testing.assert_array_equal(wm.green_mask(row), wm.green_mask(row.copy()))
    with pytest.raises(greenmark.TokenError, match=r"4294967296 at row 1, position 7"):
        wm.green_mask(np.array([[1] * 8, [2] * 7 + [2**32]], dtype=np.int64)[:, ::1])
