"""The transformers LogitsProcessor: identical to the core on every path, and end to end on the
embedded SmolLM2-135M GGUF loaded through transformers."""

import time

import numpy as np
import pytest
import torch

import greenmark
from conftest import TOKENIZER
from greenmark.transformers import WatermarkLogitsProcessor

KEY = greenmark.Key.from_hex("c0ffee" * 10 + "0123")
V = 49152


def test_cpu_float32_path_is_zero_copy_and_equals_core():
    config = greenmark.WatermarkConfig(V)
    proc = WatermarkLogitsProcessor(KEY, config)
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, V, (4, 9), generator=gen)
    scores = torch.randn(4, V, generator=gen)
    expected = scores.numpy().copy()
    greenmark.Watermarker(KEY, config).bias(expected, input_ids.numpy())
    ptr = scores.data_ptr()
    out = proc(input_ids, scores)
    assert out.data_ptr() == ptr  # biased in place
    np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_are_biased_in_float32(dtype):
    config = greenmark.WatermarkConfig(V, delta=2.0)
    gen = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, V, (3, 5), generator=gen)
    scores = torch.randn(3, V, generator=gen).to(dtype)
    expected = scores.to(torch.float32).numpy().copy()
    greenmark.Watermarker(KEY, config).bias(expected, input_ids.numpy())
    out = WatermarkLogitsProcessor(KEY, config)(input_ids, scores)
    assert out.dtype == dtype
    torch.testing.assert_close(out, torch.from_numpy(expected).to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize("scheme, window", [("lefthash", 1), ("minhash", 3), ("unigram", None)])
def test_device_mask_path_equals_cpu_path(scheme, window):
    # The CUDA path (green bitsets expanded on the device) run on CPU tensors.
    config = greenmark.WatermarkConfig(V, scheme=scheme, window=window, delta=1.5)
    proc = WatermarkLogitsProcessor(KEY, config)
    gen = torch.Generator().manual_seed(2)
    input_ids = torch.randint(0, V, (5, 7), generator=gen)
    scores = torch.randn(5, V, generator=gen)
    expected = proc(input_ids, scores.clone())
    got = proc.bias_on_device(input_ids, scores.clone())
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    assert not torch.equal(got, scores)


def test_processor_rejects_vocab_mismatch():
    proc = WatermarkLogitsProcessor(KEY, greenmark.WatermarkConfig(V))
    with pytest.raises(greenmark.ShapeError, match="vocab size is 49152"):
        proc(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, V + 64))


PROMPTS = [
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "Explain how a bicycle works to a ten-year-old, step by step.",
]


def generate(model, tokenizer, processors):
    from transformers import LogitsProcessorList

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    chats = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in PROMPTS
    ]
    batch = tokenizer(chats, return_tensors="pt", padding=True, add_special_tokens=False)
    torch.manual_seed(1234)
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **batch,
            do_sample=True,
            temperature=1.0,
            top_p=0.95,
            min_new_tokens=150,
            max_new_tokens=150,
            pad_token_id=tokenizer.pad_token_id,
            logits_processor=LogitsProcessorList(processors),
        )
    elapsed = time.perf_counter() - start
    width = batch["input_ids"].shape[1]
    results = []
    for row in range(len(PROMPTS)):
        prompt = batch["input_ids"][row][batch["attention_mask"][row].bool()].numpy()
        new = out[row, width:].numpy()
        results.append((prompt, new, tokenizer.decode(new, skip_special_tokens=True)))
    print(f"generated 2 x 150 tokens in {elapsed:.1f} s ({300 / elapsed:.1f} tokens/s)")
    return results


def test_generate_with_smollm2_and_detect(smollm2):
    model, tokenizer = smollm2
    config = greenmark.WatermarkConfig(model.config.vocab_size, gamma=0.25, delta=2.0)
    assert model.get_output_embeddings().weight.shape[0] == config.vocab_size
    detector = greenmark.Detector(KEY, config)
    text_detector = greenmark.TextDetector(TOKENIZER, KEY, config)

    marked = generate(model, tokenizer, [WatermarkLogitsProcessor(KEY, config)])
    plain = generate(model, tokenizer, [])
    for (prompt, ids, text), (pprompt, pids, ptext) in zip(marked, plain):
        assert len(ids) == 150 and len(pids) == 150
        from_ids = detector.detect(ids, prompt=prompt)
        from_text = text_detector.detect(text)
        batch = detector.detect_batch([ids])[0]
        print(f"\nwatermarked: ids {from_ids}\n             text {from_text}\n  {text[:100]!r}")
        assert from_ids.log10_p_value < -6, (from_ids, text)
        assert from_text.log10_p_value < -6, (from_text, text)
        assert batch.to_dict() == detector.detect(ids).to_dict()
        plain_ids = detector.detect(pids, prompt=pprompt)
        plain_text = text_detector.detect(ptext)
        print(f"plain:       ids {plain_ids}\n             text {plain_text}")
        assert plain_ids.p_value > 1e-3, (plain_ids, ptext)
        assert plain_text.p_value > 1e-3, (plain_text, ptext)
        # the other key sees nothing in the watermarked text
        other = greenmark.Detector(greenmark.Key.from_hex("11" * 32), config).detect(ids, prompt=prompt)
        assert other.p_value > 1e-3


def test_readme_quickstart_runs(smollm2, tmp_path, monkeypatch):
    """The README's transformers quickstart and text example, with the already loaded model."""
    from conftest import readme_blocks

    quick, text = [b for b in readme_blocks() if "from transformers" in b or "TextDetector" in b]
    start, end = quick.index("# load the model"), quick.index("# end of loading")
    quick = quick[:start] + quick[end:]
    model, tokenizer = smollm2
    namespace = {"model": model, "tokenizer": tokenizer}
    torch.manual_seed(7)
    exec(compile(quick, "README.md", "exec"), namespace)
    assert namespace["result"].log10_p_value < -4, namespace["result"]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tokenizer.json").write_bytes(TOKENIZER.read_bytes())
    exec(compile(text, "README.md", "exec"), namespace)
