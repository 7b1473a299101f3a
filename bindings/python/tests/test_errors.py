"""Bad input raises a clear exception, and leaves the logits as they were."""

import numpy as np
import pytest

import greenmark

V = 1000


@pytest.fixture
def wm():
    return greenmark.Watermarker(greenmark.Key.from_hex("77" * 32), greenmark.WatermarkConfig(V))


@pytest.fixture
def detector():
    return greenmark.Detector(greenmark.Key.from_hex("77" * 32), greenmark.WatermarkConfig(V))


def test_wrong_dtype(wm):
    logits = np.zeros(V, dtype=np.float64)
    with pytest.raises(TypeError, match="float32.*float64"):
        wm.bias(logits, [1, 2])
    assert (logits == 0).all()
    with pytest.raises(TypeError, match="float32"):
        wm.bias(np.zeros(V, dtype=np.float16), [1])
    with pytest.raises(TypeError, match="numpy.ndarray"):
        wm.bias([0.0] * V, [1])
    with pytest.raises(TypeError, match="integer token ids, got dtype float"):
        wm.bias(np.zeros(V, dtype=np.float32), np.array([1.0, 2.0]))


def test_wrong_shape(wm):
    with pytest.raises(greenmark.ShapeError, match=r"\(V,\) or \(B, V\)"):
        wm.bias(np.zeros((1, 1, V), dtype=np.float32), [[[1]]])
    with pytest.raises(greenmark.ShapeError, match="need input_ids of shape"):
        wm.bias(np.zeros((2, V), dtype=np.float32), np.array([[1], [2], [3]]))
    with pytest.raises(greenmark.ShapeError, match="need input_ids of shape"):
        wm.bias(np.zeros((2, V), dtype=np.float32), np.array([1, 2]))
    with pytest.raises(greenmark.ShapeError, match="input_ids must have shape"):
        wm.green_mask(np.zeros((1, 1, 1), dtype=np.int64))


def test_non_contiguous_and_read_only(wm):
    base = np.zeros((2, 2 * V), dtype=np.float32)
    with pytest.raises(ValueError, match="C-contiguous"):
        wm.bias(base[:, ::2], [[1], [2]])
    frozen = np.zeros(V, dtype=np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        wm.bias(frozen, [1])


def test_vocab_mismatch(wm):
    with pytest.raises(greenmark.ShapeError, match="1001 entries but the watermark's vocab size is 1000"):
        wm.bias(np.zeros(V + 1, dtype=np.float32), [1])
    with pytest.raises(greenmark.ShapeError, match="vocab size is 1000"):
        wm.bias(np.zeros((3, V - 1), dtype=np.float32), [[1], [2], [3]])
    tokenizer_vocab = 49152
    from conftest import TOKENIZER
    with pytest.raises(greenmark.TextError, match="49152 tokens but the key's watermark config is for a vocabulary of 1000"):
        greenmark.TextDetector(TOKENIZER, greenmark.Key.from_hex("77" * 32), greenmark.WatermarkConfig(V))
    assert tokenizer_vocab > V


def test_ids_out_of_range(wm, detector):
    logits = np.zeros((2, V), dtype=np.float32)
    with pytest.raises(greenmark.TokenError, match="token id 1000 .* out of range for vocab size 1000"):
        wm.bias(logits, np.array([[1], [V]]))
    assert (logits == 0).all()  # every row is checked before any is changed
    with pytest.raises(greenmark.TokenError, match="-4 at row 1, position 1"):
        wm.bias(logits, np.array([[1, 1], [1, -4]]))
    with pytest.raises(greenmark.TokenError, match="out of range"):
        detector.detect([1, 2, 5000])
    with pytest.raises(greenmark.TokenError, match="prompt"):
        detector.detect([1, 2], prompt=[V + 7])
    with pytest.raises(greenmark.TokenError, match="2\\*\\*32"):
        detector.detect(np.array([2**40]))
    for exc in (greenmark.TokenError, greenmark.ShapeError, greenmark.ConfigError, greenmark.TextError):
        assert issubclass(exc, greenmark.GreenmarkError) and issubclass(exc, ValueError)


def test_wrong_key_and_config_types():
    config = greenmark.WatermarkConfig(V)
    key = greenmark.Key.from_hex("77" * 32)
    with pytest.raises(TypeError, match="key must be a greenmark.Key.*got str"):
        greenmark.Watermarker("77" * 32, config)
    with pytest.raises(TypeError, match="key must be a greenmark.Key.*got bytes"):
        greenmark.Detector(b"\x77" * 32, config)
    with pytest.raises(TypeError, match="config must be a greenmark.WatermarkConfig.*got dict"):
        greenmark.Detector(key, {"vocab_size": V})
    with pytest.raises(TypeError, match="texts must be a list"):
        greenmark.Detector(key, config).detect_batch("1 2 3")


def test_empty_text():
    from conftest import TOKENIZER
    td = greenmark.TextDetector(TOKENIZER, greenmark.Key.from_hex("77" * 32), greenmark.WatermarkConfig(49152))
    with pytest.raises(greenmark.TextError, match="empty"):
        td.detect(" \u200b\n")


def test_ids_sharing_memory_with_the_logits_is_an_error_not_a_panic(wm):
    logits = np.zeros(V, dtype=np.float32)
    with pytest.raises(greenmark.ShapeError, match="input_ids cannot be read while it is borrowed"):
        wm.bias(logits, logits.view(np.int32)[:3])
    assert (logits == 0).all()
