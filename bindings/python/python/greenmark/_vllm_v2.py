"""greenmark inside vLLM 0.34 and later: the KGW processor on vLLM's Model Runner V2
logits-processor interface (``vllm/v1/worker/gpu/sample/logits_processor/interface.py``).

vLLM 0.34 removed the V1 interface (``vllm.v1.sample.logits_processor``) that
:mod:`greenmark._vllm_processor` implements; ``greenmark.vllm:GreenmarkLogitsProcessor`` names
whichever of the two the installed vLLM has, so the server command, the keys
(``GREENMARK_VLLM_KEYS``), the operator's settings and the per-request ``greenmark`` argument
are the same (see ``examples/vllm_server.md``).

**Bookkeeping.** V2 keeps per-request state by *slot*: ``add_request(slot, params)`` is called
when a request enters a slot (slots are recycled without a removal call, so each call
overwrites the slot's state), and ``apply(logits, ctx)`` gets the step's layout:
``ctx.idx_mapping_np`` (batch position -> slot, on the host), ``ctx.expanded_idx_mapping`` and
``ctx.expanded_local_pos`` (logits row -> slot and offset among the request's rows, for
speculative decoding). The tokens are vLLM's own buffers, ``req_states.all_token_ids`` (prompt
then output, committed up to ``req_states.total_len``); a row's draft tokens, under
speculative decoding, are ``ctx.input_ids`` of the request's earlier rows. A row's window is
the ``context_len`` tokens before the position it samples, as vLLM's watermark sampler builds
its contexts (``_get_contexts`` in ``vllm/v1/watermarking/gpu_sampler.py``).

**Cost per step.** The windows of the watermarked rows (``k x context_len`` ids) are gathered
on the device and copied to the host once (one small synchronizing copy per step: the Rust core
computes the green bitsets); only the bitsets go back. Schemes that read the whole history
(``skip_repeated_windows``) copy each watermarked row's history instead.

**Where it sits.** V2 calls ``apply`` after the built-in bias, penalty, bad-words and grammar
stages and before temperature, min-p and top-k/top-p: on the raw scale the detector's
statistics assume, and masked tokens (``-inf``) stay masked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from vllm.v1.worker.gpu.sample.logits_processor.interface import LogitsProcessor

from greenmark._greenmark import Watermarker
from greenmark._torch import add_delta_to_rows
from greenmark._vllm_common import SharedKeys, load_watermarkers, pick, watermark_key_id

__all__ = ["GreenmarkLogitsProcessor"]


class GreenmarkLogitsProcessor(SharedKeys, LogitsProcessor):
    """vLLM Model Runner V2 logits processor: KGW watermark for requests that opt in (see the
    module doc and :mod:`greenmark._vllm_processor` for the settings)."""

    def __init__(self, vllm_config: Any, req_states: Any) -> None:
        self.req_states = req_states
        self.watermarkers: dict[str, Watermarker] = load_watermarkers(req_states.vocab_size)
        #: slot -> key id, for the requests now in those slots that are watermarked.
        self.slots: dict[int, str] = {}

    def add_request(self, req_idx: int, sampling_params: Any) -> bool:
        """Records whether the request entering slot ``req_idx`` is watermarked, and with which
        key (overwriting the slot's previous occupant)."""
        key_id = watermark_key_id(sampling_params)
        if key_id is None:
            self.slots.pop(req_idx, None)
            return False
        key_id, _ = pick(self.watermarkers, key_id)
        self.slots[req_idx] = key_id
        return True

    def apply(self, logits: torch.Tensor, ctx: Any) -> torch.Tensor:
        """Adds delta to the green logits of each watermarked row, in place on the device."""
        if not self.slots:
            return logits
        n_rows = logits.shape[0]
        if n_rows == len(ctx.idx_mapping_np):  # one row per request: no draft rows
            row_slots = np.asarray(ctx.idx_mapping_np, dtype=np.int64)
            local = np.zeros(n_rows, dtype=np.int64)
        else:  # speculative decoding: several rows per request (a synchronizing copy)
            row_slots = ctx.expanded_idx_mapping.to("cpu", torch.int64).numpy()
            local = ctx.expanded_local_pos.to("cpu", torch.int64).numpy()
        by_key: dict[str, list[int]] = {}
        for row, slot in enumerate(row_slots.tolist()):
            key_id = self.slots.get(slot)
            if key_id is not None:
                by_key.setdefault(key_id, []).append(row)
        if not by_key:
            return logits
        # Each row's sequence length before the position it samples: its request's committed
        # tokens plus this step's drafts before it (one device-to-host copy for the step).
        slots_t, local_t = torch.from_numpy(row_slots), torch.from_numpy(local)
        total = self.req_states.total_len.gpu
        ends = total[slots_t.to(total.device)].to("cpu", torch.int64) + local_t
        ends_list = ends.tolist()
        for key_id, rows in by_key.items():
            watermarker = self.watermarkers[key_id]
            config = watermarker.config
            rows = [r for r in rows if ends_list[r] >= config.context_len]
            if not rows:
                continue
            if config.history_len is None:
                masks = np.stack(
                    [watermarker.green_mask(self._history(ctx, r, int(row_slots[r]), int(local[r]), ends_list[r])) for r in rows]
                )
            else:
                kept = torch.tensor(rows, dtype=torch.int64)
                windows = self._windows(ctx, kept, slots_t[kept], local_t[kept], ends[kept], config.context_len)
                masks = watermarker.green_mask(windows)
            add_delta_to_rows(logits, rows, masks, config.delta)
        return logits

    def _windows(self, ctx, rows, slots, local, ends, h: int) -> np.ndarray:
        """The last ``h`` tokens before each row's position, gathered on the device and copied
        to the host as int64 (k, h): committed tokens from ``all_token_ids``, draft tokens
        (positions at or past the request's committed length) from ``ctx.input_ids``."""
        tokens = self.req_states.all_token_ids.gpu
        device = tokens.device
        rows, slots, local, ends = (t.to(device) for t in (rows, slots, local, ends))
        positions = ends.unsqueeze(-1) + torch.arange(-h, 0, device=device)
        committed_len = ends - local
        committed = tokens[slots.unsqueeze(-1), positions.clamp(0, tokens.shape[1] - 1)].to(torch.int64)
        # A draft at position q sits at the row whose local offset is q - committed_len + 1.
        draft_rows = rows.unsqueeze(-1) - local.unsqueeze(-1) + (positions - committed_len.unsqueeze(-1)) + 1
        drafts = ctx.input_ids.to(device)[draft_rows.clamp(0, ctx.input_ids.shape[0] - 1)].to(torch.int64)
        window = torch.where(positions < committed_len.unsqueeze(-1), committed, drafts)
        return window.cpu().numpy()

    def _history(self, ctx, row: int, slot: int, local: int, end: int) -> np.ndarray:
        """A row's whole sequence before its position: committed tokens, then its drafts."""
        committed = self.req_states.all_token_ids.gpu[slot, : end - local].to("cpu", torch.int64)
        if local == 0:
            return committed.numpy()
        drafts = ctx.input_ids[row - local + 1 : row + 1].to("cpu", torch.int64)
        return torch.cat([committed, drafts]).numpy()
