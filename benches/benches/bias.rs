//! Biasing throughput, in logits/s, each bench beside its memory floor ([`floor_pass`]: the
//! same floats read, added to and written once).
//!
//! - `bias_row`: one row, lefthash h=1 with the defaults, at V = 32000, 49152, 128256, 256000.
//! - `bias_batch`: 1, 16 and 64 rows at V = 128256 through `bias_batch` (rows run on the rayon
//!   pool when there are more than one; the floor is one thread).
//! - `green_mask`: the bitmask at V = 128256 (the floor is a pass over a row of V logits,
//!   the work a host-side bias would do instead).
//! - `bias_selfhash`: selfhash (window 4, top 40) on one row at V = 49152.
//!
//! The same row is biased again on every iteration: green logits keep growing by delta, which
//! stays finite for any run length criterion picks here, and costs the same each time. Every
//! context is checked to be [`BiasOutcome::Biased`] before timing (a repeated window would be
//! skipped and time nothing).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput};
use greenmark::{BiasOutcome, Scheme, WatermarkConfig, Watermarker};
use greenmark_benches::{
    criterion, floor_pass, key, print_ratios, random_logits, rng, Ratio, BATCH_VOCAB, VOCABS,
};

/// A context whose last token does not occur earlier, so no scheme skips it as repeated.
const CONTEXT: [u32; 5] = [1, 2, 3, 4, 5];

fn watermarker(vocab: u32, scheme: Scheme) -> Watermarker {
    let config = WatermarkConfig::builder(u64::from(vocab))
        .scheme(scheme)
        .build()
        .expect("valid config");
    Watermarker::new(&key(), config)
}

fn assert_biased(wm: &Watermarker, context: &[u32]) {
    let mut row = vec![0.0f32; wm.config().vocab_size() as usize];
    let outcome = wm.bias(&mut row, context).expect("bias");
    assert_eq!(outcome, BiasOutcome::Biased, "context {context:?}");
}

fn ratio(group: &str, bench: &str, param: impl std::fmt::Display, elements: u64) -> Ratio {
    Ratio {
        bench: format!("{group}/{bench}/{param}"),
        floor: format!("{group}/floor/{param}"),
        elements,
    }
}

fn bias_row(c: &mut Criterion) -> Vec<Ratio> {
    let mut group = c.benchmark_group("bias_row");
    let mut lines = Vec::new();
    for (i, &vocab) in VOCABS.iter().enumerate() {
        let wm = watermarker(vocab, Scheme::LeftHash { window: 1 });
        let context = &CONTEXT[..3];
        assert_biased(&wm, context);
        let mut row = random_logits(vocab as usize, &mut rng(i as u64));
        group.throughput(Throughput::Elements(u64::from(vocab)));
        group.bench_function(BenchmarkId::new("lefthash", vocab), |b| {
            b.iter(|| wm.bias(black_box(&mut row), black_box(context)))
        });
        group.bench_function(BenchmarkId::new("floor", vocab), |b| {
            b.iter(|| floor_pass(black_box(&mut row)))
        });
        lines.push(ratio("bias_row", "lefthash", vocab, u64::from(vocab)));
    }
    group.finish();
    lines
}

fn bias_batch(c: &mut Criterion) -> Vec<Ratio> {
    let mut group = c.benchmark_group("bias_batch");
    let mut lines = Vec::new();
    let vocab = BATCH_VOCAB as usize;
    let wm = watermarker(BATCH_VOCAB, Scheme::LeftHash { window: 1 });
    for rows in [1usize, 16, 64] {
        // Row r's context ends in a token of its own (3 + r), never seen earlier in it.
        let contexts: Vec<Vec<u32>> = (0..rows as u32).map(|r| vec![1, 2, 3 + r]).collect();
        for context in &contexts {
            assert_biased(&wm, context);
        }
        let mut logits = random_logits(rows * vocab, &mut rng(100 + rows as u64));
        let elements = (rows * vocab) as u64;
        group.throughput(Throughput::Elements(elements));
        group.bench_function(BenchmarkId::new("lefthash", rows), |b| {
            b.iter(|| wm.bias_batch(black_box(&mut logits), black_box(&contexts)))
        });
        group.bench_function(BenchmarkId::new("floor", rows), |b| {
            b.iter(|| floor_pass(black_box(&mut logits)))
        });
        lines.push(ratio("bias_batch", "lefthash", rows, elements));
    }
    group.finish();
    lines
}

fn green_mask(c: &mut Criterion) -> Vec<Ratio> {
    let mut group = c.benchmark_group("green_mask");
    let vocab = BATCH_VOCAB;
    let wm = watermarker(vocab, Scheme::LeftHash { window: 1 });
    let context = &CONTEXT[..3];
    let mut mask = vec![0u64; (vocab as usize).div_ceil(64)];
    let outcome = wm.green_mask(context, &mut mask).expect("mask");
    assert_eq!(outcome, BiasOutcome::Biased);
    let mut row = random_logits(vocab as usize, &mut rng(200));
    group.throughput(Throughput::Elements(u64::from(vocab)));
    group.bench_function(BenchmarkId::new("lefthash", vocab), |b| {
        b.iter(|| wm.green_mask(black_box(context), black_box(&mut mask)))
    });
    group.bench_function(BenchmarkId::new("floor", vocab), |b| {
        b.iter(|| floor_pass(black_box(&mut row)))
    });
    group.finish();
    vec![ratio("green_mask", "lefthash", vocab, u64::from(vocab))]
}

fn bias_selfhash(c: &mut Criterion) -> Vec<Ratio> {
    let mut group = c.benchmark_group("bias_selfhash");
    let vocab = 49_152u32;
    let wm = watermarker(
        vocab,
        Scheme::SelfHash {
            window: 4,
            top_k: 40,
        },
    );
    assert_biased(&wm, &CONTEXT);
    let mut row = random_logits(vocab as usize, &mut rng(300));
    group.throughput(Throughput::Elements(u64::from(vocab)));
    group.bench_function(BenchmarkId::new("selfhash", vocab), |b| {
        b.iter(|| wm.bias(black_box(&mut row), black_box(&CONTEXT)))
    });
    group.bench_function(BenchmarkId::new("floor", vocab), |b| {
        b.iter(|| floor_pass(black_box(&mut row)))
    });
    group.finish();
    vec![ratio("bias_selfhash", "selfhash", vocab, u64::from(vocab))]
}

fn main() {
    let mut c = criterion();
    let mut lines = bias_row(&mut c);
    lines.extend(bias_batch(&mut c));
    lines.extend(green_mask(&mut c));
    lines.extend(bias_selfhash(&mut c));
    c.final_summary();
    print_ratios("bias vs memory floor", &lines);
}
