"""torch helpers shared by the stack adapters: the core's green bitsets, applied on the device
that holds the logits (the logits are never copied to the host)."""

from __future__ import annotations

import numpy as np
import torch

_BIT_SHIFTS: dict = {}


def _shifts(device: torch.device) -> torch.Tensor:
    shifts = _BIT_SHIFTS.get(device)
    if shifts is None:
        shifts = torch.arange(64, dtype=torch.int64, device=device)
        _BIT_SHIFTS[device] = shifts
    return shifts


def add_delta_where_green(scores: torch.Tensor, masks: np.ndarray, delta: float) -> torch.Tensor:
    """``scores`` (k, V) biased in place by ``delta`` where ``masks`` ((k, ceil(V/64)) uint64
    bitsets from ``Watermarker.green_mask``) have the token's bit set. Only the bitsets are
    uploaded (16 KiB per row at V=128k); the result equals the core's float32 bias exactly."""
    words = torch.from_numpy(masks.view(np.int64)).to(scores.device, non_blocking=True)
    bits = (words.unsqueeze(-1) >> _shifts(scores.device)) & 1  # (k, W, 64)
    green = bits.reshape(scores.shape[0], -1)[:, : scores.shape[1]].bool()
    step = torch.tensor(delta, dtype=scores.dtype, device=scores.device)
    scores.copy_(torch.where(green, scores + step, scores))
    return scores


def add_delta_to_rows(logits: torch.Tensor, rows: list, masks: np.ndarray, delta: float) -> torch.Tensor:
    """:func:`add_delta_where_green` on the rows ``rows`` (sorted, one per mask) of ``logits``,
    in place: the whole batch at once when every row is watermarked, else a gather and scatter
    of those rows on the device."""
    if len(rows) == logits.shape[0]:
        return add_delta_where_green(logits, masks, delta)
    index = torch.tensor(rows, dtype=torch.long).to(logits.device, non_blocking=True)
    logits.index_copy_(0, index, add_delta_where_green(logits.index_select(0, index), masks, delta))
    return logits
