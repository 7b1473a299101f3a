//! The `greenmark` binary, end to end: every subcommand and every bad-input path.
//!
//! `detect` and `report` run on the real SmolLM2 tokenizer (no model needed); `generate` and
//! `demo` run the real embedded model, fetched on first use into `$GREENMARK_HOME` (default
//! `~/.cache/greenmark`), with few tokens so they stay short.

mod common;

use std::io::Write;
use std::path::Path;

use common::{greenmark, keygen, plain_text, tokenizer_path, watermarked_text};
use predicates::prelude::*;
use serde_json::Value;

fn tokenizer_arg() -> [String; 2] {
    [
        "--tokenizer".into(),
        tokenizer_path().to_string_lossy().into_owned(),
    ]
}

fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The one line of an error message on stderr (and that there is exactly one).
fn error_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got: {stderr}");
    lines[0].to_string()
}

// ---------------------------------------------------------------------------------- keygen

#[test]
fn keygen_writes_a_private_json_key_with_its_config_and_prints_the_id() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("k.json");
    let out = greenmark()
        .args(["keygen", "--out"])
        .arg(&path)
        .args([
            "--gamma", "0.5", "--delta", "3", "--scheme", "minhash", "--window", "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["key_id"], id.as_str());
    assert_eq!(json["config"]["vocab_size"], 49152);
    assert_eq!(json["config"]["gamma"], 0.5);
    assert_eq!(json["config"]["delta"], 3.0);
    assert_eq!(json["config"]["scheme"]["type"], "minhash");
    assert_eq!(json["config"]["scheme"]["window"], 3);
    // The secret is in the file, and not on the terminal.
    let secret = json["secret"].as_str().unwrap();
    assert_eq!(secret.len(), 64);
    assert!(!String::from_utf8_lossy(&out.stderr).contains(secret));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Refuses to overwrite, and leaves the file as it was.
    let before = std::fs::read(&path).unwrap();
    greenmark()
        .args(["keygen", "--out"])
        .arg(&path)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already exists"));
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn keygen_defaults_and_selfhash() {
    let dir = tempfile::tempdir().unwrap();
    let path = keygen(dir.path(), "default.json", &[]);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["config"]["scheme"]["type"], "lefthash");
    assert_eq!(json["config"]["scheme"]["window"], 1);
    assert_eq!(json["config"]["gamma"], 0.25);
    let path = keygen(dir.path(), "self.json", &["--scheme", "selfhash"]);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(json["config"]["scheme"]["type"], "selfhash");
    assert_eq!(json["config"]["scheme"]["window"], 4);
    assert_eq!(json["config"]["scheme"]["top_k"], 40);
}

/// A key file others may read works, with one warning on stderr that says how to fix it; a
/// private one (keygen writes 0600) gets none. A key path that is a directory is refused.
#[cfg(unix)]
#[test]
fn a_key_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let detect = |key: &std::path::Path| {
        greenmark()
            .args(["detect", "--key-file"])
            .arg(key)
            .args(tokenizer_arg())
            .arg("-")
            .write_stdin(plain_text(60, 1))
            .output()
            .unwrap()
    };
    let out = detect(&key);
    assert!(out.status.success(), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // `serve` warns about the key files of its config too (before anything else can fail).
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ntokenizer = \"{}\"\nkeys = [{:?}]\n",
            dir.path().join("missing-tokenizer.json").display(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let out = greenmark()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: key file") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let out = detect(&key);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("warning: key file").count(), 1, "{stderr}");
    assert!(
        stderr.contains("mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let out = detect(dir.path());
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        error_line(&out).contains("is a directory, not a regular file"),
        "{out:?}"
    );
}

#[test]
fn keygen_rejects_bad_configs_with_one_line_each() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--gamma", "1.5"],
            "gamma must be strictly between 0 and 1",
        ),
        (&["--delta", "-1"], "delta must be"),
        // 1e308 made every green logit infinite (generate then printed nothing, exit 0); 0
        // makes a key that never watermarks.
        (
            &["--delta", "1e308"],
            "delta must be above 0 and at most 20",
        ),
        (&["--delta", "0"], "delta must be above 0 and at most 20"),
        (
            &["--scheme", "unigram", "--window", "2"],
            "unigram has no window",
        ),
        (&["--top-k", "10"], "selfhash only"),
    ];
    for (i, (extra, message)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.json"));
        let out = greenmark()
            .args(["keygen", "--out"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {out:?}");
        assert!(error_line(&out).contains(message), "{extra:?}: {out:?}");
        assert!(!path.exists(), "{extra:?} wrote a key file");
    }
    // An unknown scheme is a usage error (exit 2).
    greenmark()
        .args(["keygen", "--out"])
        .arg(dir.path().join("x.json"))
        .args(["--scheme", "rot13"])
        .assert()
        .code(2);
}

// ------------------------------------------------------------------------------- exit codes

#[test]
fn help_documents_the_exit_codes_and_usage_errors_exit_2() {
    for args in [&["--help"][..], &["detect", "--help"][..]] {
        greenmark()
            .args(args)
            .assert()
            .success()
            .stdout(predicate::str::contains("Exit codes"))
            .stdout(predicate::str::contains("10  detect --exit-code"));
    }
    greenmark().args(["detect"]).assert().code(2);
    greenmark().args(["frobnicate"]).assert().code(2);
    greenmark()
        .args(["detect", "--key-file", "k", "--threshold", "2"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("strictly between 0 and 1"));
}

// ------------------------------------------------------------------------ CLI conventions

/// One output flag, `-o/--output`, wherever a command writes a file; the older spellings
/// (`--out`, `--html`, `--report`) still work but are no longer shown.
#[test]
fn every_output_file_is_dash_o_and_old_spellings_still_work() {
    for command in [
        &["keygen"][..],
        &["demo"],
        &["report"],
        &["radioactivity", "closed"],
        &["radioactivity", "open"],
    ] {
        let out = greenmark().args(command).arg("--help").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        assert!(help.contains("-o, --output <"), "{command:?}: {help}");
        for old in ["--out ", "--out <", "--html", "--report"] {
            assert!(!help.contains(old), "{command:?} shows {old}: {help}");
        }
    }
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "a.json", &[]); // --out, as scripts wrote it
    greenmark()
        .args(["keygen", "-o"])
        .arg(dir.path().join("b.json"))
        .assert()
        .success();
    let key = dir.path().join("b.json");
    let text = write(dir.path(), "t.txt", watermarked_text(&key, 80, 4));
    for flag in ["-o", "--output", "--html"] {
        let html = dir.path().join(format!("r{flag}.html"));
        greenmark()
            .args(["report", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&text)
            .arg(flag)
            .arg(&html)
            .assert()
            .success();
        assert!(html.exists(), "{flag}");
    }
}

/// `-` reads stdin: `report`'s text, `radioactivity`'s JSON Lines, `generate`'s prompt (in its
/// streaming test) and `detect`'s input (in its JSON test).
#[test]
fn dash_reads_stdin_for_report_and_radioactivity() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let text = watermarked_text(&key, 80, 6);
    let html = dir.path().join("r.html");
    greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .args(["-", "-o"])
        .arg(&html)
        .write_stdin(text.clone())
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "WATERMARKED at the 1e-6 threshold",
        ));
    assert!(std::fs::read_to_string(&html)
        .unwrap()
        .contains("greenmark report: stdin"));
    let jsonl = format!("{}\n", serde_json::json!({ "text": text }));
    greenmark()
        .args(["radioactivity", "closed", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .args(["--outputs", "-"])
        .write_stdin(jsonl)
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "RADIOACTIVE at the 1e-6 threshold",
        ));
}

/// A reader that goes away (`greenmark detect ... | head -1`) ends the command quietly, as
/// it ends `cat`: killed by SIGPIPE (status 141 in a shell), nothing on stderr.
#[cfg(unix)]
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    // Far more output than a pipe holds, so writes are still going when the reader leaves.
    let line = format!("{}\n", serde_json::json!({"text": "a short text to score"}));
    let input = write(dir.path(), "many.jsonl", line.repeat(20_000));
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("greenmark"))
        .args(["detect", "--jsonl", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap(); // the reader is dropped here: the pipe closes
    assert!(first.contains("verdict"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(libc_sigpipe()), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
fn libc_sigpipe() -> i32 {
    13 // SIGPIPE on Linux and the BSDs
}

/// Errors stay one line with backtraces switched on (anyhow captures one when
/// `RUST_BACKTRACE` is set; `{:#}` must not fold it into the message).
#[test]
fn errors_are_one_line_with_backtraces_on() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.json", "{\"version\": 1}");
    // Private, as a key file should be: a readable one adds its own warning line.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bad, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    for args in [
        vec![
            "detect".to_string(),
            "--key-file".into(),
            "missing.json".into(),
        ],
        vec![
            "detect".into(),
            "--key-file".into(),
            bad.to_string_lossy().into_owned(),
        ],
    ] {
        let out = greenmark()
            .env("RUST_BACKTRACE", "1")
            .env("RUST_LIB_BACKTRACE", "1")
            .args(&args)
            .args(tokenizer_arg())
            .arg("-")
            .write_stdin("text")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with("error: "), "{stderr}");
        assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    }
}

/// `--help` names every environment variable the command reads.
#[test]
fn help_lists_the_environment_variables() {
    for command in [&[][..], &["detect"], &["demo"], &["generate"], &["report"]] {
        let out = greenmark().args(command).arg("--help").output().unwrap();
        let help = String::from_utf8(out.stdout).unwrap();
        for var in [
            "GREENMARK_HOME",
            "GREENMARK_MODEL",
            "GREENMARK_PYTHON",
            "GREENMARK_MAX_LINE_BYTES",
        ] {
            assert!(help.contains(var), "{command:?} --help lacks {var}: {help}");
        }
    }
}

// ---------------------------------------------------------------------------------- detect

#[test]
fn detect_finds_the_watermark_and_exit_code_10_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let text = write(dir.path(), "marked.txt", watermarked_text(&key, 120, 1));
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&text)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("WATERMARKED at the 1e-6 threshold (p = "),
        "{stdout}"
    );
    assert!(stdout.contains("greenmark/kgw-lefthash/v1"), "{stdout}");
    // --exit-code turns the verdict into status 10.
    greenmark()
        .args(["detect", "--exit-code", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&text)
        .assert()
        .code(10);
    // The same text under another key is not watermarked: status 0 even with --exit-code.
    let other = keygen(dir.path(), "other.json", &[]);
    greenmark()
        .args(["detect", "--exit-code", "--key-file"])
        .arg(&other)
        .args(tokenizer_arg())
        .arg(&text)
        .assert()
        .code(0)
        .stdout(predicate::str::contains(
            "verdict     no watermark at the 1e-6 threshold (p = ",
        ));
}

/// A text too short to decide says so, with roughly how many tokens a watermarked text needs
/// (and the all-green floor: 10 at gamma 0.25 and 1e-6); the JSON fields stay as they were.
#[test]
fn detect_says_when_too_few_tokens_were_scored() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg("-")
        .write_stdin("Hello there, friend.")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("no watermark at the 1e-6 threshold (p = ")
            && stdout.contains("too few tokens to tell: ")
            && stdout.contains("needs about ")
            && stdout.contains("(10 if every token were green)"),
        "{stdout}"
    );
    // A long human text has tokens enough: no advice.
    let text = write(dir.path(), "plain.txt", plain_text(400, 3));
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&text)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("too few"), "{stdout}");
    let out = greenmark()
        .args(["detect", "--json", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg("-")
        .write_stdin("Hello there, friend.")
        .output()
        .unwrap();
    let record: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(record["watermarked"], false, "{record}");
    assert!(record.get("verdict").is_none(), "{record}");
}

#[test]
fn detect_json_has_every_field_and_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let text = watermarked_text(&key, 150, 2);
    // Zero-width spaces inside words: the normalizer removes them, and says so.
    let text = text.replacen(" the", " th\u{200b}e", 3);
    let out = greenmark()
        .args(["detect", "--json", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg("-")
        .write_stdin(text)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in [
        "n_tokens",
        "n_scored",
        "n_green",
        "green_fraction",
        "z_score",
        "p_value",
        "log10_p_value",
        "scheme",
        "key_id",
        "normalizations",
        "watermarked",
        "threshold",
    ] {
        assert!(d.get(field).is_some(), "missing {field}: {d}");
    }
    assert_eq!(d["key_id"], json["key_id"]);
    assert_eq!(d["scheme"], "greenmark/kgw-lefthash/v1");
    assert_eq!(d["watermarked"], true);
    assert!(d["log10_p_value"].as_f64().unwrap() < -6.0, "{d}");
    let n_scored = d["n_scored"].as_u64().unwrap();
    let n_green = d["n_green"].as_u64().unwrap();
    assert!(n_scored > 100 && n_green <= n_scored, "{d}");
    let fraction = d["green_fraction"].as_f64().unwrap();
    assert!((fraction - n_green as f64 / n_scored as f64).abs() < 1e-12);
    let normalizations = d["normalizations"].as_array().unwrap();
    assert!(
        normalizations
            .iter()
            .any(|n| n["count"].as_u64() >= Some(3)),
        "the zero-width spaces are not reported: {d}"
    );
    // The secret never appears in the output.
    let secret = json["secret"].as_str().unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
}

#[test]
fn detect_threshold_changes_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    // Short watermarked text: significant at 1e-2, but not at 1e-30.
    let text = write(dir.path(), "short.txt", watermarked_text(&key, 15, 3));
    let verdict = |threshold: &str| -> bool {
        let out = greenmark()
            .args(["detect", "--json", "--threshold", threshold, "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&text)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        // serde_json's default float parser may be one ulp off (no `float_roundtrip`).
        let given: f64 = threshold.parse().unwrap();
        assert!((d["threshold"].as_f64().unwrap() / given - 1.0).abs() < 1e-12);
        d["watermarked"].as_bool().unwrap()
    };
    assert!(verdict("0.01"));
    assert!(!verdict("1e-30"));
}

#[test]
fn detect_jsonl_gives_one_result_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let mut jsonl = String::new();
    jsonl.push_str(
        &serde_json::json!({"id": 1, "body": watermarked_text(&key, 100, 4)}).to_string(),
    );
    jsonl.push_str("\n\n"); // a blank line is skipped, but counted
    jsonl.push_str(&serde_json::json!({"id": 2, "body": plain_text(100, 5)}).to_string());
    jsonl.push('\n');
    let input = write(dir.path(), "in.jsonl", &jsonl);
    let out = greenmark()
        .args([
            "detect",
            "--jsonl",
            "--field",
            "body",
            "--json",
            "--key-file",
        ])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["line"].as_u64(), rows[1]["line"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(rows[0]["watermarked"], true);
    assert_eq!(rows[1]["watermarked"], false);
    // The table form, and --exit-code over lines.
    greenmark()
        .args([
            "detect",
            "--jsonl",
            "--field",
            "body",
            "--exit-code",
            "--key-file",
        ])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .assert()
        .code(10)
        .stdout(predicate::str::contains(
            "1 of 2 texts watermarked at p < 1e-6",
        ));
}

#[test]
fn detect_jsonl_errors_name_the_line() {
    // A bad line gets an error record (its number and what is wrong); every other line is
    // still scored, and the exit status is 1 at the end.
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let cases: [(&[u8], usize, usize, &str); 5] = [
        (
            b"{\"text\": \"hello there\"}\n{\"text\": \"ok\"}\n{not json\n",
            3,
            3,
            "not valid JSON",
        ),
        (
            b"{\"text\": \"hello\"}\n{\"body\": \"x\"}\n{\"text\": \"after\"}\n",
            2,
            3,
            "no field \"text\"",
        ),
        (b"{\"text\": 42}\n", 1, 1, "field \"text\" is not a string"),
        (
            b"{\"text\": \"fine\"}\n{\"text\": \"\xff\xfe\"}\n",
            2,
            2,
            "not UTF-8",
        ),
        (
            b"{\"text\": \"fine\"}\n{\"text\": \"  \"}\n{\"text\": \"more\"}\n",
            2,
            3,
            "is empty",
        ),
    ];
    for (contents, bad, lines, message) in cases {
        let input = write(dir.path(), "bad.jsonl", contents);
        let out = greenmark()
            .args(["detect", "--jsonl", "--json", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            error_line(&out).contains(&format!("1 of {lines} lines")),
            "{out:?}"
        );
        let records: Vec<serde_json::Value> = String::from_utf8(out.stdout.clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(records.len(), lines, "{out:?}");
        for record in &records {
            let line = record["line"].as_u64().unwrap() as usize;
            if line == bad {
                let error = record["error"].as_str().unwrap();
                assert!(error.contains(message), "{message}: {error}");
            } else {
                assert!(record["log10_p_value"].is_number(), "{record}");
            }
        }
        // The table says the same, one row per line.
        let out = greenmark()
            .args(["detect", "--jsonl", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&input)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stdout = String::from_utf8(out.stdout).unwrap();
        let row = format!("{bad:>7}  error: ");
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(&row) && l.contains(message)),
            "{stdout}"
        );
    }
}

#[test]
fn missing_key_file_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let text = write(dir.path(), "t.txt", "some text");
    for sub in ["detect", "report"] {
        let mut cmd = greenmark();
        cmd.arg(sub)
            .arg("--key-file")
            .arg(dir.path().join("nope.json"))
            .args(tokenizer_arg())
            .arg(&text);
        if sub == "report" {
            cmd.arg("--html").arg(dir.path().join("r.html"));
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let line = error_line(&out);
        assert!(line.contains("does not exist"), "{line}");
        assert!(line.contains("greenmark keygen -o"), "{line}");
    }
}

#[test]
fn malformed_key_files_are_one_line_errors_that_never_echo_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let text = write(dir.path(), "t.txt", "some text");
    let secretish = "ab".repeat(31) + "zz";
    let cases: [(&[u8], &str); 4] = [
        (b"{ not json", "invalid key file"),
        (secretish.as_bytes(), "not a hex digit"),
        (b"\xff\x00\x13garbage", "not text"),
        (
            br#"{"format": "greenmark-key/v1", "secret": "00", "config": {"vocab_size": 49152}}"#,
            "expected 64 hex digits",
        ),
    ];
    for (contents, message) in cases {
        let key = write(dir.path(), "bad.key", contents);
        let out = greenmark()
            .args(["detect", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&text)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let line = error_line(&out);
        assert!(line.contains(message), "{message}: {line}");
        assert!(
            !line.contains(&"ab".repeat(8)),
            "the error echoes the key: {line}"
        );
    }
}

#[test]
fn tokenizer_larger_than_the_keys_vocab_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "small.json", &["--vocab-size", "32000"]);
    let text = write(dir.path(), "t.txt", plain_text(30, 1));
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&text)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let line = error_line(&out);
    assert!(line.contains("has 49152 tokens"), "{line}");
    assert!(line.contains("vocabulary of 32000"), "{line}");
    assert!(line.contains("vocab size >= 49152"), "{line}");
}

#[test]
fn missing_tokenizer_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let text = write(dir.path(), "t.txt", "some text");
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .arg("--tokenizer")
        .arg(dir.path().join("missing-tokenizer.json"))
        .arg(&text)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(error_line(&out).contains("does not exist"), "{out:?}");
}

#[test]
fn empty_input_is_an_error_not_a_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    for contents in ["", "\u{200b}\u{feff}"] {
        let text = write(dir.path(), "empty.txt", contents);
        let out = greenmark()
            .args(["detect", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(&text)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{contents:?}: {out:?}");
        assert!(error_line(&out).contains("is empty"), "{out:?}");
    }
    // Empty stdin too, and an empty JSONL input.
    for extra in [&[][..], &["--jsonl"][..]] {
        let out = greenmark()
            .args(["detect", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .args(extra)
            .write_stdin("")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(error_line(&out).contains("empty"), "{out:?}");
    }
}

#[test]
fn binary_garbage_is_refused_as_not_utf8() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let mut rng = common::Lcg(7);
    let mut garbage: Vec<u8> = b"Some text first, then bytes: ".to_vec();
    garbage.extend((0..100_000).map(|_| rng.next() as u8));
    garbage.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let input = write(dir.path(), "garbage.bin", &garbage);
    let out = greenmark()
        .args(["detect", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(error_line(&out).contains("UTF-8"), "{out:?}");
    let out = greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .arg("--html")
        .arg(dir.path().join("r.html"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(error_line(&out).contains("not UTF-8 text"), "{out:?}");
    assert!(!dir.path().join("r.html").exists());
}

/// Peak resident memory of a finished child, in KiB, from GNU time's `-v` report.
fn max_rss_kib(time_report: &str) -> Option<u64> {
    time_report
        .lines()
        .find_map(|l| l.trim().strip_prefix("Maximum resident set size (kbytes):"))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn a_50_mb_input_streams_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    // 50 MB of text from a paragraph pool, written in pieces.
    let paragraphs: Vec<String> = (0..64).map(|i| plain_text(200, 100 + i)).collect();
    let big = dir.path().join("big.txt");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&big).unwrap());
    let (mut written, mut i) = (0usize, 0usize);
    while written < 50 * 1024 * 1024 {
        let p = &paragraphs[i % paragraphs.len()];
        file.write_all(p.as_bytes()).unwrap();
        written += p.len();
        i += 1;
    }
    file.flush().unwrap();
    drop(file);
    let small = write(dir.path(), "small.txt", &paragraphs[0]);

    let gnu_time = Path::new("/usr/bin/time");
    let run = |input: &Path| -> (Value, Option<u64>) {
        let bin = assert_cmd::cargo::cargo_bin("greenmark");
        let mut cmd = if gnu_time.exists() {
            let mut c = std::process::Command::new(gnu_time);
            c.arg("-v").arg(bin);
            c
        } else {
            std::process::Command::new(bin)
        };
        let out = cmd
            .args(["detect", "--json", "--key-file"])
            .arg(&key)
            .args(tokenizer_arg())
            .arg(input)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let d: Value = serde_json::from_slice(&out.stdout).unwrap();
        (d, max_rss_kib(&String::from_utf8_lossy(&out.stderr)))
    };
    let (d, big_rss) = run(&big);
    // Every token was seen: about one per word of the 50 MB.
    let n_tokens = d["n_tokens"].as_u64().unwrap();
    assert!(n_tokens > 7_000_000, "{d}");
    assert_eq!(d["watermarked"], false, "{d}");
    let (_, small_rss) = run(&small);
    match (big_rss, small_rss) {
        (Some(big_rss), Some(small_rss)) => {
            eprintln!("peak RSS: {big_rss} KiB for 50 MB, {small_rss} KiB for 2 KB");
            // Reading the whole input would cost 50 MB for the text alone, and several times
            // that for its tokens and offsets.
            assert!(
                big_rss < small_rss + 40 * 1024,
                "peak RSS {big_rss} KiB on 50 MB vs {small_rss} KiB on 2 KB: not streaming"
            );
        }
        _ => {
            // CI installs GNU time (.ci/run): there the memory bound must be checked.
            assert!(
                std::env::var_os("CI").is_none(),
                "GNU time (/usr/bin/time -v) is needed to check the memory bound"
            );
            eprintln!("GNU time is not available; checked completion only");
        }
    }
}

/// A JSON line longer than the limit (8 MiB by default) is an error record naming its line and
/// the limit, read past without being held: the lines around it are scored, in bounded memory.
/// `GREENMARK_MAX_LINE_BYTES` moves the limit; `radioactivity` (one bad line fails the pooled
/// test) names the line too.
#[test]
fn an_over_long_jsonl_line_is_an_error_naming_it_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let long = plain_text(20, 7).repeat(20 * 1024 * 1024 / 100);
    assert!(long.len() > 12 << 20, "{}", long.len());
    let mut jsonl = String::from("{\"text\": \"a first short line\"}\n");
    jsonl.push_str(&serde_json::json!({ "text": long }).to_string());
    jsonl.push_str("\n{\"text\": \"a short line after it\"}\n");
    let input = write(dir.path(), "long.jsonl", &jsonl);
    drop((jsonl, long));
    let gnu_time = Path::new("/usr/bin/time");
    let bin = assert_cmd::cargo::cargo_bin("greenmark");
    let mut cmd = if gnu_time.exists() {
        let mut c = std::process::Command::new(gnu_time);
        c.arg("-v").arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let out = cmd
        .env_remove("GREENMARK_MAX_LINE_BYTES")
        .args(["detect", "--jsonl", "--json", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let records: Vec<Value> = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(records[1]["line"], 2);
    let error = records[1]["error"].as_str().unwrap();
    assert!(
        error.contains("longer than the limit of 8 MiB per JSON line")
            && error.contains("GREENMARK_MAX_LINE_BYTES"),
        "{error}"
    );
    assert!(records[0]["log10_p_value"].is_number() && records[2]["log10_p_value"].is_number());
    if let Some(rss) = max_rss_kib(&String::from_utf8_lossy(&out.stderr)) {
        // Held whole, the line and its JSON value alone would be 40 MB (and its tokens GBs).
        eprintln!("peak RSS with a 20 MB line: {rss} KiB");
        assert!(
            rss < 150 * 1024,
            "peak RSS {rss} KiB: the long line was held"
        );
    }
    // A smaller limit from the environment, named in the message.
    let line = format!("{{\"text\": \"{}\"}}", "word ".repeat(400));
    let short = write(dir.path(), "short.jsonl", format!("{line}\n"));
    let expected = format!(
        "the line is {} bytes, longer than the limit of 1 KiB",
        line.len()
    );
    let out = greenmark()
        .env("GREENMARK_MAX_LINE_BYTES", "1K")
        .args(["detect", "--jsonl", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&short)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!("      1  error: {expected}")),
        "{stdout}"
    );
    greenmark()
        .env("GREENMARK_MAX_LINE_BYTES", "lots")
        .args(["detect", "--jsonl", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&short)
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "GREENMARK_MAX_LINE_BYTES=\"lots\" is not a size",
        ));
    // radioactivity stops at the first bad line, and names it.
    let out = greenmark()
        .env("GREENMARK_MAX_LINE_BYTES", "1K")
        .args(["radioactivity", "closed", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg("--outputs")
        .arg(&short)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        error_line(&out).contains(&format!("short.jsonl line 1: {expected}")),
        "{out:?}"
    );
}

/// A cached default model that no longer has the pinned hash (here: truncated, its sidecar
/// from before) is hashed again and refused with the real path to delete, never used and
/// never silently fetched over.
#[test]
fn a_corrupt_cached_model_names_the_file_to_delete() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let model = home.join("SmolLM2-135M-Instruct.Q4_1.gguf");
    std::fs::write(&model, b"GGUF, but only the first bytes of it").unwrap();
    std::fs::write(
        home.join("SmolLM2-135M-Instruct.Q4_1.gguf.sha256"),
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53 98362432\n",
    )
    .unwrap();
    let out = greenmark()
        .env("GREENMARK_HOME", &home)
        .args(["detect", "--key-file"])
        .arg(&key)
        .arg("-")
        .write_stdin("Some text.")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let error = error_line(&out);
    assert!(
        error.contains(&format!("delete {} and run again", model.display())),
        "{error}"
    );
    assert!(model.exists(), "the file is left for the user to look at");
}

// ---------------------------------------------------------------------------------- report

#[test]
fn report_writes_a_self_contained_escaped_html_page() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let mut text = watermarked_text(&key, 120, 8);
    text.push_str("\n<script>alert(\"x\")</script> & 'quotes'\n\tindented line\n");
    let input = write(dir.path(), "in.txt", &text);
    let html_path = dir.path().join("out.html");
    greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .arg("--html")
        .arg(&html_path)
        .assert()
        .success()
        .stdout(predicate::str::contains("WATERMARKED"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains("class=\"tok green\""));
    assert!(html.contains("class=\"tok red\""));
    assert!(html.contains("class=\"tok skip\" title=\"token "));
    assert!(html.contains("not scored: no full window"));
    assert!(html.contains("<polyline class=\"zline\""));
    assert!(html.contains("<polyline class=\"threshold\""));
    assert!(html.contains("WATERMARKED at the 1e-6 threshold (p = "));
    assert!(html.contains("greenmark/kgw-lefthash/v1"));
    assert!(html.contains(json["key_id"].as_str().unwrap()));
    assert!(
        !html.contains(json["secret"].as_str().unwrap()),
        "the key leaked"
    );
    // Self-contained and inert: nothing fetched, nothing run, the text's markup escaped.
    for needle in ["<script", "src=", "href=\"http", "@import", "url("] {
        assert!(!html.contains(needle), "{needle} in the report");
    }
    assert!(html.contains("&lt;"));
    assert!(html.contains("&amp;"));
    // Whitespace survives: the text's newline and tab are inside the token spans or between.
    assert!(html.contains("\t"));
    // Every byte of the normalized text is in the page once: strip tags and unescape.
    let body = html.split("<div class=\"text\">").nth(1).unwrap();
    let body = body.split("</div>").next().unwrap();
    let mut plain = String::new();
    let mut in_tag = false;
    for c in body.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let plain = plain
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    assert_eq!(plain, text);
}

/// A long text is detected whole, but only its first 256 KiB are coloured: the page stays a
/// few MB (10 MB of text made a 195 MB page before), with a warning on stderr and a note.
#[test]
fn report_of_a_long_text_colours_its_start_and_judges_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let paragraphs: Vec<String> = (0..64).map(|i| plain_text(200, 300 + i)).collect();
    let mut text = paragraphs.join("\n\n");
    while text.len() < 2 << 20 {
        text = format!("{text}\n\n{text}");
    }
    let input = write(dir.path(), "long.txt", &text);
    let html = dir.path().join("r.html");
    let out = greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ") && stderr.contains("the report colours its first "),
        "{stderr}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let n_tokens: u64 = stdout
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    let page = std::fs::read_to_string(&html).unwrap();
    let coloured = page.matches("<span class=\"tok ").count() as u64;
    assert!(n_tokens > 300_000, "the whole text is scored: {stdout}");
    assert!(coloured < n_tokens / 4, "{coloured} of {n_tokens} coloured");
    assert!(page.len() < 8 << 20, "{} bytes", page.len());
    assert!(
        page.contains(&format!("whole text ({n_tokens} tokens)")),
        "the note"
    );
}

#[test]
fn report_of_plain_text_says_no_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let input = write(dir.path(), "in.txt", plain_text(150, 9));
    let html_path = dir.path().join("out.html");
    greenmark()
        .args(["report", "--key-file"])
        .arg(&key)
        .args(tokenizer_arg())
        .arg(&input)
        .arg("--html")
        .arg(&html_path)
        .assert()
        .success()
        .stdout(predicate::str::contains("no watermark"));
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("no watermark at the 1e-6 threshold (p = "));
}

// ------------------------------------------------------------------ the real model (fetched)

#[test]
fn generate_prints_an_answer_and_checks_the_key_against_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let out = greenmark()
        .args(["generate", "--key-file"])
        .arg(&key)
        .args([
            "--prompt",
            "Name three colors.",
            "--max-new-tokens",
            "12",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer = String::from_utf8(out.stdout.clone()).unwrap();
    assert!(!answer.trim().is_empty(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("watermarked with key"));
    // The same seed gives the same answer.
    let again = greenmark()
        .args(["generate", "--key-file"])
        .arg(&key)
        .args([
            "--prompt",
            "Name three colors.",
            "--max-new-tokens",
            "12",
            "--seed",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(again.stdout, out.stdout);
    // Without the watermark no key file is needed.
    greenmark()
        .args([
            "generate",
            "--no-watermark",
            "--prompt",
            "Hi",
            "--max-new-tokens",
            "4",
        ])
        .assert()
        .success()
        .stderr(predicate::str::contains("no watermark"));
    // A key for another vocabulary is refused before generating.
    let small = keygen(dir.path(), "small.json", &["--vocab-size", "32000"]);
    let out = greenmark()
        .args(["generate", "--key-file"])
        .arg(&small)
        .args(["--prompt", "Hi", "--max-new-tokens", "4"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        error_line(&out).contains("logits have 49152 entries per row")
            && error_line(&out).contains("vocabulary of 32000"),
        "{out:?}"
    );
    // Bad sampling options are one-line errors.
    let out = greenmark()
        .args(["generate", "--key-file"])
        .arg(&key)
        .args(["--prompt", "Hi", "--top-p", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(error_line(&out).contains("top_p"), "{out:?}");
}

/// `generate` writes the answer as it is produced: the first bytes arrive while the process is
/// still running, in many small reads (one write and flush per piece), and the whole equals
/// the `--json` text of the same seed. `--prompt -` reads the prompt from stdin.
#[test]
fn generate_streams_its_answer_as_it_is_produced() {
    use std::io::Read;
    use std::process::Stdio;
    let bin = assert_cmd::cargo::cargo_bin("greenmark");
    let args = [
        "generate",
        "--no-watermark",
        "--prompt",
        "-",
        "--max-new-tokens",
        "48",
        "--seed",
        "5",
    ];
    let mut child = std::process::Command::new(&bin)
        .args(args)
        .env_remove("GREENMARK_MODEL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"Count from one to one hundred, in words.")
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (mut text, mut reads, mut running_at_first) = (Vec::new(), 0, None);
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        if running_at_first.is_none() {
            running_at_first = Some(child.try_wait().unwrap().is_none());
        }
        reads += 1;
        text.extend_from_slice(&buf[..n]);
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(
        running_at_first,
        Some(true),
        "the first bytes came only at the end"
    );
    assert!(reads >= 3, "{reads} reads: not streamed");
    let json = greenmark()
        .args(args)
        .arg("--json")
        .write_stdin("Count from one to one hundred, in words.")
        .output()
        .unwrap();
    let record: Value = serde_json::from_slice(&json.stdout).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(text, format!("{}\n", record["text"].as_str().unwrap()));
}

#[test]
fn demo_runs_end_to_end_on_the_real_model() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("demo.html");
    let out = greenmark()
        .args(["demo", "--answers", "2", "--max-new-tokens", "24", "--out"])
        .arg(&report)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // stderr is not a terminal here: progress comes as plain lines, no control characters.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.lines().any(|l| l.starts_with("generating [")),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}') && !stderr.contains('\r'),
        "{stderr:?}"
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("DEMO key"), "{stdout}");
    assert!(stdout.contains("(one batch of 4)"), "{stdout}");
    assert!(stdout.contains("verdict (p < 1e-6)"), "{stdout}");
    let rows = stdout
        .lines()
        .filter(|l| l.starts_with("watermarked ") || l.starts_with("plain "))
        .count();
    assert_eq!(rows, 4 + 2, "{stdout}"); // 4 table rows and 2 summary lines
    assert!(stdout.contains("report    "), "{stdout}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert_eq!(html.matches("<section class=\"answer\"").count(), 4);
    assert!(html.contains("fixed demo key"));
    assert!(html.contains("<table class=\"summary\">"));
}
