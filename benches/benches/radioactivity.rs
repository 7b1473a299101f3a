//! Radioactivity tape throughput, in tuples/s on one core: closed mode (`score_text`) over a
//! corpus of 1,000 random texts of 1,000 tokens (V = 49152; KGW lefthash h=1 and h=2, and the
//! Gumbel tape at context width 4), one key, with 1,000 prompt windows excluded; a fresh tape
//! per iteration, so the hash set grows from empty to ~1M fingerprints as in a real run.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use greenmark::gumbel::{GumbelConfig, GumbelKey};
use greenmark::radioactivity::{RadioactivityTest, TestOptions};
use greenmark::{Scheme, WatermarkConfig};
use greenmark_benches::{criterion, key, print_medians, random_tokens, rng};

const VOCAB: u32 = 49_152;

/// Builds a fresh test (one per iteration).
type MakeTest = dyn Fn() -> greenmark::Result<RadioactivityTest>;

fn closed(c: &mut Criterion) -> Vec<(String, u64)> {
    let mut group = c.benchmark_group("radioactivity");
    group.sampling_mode(SamplingMode::Flat);
    let texts: Vec<Vec<u32>> = (0..1000)
        .map(|i| random_tokens(1000, VOCAB, &mut rng(900 + i)))
        .collect();
    let prompts = random_tokens(1_000, VOCAB, &mut rng(899));
    let n: u64 = texts.iter().map(|t| t.len() as u64).sum();
    group.throughput(Throughput::Elements(n));
    let mut lines = Vec::new();
    let kgw = |window| {
        let config = WatermarkConfig::builder(u64::from(VOCAB))
            .scheme(Scheme::LeftHash { window })
            .build()
            .expect("valid config");
        move || RadioactivityTest::new(&[key()], config.clone(), TestOptions::default())
    };
    let gumbel = || {
        RadioactivityTest::gumbel(
            &[GumbelKey::vllm(42)],
            GumbelConfig::default(),
            VOCAB,
            TestOptions::default(),
        )
    };
    let tests: [(&str, Box<MakeTest>); 3] = [
        ("h1", Box::new(kgw(1))),
        ("h2", Box::new(kgw(2))),
        ("gumbel_w4", Box::new(gumbel)),
    ];
    for (name, make) in &tests {
        group.bench_function(BenchmarkId::new("closed_1M_tuples", name), |b| {
            b.iter(|| {
                let mut test = make().expect("test");
                test.exclude_prompt(&prompts).expect("prompt");
                for t in &texts {
                    test.score_text(black_box(t), &[]).expect("score");
                }
                test.finish()
            })
        });
        lines.push((format!("radioactivity/closed_1M_tuples/{name}"), n));
    }
    group.finish();
    lines
}

fn main() {
    let mut c = criterion();
    let lines = closed(&mut c);
    c.final_summary();
    print_medians("radioactivity tape", &lines);
}
