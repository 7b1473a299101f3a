"""greenmark for vLLM users, both ways:

- **Detect vLLM's own watermark** (``vllm serve --watermark-config``, algorithms ``gumbel`` and
  ``dual_key_gumbel``): :class:`GumbelDetector` and :func:`load_vllm_config`, the same classes
  as :mod:`greenmark.gumbel`. They need neither vLLM nor torch::

      from greenmark.vllm import load_vllm_config
      detector = load_vllm_config("watermark.json")        # the server's --watermark-config
      detector.detect(output.token_ids).log10_p_value      # the served ids, not re-tokenized

- **Watermark with greenmark's KGW green lists inside vLLM**: :class:`GreenmarkLogitsProcessor`,
  a batch-level logits processor with per-request opt-in (keys stay on the server), on vLLM's V1
  interface (vLLM 0.33 and earlier) or its Model Runner V2 interface (vLLM 0.34), whichever the
  installed vLLM has::

      GREENMARK_VLLM_KEYS=/secrets/wm.key vllm serve MODEL \\
          --logits-processors greenmark.vllm:GreenmarkLogitsProcessor

  The operator can watermark every request (``GREENMARK_VLLM_ALWAYS=<key id>``). It and its
  helpers (``ENV_KEYS``, ``ENV_ALWAYS``, ``ENV_ALLOW_OPT_OUT``, ``ARG``, ``requested_key_id``,
  ``watermark_key_id``) load on first use; see ``greenmark._vllm_processor``,
  ``greenmark._vllm_v2`` and ``examples/vllm_server.md``.

>>> from greenmark.vllm import GumbelDetector
>>> GumbelDetector(42).detect([46, 24, 45, 80, 14, 26, 22, 124, 21, 45, 16, 30, 5, 89, 0, 10]).is_watermarked
True
"""

from __future__ import annotations

import importlib
from typing import Any

from greenmark.gumbel import GumbelDetection, GumbelDetector, GumbelRequest, GumbelWatermarker, load_vllm_config

#: Names that need vLLM (and torch): loaded from ``greenmark._vllm_processor`` on first use.
_PROCESSOR_NAMES = (
    "GreenmarkLogitsProcessor",
    "ENV_KEYS",
    "ENV_ALWAYS",
    "ENV_ALLOW_OPT_OUT",
    "ARG",
    "requested_key_id",
    "watermark_key_id",
)

__all__ = [
    "GumbelDetection",
    "GumbelDetector",
    "GumbelRequest",
    "GumbelWatermarker",
    "load_vllm_config",
    *_PROCESSOR_NAMES,
]


def _processor_module() -> Any:
    """The processor for the installed vLLM: its V1 interface (vLLM 0.33 and earlier) when it
    has one, else the Model Runner V2 interface (vLLM 0.34 and later)."""
    try:
        importlib.import_module("vllm.v1.sample.logits_processor")
    except ModuleNotFoundError as err:
        if err.name is None or not err.name.startswith("vllm"):
            raise
        try:
            return importlib.import_module("greenmark._vllm_v2")
        except ModuleNotFoundError as v2_err:
            if v2_err.name is None or not v2_err.name.startswith("vllm"):
                raise
            raise ImportError(
                "greenmark.vllm.GreenmarkLogitsProcessor needs vLLM with either logits-processor "
                "interface: vllm.v1.sample.logits_processor (vLLM 0.33 and earlier) or "
                "vllm.v1.worker.gpu.sample.logits_processor (vLLM 0.34); the installed vLLM has "
                f"neither ({v2_err})"
            ) from v2_err
    return importlib.import_module("greenmark._vllm_processor")


def __getattr__(name: str) -> Any:
    if name == "GreenmarkLogitsProcessor":
        return _processor_module().GreenmarkLogitsProcessor
    if name in _PROCESSOR_NAMES:
        return getattr(importlib.import_module("greenmark._vllm_common"), name)
    raise AttributeError(f"module 'greenmark.vllm' has no attribute {name!r}")
