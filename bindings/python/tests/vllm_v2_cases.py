"""The vLLM Model Runner V2 logits processor (vLLM 0.34), against vLLM's own loader, interface
and dataclasses (vllm 0.34.0 installed --no-deps into its own directory by `make test-python`).
Run by test_vllm_v2.py in a separate interpreter, because test_vllm.py imports vLLM 0.33 (the
V1 interface) in the main one.

vLLM builds the processor from its request state (`build_custom_logits_processors`) and calls
`add_request(slot, params)` and `apply(logits, ctx)`. The request state's token buffers are
vLLM's `StagedWriteTensor` / `UvaBackedTensor`, which allocate pinned CUDA memory when built, so
here they are stood in for by objects with the same `.gpu` tensor (what the interface exposes and
the processor reads); everything else is vLLM's code. The layout follows vLLM's own watermark
sampler (`_get_contexts`): committed tokens up to `total_len`, and under speculative decoding row
`j` of a request samples after the committed tokens and the first `j` drafts, which are the
input ids of the request's rows 1..j."""

import importlib
import os
import random
import types

import numpy as np
import pytest
import torch

import greenmark

from conftest import serve_vllm_keys, vllm_unavailable

SITE = os.environ.get("GREENMARK_VLLM2_SITE")
if SITE and SITE not in os.sys.path:
    os.sys.path.append(SITE)
try:
    import vllm
    from vllm import SamplingParams
    from vllm.exceptions import VLLMValidationError
    from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsContext, LogitsProcessor
    from vllm.v1.worker.gpu.sample.logits_processor.loader import (
        build_custom_logits_processors,
        build_custom_logits_processors_params_validator,
    )

    from greenmark.vllm import ENV_ALLOW_OPT_OUT, ENV_ALWAYS, ENV_KEYS
except ImportError as err:  # pragma: no cover - depends on the environment
    vllm_unavailable(err, "the vLLM 0.34 (Model Runner V2) adapter tests")

FQCN = "greenmark.vllm:GreenmarkLogitsProcessor"
V = 4096
SLOTS = 12
MAX_LEN = 64
KEYS = [greenmark.Key.from_hex(h * 32) for h in ("a1", "b2", "c3")]
CONFIGS = [
    greenmark.WatermarkConfig(V, gamma=0.25, delta=2.0),
    greenmark.WatermarkConfig(V, gamma=0.5, delta=1.25, scheme="minhash", window=3),
    greenmark.WatermarkConfig(V, gamma=0.25, delta=3.0, window=2, skip_repeated_windows=True),
]


def test_the_installed_vllm_has_only_the_v2_interface():
    assert vllm.__version__.startswith("0.34"), vllm.__version__
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("vllm.v1.sample.logits_processor")


@pytest.fixture
def key_files(tmp_path, monkeypatch):
    from greenmark._vllm_v2 import GreenmarkLogitsProcessor

    return serve_vllm_keys(tmp_path, monkeypatch, KEYS, CONFIGS, GreenmarkLogitsProcessor)


class Buffer:
    """Stands in for vLLM's StagedWriteTensor / UvaBackedTensor: the `.gpu` tensor they expose."""

    def __init__(self, tensor):
        self.gpu = tensor


def request_state(vocab=V):
    return types.SimpleNamespace(
        device=torch.device("cpu"),
        max_num_reqs=SLOTS,
        vocab_size=vocab,
        all_token_ids=Buffer(torch.zeros(SLOTS, MAX_LEN, dtype=torch.int32)),
        prompt_len=Buffer(torch.zeros(SLOTS, dtype=torch.int32)),
        prefill_len=Buffer(torch.zeros(SLOTS, dtype=torch.int32)),
        total_len=Buffer(torch.zeros(SLOTS, dtype=torch.int32)),
    )


def build(vocab=V):
    state = request_state(vocab)
    (proc,) = build_custom_logits_processors(None, state, False, [FQCN])
    return proc, state


def context(rows_slots, rows_local, input_ids):
    """The step's layout as vLLM passes it; `idx_mapping*` list each request once."""
    reqs = []
    for s, j in zip(rows_slots, rows_local):
        if j == 0:
            reqs.append(s)
    return LogitsContext(
        expanded_idx_mapping=torch.tensor(rows_slots, dtype=torch.int32),
        idx_mapping=torch.tensor(reqs, dtype=torch.int32),
        idx_mapping_np=np.array(reqs, dtype=np.int32),
        expanded_local_pos=torch.tensor(rows_local, dtype=torch.int32),
        input_ids=torch.tensor(input_ids, dtype=torch.int32),
        pos=torch.zeros(len(rows_slots), dtype=torch.int64),
        seq_lens_upper_bound_np=np.zeros(len(reqs), dtype=np.int32),
    )


def expected(logits, histories, keys):
    out = logits.clone()
    for row, (history, k) in enumerate(zip(histories, keys)):
        if k is None or len(history) < CONFIGS[k].context_len:
            continue
        greenmark.Watermarker(KEYS[k], CONFIGS[k]).bias(out[row].numpy(), np.array(history, dtype=np.int64))
    return out


def test_vllm_loads_it_as_a_v2_processor(key_files):
    proc, _ = build()
    assert isinstance(proc, LogitsProcessor)
    assert type(proc).__module__ == "greenmark._vllm_v2"
    validate = build_custom_logits_processors_params_validator([FQCN])
    validate(SamplingParams())
    validate(SamplingParams(extra_args={"greenmark": KEYS[1].id}))
    with pytest.raises(VLLMValidationError, match="unknown greenmark key id") as err:
        validate(SamplingParams(extra_args={"greenmark": "0123456789abcdef"}))
    assert not any(key.id in str(err.value) for key in KEYS)  # a client never learns the ids


def test_slots_steps_and_bias_match_the_core(key_files):
    """Requests enter recycled slots (no removal call), batches come in any slot order, and
    every watermarked row gets exactly the core's bias for its prompt + output."""
    rng = random.Random(0)
    proc, state = build()
    tokens, total = state.all_token_ids.gpu, state.total_len.gpu
    live = {}  # slot -> (key or None, history list)
    checked = 0
    for step in range(80):
        for slot in list(live):
            if rng.random() < 0.15 or len(live[slot][1]) >= MAX_LEN - 1:
                del live[slot]  # finished: vLLM frees the slot without telling processors
        for slot in range(SLOTS):
            if slot not in live and rng.random() < 0.3:
                k = rng.choice([None, 0, 1, 2])
                arg = None if k is None else {"greenmark": rng.choice([KEYS[k].id, {"key_id": KEYS[k].id}])}
                prompt = [rng.randrange(V) for _ in range(rng.randrange(0, 5))]
                assert proc.add_request(slot, SamplingParams(extra_args=arg)) == (k is not None)
                live[slot] = (k, prompt)
                tokens[slot, : len(prompt)] = torch.tensor(prompt, dtype=torch.int32)
                total[slot] = len(prompt)
        order = list(live)
        rng.shuffle(order)
        if not order:
            continue
        logits = torch.randn(len(order), V, generator=torch.Generator().manual_seed(step))
        want = expected(logits, [live[s][1] for s in order], [live[s][0] for s in order])
        checked += int(not torch.equal(want, logits))
        last = [live[s][1][-1] if live[s][1] else 0 for s in order]
        got = proc.apply(logits, context(order, [0] * len(order), last))
        assert got.data_ptr() == logits.data_ptr()
        torch.testing.assert_close(got, want, rtol=0, atol=0)
        for slot in order:  # vLLM commits the sampled token
            token = rng.randrange(V)
            live[slot][1].append(token)
            tokens[slot, total[slot]] = token
            total[slot] += 1
    assert checked > 50


def test_speculative_rows_use_the_drafts(key_files):
    """Row j of a request samples after its committed tokens and its first j drafts."""
    proc, state = build()
    rng = random.Random(1)
    committed = {3: [rng.randrange(V) for _ in range(6)], 7: [rng.randrange(V) for _ in range(2)]}
    drafts = {3: [11, 22, 33], 7: [44]}
    keys = {3: 0, 7: 2}
    for slot, history in committed.items():
        assert proc.add_request(slot, SamplingParams(extra_args={"greenmark": KEYS[keys[slot]].id}))
        state.all_token_ids.gpu[slot, : len(history)] = torch.tensor(history, dtype=torch.int32)
        state.total_len.gpu[slot] = len(history)
    rows_slots, rows_local, input_ids, histories, row_keys = [], [], [], [], []
    for slot in (7, 3):
        for j in range(len(drafts[slot]) + 1):
            rows_slots.append(slot)
            rows_local.append(j)
            input_ids.append(committed[slot][-1] if j == 0 else drafts[slot][j - 1])
            histories.append(committed[slot] + drafts[slot][:j])
            row_keys.append(keys[slot])
    logits = torch.randn(len(rows_slots), V, generator=torch.Generator().manual_seed(5))
    want = expected(logits, histories, row_keys)
    assert not torch.equal(want, logits)
    got = proc.apply(logits.clone(), context(rows_slots, rows_local, input_ids))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    # The comparison can fail: drafts read from the wrong rows change some row's bias.
    shifted = proc.apply(logits.clone(), context(rows_slots, rows_local, input_ids[1:] + input_ids[:1]))
    assert not torch.equal(shifted, want)


def test_settings_and_bad_setups(key_files, monkeypatch):
    proc, _ = build()
    logits = torch.randn(2, V)
    before = logits.clone()
    assert torch.equal(proc.apply(logits, context([0, 1], [0, 0], [1, 2])), before)  # nobody opted in
    with pytest.raises(greenmark.ConfigError, match="vocab"):
        build(vocab=V + 64)
    monkeypatch.setenv(ENV_ALWAYS, KEYS[0].id)
    proc, state = build()
    assert proc.add_request(0, SamplingParams())  # the operator watermarks every request
    with pytest.raises(ValueError, match="does not allow opting out"):
        proc.add_request(1, SamplingParams(extra_args={"greenmark": False}))
    monkeypatch.setenv(ENV_KEYS, "")
    with pytest.raises(greenmark.ConfigError, match="loaded no keys"):
        build()
