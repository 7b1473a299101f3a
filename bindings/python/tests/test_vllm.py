"""The vLLM v1 logits processor, against vLLM's own classes (vllm 0.33.0 installed with --no-deps
into a separate directory by `make test-python`, on the machine's torch): BatchUpdate,
BatchUpdateBuilder, MoveDirectionality, SamplingParams, and vLLM's LogitBiasLogitsProcessor as an
oracle for row bookkeeping. The persistent batch is driven as vLLM's InputBatch drives it
(vllm/v1/worker/gpu_input_batch.py: `_register_add_request` fills the lowest removed slot or
appends, `condense` slides the last requests into holes as UNIDIRECTIONAL moves, `swap_states`
records SWAPs)."""

import os
import random
import types

import numpy as np
import pytest
import torch

import greenmark

from conftest import add_vllm_site, serve_vllm_keys, vllm_unavailable

add_vllm_site()
try:
    from vllm import SamplingParams
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality
    from vllm.v1.sample.logits_processor.builtin import LogitBiasLogitsProcessor
    from vllm.v1.sample.logits_processor.state import BatchUpdateBuilder

    from greenmark.vllm import ENV_ALLOW_OPT_OUT, ENV_ALWAYS, ENV_KEYS, GreenmarkLogitsProcessor
except ImportError as err:  # pragma: no cover - depends on the environment
    vllm_unavailable(err, "the vLLM adapter tests")

V = 4096
KEYS = [greenmark.Key.from_hex(h * 32) for h in ("a1", "b2")]
CONFIGS = [
    greenmark.WatermarkConfig(V, gamma=0.25, delta=2.0),
    greenmark.WatermarkConfig(V, gamma=0.5, delta=1.25, scheme="minhash", window=3),
]


def vllm_config(vocab=V):
    # Only the field the processor reads; a real VllmConfig needs a model to build.
    return types.SimpleNamespace(model_config=types.SimpleNamespace(get_vocab_size=lambda: vocab))


@pytest.fixture
def key_files(tmp_path, monkeypatch):
    return serve_vllm_keys(tmp_path, monkeypatch, KEYS, CONFIGS, GreenmarkLogitsProcessor)


class Batch:
    """vLLM's persistent batch, reduced to what logits processors see."""

    def __init__(self, procs):
        self.builder = BatchUpdateBuilder()
        self.slots = []  # request dict or None
        self.procs = procs

    @property
    def num_reqs(self):
        return sum(s is not None for s in self.slots)

    def remove(self, index):
        self.slots[index] = None
        self.builder.removed_append(index)

    def add(self, request):
        index = self.builder.pop_removed()  # gpu_input_batch.py _register_add_request
        if index is None:
            index = self.num_reqs
        while len(self.slots) <= index:
            self.slots.append(None)
        self.slots[index] = request
        self.builder.added.append((index, request["params"], request["prompt"], request["output"]))

    def condense(self):  # gpu_input_batch.py condense
        empty = self.builder.removed
        if not empty or self.num_reqs == 0:
            if self.num_reqs == 0:
                self.slots.clear()
            return
        last = self.num_reqs + len(empty) - 1
        while empty:
            while last in empty:
                last -= 1
            at = self.builder.peek_removed()
            if at >= last:
                break
            self.builder.pop_removed()
            self.slots[at], self.slots[last] = self.slots[last], None
            self.builder.moved.append((last, at, MoveDirectionality.UNIDIRECTIONAL))
            last -= 1
        del self.slots[self.num_reqs :]

    def swap(self, i, j):  # gpu_input_batch.py swap_states
        self.slots[i], self.slots[j] = self.slots[j], self.slots[i]
        self.builder.moved.append((i, j, MoveDirectionality.SWAP))

    def step(self):
        update = self.builder.get_and_reset(self.num_reqs)
        assert update is None or isinstance(update, BatchUpdate)
        for proc in self.procs:
            proc.update_state(update)


def expected_logits(logits, slots):
    out = logits.clone()
    for row, request in enumerate(slots):
        if request is None or request["key"] is None:
            continue
        k = request["key"]
        history = np.array(request["prompt"] + request["output"], dtype=np.int64)
        if len(history) < CONFIGS[k].context_len:
            continue
        row_np = out[row].numpy()
        greenmark.Watermarker(KEYS[k], CONFIGS[k]).bias(row_np, history)
    return out


def test_bookkeeping_matches_vllm_and_bias_matches_core(key_files, monkeypatch):
    import vllm.utils.torch_utils

    # vLLM decides at import whether to pin host memory (it assumes CUDA); no GPU here.
    monkeypatch.setattr(vllm.utils.torch_utils, "PIN_MEMORY", False)
    rng = random.Random(0)
    ours = GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    oracle = LogitBiasLogitsProcessor(None, torch.device("cpu"), False)
    batch = Batch([ours, oracle])
    serial = 0
    checked = 0
    for step in range(60):
        # finished requests leave, new ones arrive (some watermarked, with either key)
        for index, request in enumerate(list(batch.slots)):
            if request is not None and rng.random() < 0.2:
                batch.remove(index)
        for _ in range(rng.randrange(0, 4)):
            serial += 1
            k = rng.choice([None, 0, 1])
            key_arg = None if k is None else rng.choice([KEYS[k].id, {"key_id": KEYS[k].id}])
            params = SamplingParams(
                extra_args=None if key_arg is None else {"greenmark": key_arg},
                logit_bias={serial % V: 0.0} if k is not None else None,
            )
            prompt = [rng.randrange(V) for _ in range(rng.randrange(0, 4))]
            batch.add({"id": serial, "key": k, "params": params, "prompt": prompt, "output": []})
        batch.condense()
        if batch.num_reqs >= 2 and rng.random() < 0.3:
            batch.swap(*rng.sample(range(batch.num_reqs), 2))
        batch.step()
        # the same rows as vLLM's own processor tracks, holding the same requests
        assert set(ours.rows) == set(oracle.biases)
        for row, request in enumerate(batch.slots):
            if request["key"] is not None:
                assert oracle.biases[row] == {request["id"] % V: 0.0}
                assert ours.rows[row].output is request["output"]  # the live list, not a copy
        logits = torch.randn(batch.num_reqs, V, generator=torch.Generator().manual_seed(step))
        want = expected_logits(logits, batch.slots)
        checked += int(not torch.equal(want, logits))  # some row is watermarked
        got = ours.apply(logits)
        assert got.data_ptr() == logits.data_ptr()
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        # vLLM appends the sampled token to each request's output list
        for request in batch.slots:
            request["output"].append(rng.randrange(V))
    assert checked > 40 and serial > 50


def test_processor_interface(key_files):
    proc = GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    assert proc.is_argmax_invariant() is False
    proc.update_state(None)
    logits = torch.randn(3, V)
    before = logits.clone()
    assert torch.equal(proc.apply(logits), before)  # nobody opted in
    # "default" needs exactly one key: two are loaded
    with pytest.raises(ValueError, match="exactly one loaded key, and this server has several") as err:
        GreenmarkLogitsProcessor.validate_params(SamplingParams(extra_args={"greenmark": "default"}))
    assert not any(key.id in str(err.value) for key in KEYS)  # a client never learns the ids


def test_validate_params_rejects_bad_requests(key_files):
    validate = GreenmarkLogitsProcessor.validate_params
    validate(SamplingParams())
    validate(SamplingParams(extra_args={"other": 1}))
    validate(SamplingParams(extra_args={"greenmark": KEYS[1].id}))
    with pytest.raises(ValueError, match="unknown greenmark key id '0123456789abcdef'") as err:
        validate(SamplingParams(extra_args={"greenmark": "0123456789abcdef"}))
    # The 400 a client gets never lists the server's key ids.
    assert not any(key.id in str(err.value) for key in KEYS), err.value
    with pytest.raises(ValueError, match="16 lowercase hex digits"):
        validate(SamplingParams(extra_args={"greenmark": KEYS[0].to_hex()}))  # a secret: refused
    with pytest.raises(ValueError, match="only 'key_id'.*secret"):
        validate(SamplingParams(extra_args={"greenmark": {"key_id": KEYS[0].id, "secret": "ab"}}))
    with pytest.raises(ValueError, match="16 lowercase hex"):
        validate(SamplingParams(extra_args={"greenmark": 7}))


def test_single_key_default(tmp_path, monkeypatch):
    path = tmp_path / "one.json"
    KEYS[0].save(path, config=CONFIGS[0])
    monkeypatch.setenv(ENV_KEYS, str(path))
    monkeypatch.setattr(GreenmarkLogitsProcessor, "_shared_keys", None)
    GreenmarkLogitsProcessor.validate_params(SamplingParams(extra_args={"greenmark": "default"}))
    proc = GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    output = [5]
    proc.update_state(BatchUpdate(1, [], [(0, SamplingParams(extra_args={"greenmark": True}), [1, 2], output)], []))
    logits = torch.zeros(1, V)
    proc.apply(logits)
    want = np.zeros(V, dtype=np.float32)
    greenmark.Watermarker(KEYS[0], CONFIGS[0]).bias(want, [1, 2, 5])
    np.testing.assert_array_equal(logits[0].numpy(), want)


def test_server_configuration_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(GreenmarkLogitsProcessor, "_shared_keys", None)
    monkeypatch.delenv(ENV_KEYS, raising=False)
    with pytest.raises(greenmark.ConfigError, match="loaded no keys.*GREENMARK_VLLM_KEYS"):
        GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    bare = tmp_path / "bare.key"
    KEYS[0].save(bare)
    monkeypatch.setenv(ENV_KEYS, str(bare))
    with pytest.raises(greenmark.ConfigError, match="carries no watermark config"):
        GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    good = tmp_path / "good.json"
    KEYS[0].save(good, config=CONFIGS[0])
    monkeypatch.setenv(ENV_KEYS, str(good))
    with pytest.raises(greenmark.ConfigError, match="logits have 4160 entries per row but the key's watermark config is for a vocabulary of 4096"):
        GreenmarkLogitsProcessor(vllm_config(vocab=V + 64), torch.device("cpu"), False)
    monkeypatch.setenv(ENV_KEYS, str(tmp_path / "missing.json"))
    with pytest.raises(FileNotFoundError):
        GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)


def test_lost_batch_update_is_an_error_not_a_wrong_row(key_files):
    proc = GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    params = SamplingParams(extra_args={"greenmark": KEYS[0].id})
    proc.update_state(BatchUpdate(3, [], [(2, params, [1], [])], []))
    with pytest.raises(ValueError, match="row 2 but the logits have 2 rows"):
        proc.apply(torch.zeros(2, V))


def _logits_after(proc, params, prompt=(1, 2), output=(5,)):
    proc.update_state(BatchUpdate(1, [], [(0, params, list(prompt), list(output))], []))
    logits = torch.zeros(1, V)
    return proc.apply(logits)[0].numpy()


def _watermarked(k, prompt=(1, 2), output=(5,)):
    want = np.zeros(V, dtype=np.float32)
    greenmark.Watermarker(KEYS[k], CONFIGS[k]).bias(want, list(prompt) + list(output))
    return want


def test_operator_watermarks_every_request(key_files, monkeypatch):
    monkeypatch.setenv(ENV_ALWAYS, KEYS[1].id)
    validate = GreenmarkLogitsProcessor.validate_params
    proc = GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    # A request that says nothing is watermarked with the operator's key...
    validate(SamplingParams())
    np.testing.assert_array_equal(_logits_after(proc, SamplingParams()), _watermarked(1))
    np.testing.assert_array_equal(_logits_after(proc, SamplingParams(extra_args={"other": 1})), _watermarked(1))
    # ... one that names another loaded key gets that one ...
    named = SamplingParams(extra_args={"greenmark": KEYS[0].id})
    validate(named)
    np.testing.assert_array_equal(_logits_after(proc, named), _watermarked(0))
    # ... and none may opt out unless the operator allows it.
    for value in (False,):
        out = SamplingParams(extra_args={"greenmark": value})
        with pytest.raises(ValueError, match="watermarks every response and does not allow opting out"):
            validate(out)
        with pytest.raises(ValueError, match="does not allow opting out"):
            _logits_after(proc, out)
    monkeypatch.setenv(ENV_ALLOW_OPT_OUT, "1")
    out = SamplingParams(extra_args={"greenmark": False})
    validate(out)
    assert not _logits_after(proc, out).any()
    assert _logits_after(proc, SamplingParams()).any()  # still on by default


def test_operator_setting_errors_stop_the_server(key_files, monkeypatch):
    for value, match in [
        ("0123456789abcdef", "names key 0123456789abcdef, which .GREENMARK_VLLM_KEYS did not load"),
        ("default", "ALWAYS=default needs exactly one loaded key"),
        (KEYS[0].to_hex(), "neither"),
    ]:
        monkeypatch.setenv(ENV_ALWAYS, value)
        with pytest.raises(greenmark.ConfigError, match=match) as err:
            GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
        assert KEYS[0].to_hex() not in str(err.value)  # a secret given by mistake is not echoed
    monkeypatch.setenv(ENV_ALWAYS, KEYS[0].id)
    monkeypatch.setenv(ENV_ALLOW_OPT_OUT, "maybe")
    with pytest.raises(greenmark.ConfigError, match="ALLOW_OPT_OUT must be 1 or 0"):
        GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)


def test_key_file_readable_by_others_is_logged(key_files, monkeypatch, caplog):
    os.chmod(key_files[0], 0o644)
    with caplog.at_level("WARNING", logger="greenmark.vllm"):
        GreenmarkLogitsProcessor(vllm_config(), torch.device("cpu"), False)
    messages = [r.getMessage() for r in caplog.records if r.name == "greenmark.vllm"]
    assert len(messages) == 1, messages
    assert "mode 0644" in messages[0] and "chmod 600" in messages[0] and ENV_KEYS in messages[0]
    assert key_files[0] in messages[0] and key_files[1] not in messages[0]
