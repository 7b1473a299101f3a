//! `greenmark detect --synthid-config`: SynthID Text on token-id JSON Lines, read from
//! transformers' config JSON, equal to the core's detection; bad configs and flags refused.

mod common;

use common::greenmark;
use greenmark::synthid::{SynthIdConfig, SynthIdDetector, SynthIdWatermarker};
use serde_json::Value;

const CONFIG: &str = r#"{"ngram_len": 4, "keys": [654, 400, 836, 123, 340, 443], "sampling_table_size": 65536, "sampling_table_seed": 0, "context_history_size": 1024, "skip_first_ngram_calls": false, "debug_mode": false}"#;

/// 200 ids from a toy model, greedy on the SynthID-watermarked scores.
fn watermarked() -> Vec<u32> {
    let wm = SynthIdWatermarker::new(SynthIdConfig::from_json(CONFIG).unwrap()).unwrap();
    let mut request = wm.request();
    for step in 0..200u32 {
        let mut row: Vec<f32> = (0..2000u32)
            .map(|t| ((t ^ step).wrapping_mul(2654435761) >> 28) as f32 / 4.0)
            .collect();
        request.watermark(&mut row).unwrap();
        let next = (0..2000)
            .max_by(|&a, &b| row[a].total_cmp(&row[b]))
            .unwrap() as u32;
        request.push(next);
    }
    request.generated().to_vec()
}

#[test]
fn detects_synthid_ids_as_the_core_does() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("synthid.json");
    std::fs::write(&cfg, CONFIG).unwrap();
    let ids = watermarked();
    let plain: Vec<u32> = (0..200).map(|i| (i * 7919) % 2000).collect();
    let input = dir.path().join("ids.jsonl");
    std::fs::write(
        &input,
        format!(
            "{{\"token_ids\": {}}}\n{}\n",
            serde_json::json!(ids),
            serde_json::json!(plain)
        ),
    )
    .unwrap();
    let out = greenmark()
        .args([
            "detect",
            "--json",
            "--threshold",
            "1e-6",
            "--synthid-config",
        ])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    let core = SynthIdDetector::new(SynthIdConfig::from_json(CONFIG).unwrap())
        .unwrap()
        .with_threshold(1e-6)
        .unwrap();
    for (line, text) in lines.iter().zip([&ids, &plain]) {
        let want = serde_json::to_value(core.detect(text).unwrap()).unwrap();
        let mut got = line.clone();
        got.as_object_mut().unwrap().remove("line");
        assert_eq!(got, want);
    }
    assert_eq!(lines[0]["is_watermarked"], true);
    assert_eq!(lines[1]["is_watermarked"], false);

    // --eos-id: ngrams from the first EOS on are not scored, as the core's with_eos masks them.
    let eos = ids[150];
    let out = greenmark()
        .args(["detect", "--json", "--eos-id"])
        .arg(eos.to_string())
        .arg("--synthid-config")
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let first: Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let masked = core.clone().with_eos(Some(eos)).detect(&ids).unwrap();
    assert!(masked.n_skipped_eos > 0);
    assert_eq!(first["n_skipped_eos"], masked.n_skipped_eos);
    assert_eq!(
        first["weighted"],
        serde_json::to_value(&masked.weighted).unwrap()
    );
    let out = greenmark()
        .args(["detect", "--eos-id", "2", "--vllm-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "--eos-id needs --synthid-config: {out:?}"
    );

    let out = greenmark()
        .args(["detect", "--exit-code", "--synthid-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(10), "{out:?}");
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("WATERMARKED") && table.contains("1 of 2 answers"),
        "{table}"
    );
}

#[test]
fn bad_synthid_configs_and_flags_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("ids.jsonl");
    std::fs::write(&input, "[1, 2, 3, 4, 5]\n").unwrap();
    let cfg = dir.path().join("bad.json");
    std::fs::write(&cfg, r#"{"ngram_len": 5, "keys": []}"#).unwrap();
    let out = greenmark()
        .args(["detect", "--synthid-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("keys") && err.contains("SynthID config"),
        "{err}"
    );

    let out = greenmark()
        .args(["detect", "--synthid-config"])
        .arg(dir.path().join("missing.json"))
        .arg(&input)
        .output()
        .unwrap();
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("does not exist"));

    std::fs::write(&cfg, CONFIG).unwrap();
    let out = greenmark()
        .args(["detect", "--span", "--synthid-config"])
        .arg(&cfg)
        .arg(&input)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("--span does not apply to --synthid-config"));
}
