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

import logging
import os
import warnings
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from greenmark._greenmark import ConfigError, Key, KeyFilePermissionWarning, WatermarkConfig, Watermarker
from greenmark._torch import add_delta_where_green

__all__ = ["GreenmarkLogitsProcessor", "ENV_KEYS", "ENV_ALWAYS", "ENV_ALLOW_OPT_OUT", "ARG"]

#: The environment variable listing the server's key files (``os.pathsep``-separated).
ENV_KEYS = "GREENMARK_VLLM_KEYS"
#: The environment variable that watermarks every request with one key (its id, or ``default``).
ENV_ALWAYS = "GREENMARK_VLLM_ALWAYS"
#: With :data:`ENV_ALWAYS` set, ``1`` lets a request opt out with ``"greenmark": false``.
ENV_ALLOW_OPT_OUT = "GREENMARK_VLLM_ALLOW_OPT_OUT"
#: The ``extra_args`` / ``vllm_xargs`` entry that opts a request in.
ARG = "greenmark"

logger = logging.getLogger("greenmark.vllm")


def _is_key_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == 16 and all(c in "0123456789abcdef" for c in value)


def _load_keys(paths: list[str]) -> dict[str, tuple[Key, WatermarkConfig]]:
    keys: dict[str, tuple[Key, WatermarkConfig]] = {}
    for path in paths:
        # A server logs; Key.load_with_config's KeyFilePermissionWarning becomes a log line.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", KeyFilePermissionWarning)
            key, config = Key.load_with_config(path)
        for warning in caught:
            if issubclass(warning.category, KeyFilePermissionWarning):
                logger.warning("%s (from $%s)", warning.message, ENV_KEYS)
            else:  # pragma: no cover - nothing else is raised there today
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        if config is None:
            raise ConfigError(
                f"key file {path} carries no watermark config: vLLM needs it to know gamma, delta and "
                "the scheme; write it with key.save(path, config=greenmark.WatermarkConfig(...))"
            )
        keys[key.id] = (key, config)
    return keys


def _key_files() -> list[str]:
    return [p for p in os.environ.get(ENV_KEYS, "").split(os.pathsep) if p]


def requested_key_id(sampling_params: Any) -> Optional[str]:
    """The key id a request asks for: None when it did not opt in, ``"default"`` for the only
    loaded key. Raises ``ValueError`` (HTTP 400 in vLLM's server) for a malformed argument."""
    extra = getattr(sampling_params, "extra_args", None) or {}
    if ARG not in extra:
        return None
    value = extra[ARG]
    if isinstance(value, dict):
        if set(value) - {"key_id"}:
            raise ValueError(
                f"extra_args[{ARG!r}] accepts only 'key_id' (the key's public id; secrets and configs "
                f"stay on the server), got fields {sorted(value)}"
            )
        value = value.get("key_id", "default")
    if value is True:
        return "default"
    if value is False or value is None:
        return None
    if not isinstance(value, str) or not (value == "default" or _is_key_id(value)):
        raise ValueError(
            f"extra_args[{ARG!r}] must be a key id (16 lowercase hex digits, as Key.id prints) or "
            f"'default', got {value!r}"
        )
    return value


def _always() -> Optional[str]:
    """The operator's :data:`ENV_ALWAYS` key id (or ``"default"``), None when unset."""
    value = os.environ.get(ENV_ALWAYS, "").strip()
    if not value:
        return None
    if value != "default" and not _is_key_id(value):
        raise ConfigError(
            f"${ENV_ALWAYS} must be a loaded key's id (16 lowercase hex digits, as Key.id prints) or "
            "'default' for the only loaded key; it is neither (its value is not shown: it may be a secret)"
        )
    return value


def _opt_out_allowed() -> bool:
    value = os.environ.get(ENV_ALLOW_OPT_OUT, "").strip().lower()
    if value in ("", "0", "false", "no"):
        return False
    if value in ("1", "true", "yes"):
        return True
    raise ConfigError(f"${ENV_ALLOW_OPT_OUT} must be 1 or 0 (true/false, yes/no), got {value!r}")


def watermark_key_id(sampling_params: Any) -> Optional[str]:
    """The key id a request is watermarked with under the operator's settings: what it asks
    for (:func:`requested_key_id`), or :data:`ENV_ALWAYS`'s key when set and the request names
    none. None: not watermarked. Raises ``ValueError`` (HTTP 400) for a malformed argument, or an
    opt-out the operator does not allow."""
    requested = requested_key_id(sampling_params)
    always = _always()
    if always is None or requested is not None:
        return requested
    extra = getattr(sampling_params, "extra_args", None) or {}
    if extra.get(ARG, None) is False:
        if _opt_out_allowed():
            return None
        raise ValueError(
            f"extra_args[{ARG!r}] = false: this server watermarks every response and does not allow "
            "opting out"
        )
    return always


@dataclass
class _Request:
    """One watermarked request in the persistent batch."""

    key_id: str
    prompt: list  # the prompt's tail the windows need (all of it with skip_repeated_windows)
    output: list  # vLLM's live list of the request's output ids (read, never written)


class GreenmarkLogitsProcessor(LogitsProcessor):
    """vLLM v1 logits processor: KGW watermark for requests that opt in (see the module doc)."""

    _shared_keys: Optional[dict] = None

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Rejects a malformed ``greenmark`` argument, or a key id this server did not load."""
        key_id = watermark_key_id(sampling_params)
        if key_id is None:
            return
        if cls._shared_keys is None:
            cls._shared_keys = _load_keys(_key_files())
        _pick(cls._shared_keys, key_id)

    def __init__(self, vllm_config: Any, device: torch.device, is_pin_memory: bool) -> None:
        vocab = vllm_config.model_config.get_vocab_size()
        keys = _load_keys(_key_files())
        self.device = torch.device(device)
        self.watermarkers: dict[str, Watermarker] = {}
        for key_id, (key, config) in keys.items():
            try:
                config.check_logits_width(vocab)
            except ConfigError as error:
                raise ConfigError(f"key {key_id}: {error}") from None
            self.watermarkers[key_id] = Watermarker(key, config)
        if not self.watermarkers:
            raise ConfigError(
                f"greenmark.vllm loaded no keys: list greenmark JSON key files (with their config) in "
                f"${ENV_KEYS}, separated by {os.pathsep!r}"
            )
        always = _always()
        _opt_out_allowed()  # a malformed value stops the server here, not at a request
        if always is not None:
            # The operator's log, not a client's answer: the loaded ids may be listed.
            if always == "default" and len(self.watermarkers) != 1:
                raise ConfigError(
                    f"${ENV_ALWAYS}=default needs exactly one loaded key, ${ENV_KEYS} has "
                    f"{len(self.watermarkers)} ({', '.join(sorted(self.watermarkers))}): name one by its id"
                )
            if always != "default" and always not in self.watermarkers:
                raise ConfigError(
                    f"${ENV_ALWAYS} names key {always}, which ${ENV_KEYS} did not load (loaded: "
                    f"{', '.join(sorted(self.watermarkers))})"
                )
            logger.info("greenmark.vllm watermarks every request with key %s", always)
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
            key_id, watermarker = _pick(self.watermarkers, key_id)
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
            if len(rows) == logits.shape[0]:
                add_delta_where_green(logits, masks, watermarker.config.delta)
            else:
                index = torch.tensor(rows, dtype=torch.long).to(logits.device, non_blocking=True)
                part = add_delta_where_green(logits.index_select(0, index), masks, watermarker.config.delta)
                logits.index_copy_(0, index, part)
        return logits

    def _has_window(self, row: int, config: WatermarkConfig) -> bool:
        request = self.rows[row]
        return len(request.prompt) + len(request.output) >= config.context_len

    def _history(self, row: int) -> np.ndarray:
        request = self.rows[row]
        return np.asarray(request.prompt + list(request.output), dtype=np.int64)


def _pick(keys: dict, key_id: str) -> tuple:
    """The loaded key ``key_id`` names. Its errors reach clients (HTTP 400), so they never list
    the server's key ids: which keys a server holds is the operator's to tell."""
    if key_id == "default":
        if len(keys) != 1:
            raise ValueError(
                f"extra_args[{ARG!r}] = 'default' needs exactly one loaded key, and this server has "
                "several: name yours by its id (the operator can tell you which)"
            )
        key_id = next(iter(keys))
    if key_id not in keys:
        raise ValueError(
            f"unknown greenmark key id {key_id!r}: this server has no such key (it does not list "
            "the ids it has; the operator can tell you yours)"
        )
    return key_id, keys[key_id]
