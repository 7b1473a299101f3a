//! Detection throughput, in tokens/s, on uniform random tokens (V = 49152, lefthash h=1, the
//! defaults): 1k and 1M tokens, with dedup on and off, through `detect_with` and one reused
//! `DetectCache` (allocation-free once it has grown, as a server would run it).

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use greenmark::{DetectCache, Detector, WatermarkConfig};
use greenmark_benches::{criterion, key, print_medians, random_tokens, rng};

const VOCAB: u32 = 49_152;

fn detect(c: &mut Criterion) -> Vec<(String, u64)> {
    let config = WatermarkConfig::new(u64::from(VOCAB)).expect("valid config");
    let mut group = c.benchmark_group("detect");
    let mut lines = Vec::new();
    for (n, label) in [(1_000usize, "1k"), (1_000_000, "1M")] {
        let tokens = random_tokens(n, VOCAB, &mut rng(400 + n as u64));
        group.throughput(Throughput::Elements(n as u64));
        // A 1M-token call takes milliseconds: flat sampling keeps the sample count from
        // multiplying the run time.
        group.sampling_mode(if n >= 100_000 {
            SamplingMode::Flat
        } else {
            SamplingMode::Auto
        });
        for dedup in [true, false] {
            let detector = Detector::new(&key(), config.clone()).with_dedup(dedup);
            let mut cache = DetectCache::new();
            let first = detector
                .detect_with(&mut cache, &tokens, &[])
                .expect("detect");
            assert_eq!(first.n_tokens, n);
            let name = if dedup { "dedup" } else { "no_dedup" };
            group.bench_function(BenchmarkId::new(name, label), |b| {
                b.iter(|| detector.detect_with(&mut cache, black_box(&tokens), black_box(&[])))
            });
            lines.push((format!("detect/{name}/{label}"), n as u64));
        }
    }
    group.finish();
    lines
}

fn main() {
    let mut c = criterion();
    let lines = detect(&mut c);
    c.final_summary();
    print_medians("detection", &lines);
}
