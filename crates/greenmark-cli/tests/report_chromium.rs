//! The HTML report in a real browser: headless Chromium loads it, and the rendered DOM has the
//! coloured token spans and the z-score plot; a screenshot renders too.
//!
//! Skipped only when Chromium is absent and `CI` is unset; on CI a missing Chromium fails.
//! Set `GREENMARK_SCREENSHOT=path.png` to keep the screenshot for a look.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{greenmark, keygen, plain_text, tokenizer_path, watermarked_text};

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// Runs Chromium headless with a time limit (`timeout`, from coreutils).
fn run_chromium(chromium: &Path, profile: &Path, args: &[String]) -> std::process::Output {
    Command::new("timeout")
        .arg("120")
        .arg(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("timeout and chromium run")
}

#[test]
fn chromium_renders_the_report() {
    let Some(chromium) = chromium() else {
        if on_ci() {
            panic!(
                "chromium is not installed, and CI is set: install the Debian `chromium` package"
            );
        }
        eprintln!("skipped: chromium is not installed (CI is unset)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let mut text = watermarked_text(&key, 160, 11);
    text.push_str("\n\nAnd then some plain words follow:");
    text.push_str(&plain_text(60, 12));
    let input = dir.path().join("in.txt");
    std::fs::write(&input, &text).unwrap();
    let html = dir.path().join("report.html");
    greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .arg("--tokenizer")
        .arg(tokenizer_path())
        .arg(&input)
        .arg("--html")
        .arg(&html)
        .assert()
        .success();
    let url = format!("file://{}", html.display());
    let profile = dir.path().join("profile");

    let out = run_chromium(&chromium, &profile, &["--dump-dom".into(), url.clone()]);
    assert!(out.status.success(), "chromium --dump-dom failed: {out:?}");
    let dom = String::from_utf8_lossy(&out.stdout);
    let greens = dom.matches("class=\"tok green\"").count();
    let reds = dom.matches("class=\"tok red\"").count();
    assert!(greens > 50, "{greens} green spans in the rendered DOM");
    assert!(reds > 5, "{reds} red spans in the rendered DOM");
    assert!(dom.contains("class=\"tok skip\""));
    assert!(dom.contains("<svg"), "no SVG in the DOM");
    assert!(
        dom.contains("<polyline class=\"zline\""),
        "no z-score polyline"
    );
    assert!(
        dom.contains("<polyline class=\"threshold\""),
        "no threshold line"
    );
    assert!(dom.contains("WATERMARKED"));

    let png = dir.path().join("report.png");
    let out = run_chromium(
        &chromium,
        &profile,
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,1400".into(),
            url,
        ],
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {out:?}"
    );
    let bytes = std::fs::read(&png).expect("the screenshot was written");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 20_000,
        "a {}-byte screenshot is blank",
        bytes.len()
    );
    if let Some(keep) = std::env::var_os("GREENMARK_SCREENSHOT") {
        std::fs::copy(&png, keep).unwrap();
    }
}
