"""greenmark inside llama-cpp-python: a ``logits_processor`` callable (numpy in, numpy out).

>>> import numpy as np
>>> import greenmark
>>> from greenmark.llama_cpp import WatermarkLogitsProcessor
>>> key = greenmark.Key.from_hex("ab" * 32)
>>> processor = WatermarkLogitsProcessor(key, greenmark.WatermarkConfig(1000))
>>> scores = np.zeros(1000, dtype=np.float32)
>>> processor(np.array([1, 2, 3], dtype=np.intc), scores) is scores   # biased in place
True
>>> 150 < int((scores == 2.0).sum()) < 350
True

With a model (``llama_cpp`` is not imported by this module; any caller of the same shape works)::

    from llama_cpp import Llama, LogitsProcessorList
    llm = Llama("SmolLM2-135M-Instruct.Q4_1.gguf")
    config = greenmark.WatermarkConfig(llm.n_vocab(), gamma=0.25, delta=2.0)
    out = llm.create_completion(prompt, max_tokens=200,
                                logits_processor=LogitsProcessorList([WatermarkLogitsProcessor(key, config)]))

**Where it sits.** llama-cpp-python runs the ``logits_processor`` list as the first stage of its
sampler chain, on the full vocabulary, before the repetition penalties, top-k, top-p, min-p and
temperature: the bias lands on the raw logits, as the detector's statistics assume.

**How.** llama-cpp-python hands each processor ``input_ids`` (int32, the prompt and every token
sampled so far) and ``scores``, a float32 *strided* view (stride 12 bytes) into its
``llama_token_data`` array, in token order. A float32 C-contiguous writable array is biased in
place with no copy; a strided writable one (llama.cpp's) is gathered into a buffer the processor
keeps, biased there, and scattered back, still in place; a read-only array gets a biased copy.
The processor only reads the last ``config.context_len`` ids (all of them with
``skip_repeated_windows``).

**Caveats.** With a ``draft_model`` (speculative / prompt-lookup decoding) llama-cpp-python passes
``input_ids`` that already hold the draft tokens, so the window would be wrong: do not combine
the two. llama-cpp-python 0.3.36 built natively on a CPU with AMX crashed here
(``ggml_backend_amx_mul_mat``) on the Q4_1 GGUF; loading with the model parameter
``use_extra_bufts = False`` avoids it (see ``tests/test_llama_cpp.py``).
"""

from __future__ import annotations

import numpy as np

from greenmark._greenmark import Key, ShapeError, WatermarkConfig, Watermarker

__all__ = ["WatermarkLogitsProcessor"]


class WatermarkLogitsProcessor:
    """Adds ``config.delta`` to the green tokens' logits, for ``llama_cpp.LogitsProcessorList``.

    ``config.vocab_size`` must equal ``Llama.n_vocab()``. Call it as
    ``processor(input_ids, scores)`` with ``scores`` float32 of shape ``(V,)``; it returns the
    biased scores (``scores`` itself whenever it is writable).
    """

    def __init__(self, key: Key, config: WatermarkConfig) -> None:
        self.watermarker = Watermarker(key, config)
        self.config = config
        self._vocab = config.vocab_size
        self._scratch = np.empty(self._vocab, dtype=np.float32)

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if not isinstance(scores, np.ndarray) or scores.dtype != np.float32:
            raise TypeError(
                "scores must be a float32 numpy.ndarray of shape (V,), got "
                + (f"dtype {scores.dtype}" if isinstance(scores, np.ndarray) else type(scores).__qualname__)
            )
        if scores.shape != (self._vocab,):
            raise ShapeError(
                f"scores must have shape ({self._vocab},) (the config's vocab size is {self._vocab}), "
                f"got {scores.shape}: build the WatermarkConfig with Llama.n_vocab()"
            )
        flags = scores.flags
        if flags.c_contiguous and flags.writeable:
            self.watermarker.bias(scores, input_ids)
            return scores
        work = self._scratch
        np.copyto(work, scores)
        self.watermarker.bias(work, input_ids)
        if not flags.writeable:
            return work.copy()
        np.copyto(scores, work)
        return scores
