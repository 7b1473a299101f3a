"""Runs vllm_v2_cases.py (greenmark's processor on vLLM 0.34's Model Runner V2 interface) in its
own interpreter: this one may already hold vLLM 0.33 (test_vllm.py), and one process cannot
import two vLLMs. `make test-python` installs vllm 0.34.0 --no-deps into target/vllm034-site and
sets GREENMARK_VLLM2_SITE."""

import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).parent


def test_vllm_v2_processor_in_its_own_interpreter():
    env = dict(os.environ)
    env.pop("GREENMARK_VLLM_SITE", None)  # vLLM 0.33 must not be on that path
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "vllm_v2_cases.py"],
        cwd=HERE,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = result.stdout + result.stderr
    # A skip there (vLLM 0.34 missing, outside CI) is a skip here, so it is not lost.
    if result.returncode == 5 or (result.returncode == 0 and " passed" not in output):
        import pytest

        pytest.skip(f"vllm_v2_cases.py ran nothing:\n{output[-3000:]}")
    assert result.returncode == 0, output[-20000:]
    print(output[-2000:])
