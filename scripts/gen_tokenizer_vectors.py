"""Reference token ids for the default model's tokenizer (SmolLM2-135M-Instruct).

The vocabulary, merges and added tokens come from HF transformers' own GGUF loader, an
implementation independent of greenmark-lm's (transformers converts the GGUF metadata to a
tokenizers.Tokenizer with its own code). Its converter ignores `tokenizer.ggml.pre`, though, and
always splits with the bare GPT-2 regex, while the model's original tokenizer.json
(HuggingFaceTB/SmolLM2-135M-Instruct) pre-tokenizes with

    Sequence[Digits(individual_digits=True),
             ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)]

(llama.cpp names this `smollm`: `\\p{N}` first, then the GPT-2 regex). The two differ on
whitespace runs before digits ("a   1", "\\n\\n2024"), so this script sets the original
pre-tokenizer before encoding: `ids` are the original tokenizer's ids. Rows where transformers'
GGUF loader gives other ids also record those, as `transformers_gguf_ids`, for information.

Needs `pip install transformers gguf` (no network: HF_HUB_OFFLINE=1).

    python3 scripts/gen_tokenizer_vectors.py GGUF_PATH > crates/greenmark-lm/tests/vectors/tokenizer_ids.json
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from tokenizers import pre_tokenizers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

TEXTS = [
    "Hello, world!",
    "  leading and trailing spaces  ",
    "Numbers 12345 and 3.14159, 1,000,000.",
    "def f(x):\n    return x**2\n",
    "émojis 🙂🚀 and CJK 漢字かな, العربية, русский",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "tabs\tand\nnew\n\nlines\r\n",
    "don't won't I'm they've we'll she'd IT'S",
    "ünïcödé naïve café résumé",
    "The quick brown fox jumps over the lazy dog. " * 3,
    "   ",
    "a",
    "<|endoftext|>",
    "Mixed<|im_end|>special",
    "URL: https://example.com/path?q=1&r=2#frag",
    "e-mail: someone@example.org",
    "$100.50 + 20% = ???",
    "``` rust\nfn main() { println!(\"hi\"); }\n```",
    "snake_case camelCase PascalCase kebab-case",
    "Line one.\n\n\nLine four after blanks.",
    # Whitespace runs before digits: where the original tokenizer and transformers' GGUF
    # loader disagree.
    "a   1",
    "Total:    1999",
    "\n\n2024 was a year.",
    "tab\t\t7",
    "price  １２ (full-width digits)",
    "½ cup, x² and Ⅷ",
    "  9 lives",
    # Unicode odds and ends.
    "zero\u200bwidth and\u00a0nbsp",
    "한국어 텍스트와 日本語のテキスト",
    "👩‍👩‍👧 family, 🏳️‍🌈 flag",
]


def main() -> None:
    path = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    backend = tok.backend_tokenizer
    gguf_ids = [backend.encode(t, add_special_tokens=False).ids for t in TEXTS]
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ]
    )
    rows = []
    for text, other in zip(TEXTS, gguf_ids):
        row = {"text": text, "ids": backend.encode(text, add_special_tokens=False).ids}
        if other != row["ids"]:
            row["transformers_gguf_ids"] = other
        rows.append(row)
    source = (
        f"transformers {__import__('transformers').__version__} GGUF loader, with the original "
        "SmolLM2 tokenizer.json pre-tokenizer (Digits(individual) + ByteLevel)"
    )
    json.dump({"source": source, "rows": rows}, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()
