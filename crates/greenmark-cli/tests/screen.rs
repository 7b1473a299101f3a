//! `greenmark screen` and `greenmark keygen --screen`, end to end with the real SmolLM2
//! tokenizer: a key that colours a passage common to every chunk green is rejected, a key is
//! screened on the real reference corpus (four genres, fetched from Debian packages on first
//! use), and keygen writes only a key that passed.

mod common;

use std::path::{Path, PathBuf};

use common::{greenmark, keygen, plain_text, tokenizer_path, watermarked_text};
use serde_json::Value;

fn tokenizer_args() -> [String; 2] {
    [
        "--tokenizer".into(),
        tokenizer_path().to_string_lossy().into_owned(),
    ]
}

/// A corpus directory: one subdirectory per genre, `docs` files each.
fn corpus_dir(root: &Path, genres: &[(&str, Vec<String>)]) -> PathBuf {
    let dir = root.join("corpus");
    for (genre, docs) in genres {
        std::fs::create_dir_all(dir.join(genre)).unwrap();
        for (i, doc) in docs.iter().enumerate() {
            std::fs::write(dir.join(genre).join(format!("{i:03}.txt")), doc).unwrap();
        }
    }
    dir
}

fn json_of(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&output.stdout));
    })
}

/// Every chunk opens with the same 100-word passage, and the passage was written green
/// under the key (as a watermarked boilerplate would be): that key is rejected by both
/// tests, with dedup on, and every chunk is a false positive.
#[test]
fn a_key_that_colours_a_common_passage_green_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let passage = watermarked_text(&key, 100, 1);
    let docs: Vec<String> = (0..30)
        .map(|i| format!("{passage}{}", plain_text(200, 100 + i)))
        .collect();
    let corpus = corpus_dir(dir.path(), &[("boilerplate", docs)]);
    let out = greenmark()
        .args(["screen", "--key-file"])
        .arg(&key)
        .args(tokenizer_args())
        .args(["--screen-chunk", "200", "--json"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11), "{out:?}");
    let json = json_of(&out);
    assert_eq!(json["passed"], false);
    let genre = &json["genres"][0];
    assert_eq!(genre["genre"], "boilerplate");
    assert_eq!(genre["n_chunks"], 30);
    assert_eq!(genre["fpr"][1]["count"], 30, "{genre}");
    assert_eq!(genre["ks"]["passed"], false);
    assert_eq!(genre["tail"]["passed"], false);
    assert_eq!(json["dedup"], true);

    let out = greenmark()
        .args(["screen", "--key-file"])
        .arg(&key)
        .args(tokenizer_args())
        .args(["--screen-chunk", "200"])
        .arg(&corpus)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(11));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("REJECTED: 2 tests"), "{table}");
    assert!(
        table.contains("boilerplate") && table.contains("FAIL"),
        "{table}"
    );
    assert!(table.contains("30 of 30 chunks at p < 1e-3"), "{table}");
}

/// A random key on the reference corpus: four genres of real text, consistent counts, and
/// realized false-positive rates near nominal (a detector that miscounted would not be).
#[test]
fn a_key_is_screened_on_the_reference_corpus() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let out = greenmark()
        .args(["screen", "--key-file"])
        .arg(&key)
        .args(tokenizer_args())
        .args(["--json", "reference"])
        .output()
        .unwrap();
    assert!(matches!(out.status.code(), Some(0 | 11)), "{out:?}");
    let json = json_of(&out);
    assert_eq!(json["passed"], out.status.code() == Some(0));
    assert_eq!(json["chunk_tokens"], 800);
    assert_eq!(json["n_tests"], 8);
    let names: Vec<&str> = json["genres"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["genre"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["scripture", "fiction", "reference", "legal"]);
    let mut chunks = 0;
    for g in json["genres"].as_array().unwrap() {
        let n = g["n_chunks"].as_u64().unwrap();
        chunks += n;
        assert!(n >= 30, "{g}");
        let mean = g["mean_scored"].as_f64().unwrap();
        assert!(
            mean > 200.0 && mean < 800.0,
            "dedup leaves fewer tuples than tokens: {g}"
        );
        let counts: Vec<u64> = (0..3)
            .map(|i| g["fpr"][i]["count"].as_u64().unwrap())
            .collect();
        assert!(counts[0] >= counts[1] && counts[1] >= counts[2], "{g}");
        assert!(g["fpr"][1]["expected"].as_f64().unwrap() <= n as f64 * 1e-3);
    }
    assert!(chunks > 2500, "{chunks} chunks");
    let rate = json["overall"][1]["rate"].as_f64().unwrap();
    assert!(rate < 0.01, "realized FPR at 1e-3 over all genres: {rate}");
}

/// keygen --screen writes the first candidate that passes, with its report; on text made of
/// independent random words most keys pass, so 20 tries are plenty.
#[test]
fn keygen_screen_writes_a_key_that_passed() {
    let dir = tempfile::tempdir().unwrap();
    let docs = |seed: u64| {
        (0..8)
            .map(|i| plain_text(1500, seed + i))
            .collect::<Vec<_>>()
    };
    let corpus = corpus_dir(dir.path(), &[("words-a", docs(1)), ("words-b", docs(50))]);
    let path = dir.path().join("k.json");
    let out = greenmark()
        .args(["keygen", "--out"])
        .arg(&path)
        .args(tokenizer_args())
        .arg("--screen")
        .arg(&corpus)
        .args(["--screen-chunk", "400", "--screen-tries", "20", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json = json_of(&out);
    assert_eq!(json["accepted"], true);
    let candidates = json["candidates"].as_array().unwrap();
    assert_eq!(candidates.last().unwrap()["passed"], true);
    assert!(candidates[..candidates.len() - 1]
        .iter()
        .all(|c| c["passed"] == false));
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["key_id"], json["key_id"]);
    assert_eq!(candidates.last().unwrap()["key_id"], json["key_id"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("PASSED"), "{stderr}");
}

/// One token repeated, scored without dedup: every chunk is 199 copies of one tuple, so a key
/// that colours it green (probability 1/4) gives every chunk p = 4^-199 and is rejected.
/// keygen with one try then writes nothing and exits 11; a key that colours it red passes.
#[test]
fn keygen_screen_writes_nothing_when_every_candidate_fails() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus_dir(dir.path(), &[("repeated", vec![" the".repeat(4000)])]);
    let (mut rejected, mut accepted) = (0, 0);
    for attempt in 0..60 {
        let path = dir.path().join(format!("k{attempt}.json"));
        let out = greenmark()
            .args(["keygen", "--out"])
            .arg(&path)
            .args(tokenizer_args())
            .arg("--screen")
            .arg(&corpus)
            .args([
                "--screen-chunk",
                "200",
                "--screen-no-dedup",
                "--screen-tries",
                "1",
            ])
            .arg("--json")
            .output()
            .unwrap();
        let json = json_of(&out);
        let report = &json["candidates"][0];
        assert_eq!(report["dedup"], false);
        match out.status.code() {
            Some(11) => {
                rejected += 1;
                assert!(!path.exists(), "a rejected key is not written");
                assert_eq!(json["accepted"], false);
                assert_eq!(json["key_id"], Value::Null);
                assert_eq!(
                    report["genres"][0]["fpr"][2]["count"],
                    report["genres"][0]["n_chunks"]
                );
                let stderr = String::from_utf8_lossy(&out.stderr);
                assert!(
                    stderr.contains("all 1 candidate keys failed the screen"),
                    "{stderr}"
                );
            }
            Some(0) => {
                accepted += 1;
                assert!(path.exists());
                assert_eq!(report["genres"][0]["fpr"][0]["count"], 0);
            }
            other => panic!("exit {other:?}: {out:?}"),
        }
        if rejected > 0 && accepted > 0 {
            break;
        }
    }
    assert!(
        rejected > 0 && accepted > 0,
        "{rejected} rejected, {accepted} accepted"
    );
}

#[test]
fn bad_screen_arguments_are_one_line_errors() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path(), "k.json", &[]);
    let short = corpus_dir(dir.path(), &[("short", vec!["Just a few words.".into()])]);
    let cases: [(Vec<String>, &str); 4] = [
        (
            vec![dir.path().join("nope").display().to_string()],
            "neither `reference` nor an existing directory or file",
        ),
        (
            vec![short.display().to_string()],
            "has no document of at least 800 tokens",
        ),
        (
            vec![
                "--screen-chunk".into(),
                "1".into(),
                short.display().to_string(),
            ],
            "chunk needs at least 2 tokens",
        ),
        (
            vec![
                "--screen-level".into(),
                "1.5".into(),
                short.display().to_string(),
            ],
            "level",
        ),
    ];
    for (extra, needle) in cases {
        let out = greenmark()
            .args(["screen", "--key-file"])
            .arg(&key)
            .args(tokenizer_args())
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].contains(needle), "{extra:?}: {}", lines[0]);
    }
    let out = greenmark()
        .args(["keygen", "--out"])
        .arg(dir.path().join("x.json"))
        .args(["--screen-tries", "3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "--screen-tries needs --screen");
}
