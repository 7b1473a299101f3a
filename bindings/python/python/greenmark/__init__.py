"""greenmark: keyed green-list (KGW) watermarking for language-model output.

Bias logits while sampling with a :class:`Watermarker` (in place on float32 numpy arrays), or
through an adapter: :mod:`greenmark.transformers` (``model.generate``), :mod:`greenmark.llama_cpp`
(llama-cpp-python's ``logits_processor``) and :mod:`greenmark.vllm` (a vLLM v1 logits processor);
prove where a text came from with a :class:`Detector` (token ids) or :class:`TextDetector`
(raw text), which report an exact binomial p-value in log space.

The work is done by the Rust core (``greenmark._greenmark``); every call that does real work
releases the GIL, so threads run in parallel.

>>> import numpy as np
>>> import greenmark
>>> key = greenmark.Key.from_hex("ab" * 32)
>>> config = greenmark.WatermarkConfig(1000, gamma=0.25, delta=2.0)
>>> logits = np.zeros(1000, dtype=np.float32)
>>> greenmark.Watermarker(key, config).bias(logits, np.array([5, 17, 42]))
>>> 150 < int((logits == 2.0).sum()) < 350
True
>>> detection = greenmark.Detector(key, config).detect([1, 2, 3, 4])
>>> detection.n_scored, detection.is_significant(1e-6)
(3, False)

Several keys at once (rotation): one p-value corrected for their number, the key that fired named.

>>> other = greenmark.Key.from_hex("cd" * 32)
>>> ring = greenmark.Keyring([greenmark.Detector(k, config) for k in (key, other)])
>>> result = ring.detect(list(range(100)))
>>> len(result.keys), result.log10_p_value >= result.keys[result.strongest_key].log10_p_value
(2, True)

Before using a key, screen it on human text it never watermarked (see ``docs/keys.md``): a
fixed key can be unlucky on a genre's common tuples, which the p-value, exact over random keys,
does not cover.

>>> corpus = greenmark.ScreenCorpus(200)
>>> corpus.add_genre("counting", [[(7 * i * i + i) % 1000 for i in range(2000)]])
>>> report = corpus.screen(greenmark.Detector(key, config))
>>> report["genres"][0]["n_chunks"], len(report["genres"][0]["ln_p_values"])
(10, 10)
"""

from greenmark._greenmark import (
    ConfigError,
    Detection,
    Detector,
    GreenmarkError,
    InvalidKeyError,
    Key,
    KeyFilePermissionWarning,
    Keyring,
    KeyringDetection,
    ScreenCorpus,
    ShapeError,
    SpanDetection,
    TextDetector,
    TextError,
    TokenError,
    WatermarkConfig,
    Watermarker,
    __version__,
)
from greenmark.eval import evaluate

__all__ = [
    "ConfigError",
    "Detection",
    "Detector",
    "GreenmarkError",
    "InvalidKeyError",
    "Key",
    "KeyFilePermissionWarning",
    "Keyring",
    "KeyringDetection",
    "ScreenCorpus",
    "ShapeError",
    "SpanDetection",
    "TextDetector",
    "TextError",
    "TokenError",
    "WatermarkConfig",
    "Watermarker",
    "__version__",
    "evaluate",
]
