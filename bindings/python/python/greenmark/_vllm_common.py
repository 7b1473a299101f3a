"""What greenmark's vLLM logits processors share, whichever vLLM interface they implement
(:mod:`greenmark._vllm_processor` for vLLM's V1 interface, :mod:`greenmark._vllm_v2` for the
Model Runner V2 interface of vLLM 0.34): the server's keys (``GREENMARK_VLLM_KEYS``), the
operator's settings, and the per-request ``greenmark`` argument. Imports neither vLLM nor torch.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import Any, Optional

from greenmark._greenmark import ConfigError, Key, KeyFilePermissionWarning, WatermarkConfig, Watermarker

__all__ = ["ENV_KEYS", "ENV_ALWAYS", "ENV_ALLOW_OPT_OUT", "ARG", "requested_key_id", "watermark_key_id"]

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


def load_watermarkers(vocab: int) -> dict[str, Watermarker]:
    """The server's watermarkers by key id, for a model of ``vocab`` logits; checks the
    operator's settings, so a bad key file, vocab size or key id stops the server at start-up."""
    keys = _load_keys(_key_files())
    watermarkers: dict[str, Watermarker] = {}
    for key_id, (key, config) in keys.items():
        try:
            config.check_logits_width(vocab)
        except ConfigError as error:
            raise ConfigError(f"key {key_id}: {error}") from None
        watermarkers[key_id] = Watermarker(key, config)
    if not watermarkers:
        raise ConfigError(
            f"greenmark.vllm loaded no keys: list greenmark JSON key files (with their config) in "
            f"${ENV_KEYS}, separated by {os.pathsep!r}"
        )
    always = _always()
    _opt_out_allowed()  # a malformed value stops the server here, not at a request
    if always is not None:
        # The operator's log, not a client's answer: the loaded ids may be listed.
        if always == "default" and len(watermarkers) != 1:
            raise ConfigError(
                f"${ENV_ALWAYS}=default needs exactly one loaded key, ${ENV_KEYS} has "
                f"{len(watermarkers)} ({', '.join(sorted(watermarkers))}): name one by its id"
            )
        if always != "default" and always not in watermarkers:
            raise ConfigError(
                f"${ENV_ALWAYS} names key {always}, which ${ENV_KEYS} did not load (loaded: "
                f"{', '.join(sorted(watermarkers))})"
            )
        logger.info("greenmark.vllm watermarks every request with key %s", always)
    return watermarkers


class SharedKeys:
    """``validate_params`` runs in the API server process, which builds no processor: it loads
    the keys once per process here, to refuse an unknown key id with HTTP 400."""

    _shared_keys: Optional[dict] = None

    @classmethod
    def validate_params(cls, sampling_params: Any) -> None:
        """Rejects a malformed ``greenmark`` argument, or a key id this server did not load."""
        key_id = watermark_key_id(sampling_params)
        if key_id is None:
            return
        if cls._shared_keys is None:
            cls._shared_keys = _load_keys(_key_files())
        pick(cls._shared_keys, key_id)


def pick(keys: dict, key_id: str) -> tuple:
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
