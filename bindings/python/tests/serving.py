"""Start the real `greenmark serve` binary on a free loopback port, for tests that drive it
over HTTP (the detector page in Chromium, the OpenAI-compatible endpoint)."""

import contextlib
import hashlib
import json
import pathlib
import socket
import subprocess
import time
import urllib.request

from conftest import TOKENIZER, greenmark_binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@contextlib.contextmanager
def serve(directory: pathlib.Path, keys, tokens, extra: str = "", args=()):
    """Runs `greenmark serve` with a config in `directory` naming `keys` (key files) and
    `tokens` ({token: role}), with `extra` TOML after the keys (top-level settings, then
    tables); yields the base URL and stops the server (SIGTERM) after."""
    port = free_port()
    lines = [
        f'listen = "127.0.0.1:{port}"',
        f"tokenizer = {json.dumps(str(TOKENIZER))}",
        f"keys = {json.dumps([str(k) for k in keys])}",
        extra,
    ]
    for token, role in tokens.items():
        lines += ["[[tokens]]", f'sha256 = "{sha256(token)}"', f'role = "{role}"']
    config = directory / "serve.toml"
    config.write_text("\n".join(lines) + "\n")
    log = open(directory / "serve.log", "w+")
    process = subprocess.Popen([greenmark_binary(), "serve", "--config", config, *args], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise RuntimeError("greenmark serve did not start:\n" + log.read())
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
