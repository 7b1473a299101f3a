"""Key and config files (issue 16): bounded reads that never hang, errors that name the field
and never quote a value from the file, warnings for key files others may read, delta's range."""

import json
import os
import stat
import threading
import warnings

import pytest

import greenmark
from greenmark.gumbel import GumbelDetector, load_vllm_config
from greenmark.synthid import SynthIdDetector

SECRET = "5ec7e7" * 10 + "5ec7"  # 64 hex digits: key-shaped
DIGITS = "7319462805"
PLANTS = [SECRET, "SECRET-" + SECRET, -7319462805, 7319462805.5, 73194628057319462805731946, [SECRET], {"x": SECRET}]


def _clean(err, field):
    text = f"{err} {err!r}"
    assert "5ec7e7" not in text and DIGITS not in text, text
    assert field in str(err), (field, str(err))


def _key_doc():
    key = greenmark.Key.from_hex(SECRET)
    return {
        "format": "greenmark-key/v1",
        "key_id": key.id,
        "secret": SECRET,
        "config": {"vocab_size": 1000, "gamma": 0.25, "delta": 2.0, "scheme": {"type": "selfhash", "window": 4, "top_k": 40}},
    }


def _fields(doc, prefix=""):
    for name, value in doc.items():
        yield prefix + name
        if isinstance(value, dict):
            yield from _fields(value, prefix + name + ".")


def _set(doc, path, value):
    doc = json.loads(json.dumps(doc))
    at = doc
    parts = path.split(".")
    for part in parts[:-1]:
        at = at[part]
    at[parts[-1]] = value
    return doc


def _private(path):
    os.chmod(path, 0o600)
    return path


def test_key_file_errors_name_the_field_and_never_echo_a_value(tmp_path):
    doc = _key_doc()
    refused = 0
    for field in _fields(doc):
        for plant in PLANTS:
            path = _private_write(tmp_path / "k.json", json.dumps(_set(doc, field, plant)))
            try:
                greenmark.Key.load_with_config(path)
            except greenmark.GreenmarkError as err:
                assert isinstance(err, greenmark.InvalidKeyError), repr(err)
                _clean(err, field.rsplit(".", 1)[-1])
                refused += 1
    assert refused > 20
    # The case: the secret in `format`.
    path = _private_write(tmp_path / "k.json", json.dumps(_set(doc, "format", SECRET)))
    with pytest.raises(greenmark.InvalidKeyError, match='format must be the string "greenmark-key/v1"') as err:
        greenmark.Key.load(path)
    _clean(err.value, "format")
    # The secret as a field name.
    path = _private_write(tmp_path / "k.json", json.dumps({**doc, SECRET: 1}))
    with pytest.raises(greenmark.InvalidKeyError, match="unknown field") as err:
        greenmark.Key.load(path)
    _clean(err.value, "unknown field")


def _private_write(path, text):
    path.write_text(text)
    return str(_private(path))


def test_vllm_and_synthid_config_errors_never_echo_a_value(tmp_path):
    vllm = {"key": 42, "algorithm": "gumbel", "alpha": 0.1, "context_width": 4, "prf": "philox"}
    synthid = {"ngram_len": 5, "keys": [654, 400, 836]}
    for base, parse in [
        (vllm, GumbelDetector.from_vllm_config),
        (synthid, lambda text: SynthIdDetector(json.loads(text))),
    ]:
        parse(json.dumps(base))
        for field in base:
            for plant in PLANTS:
                try:
                    parse(json.dumps({**base, field: plant}))
                except greenmark.GreenmarkError as err:
                    assert isinstance(err, greenmark.ConfigError), repr(err)
                    _clean(err, field)
    # The case: an out-of-range vLLM key is the secret itself.
    with pytest.raises(greenmark.ConfigError, match="key must be an integer from 0 to") as err:
        GumbelDetector.from_vllm_config('{"key": 73194628057319462805}')
    _clean(err.value, "key")
    path = _private_write(tmp_path / "wm.json", '{"key": -7319462805}')
    with pytest.raises(greenmark.ConfigError) as err:
        load_vllm_config(path)
    _clean(err.value, "key")
    assert load_vllm_config(_private_write(tmp_path / "ok.json", '{"key": 42}')).scheme == "greenmark/gumbel-vllm/v1"


def _fifo(tmp_path):
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return str(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs Unix special files")
@pytest.mark.parametrize("loader", ["Key.load", "Key.load_with_config", "load_vllm_config"])
def test_special_and_oversize_files_are_refused_at_once(tmp_path, loader):
    load = {
        "Key.load": greenmark.Key.load,
        "Key.load_with_config": greenmark.Key.load_with_config,
        "load_vllm_config": load_vllm_config,
    }[loader]
    big = _private_write(tmp_path / "big.json", "0" * (64 * 1024 + 1))
    for path, match in [
        ("/dev/zero", "is a character device, not a regular file"),
        (_fifo(tmp_path), r"is a FIFO \(named pipe\), not a regular file"),
        (str(tmp_path), "is a directory, not a regular file"),
        (big, "larger than 64 KiB"),
    ]:
        # On a thread, so a regression fails after 10 s instead of hanging the suite.
        result = {}

        def run():
            try:
                load(path)
            except BaseException as err:  # noqa: BLE001 - reported below
                result["err"] = err

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), f"{loader}({path}) blocked"
        assert isinstance(result.get("err"), OSError), result
        assert path in str(result["err"]) and __import__("re").search(match, str(result["err"])), result["err"]
    os.remove(tmp_path / "fifo")


@pytest.mark.skipif(os.name != "posix", reason="Unix permissions")
def test_key_file_readable_by_others_warns(tmp_path):
    key = greenmark.Key.generate()
    path = tmp_path / "k.json"
    key.save(path, config=greenmark.WatermarkConfig(1000))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a private key file warns about nothing
        assert greenmark.Key.load(path) == key
    for mode in (0o640, 0o604, 0o644):
        os.chmod(path, mode)
        for load in (greenmark.Key.load, greenmark.Key.load_with_config):
            with pytest.warns(greenmark.KeyFilePermissionWarning, match=f"mode {mode:04o}.*chmod 600") as record:
                load(path)
            assert len(record) == 1 and issubclass(record[0].category, UserWarning)
            assert record[0].filename == __file__  # points at the caller's line
    # As an error, for those who want it refused.
    with warnings.catch_warnings():
        warnings.simplefilter("error", greenmark.KeyFilePermissionWarning)
        with pytest.raises(greenmark.KeyFilePermissionWarning):
            greenmark.Key.load(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_delta_must_be_above_0_and_at_most_20():
    for delta in (0.0, -1.0, 20.5, 1e308, float("inf"), float("nan")):
        with pytest.raises(greenmark.ConfigError, match="delta must be above 0 and at most 20"):
            greenmark.WatermarkConfig(1000, delta=delta)
    for delta in (1e-3, 2.0, 20.0):
        assert greenmark.WatermarkConfig(1000, delta=delta).delta == delta
    with pytest.raises(greenmark.ConfigError, match="delta must be a number above 0 and at most 20"):
        greenmark.WatermarkConfig.from_json('{"vocab_size": 1000, "delta": 1e308}')


def test_key_equality():
    a = greenmark.Key.from_hex(SECRET)
    assert a == greenmark.Key.from_hex(SECRET)
    assert a != greenmark.Key.from_hex(SECRET[:-1] + "5")
    assert a != greenmark.Key.from_hex("4" + SECRET[1:])
