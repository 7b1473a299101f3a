"""SynthID Text as transformers implements it: detection without a trained classifier, and a
transformers-compatible logits processor, both in the Rust core (GIL released).

A config is what transformers' ``SynthIDTextWatermarkingConfig`` holds: pass the config object
itself, its ``to_dict()``, or that dict as JSON. Detect on the **generated ids only** (not the
prompt): transformers keys the first positions with zeros, not with the prompt.

>>> from greenmark.synthid import SynthIdDetector
>>> detector = SynthIdDetector({"ngram_len": 5, "keys": [654, 400, 836, 123, 340]})
>>> d = detector.detect(list(range(100, 400)))
>>> d.n_ngrams, d.is_watermarked
(296, False)
>>> d.null  # the default 2^16 table: the exact null over keys (a key shifts the table)
'shift-exact'
>>> d.weighted_method
'exact'
>>> 0.49 < detector.p0 < 0.51
True
"""

from __future__ import annotations

import json
from typing import Any, Optional

from greenmark._greenmark import SynthIdDetection, SynthIdStates, SynthIdWatermarker
from greenmark._greenmark import SynthIdDetector as _NativeDetector

__all__ = ["SynthIdDetection", "SynthIdDetector", "SynthIdLogitsProcessor", "SynthIdWatermarker", "config_json"]


def config_json(config: Any) -> str:
    """The JSON of a SynthID config given as a transformers ``SynthIDTextWatermarkingConfig``
    (or anything with ``to_dict()``), a dict, or a JSON string."""
    if isinstance(config, str):
        return config
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if isinstance(config, dict):
        return json.dumps(config)
    raise TypeError(
        "config must be a transformers SynthIDTextWatermarkingConfig, its to_dict() dict or that "
        f"dict as a JSON string, got {type(config).__qualname__}"
    )


def SynthIdDetector(
    config: Any, *, eos_token_id: Optional[int] = None, vocab_size: Optional[int] = None, threshold: float = 0.01
) -> _NativeDetector:
    """A detector for a SynthID config (see :func:`config_json`).

    ``eos_token_id`` masks every ngram from the first EOS on (as transformers' detector does with
    the tokenizer's EOS); ``vocab_size`` refuses ids from another tokenizer; ``threshold`` sets
    ``is_watermarked``, which is decided on the weighted mean score's p-value.
    """
    return _NativeDetector(
        config_json(config), eos_token_id=eos_token_id, vocab_size=vocab_size, threshold=threshold
    )


class SynthIdLogitsProcessor:
    """A transformers ``LogitsProcessor`` equal to ``SynthIDTextWatermarkLogitsProcessor``
    (to float32 rounding), computed by greenmark's core: pass it in ``logits_processor=[...]``
    instead of ``watermarking_config=...``. One instance per ``generate`` call (it keeps the
    per-row state, as transformers' does)."""

    def __init__(self, config: Any):
        self._watermarker = SynthIdWatermarker(config_json(config))
        self._states: Optional[SynthIdStates] = None

    def __call__(self, input_ids, scores):
        import torch

        if input_ids.dim() != 2 or scores.dim() != 2 or input_ids.shape[0] != scores.shape[0]:
            raise ValueError(
                f"input_ids must be (batch, length) and scores (batch, vocab) of the same batch, got "
                f"{tuple(input_ids.shape)} and {tuple(scores.shape)}"
            )
        if self._states is None:
            self._states = self._watermarker.states(scores.shape[0])
        rows = scores.detach().to(device="cpu", dtype=torch.float32, copy=True).contiguous()
        last = input_ids[:, -1].detach().cpu().numpy()
        self._watermarker.apply(self._states, last, rows.numpy())
        return rows.to(device=scores.device, dtype=scores.dtype)
