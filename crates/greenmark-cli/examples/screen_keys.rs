//! How much a fixed key's realized false-positive rate varies on human text, and what the
//! window, dedup and chunk length change: screens many random keys on the reference corpus
//! (`greenmark_lm::corpus`, four genres) and prints, per setting and genre, the distribution
//! over keys of the realized rate at p < 1e-3 and the share of keys the screen rejects. The
//! figures of `docs/keys.md` come from this program.
//!
//! ```text
//! cargo run --release -p greenmark-cli --example screen_keys -- [--keys 200] [--out FILE.json]
//! ```
//!
//! Keys are `Key::from_bytes` of a seeded `StdRng` stream, so a run is reproducible. Text is
//! tokenized with the SmolLM2 tokenizer (committed as test data) and normalized as
//! `greenmark detect` does.

use std::path::Path;
use std::time::Instant;

use greenmark::screen::{ScreenCorpus, ScreenOptions, ScreenReport};
use greenmark::text::TextDetector;
use greenmark::{Detector, Key, Scheme, WatermarkConfig};
use rand::{RngCore, SeedableRng};
use serde_json::json;

type Error = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// One setting measured: scheme, dedup, chunk length.
struct Setting {
    name: &'static str,
    scheme: Scheme,
    dedup: bool,
    chunk: usize,
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}

fn run() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut keys = 200usize;
    let mut out = None;
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--keys" => keys = args.get(i + 1).ok_or("--keys needs a number")?.parse()?,
            "--out" => out = Some(args.get(i + 1).ok_or("--out needs a file")?.clone()),
            other => return Err(format!("unknown argument {other}").into()),
        }
        i += 2;
    }

    let started = Instant::now();
    let genres = greenmark_lm::corpus::reference_corpus(&mut |l| eprintln!("{l}"))?;
    let tokenizer = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../greenmark/tests/data/smollm2-tokenizer.json");
    let config = WatermarkConfig::new(49152)?;
    let text = TextDetector::from_file(&tokenizer, &Key::from_bytes([0; 32]), config.clone())?;
    let mut tokenized = Vec::new();
    for g in &genres {
        let docs: Vec<Vec<u32>> = g
            .documents
            .iter()
            .map(|(_, body)| text.tokens(body).map(|t| t.ids))
            .collect::<Result<_, _>>()?;
        let n: usize = docs.iter().map(Vec::len).sum();
        eprintln!(
            "{}: {} documents, {} bytes, {n} tokens",
            g.name,
            docs.len(),
            g.bytes()
        );
        tokenized.push((g.name, docs));
    }
    eprintln!("tokenized in {:.1} s", started.elapsed().as_secs_f64());

    let settings = [
        Setting {
            name: "lefthash h=1, dedup, 800",
            scheme: Scheme::LeftHash { window: 1 },
            dedup: true,
            chunk: 800,
        },
        Setting {
            name: "lefthash h=1, no dedup, 800",
            scheme: Scheme::LeftHash { window: 1 },
            dedup: false,
            chunk: 800,
        },
        Setting {
            name: "lefthash h=1, dedup, 200",
            scheme: Scheme::LeftHash { window: 1 },
            dedup: true,
            chunk: 200,
        },
        Setting {
            name: "lefthash h=4, dedup, 800",
            scheme: Scheme::LeftHash { window: 4 },
            dedup: true,
            chunk: 800,
        },
        Setting {
            name: "lefthash h=4, no dedup, 800",
            scheme: Scheme::LeftHash { window: 4 },
            dedup: false,
            chunk: 800,
        },
    ];
    let mut results = Vec::new();
    for setting in &settings {
        let config = WatermarkConfig::builder(49152)
            .scheme(setting.scheme)
            .build()?;
        let mut corpus = ScreenCorpus::new(setting.chunk)?;
        for (name, docs) in &tokenized {
            corpus.add_genre(name, docs)?;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(2026);
        let t = Instant::now();
        let mut reports: Vec<ScreenReport> = Vec::with_capacity(keys);
        for _ in 0..keys {
            let mut bytes = [0u8; 32];
            rng.fill_bytes(&mut bytes);
            let detector =
                Detector::new(&Key::from_bytes(bytes), config.clone()).with_dedup(setting.dedup);
            reports.push(corpus.screen(&detector, &ScreenOptions::default())?);
        }
        let seconds = t.elapsed().as_secs_f64();
        println!(
            "\n## {} ({keys} keys, {:.1} s, {:.0} ms per key)",
            setting.name,
            seconds,
            1e3 * seconds / keys as f64
        );
        println!(
            "| genre | chunks | mean tuples | expected rate at 1e-3 | mean rate | median | 90th pct | 99th pct | max | keys over 3x nominal | rejected (KS / tail / either) | mean rate, passed / rejected keys | max rate, passed keys |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        let mut genre_rows = Vec::new();
        for (gi, (name, _)) in tokenized.iter().enumerate() {
            let chunks = reports[0].genres[gi].n_chunks;
            let mut rates: Vec<f64> = reports.iter().map(|r| r.genres[gi].fpr[1].rate).collect();
            rates.sort_by(f64::total_cmp);
            let mean = rates.iter().sum::<f64>() / rates.len() as f64;
            let expected = reports[0].genres[gi].fpr[1].expected / chunks as f64;
            let over = rates.iter().filter(|&&r| r > 3e-3).count();
            let ks = reports.iter().filter(|r| !r.genres[gi].ks.passed).count();
            let tail = reports.iter().filter(|r| !r.genres[gi].tail.passed).count();
            let either = reports.iter().filter(|r| !r.genres[gi].passed).count();
            let mean_scored = reports[0].genres[gi].mean_scored;
            let rates_1e2: Vec<f64> = reports.iter().map(|r| r.genres[gi].fpr[0].rate).collect();
            let mean_1e2 = rates_1e2.iter().sum::<f64>() / rates_1e2.len() as f64;
            let max_1e2 = rates_1e2.iter().copied().fold(0.0, f64::max);
            let at_1e6: u64 = reports.iter().map(|r| r.genres[gi].fpr[2].count).sum();
            let of = |passed: bool| -> Vec<f64> {
                reports
                    .iter()
                    .filter(|r| r.passed == passed)
                    .map(|r| r.genres[gi].fpr[1].rate)
                    .collect()
            };
            let mean_of = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
            let (passed, failed) = (of(true), of(false));
            let passed_max = passed.iter().copied().fold(0.0, f64::max);
            println!(
                "| {name} | {chunks} | {mean_scored:.0} | {:.3}% | {:.3}% | {:.3}% | {:.3}% | {:.3}% | {:.3}% | {over} | {ks} / {tail} / {either} | {:.3}% / {:.3}% | {:.3}% |",
                100.0 * expected,
                100.0 * mean,
                100.0 * quantile(&rates, 0.5),
                100.0 * quantile(&rates, 0.9),
                100.0 * quantile(&rates, 0.99),
                100.0 * rates[rates.len() - 1],
                100.0 * mean_of(&passed),
                100.0 * mean_of(&failed),
                100.0 * passed_max,
            );
            genre_rows.push(json!({
                "genre": name, "chunks": chunks, "mean_scored": mean_scored,
                "expected_rate_1e3": expected, "mean_rate_1e3": mean,
                "median_rate_1e3": quantile(&rates, 0.5), "p90_rate_1e3": quantile(&rates, 0.9),
                "p99_rate_1e3": quantile(&rates, 0.99), "max_rate_1e3": rates[rates.len() - 1],
                "keys_over_3x": over, "rejected_ks": ks, "rejected_tail": tail,
                "rejected": either, "mean_rate_1e2": mean_1e2, "max_rate_1e2": max_1e2,
                "count_1e6_all_keys": at_1e6,
                "mean_rate_1e3_passed": mean_of(&passed), "mean_rate_1e3_rejected": mean_of(&failed),
                "max_rate_1e3_passed": passed_max,
            }));
        }
        let rejected = reports.iter().filter(|r| !r.passed).count();
        let worst = reports
            .iter()
            .map(|r| r.overall[1].rate)
            .fold(0.0, f64::max);
        let passed_worst = reports
            .iter()
            .filter(|r| r.passed)
            .flat_map(|r| r.genres.iter().map(|g| g.fpr[1].rate))
            .fold(0.0, f64::max);
        println!(
            "keys rejected by the screen (level 0.01, 8 tests): {rejected} of {keys}; worst overall rate at 1e-3: {:.3}%; worst genre rate at 1e-3 among keys that passed: {:.3}%",
            100.0 * worst,
            100.0 * passed_worst
        );
        results.push(json!({
            "setting": setting.name, "keys": keys, "seconds": seconds, "genres": genre_rows,
            "rejected": rejected, "worst_overall_rate_1e3": worst,
            "worst_genre_rate_1e3_among_passed": passed_worst,
        }));
    }
    if let Some(path) = out {
        std::fs::write(&path, serde_json::to_string_pretty(&results)? + "\n")?;
        eprintln!("wrote {path}");
    }
    Ok(())
}
