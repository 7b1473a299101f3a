"""Robustness evaluation: seeded attacks on watermarked token ids and the metrics that say how
much of the watermark survives (TPR at FPR 1e-3 and 1e-6, exact ROC AUC, watermark size).

The same Rust code as ``greenmark eval`` (``greenmark::eval``), on token ids you already have;
the model-dependent parts of the CLI (generation, paraphrase, perplexity) are not here.

In Python (``greenmark.evaluate`` is the same function)::

    result = greenmark.evaluate(key=key, config=config, watermarked=marked_ids, plain=plain_ids,
                                tokenizer="tokenizer.json", attacks=["clean", "sub-tokens:0.3", "upper"])
    result["attacks"][0]["tpr_at_1e3"]

Command line (JSON Lines inputs with an ``ids`` field or bare id arrays; prints JSON)::

    python -m greenmark.eval --key-file key.json --tokenizer tokenizer.json \\
        --watermarked w.jsonl --plain p.jsonl [--attacks clean,upper] [--seed 0]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path
from typing import Any, Optional, Sequence, Union

from greenmark._greenmark import Key, WatermarkConfig
from greenmark._greenmark import evaluate as _evaluate

__all__ = ["STANDARD_ATTACKS", "evaluate", "main"]

#: The attacks of ``greenmark eval`` that need no model (its default set without paraphrase).
STANDARD_ATTACKS = [
    "clean", "retokenize", "truncate:25", "truncate:50",
    "sub-tokens:0.1", "sub-tokens:0.3", "sub-tokens:0.5",
    "del-tokens:0.1", "del-tokens:0.3", "del-tokens:0.5",
    "ins-tokens:0.1", "ins-tokens:0.3", "ins-tokens:0.5",
    "sub-words:0.1", "sub-words:0.3", "upper", "lower", "title",
    "homoglyphs:0.1", "homoglyphs:0.5", "invisible:0.1",
    "copy-paste:0.03", "copy-paste:0.1", "copy-paste:0.25",
]


def evaluate(
    *,
    key: Key,
    config: WatermarkConfig,
    watermarked: Sequence[Sequence[int]],
    plain: Sequence[Sequence[int]],
    tokenizer: Union[str, Path],
    attacks: Optional[Sequence[str]] = None,
    seed: int = 0,
    span_min_tokens: Optional[int] = None,
) -> dict[str, Any]:
    """Attack each watermarked text (token ids) and score it against the plain ones.

    Returns ``{"scheme", "n_watermarked", "n_plain", "seed", "plain": [...], "attacks": [...]}``:
    one ``plain`` row per way of reading texts (ids, re-tokenized text, normalized text) with the
    empirical FPR, and one ``attacks`` row per attack and reading with ``tpr_at_1e3``,
    ``tpr_at_1e6``, ``auc``, ``watermark_size`` (None: infinite), ``roc`` points and more.
    Text-level attacks decode the ids with ``tokenizer`` (a tokenizer.json) and re-tokenize.
    With ``span_min_tokens``, each text is scored by the span search (windows of at least that
    many tokens, p-value corrected for the windows tried; ``scored_by`` says ``span search``):
    a watermarked paste inside human text is not diluted by it, as the ``copy-paste`` rows show.
    Raises ``greenmark.ConfigError`` for an unknown attack, empty inputs or
    ``span_min_tokens`` below 2.
    """
    out = _evaluate(
        key,
        config,
        [list(t) for t in watermarked],
        [list(t) for t in plain],
        str(tokenizer),
        list(STANDARD_ATTACKS if attacks is None else attacks),
        seed,
        span_min_tokens,
    )
    return json.loads(out)


def _read_ids(path: Path, field: str) -> list[list[int]]:
    opener = gzip.open if path.suffix == ".gz" else open
    out = []
    with opener(path, "rt", encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            value = json.loads(line)
            ids = value if isinstance(value, list) else value.get(field)
            if not isinstance(ids, list):
                raise ValueError(f"{path} line {n}: no token ids (field {field!r})")
            out.append(ids)
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m greenmark.eval``: evaluate JSON Lines inputs and print the result as JSON."""
    ap = argparse.ArgumentParser(prog="python -m greenmark.eval", description=__doc__.split("\n\n")[0])
    ap.add_argument("--key-file", type=Path, required=True)
    ap.add_argument("--tokenizer", type=Path, required=True, help="a tokenizer.json")
    ap.add_argument("--watermarked", type=Path, required=True)
    ap.add_argument("--plain", type=Path, required=True)
    ap.add_argument("--ids-field", default="ids")
    ap.add_argument("--attacks", default=None, help="comma-separated, e.g. clean,upper,sub-tokens:0.3")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-texts", type=int, default=None)
    args = ap.parse_args(argv)
    key, config = Key.load_with_config(args.key_file)
    if config is None:
        ap.error(f"{args.key_file} carries no watermark config; make the key with `greenmark keygen`")
    w = _read_ids(args.watermarked, args.ids_field)[: args.max_texts]
    p = _read_ids(args.plain, args.ids_field)[: args.max_texts]
    attacks = args.attacks.split(",") if args.attacks else None
    result = evaluate(key=key, config=config, watermarked=w, plain=p, tokenizer=args.tokenizer, attacks=attacks, seed=args.seed)
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
