"""The Gumbel-max watermark family, bit-compatible with vLLM's native watermark.

vLLM (0.33, 0.34) marks text when served with ``--watermark-config '{"key": ..., "algorithm":
"gumbel"}'``. :class:`GumbelDetector` detects it in the served token ids (the Rust core,
GIL released), with the p-value in log space: ``log10_p_value`` stays finite where vLLM's own
float p-value underflows to 0. :class:`GumbelWatermarker` applies the same sampling rule in
your own generation loop (transformers, llama.cpp) without vLLM.

Detect on the **generated ids only** (not the prompt). Re-tokenized text can differ from the
ids the server generated; use the served ``token_ids`` when you have them.

>>> from greenmark.gumbel import GumbelDetector
>>> detector = GumbelDetector.from_vllm_config('{"key": 42}')
>>> detector.scheme
'greenmark/gumbel-vllm/v1'
>>> d = detector.detect([46, 24, 45, 80, 14, 26, 22, 124, 21, 45, 16, 30, 5, 89, 0, 10])
>>> d.n_scored, d.is_watermarked
(16, True)
"""

from __future__ import annotations

import os
from typing import Union

from greenmark._greenmark import GumbelDetection, GumbelDetector, GumbelRequest, GumbelWatermarker

__all__ = ["GumbelDetection", "GumbelDetector", "GumbelRequest", "GumbelWatermarker", "load_vllm_config"]


def load_vllm_config(
    path: Union[str, os.PathLike[str]], *, dedup: bool = True, threshold: float = 0.01
) -> GumbelDetector:
    """A :class:`GumbelDetector` from the JSON file given to ``vllm serve --watermark-config``.

    ``dedup`` scores each context once (vLLM's default; turning it off miscalibrates the test
    on repetitive text); ``threshold`` sets ``is_watermarked`` (vLLM's default 0.01).
    """
    # The core reads it (a regular file of at most 64 KiB: it holds the key), so a FIFO or
    # /dev/zero given by mistake fails at once instead of hanging or filling memory.
    return GumbelDetector.from_vllm_config_file(os.fspath(path), dedup=dedup, threshold=threshold)
