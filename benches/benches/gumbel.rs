//! The Gumbel family (vLLM-compatible): detection throughput in tokens/s (1k and 100k uniform
//! random tokens, context width 4, dedup on and off, single and dual key) through
//! `detect_with` and one reused cache, and one watermarked sampling step over a logits row
//! (V = 49152 and 128256) beside the memory floor of one pass over the row.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use greenmark::gumbel::{
    Algorithm, GumbelCache, GumbelConfig, GumbelDetector, GumbelKey, GumbelWatermarker, PAD,
};
use greenmark_benches::{criterion, floor_pass, print_medians, random_logits, random_tokens, rng};

const VOCAB: u32 = 49_152;

fn detect(c: &mut Criterion) -> Vec<(String, u64)> {
    let mut group = c.benchmark_group("gumbel_detect");
    let mut lines = Vec::new();
    for (n, label) in [(1_000usize, "1k"), (100_000, "100k")] {
        let tokens = random_tokens(n, VOCAB, &mut rng(700 + n as u64));
        group.throughput(Throughput::Elements(n as u64));
        for (algorithm, alg_name) in [
            (Algorithm::Gumbel, "gumbel"),
            (Algorithm::DualKeyGumbel, "dual"),
        ] {
            for dedup in [true, false] {
                let detector =
                    GumbelDetector::new(GumbelKey::vllm(42), GumbelConfig::new(algorithm))
                        .expect("valid config")
                        .with_dedup(dedup);
                let mut cache = GumbelCache::new();
                assert_eq!(
                    detector
                        .detect_with(&tokens, &mut cache)
                        .expect("detect")
                        .n_tokens,
                    n
                );
                // Criterion turns a "/" inside a function id into "_"; name it so from the start.
                let name = format!("{alg_name}_{}", if dedup { "dedup" } else { "no_dedup" });
                group.bench_function(BenchmarkId::new(&name, label), |b| {
                    b.iter(|| detector.detect_with(black_box(&tokens), &mut cache))
                });
                lines.push((format!("gumbel_detect/{name}/{label}"), n as u64));
            }
        }
    }
    group.finish();
    lines
}

fn sample(c: &mut Criterion) -> Vec<(String, u64)> {
    let mut group = c.benchmark_group("gumbel_sample");
    let mut lines = Vec::new();
    let wm = GumbelWatermarker::new(GumbelKey::vllm(42), GumbelConfig::default()).expect("valid");
    for vocab in [49_152u32, 128_256] {
        let logits = random_logits(vocab as usize, &mut rng(800 + u64::from(vocab)));
        group.throughput(Throughput::Elements(u64::from(vocab)));
        let context = [17u32, 4, 99, PAD];
        group.bench_function(BenchmarkId::new("row", vocab), |b| {
            b.iter(|| {
                wm.sample(
                    black_box(&logits),
                    black_box(&context),
                    greenmark::gumbel::KeyChoice::A,
                )
            })
        });
        let mut row = logits.clone();
        group.bench_function(BenchmarkId::new("floor", vocab), |b| {
            b.iter(|| floor_pass(black_box(&mut row)))
        });
        lines.push((format!("gumbel_sample/row/{vocab}"), u64::from(vocab)));
        lines.push((format!("gumbel_sample/floor/{vocab}"), u64::from(vocab)));
    }
    group.finish();
    lines
}

fn main() {
    let mut c = criterion();
    let mut lines = detect(&mut c);
    lines.extend(sample(&mut c));
    c.final_summary();
    print_medians("gumbel", &lines);
}
