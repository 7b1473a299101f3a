"""greenmark inside vLLM (v1 engine): a batch-level ``LogitsProcessor`` with per-request opt-in.
Imported through :mod:`greenmark.vllm` (its names load this module on first use, so detection
from :mod:`greenmark.vllm` works without vLLM installed).

Start the server with the keys and the processor (see ``examples/vllm_server.md``)::

    GREENMARK_VLLM_KEYS=/secrets/wm.key vllm serve MODEL \\
        --logits-processors greenmark.vllm:GreenmarkLogitsProcessor

and opt a request in by naming the key's public id (never the secret)::

    SamplingParams(extra_args={"greenmark": "b47367eb515b85ad"})           # offline LLM
    {"vllm_xargs": {"greenmark": "b47367eb515b85ad"}}                       # OpenAI API body

``"greenmark": "default"`` (or ``True``) picks the only loaded key. Requests without the
argument are left untouched, unless the operator watermarks every request.

**Watermark every request.** ``GREENMARK_VLLM_ALWAYS=<key id>`` (or ``default`` for the only
loaded key) watermarks every request with that key; a request may still name another loaded
key. A request cannot opt out (``"greenmark": false`` is refused with HTTP 400) unless the
operator also sets ``GREENMARK_VLLM_ALLOW_OPT_OUT=1``. A key id that was not loaded stops the
server at start-up, not at the first request.

**Nothing about the server's keys reaches a client.** An unknown key id is refused with HTTP 400
without listing the ids the server has (ask the operator for yours). A key file that users other
than its owner may read is logged as a warning (logger ``greenmark.vllm``) when it is loaded.

**Keys stay on the server.** They are read once per process from the greenmark JSON key files
listed in the environment variable ``GREENMARK_VLLM_KEYS`` (``os.pathsep``-separated). An
environment variable, not ``--additional-config``: ``validate_params`` runs in the API server
process, which has no engine config, and it must see the same keys as the workers to reject an
unknown key id with HTTP 400 instead of failing inside the engine. Each key file must carry its
watermark config (``key.save(path, config=config)``), so generation and detection share gamma,
delta, scheme and vocab size; the config's vocab size must equal the model's.

**Bookkeeping.** vLLM keeps a persistent batch; before each forward pass it calls
``update_state`` with a ``BatchUpdate`` to apply in the order removed, added, moved
(``vllm/v1/sample/logits_processor/interface.py``). An added request brings its
``SamplingParams``, its prompt ids and a live reference to its output-ids list, so the
processor always reads the newest tokens without copying the history. A unidirectional move
``a -> b`` puts ``a``'s request at ``b`` and leaves ``a`` empty; a swap exchanges them (the
semantics of vLLM's own ``process_dict_updates`` in ``builtin.py``).

**Where it sits.** vLLM applies non-argmax-invariant logits processors to the raw float32
logits before penalties, temperature, top-k/top-p and min-p: the bias lands where the
detector's statistics assume. ``is_argmax_invariant`` is False (the bias changes the argmax),
so greedy requests are watermarked too.

**Cost per step.** The Rust core computes one green bitset per watermarked row (``ceil(V/64)``
words, 16 KiB at V=128k); only those are uploaded and expanded on the device. Logits never
leave the GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from greenmark._greenmark import WatermarkConfig, Watermarker
from greenmark._torch import add_delta_to_rows
from greenmark._vllm_common import (
    ARG,
    ENV_ALLOW_OPT_OUT,
    ENV_ALWAYS,
    ENV_KEYS,
    SharedKeys,
    load_watermarkers,
    pick,
    requested_key_id,
    watermark_key_id,
)

__all__ = ["GreenmarkLogitsProcessor", "ENV_KEYS", "ENV_ALWAYS", "ENV_ALLOW_OPT_OUT", "ARG"]

@dataclass
class _Request:
    """One watermarked request in the persistent batch."""

    key_id: str
    prompt: list  # the prompt's tail the windows need (all of it with skip_repeated_windows)
    output: list  # vLLM's live list of the request's output ids (read, never written)


class GreenmarkLogitsProcessor(SharedKeys, LogitsProcessor):
    """vLLM v1 logits processor: KGW watermark for requests that opt in (see the module doc)."""

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        self.device = torch.device(device)
        self.watermarkers = load_watermarkers(vllm_config.model_config.get_vocab_size())
        self.rows: dict[int, _Request] = {}

    def is_argmax_invariant(self) -> bool:
        """False: raising the green tokens' logits changes which token is the argmax."""
        return False

    def update_state(self, batch_update: Optional[BatchUpdate]) -> None:
        """Applies the batch's changes in vLLM's order: removed, added, moved."""
        if batch_update is None:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, prompt_ids, output_ids in batch_update.added:
            key_id = watermark_key_id(params)
            if key_id is None:
                self.rows.pop(index, None)  # a request without the argument may reuse the slot
                continue
            key_id, watermarker = pick(self.watermarkers, key_id)
            config = watermarker.config
            prompt = list(prompt_ids or ())
            if config.history_len is not None:
                prompt = prompt[len(prompt) - min(len(prompt), config.history_len) :]
            self.rows[index] = _Request(key_id, prompt, output_ids)
        for a, b, direction in batch_update.moved:
            at_a = self.rows.pop(a, None)
            at_b = self.rows.pop(b, None)
            if at_a is not None:
                self.rows[b] = at_a
            if direction == MoveDirectionality.SWAP and at_b is not None:
                self.rows[a] = at_b

    def contexts(self, key_id: str, rows: list) -> np.ndarray:
        """The windows of ``rows`` (all watermarked with ``key_id``) as int64 (k, h) ids."""
        config = self.watermarkers[key_id].config
        h = config.context_len
        out = np.empty((len(rows), h), dtype=np.int64)
        for i, row in enumerate(rows):
            request = self.rows[row]
            output = request.output
            if len(output) >= h:
                window = output[len(output) - h :]
            else:
                window = request.prompt[len(request.prompt) - (h - len(output)) :] + list(output)
            out[i] = window
        return out

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        """Adds delta to the green logits of each watermarked row, in place on the device."""
        if not self.rows:
            return logits
        by_key: dict[str, list] = {}
        for row, request in self.rows.items():
            by_key.setdefault(request.key_id, []).append(row)
        for key_id, rows in by_key.items():
            rows.sort()
            if rows[-1] >= logits.shape[0]:
                raise ValueError(
                    f"greenmark.vllm tracks a request at batch row {rows[-1]} but the logits have "
                    f"{logits.shape[0]} rows: the BatchUpdates were not all passed to update_state"
                )
            watermarker = self.watermarkers[key_id]
            rows = [r for r in rows if self._has_window(r, watermarker.config)]
            if not rows:
                continue
            if watermarker.config.history_len is None:
                masks = np.stack([watermarker.green_mask(self._history(r)) for r in rows])
            else:
                masks = watermarker.green_mask(self.contexts(key_id, rows))
            add_delta_to_rows(logits, rows, masks, watermarker.config.delta)
        return logits

    def _has_window(self, row: int, config: WatermarkConfig) -> bool:
        request = self.rows[row]
        return len(request.prompt) + len(request.output) >= config.context_len

    def _history(self, row: int) -> np.ndarray:
        request = self.rows[row]
        return np.asarray(request.prompt + list(request.output), dtype=np.int64)


