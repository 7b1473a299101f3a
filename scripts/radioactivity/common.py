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


# Added for the larger corpus. The first len(TEMPLATES) * len(SUBJECTS) prompts keep their order,
# so a corpus made before these were added is a prefix of one made after.
MORE_TEMPLATES = [
    "Write a letter to a friend about {s}.",
    "What is the most surprising thing about {s}?",
    "Summarize what a student should know about {s}.",
    "Write a short dialogue between two people discussing {s}.",
    "How has {s} changed over the last hundred years?",
    "Give a one-paragraph opinion on {s}.",
    "What questions would a scientist ask about {s}?",
    "Describe a day in the life of someone who loves {s}.",
    "Write a product description inspired by {s}.",
    "What mistakes do beginners make with {s}?",
    "Write a news headline and a short article about {s}.",
    "Explain how {s} works, step by step.",
]

MORE_SUBJECTS = [
    "glaciers", "octopuses", "the violin", "windmills", "origami", "submarines", "thunderstorms",
    "the Great Wall of China", "tomatoes", "kites", "the periodic table", "marathons", "owls",
    "fireworks", "the Sahara", "sourdough", "elephants", "the metric system", "candles",
    "skateboarding", "the Amazon river", "umbrellas", "sunflowers", "comets", "board games",
    "the piano", "lightning", "wolves", "chocolate", "knitting", "airports", "hot air balloons",
    "the Arctic", "mushrooms", "sailing", "the alphabet", "rainbows", "whales", "pottery",
    "the Moon landing", "spiders", "city parks", "bamboo", "the postal service", "tides",
    "volunteering", "typewriters", "the immune system", "salt", "photography", "camping",
    "newspapers", "frogs", "satellites", "yoga", "castles", "rice", "butterflies", "chess clocks",
    "street food",
]


def prompts(n: int, seed: int = 0) -> list[str]:
    """`n` distinct prompts, in a fixed shuffled order: first the original templates x subjects
    (744), then every other combination of the two template and subject lists (2,184 more)."""
    combos = [t.format(s=s) for s in SUBJECTS for t in TEMPLATES]
    random.Random(seed).shuffle(combos)
    more = [
        t.format(s=s)
        for s in SUBJECTS + MORE_SUBJECTS
        for t in TEMPLATES + MORE_TEMPLATES
        if not (s in SUBJECTS and t in TEMPLATES)
    ]
    random.Random(seed + 1).shuffle(more)
    combos += more
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} prompts are available, asked for {n}")
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
