"""`greenmark serve` as an OpenAI-compatible, watermarking chat endpoint, driven with the official
`openai` client: whole and streamed answers, the `watermark` extension naming the key, the policy
refusing `watermark: false`, and the generated text detected by the same service."""

import json
import subprocess
import urllib.request

import pytest

import serving

openai = pytest.importorskip("openai")

TOKEN = "openai-test-token"


@pytest.fixture(scope="module")
def server(cli, tmp_path_factory):
    """A running `greenmark serve` with a fresh delta-3 key and the default model."""
    folder = tmp_path_factory.mktemp("serve")
    key = folder / "k.json"
    subprocess.run([cli, "keygen", "--out", key, "--delta", "3"], check=True, capture_output=True)
    extra = "threshold = 1e-4\n[generation]\nkey = \"k.json\"\nmax_tokens = 160\n"
    with serving.serve(folder, ["k.json"], {TOKEN: "public"}, extra) as base:
        secret = json.loads(key.read_text())["secret"]
        yield base, json.loads(key.read_text())["key_id"], secret
    assert secret not in (folder / "serve.log").read_text()


def client(base: str):
    return openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, max_retries=0)


def detect(base: str, text: str) -> dict:
    request = urllib.request.Request(
        f"{base}/v1/detect",
        data=json.dumps({"text": text}).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def test_whole_and_streamed_answers_agree_and_name_the_key(server):
    base, key_id, secret = server
    api = client(base)
    messages = [{"role": "user", "content": "Name three rivers."}]
    answer = api.chat.completions.create(
        model="greenmark", messages=messages, max_tokens=24, temperature=1.0, seed=5
    )
    text = answer.choices[0].message.content
    assert text and answer.choices[0].finish_reason in ("stop", "length")
    assert answer.usage.completion_tokens <= 24
    mark = answer.model_extra["watermark"]
    assert mark["watermarked"] is True and mark["key_id"] == key_id
    assert mark["delta"] == 3.0 and mark["scheme"] == "greenmark/kgw-lefthash/v1"
    assert secret not in json.dumps(answer.to_dict())

    chunks = list(
        api.chat.completions.create(
            model="greenmark",
            messages=messages,
            max_tokens=24,
            temperature=1.0,
            seed=5,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [answer.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == answer.usage.completion_tokens
    assert all(c.to_dict()["watermark"]["key_id"] == key_id for c in chunks)


def test_the_watermark_cannot_be_switched_off(server):
    base, _, _ = server
    with pytest.raises(openai.APIStatusError) as refused:
        client(base).chat.completions.create(
            model="greenmark",
            messages=[{"role": "user", "content": "Hi"}],
            max_tokens=4,
            extra_body={"watermark": False},
        )
    assert refused.value.status_code == 403
    assert refused.value.body["code"] == "watermark_required"
    with pytest.raises(openai.BadRequestError):
        client(base).chat.completions.create(
            model="greenmark", messages=[{"role": "user", "content": "Hi"}], n=2
        )


def test_generated_text_is_detected(server):
    """The key is fresh each run, so the answer is too. At delta 3 and gamma 0.25 a token where
    the model is unsure is green with probability 0.87, where it is sure 0.25: ~0.56 expected
    over 80+ tokens, while p = 1e-4 (the config's threshold) needs 0.43 at 80 tokens, 2.6
    standard deviations below; a short answer (the model ended early) is asked again with
    another seed, before anything is detected."""
    base, key_id, _ = server
    for seed in range(3, 6):
        answer = client(base).chat.completions.create(
            model="greenmark",
            messages=[{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
            max_tokens=160,
            temperature=1.0,
            seed=seed,
        )
        if answer.usage.completion_tokens >= 80:
            break
    assert answer.usage.completion_tokens >= 80, answer
    record = detect(base, answer.choices[0].message.content)
    assert record["watermarked"] is True, record
    assert record["key_id"] == key_id
