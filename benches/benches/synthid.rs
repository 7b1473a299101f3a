//! SynthID Text: detection throughput in tokens/s (1k and 100k uniform random tokens, ngram_len
//! 5, depth 9 and 30, sampling table 2^16) through `detect_with` and one reused cache, and one
//! watermarking step over a logits row (V = 49152 and 128256, depth 9 and 30) beside the memory
//! floor of one pass over the row. transformers' side of the comparison is
//! `benches/python/bench_synthid.py`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use greenmark::synthid::{
    SynthIdCache, SynthIdConfig, SynthIdDetector, SynthIdScratch, SynthIdWatermarker,
};
use greenmark_benches::{criterion, floor_pass, print_medians, random_logits, random_tokens, rng};

const VOCAB: u32 = 49_152;

fn config(depth: usize) -> SynthIdConfig {
    SynthIdConfig::new(5, (0..depth as i64).map(|d| 1000 + 37 * d).collect()).expect("valid")
}

fn detect(c: &mut Criterion) -> Vec<(String, u64)> {
    let mut group = c.benchmark_group("synthid_detect");
    let mut lines = Vec::new();
    for (n, label) in [(1_000usize, "1k"), (100_000, "100k")] {
        let tokens = random_tokens(n, VOCAB, &mut rng(900 + n as u64));
        group.throughput(Throughput::Elements(n as u64));
        for depth in [9usize, 30] {
            let detector = SynthIdDetector::new(config(depth)).expect("valid");
            let mut cache = SynthIdCache::new();
            let d = detector.detect_with(&tokens, &mut cache).expect("detect");
            assert_eq!(d.n_tokens, n);
            let name = format!("depth{depth}");
            group.bench_function(BenchmarkId::new(&name, label), |b| {
                b.iter(|| detector.detect_with(black_box(&tokens), &mut cache))
            });
            lines.push((format!("synthid_detect/{name}/{label}"), n as u64));
        }
    }
    group.finish();
    lines
}

fn step(c: &mut Criterion) -> Vec<(String, u64)> {
    let mut group = c.benchmark_group("synthid_step");
    let mut lines = Vec::new();
    for vocab in [49_152u32, 128_256] {
        let logits = random_logits(vocab as usize, &mut rng(950 + u64::from(vocab)));
        group.throughput(Throughput::Elements(u64::from(vocab)));
        for depth in [9usize, 30] {
            let wm = SynthIdWatermarker::new(config(depth)).expect("valid");
            let mut scratch = SynthIdScratch::new();
            let mut row = logits.clone();
            let name = format!("row_depth{depth}");
            group.bench_function(BenchmarkId::new(&name, vocab), |b| {
                b.iter(|| {
                    // A fresh state each time: the first call of a row is always watermarked.
                    let mut state = wm.state();
                    row.copy_from_slice(&logits);
                    wm.apply(&mut state, 0, black_box(&mut row), &mut scratch)
                })
            });
            lines.push((format!("synthid_step/{name}/{vocab}"), u64::from(vocab)));
        }
        let mut row = logits.clone();
        group.bench_function(BenchmarkId::new("floor", vocab), |b| {
            b.iter(|| floor_pass(black_box(&mut row)))
        });
        lines.push((format!("synthid_step/floor/{vocab}"), u64::from(vocab)));
    }
    group.finish();
    lines
}

fn main() {
    let mut c = criterion();
    let mut lines = detect(&mut c);
    lines.extend(step(&mut c));
    c.final_summary();
    print_medians("synthid", &lines);
}
