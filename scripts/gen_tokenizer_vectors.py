"""Reference token ids for the default model's tokenizer, from HF transformers' own GGUF loader.

An implementation independent of greenmark-lm's (transformers converts the GGUF metadata to a
tokenizers.Tokenizer with its own code). Needs `pip install transformers gguf torch`.

    python3 scripts/gen_tokenizer_vectors.py GGUF_PATH > crates/greenmark-lm/tests/vectors/tokenizer_ids.json
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
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
]


def main() -> None:
    path = sys.argv[1]
    tok = AutoTokenizer.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path))
    rows = [{"text": t, "ids": tok.encode(t, add_special_tokens=False)} for t in TEXTS]
    json.dump({"source": f"transformers {__import__('transformers').__version__}", "rows": rows},
              sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main()
