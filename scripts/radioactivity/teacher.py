"""The teacher: the embedded SmolLM2-135M-Instruct answering programmatic prompts, three times
per prompt: without a watermark ("plain"), and watermarked with lefthash window 1 ("w1") and
window 2 ("w2"), gamma 0.25, delta 3. Two backends, same sampling (temperature 1, no top-k/top-p):
- `--backend transformers` (the GGUF dequantized, batched sampling, 15 to 18 tokens/s here);
- `--backend llama_cpp` (llama-cpp-python on the Q4_1 GGUF, one thread, about 45 tokens/s here).
  llama-cpp-python 0.3.36 built for this AMX CPU segfaults in ggml's AMX matmul unless the model
  parameter `use_extra_bufts` is off, which this script sets.

Writes, under --out: keys/w1.json, keys/w2.json (greenmark key files with their config),
prompts.jsonl, and teacher-{plain,w1,w2}.jsonl, one answer per line:
{"id", "prompt", "prompt_ids", "ids", "text"} where prompt_ids is the chat-templated prompt and
ids the generated tokens. Lines are appended prompt by prompt (all three variants each time),
so a run stopped early still has the same prompts in every file.

    python3 scripts/radioactivity/teacher.py --out runs/radio --n-prompts 300 --max-tokens 150
    # the committed corpus (scripts/radioactivity/corpus), all 2,928 prompts: runs of two side
    # by side, one core each, packed with pack.py (docs/radioactivity.md has the commands)
    python3 scripts/radioactivity/teacher.py --backend llama_cpp --out /tmp/radio-a --n-prompts 1464 --max-tokens 100
    python3 scripts/radioactivity/teacher.py --backend llama_cpp --out /tmp/radio-b --skip 1464 --n-prompts 1464 --max-tokens 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", type=Path, default=Path.home() / ".cache/greenmark/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--n-prompts", type=int, default=300)
    ap.add_argument("--max-tokens", type=int, default=150)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip", type=int, default=0, help="start at this prompt of the shuffled list")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", choices=["transformers", "llama_cpp"], default="transformers")
    args = ap.parse_args()

    import greenmark

    if args.backend == "transformers":
        import torch

        torch.set_num_threads(args.threads)

    out = args.out
    (out / "keys").mkdir(parents=True, exist_ok=True)
    watermarkers = {}
    for h in common.WINDOWS:
        path = out / "keys" / f"w{h}.json"
        common.write_key_file(path, h)
        key = greenmark.Key.from_hex(common.key_hex("teacher"))
        config = greenmark.WatermarkConfig(
            common.VOCAB, gamma=common.GAMMA, delta=common.DELTA, scheme="lefthash", window=h
        )
        watermarkers[f"w{h}"] = (key, config)

    prompts = common.prompts(args.skip + args.n_prompts, seed=args.seed)[args.skip :]
    common.write_jsonl(
        out / "prompts.jsonl", ({"id": args.skip + i, "prompt": p} for i, p in enumerate(prompts))
    )
    variants = ["plain", *watermarkers]
    files = {v: open(out / f"teacher-{v}.jsonl", "w") for v in variants}
    start = time.time()
    generate = generate_llama_cpp if args.backend == "llama_cpp" else generate_transformers
    n_tokens = generate(args, prompts, watermarkers, files)
    for f in files.values():
        f.close()
    dt = time.time() - start
    print(f"done: {len(prompts)} prompts x {len(variants)} variants, {n_tokens} tokens in {dt:.0f} s")
    (out / "teacher-timing.json").write_text(
        json.dumps({"seconds": dt, "tokens": n_tokens, "prompts": len(prompts), "backend": args.backend})
    )
    os.sync()


def progress(done: int, total: int, n_tokens: int, start: float) -> None:
    dt = time.time() - start
    print(f"{done}/{total} prompts, {n_tokens} tokens, {dt:.0f} s, {n_tokens / dt:.1f} tokens/s", flush=True)


def generate_transformers(args, prompts, watermarkers, files) -> int:
    """Batched sampling on transformers; returns the number of tokens generated."""
    import torch
    from transformers import LogitsProcessorList

    from greenmark.transformers import WatermarkLogitsProcessor

    tok, model = load_model(args.model)
    stops = [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id]
    variants = list(files)
    start, n_tokens = time.time(), 0
    torch.manual_seed(args.seed)
    for b in range(0, len(prompts), args.batch):
        batch = prompts[b : b + args.batch]
        texts = [render_chat(p) for p in batch]
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        width = enc["input_ids"].shape[1]
        for v in variants:
            procs = LogitsProcessorList([WatermarkLogitsProcessor(*watermarkers[v])]) if v in watermarkers else None
            with torch.no_grad():
                gen = model.generate(
                    **enc,
                    do_sample=True,
                    temperature=args.temperature,
                    top_k=0,
                    top_p=1.0,
                    max_new_tokens=args.max_tokens,
                    logits_processor=procs,
                    eos_token_id=stops,
                    pad_token_id=tok.pad_token_id,
                )
            for j, prompt in enumerate(batch):
                mask = enc["attention_mask"][j].bool()
                prompt_ids = enc["input_ids"][j][mask].tolist()
                ids = []
                for t in gen[j, width:].tolist():
                    if t in stops:
                        break
                    ids.append(t)
                text = tok.decode(ids, skip_special_tokens=True)
                row = {"id": args.skip + b + j, "prompt": prompt, "prompt_ids": prompt_ids, "ids": ids, "text": text}
                files[v].write(json.dumps(row) + "\n")
                n_tokens += len(ids)
            files[v].flush()
        progress(b + len(batch), len(prompts), n_tokens, start)
    return n_tokens


def generate_llama_cpp(args, prompts, watermarkers, files) -> int:
    """One prompt at a time on llama.cpp (one thread); returns the number of tokens generated."""
    import llama_cpp
    from llama_cpp import llama as llama_module

    from greenmark.llama_cpp import WatermarkLogitsProcessor

    original = llama_module.llama_cpp.llama_model_default_params

    def defaults():
        params = original()
        params.use_extra_bufts = False  # ggml's AMX path segfaults on this CPU
        return params

    llama_module.llama_cpp.llama_model_default_params = defaults
    try:
        llm = llama_cpp.Llama(str(args.model), n_ctx=1024, n_threads=1, seed=args.seed, verbose=False)
    finally:
        llama_module.llama_cpp.llama_model_default_params = original
    stops = {llm.token_eos(), *llm.tokenize(b"<|im_end|>", add_bos=False, special=True)}
    processors = {v: WatermarkLogitsProcessor(*kc) for v, kc in watermarkers.items()}
    start, n_tokens = time.time(), 0
    llm.set_seed(args.seed)
    for i, prompt in enumerate(prompts):
        prompt_ids = llm.tokenize(render_chat(prompt).encode(), add_bos=False, special=True)
        for v, f in files.items():
            procs = llama_cpp.LogitsProcessorList([processors[v]]) if v in processors else None
            ids = []
            stream = llm.generate(prompt_ids, temp=args.temperature, top_k=0, top_p=1.0, min_p=0.0,
                                  logits_processor=procs, reset=True)
            for t in stream:
                if t in stops:
                    break
                ids.append(int(t))
                if len(ids) == args.max_tokens:
                    break
            stream.close()
            text = llm.detokenize(ids).decode("utf-8", errors="replace")
            row = {"id": args.skip + i, "prompt": prompt, "prompt_ids": list(map(int, prompt_ids)), "ids": ids, "text": text}
            f.write(json.dumps(row) + "\n")
            f.flush()
            n_tokens += len(ids)
        if (i + 1) % 10 == 0 or i + 1 == len(prompts):
            progress(i + 1, len(prompts), n_tokens, start)
    return n_tokens


def load_model(path: Path):
    """The GGUF model through transformers (dequantized to float32), with left padding."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    tok.padding_side = "left"
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    model.eval()
    return tok, model


def render_chat(prompt: str) -> str:
    """SmolLM2's chat template (ChatML) for one user turn, ready for the assistant's answer."""
    system = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
    return f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{prompt}<|im_end|>\n<|im_start|>assistant\n"


if __name__ == "__main__":
    main()
