import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
VECTORS = REPO / "crates" / "greenmark" / "tests" / "vectors" / "schemes.json"
TOKENIZER = REPO / "crates" / "greenmark" / "tests" / "data" / "smollm2-tokenizer.json"


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks() -> list:
    """The ```python blocks of bindings/python/README.md, in order."""
    text = README.read_text()
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
