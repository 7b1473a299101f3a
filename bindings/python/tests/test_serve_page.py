"""The detector page of `greenmark serve`, in a real headless Chromium (Playwright driving
the system's browser): paste a text, see the verdict, the p-value and, for a trusted token,
each token coloured. Screenshots land in $GREENMARK_SCREENSHOTS (default: the test's tmp)."""

import os
import pathlib
import shutil
import subprocess

import pytest

import greenmark
import serving

playwright_api = pytest.importorskip("playwright.sync_api")

TRUSTED, PUBLIC = "page-trusted-token", "page-public-token"


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("chromium is not installed, and CI is set: install the Debian `chromium` package")
    pytest.skip("chromium is not installed")


@pytest.fixture(scope="module")
def setup(cli, tmp_path_factory):
    directory = tmp_path_factory.mktemp("page")
    key = directory / "k.json"
    subprocess.run([cli, "keygen", "--out", key, "--delta", "3"], check=True, capture_output=True)
    answer = subprocess.run(
        [cli, "generate", "--key-file", key, "--prompt", "Tell me about the sea and its tides.",
         "--max-new-tokens", "120", "--seed", "7"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    shots = pathlib.Path(os.environ.get("GREENMARK_SCREENSHOTS", directory))
    shots.mkdir(parents=True, exist_ok=True)
    with serving.serve(directory, [key], {TRUSTED: "trusted", PUBLIC: "public"}) as url:
        with playwright_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
            yield url, answer, key, browser, shots
            browser.close()


def check(browser, url, token, text, colours=True):
    page = browser.new_page(viewport={"width": 1000, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.fill("#token", token)
    page.fill("#text", text)
    if not colours:
        page.uncheck("#colours")
    page.click("#check")
    page.wait_for_selector("#result:not([hidden])", timeout=20_000)
    assert not errors, errors
    return page


def test_a_trusted_token_sees_the_verdict_and_every_tokens_colour(setup):
    url, answer, key, browser, shots = setup
    page = check(browser, url, TRUSTED, answer)
    page.screenshot(path=str(shots / "serve-page-trusted.png"), full_page=True)
    verdict = page.text_content("#verdict")
    assert verdict.startswith("Watermarked"), verdict
    # The page shows what the service computes: the same p-value as the Python detector.
    k, config = greenmark.Key.load_with_config(key)
    expected = greenmark.TextDetector(serving.TOKENIZER, k, config).detect(answer)
    facts = page.text_content("#facts")
    assert f"{expected.log10_p_value:.2f}" in facts, facts
    green = page.locator("#tokens .tok.green").count()
    red = page.locator("#tokens .tok.red").count()
    assert (green, red) != (0, 0) and green == expected.n_green, (green, expected.n_green)
    assert green + red == expected.n_scored
    # The coloured tokens spell the text.
    spelled = "".join(page.locator("#tokens .tok").all_text_contents())
    assert spelled == answer
    page.close()


def test_a_public_token_sees_the_verdict_only(setup):
    url, answer, _, browser, shots = setup
    page = check(browser, url, PUBLIC, answer)
    page.screenshot(path=str(shots / "serve-page-public.png"), full_page=True)
    assert page.text_content("#verdict").startswith("Watermarked")
    assert page.is_hidden("#tokens")
    assert "trusted tokens only" in page.text_content("#note")
    page.close()


def test_plain_text_and_a_wrong_token(setup):
    url, _, _, browser, _ = setup
    human = (
        "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
        "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity."
    )
    page = check(browser, url, TRUSTED, human)
    assert page.text_content("#verdict").startswith("No watermark"), page.text_content("#verdict")
    page.close()
    page = check(browser, url, "not-a-token", human)
    assert "valid token" in page.text_content("#verdict")
    page.close()
    # Markup in the text is shown as text, never run.
    page = check(browser, url, TRUSTED, "<img src=x onerror=alert(1)> <b>bold</b> and more words here")
    assert page.locator("#tokens img, #tokens b").count() == 0
    assert "<img" in page.text_content("#tokens")
    page.close()
