"""Shared pieces of the radioactivity experiment: prompts, the experiment's keys, file I/O.

The prompts are built programmatically (templates x subjects, shuffled with a fixed seed), so
the experiment needs no download. The keys are derived from public labels: anyone can detect
(or forge) this experiment's watermark, which is what a reproducible experiment wants; a real
deployment makes its key with `greenmark keygen`.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

GAMMA = 0.25
DELTA = 3.0
VOCAB = 49152
WINDOWS = (1, 2)

TEMPLATES = [
    "Write a short paragraph about {s}.",
    "Explain {s} to a ten-year-old.",
    "What are three interesting facts about {s}?",
    "Describe the history of {s} in a few sentences.",
    "Why do people care about {s}? Answer briefly.",
    "Write a short story that involves {s}.",
    "Give some practical advice related to {s}.",
    "What would the world look like without {s}?",
    "Compare {s} with something from everyday life.",
    "Write a short poem about {s}.",
    "List the pros and cons of {s}.",
    "How would you teach a beginner about {s}?",
]

SUBJECTS = [
    "the ocean", "volcanoes", "honey bees", "the moon", "rainforests", "bicycles", "bread baking",
    "chess", "the internet", "electric cars", "coffee", "the Roman Empire", "photosynthesis",
    "black holes", "recycling", "jazz music", "mountain climbing", "libraries", "the human heart",
    "earthquakes", "gardening", "robots", "the printing press", "vaccines", "deserts", "trains",
    "friendship", "sleep", "clouds", "dinosaurs", "the Olympic Games", "solar power",
    "coral reefs", "ancient Egypt", "mathematics", "birds migrating", "video games", "cheese",
    "lighthouses", "public transport", "the water cycle", "penguins", "music lessons",
    "space travel", "wind turbines", "cooking pasta", "the stock market", "forests in autumn",
    "rivers", "learning a new language", "cats", "dogs", "the weather", "museums",
    "the color blue", "bridges", "telescopes", "clocks", "maps", "tea", "snow", "paper",
]


def prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prompts (at most len(TEMPLATES) * len(SUBJECTS)), in a fixed shuffled order."""
    combos = [t.format(s=s) for s in SUBJECTS for t in TEMPLATES]
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} prompts are available, asked for {n}")
    random.Random(seed).shuffle(combos)
    return combos[:n]


def key_hex(label: str) -> str:
    """A 32-byte key (64 hex digits) derived from a public label."""
    return hashlib.sha256(f"greenmark/radioactivity-experiment/{label}".encode()).hexdigest()


def config_json(window: int) -> dict:
    """The experiment's watermark config: lefthash with the given window."""
    return {
        "vocab_size": VOCAB,
        "gamma": GAMMA,
        "delta": DELTA,
        "scheme": {"type": "lefthash", "window": window},
    }


def write_key_file(path: Path, window: int, label: str = "teacher") -> None:
    """Writes a greenmark JSON key file (format greenmark-key/v1) with the config beside it."""
    import greenmark

    secret = key_hex(label)
    config = greenmark.WatermarkConfig(VOCAB, gamma=GAMMA, delta=DELTA, scheme="lefthash", window=window)
    doc = {
        "format": "greenmark-key/v1",
        "key_id": greenmark.Key.from_hex(secret).id,
        "secret": secret,
        "config": json.loads(config.to_json()),
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: Path, rows) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
