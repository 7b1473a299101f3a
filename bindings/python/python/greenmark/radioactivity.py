"""Radioactivity: was a suspect model trained on text watermarked with our key?

A :class:`RadioactivityTest` pools a whole corpus into one tape with one exact p-value (each
``(window, token)`` tuple scored once across the corpus, prompt windows excluded, an optional
filter, a budget fixed up front); see the Rust docs of ``greenmark::radioactivity``.

- closed mode: :meth:`RadioactivityTest.score_text` with the suspect's text, tokenized with the
  watermarking tokenizer (``TextDetector.encode`` does that);
- open ("reading") mode: feed watermarked texts to the suspect and pass its logits to
  :meth:`RadioactivityTest.score_logits` (numpy or torch, any device), or its top-1 predictions
  to :meth:`RadioactivityTest.score_predictions`. Any model that gives logits works
  (transformers, vLLM's ``prompt_logprobs``, ...).

>>> import numpy as np, greenmark
>>> from greenmark.radioactivity import RadioactivityTest
>>> config = greenmark.WatermarkConfig(100)
>>> test = RadioactivityTest([greenmark.Key.from_hex("11" * 32)], config, max_tuples=50)
>>> ids = np.arange(60) % 100
>>> logits = np.random.default_rng(0).normal(size=(60, 100)).astype(np.float32)
>>> test.score_logits(ids, logits)
>>> result = test.result()
>>> result["keys"][0]["n_scored"], result["exploratory"]
(50, False)
"""

from __future__ import annotations

import json
from typing import Any, Sequence

import numpy as np

from greenmark._greenmark import RadioactivityTest as _Native

__all__ = ["RadioactivityTest"]


class RadioactivityTest:
    """A corpus-level radioactivity test for one or more keys (p-values corrected for their
    number: Bonferroni and Sidak). Add every prompt and filter text before scoring."""

    def __init__(self, keys: Sequence[Any], config: Any, *, max_tuples: int | None = None, dedup: bool = True) -> None:
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise TypeError(f"keys must be a list of greenmark.Key, got {type(keys).__name__}")
        self._native = _Native(list(keys), config, max_tuples=max_tuples, dedup=dedup)

    @classmethod
    def gumbel(
        cls,
        keys: Sequence[Any],
        vocab_size: int,
        *,
        context_width: int = 4,
        max_tuples: int | None = None,
        dedup: bool = True,
    ) -> "RadioactivityTest":
        """A test of a Gumbel watermark (vLLM's ``gumbel``, or greenmark's native one): each key
        an int (vLLM's ``--watermark-config`` key) or a :class:`greenmark.Key`. Each distinct
        (context, token) tuple scores ``-ln(1 - u)``; the pooled p-value is the exact
        ``Gamma(n, 1)`` tail."""
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise TypeError(f"keys must be a list of ints or greenmark.Key, got {type(keys).__name__}")
        test = cls.__new__(cls)
        test._native = _Native.gumbel(
            list(keys), vocab_size, context_width=context_width, max_tuples=max_tuples, dedup=dedup
        )
        return test

    @property
    def config(self):
        """The KGW watermark config under test (``None`` for a Gumbel test)."""
        return self._native.config

    @property
    def vocab_size(self) -> int:
        """The vocabulary size token ids are checked against."""
        return self._native.vocab_size

    @property
    def scheme(self) -> str:
        """The scheme's versioned id."""
        return self._native.scheme

    def exclude_prompt(self, prompt_ids: Any) -> None:
        """Never score the windows of this prompt (token ids)."""
        self._native.exclude_prompt(prompt_ids)

    def add_filter_text(self, ids: Any) -> None:
        """Score only windows that occur in the texts added here (the watermarked corpus)."""
        self._native.add_filter_text(ids)

    def score_text(self, ids: Any, *, prefix: Any = None) -> None:
        """Closed mode: the suspect's text as token ids of the watermarking tokenizer."""
        self._native.score_text(ids, prefix=prefix)

    def score_predictions(self, ids: Any, predictions: Any) -> None:
        """Open mode: ``predictions[j]`` is the suspect's top-1 next token after ``ids[:j+1]``."""
        self._native.score_predictions(ids, predictions)

    def score_logits(self, ids: Any, logits: Any) -> None:
        """Open mode from logits of shape (T, V) (row ``j`` after reading ``ids[:j+1]``, as a
        causal LM returns them): the argmax is taken where the logits live (a torch tensor on
        a GPU stays there; only T ids come back)."""
        if hasattr(logits, "detach"):  # torch
            if logits.dim() != 2:
                raise ValueError(f"logits must have shape (T, V), got {tuple(logits.shape)}")
            predictions = logits.detach().argmax(dim=-1).to("cpu").numpy()
        else:
            array = np.asarray(logits)
            if array.ndim != 2:
                raise ValueError(f"logits must have shape (T, V), got {array.shape}")
            predictions = array.argmax(axis=-1)
        n_ids = len(np.asarray(ids).reshape(-1))
        if len(predictions) != n_ids:
            raise ValueError(f"logits have {len(predictions)} rows for {n_ids} ids: give one row per input position")
        if len(predictions) and int(predictions.max()) >= self.vocab_size:
            raise ValueError(
                f"logits have {int(predictions.max()) + 1}+ columns but the watermark's vocab size is "
                f"{self.vocab_size}: slice off the model's padding columns"
            )
        self._native.score_predictions(ids, predictions)

    def result(self) -> dict:
        """The result: per key (tuples seen, excluded, filtered, repeated, over budget, scored,
        green, exact log10 p, curve, ``budget_reached``), the strongest key, corrected
        p-values, ``exploratory`` and ``budget_reached`` (whether every key spent the budget
        fixed up front; False without one)."""
        return json.loads(self._native.result_json())

    def __repr__(self) -> str:
        return repr(self._native)
