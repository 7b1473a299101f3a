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
from greenmark._torch import add_delta_where_green
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
        total = self.req_states.total_len.gpu
        for key_id, rows in by_key.items():
            watermarker = self.watermarkers[key_id]
            config = watermarker.config
            rows_t = torch.tensor(rows, dtype=torch.int64)
            slots_t = torch.from_numpy(row_slots[rows])
            # Tokens before each row's sampled position: committed ones plus this step's drafts.
            ends = total[slots_t.to(total.device)].to("cpu", torch.int64) + torch.from_numpy(local[rows])
            if config.history_len is None:
                histories = [self._tokens(ctx, r, int(s), int(lo), 0, int(e)) for r, s, lo, e in zip(rows, slots_t, local[rows], ends)]
                keep = [i for i, h in enumerate(histories) if len(h) >= config.context_len]
                if not keep:
                    continue
                masks = np.stack([watermarker.green_mask(histories[i]) for i in keep])
            else:
                h = config.context_len
                keep = [i for i, e in enumerate(ends.tolist()) if e >= h]
                if not keep:
                    continue
                windows = self._windows(ctx, rows_t[keep], slots_t[keep], torch.from_numpy(local[rows])[keep], ends[keep], h)
                masks = watermarker.green_mask(windows)
            rows_kept = [rows[i] for i in keep]
            if len(rows_kept) == n_rows:
                add_delta_where_green(logits, masks, config.delta)
            else:
                index = torch.tensor(rows_kept, dtype=torch.long).to(logits.device, non_blocking=True)
                part = add_delta_where_green(logits.index_select(0, index), masks, config.delta)
                logits.index_copy_(0, index, part)
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

    def _tokens(self, ctx, row: int, slot: int, local: int, start: int, end: int) -> np.ndarray:
        """Tokens ``start..end`` of a row's sequence (its whole history for ``start = 0``)."""
        committed_len = end - local
        committed = self.req_states.all_token_ids.gpu[slot, start:committed_len].to("cpu", torch.int64)
        if local == 0:
            return committed.numpy()
        drafts = ctx.input_ids[row - local + 1 : row + 1].to("cpu", torch.int64)
        return torch.cat([committed, drafts]).numpy()
