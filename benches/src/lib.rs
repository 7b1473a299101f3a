//! Shared fixtures for greenmark's criterion benches.
//!
//! - [`key`], [`rng`], [`random_logits`], [`random_tokens`]: deterministic inputs (a fixed key,
//!   ChaCha8 streams from one seed), so two runs time the same work.
//! - [`floor_pass`]: the "memory floor" a bias pass is compared with: one read-add-write of
//!   every float, vectorized as widely as the library's own loop (same runtime dispatch).
//! - [`criterion`]: the short measurement settings every bench uses (the whole
//!   `cargo bench -p greenmark-benches` takes a few minutes on 2 cores).
//! - [`print_ratios`]: after a run, reads criterion's median estimates back and prints each
//!   bench next to its floor, since criterion itself has no notion of a ratio.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::Criterion;
use greenmark::Key;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The seed of every random input in the benches.
pub const SEED: u64 = 0x6772_6565_6e6d_6172;

/// The vocabulary sizes of the one-row bias benches (GPT-2-ish up to Gemma-sized).
pub const VOCABS: [u32; 4] = [32_000, 49_152, 128_256, 256_000];

/// The vocabulary of the batch, green-mask benches (Llama 3).
pub const BATCH_VOCAB: u32 = 128_256;

/// The fixed key of the benches (its bits do not affect timings).
pub fn key() -> Key {
    Key::from_bytes([0x42; 32])
}

/// A ChaCha8 generator seeded with [`SEED`] on its own `stream`, so fixtures do not share
/// random numbers by accident.
pub fn rng(stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    rng.set_stream(stream);
    rng
}

/// `n` logits drawn uniformly from `[-12, 12)`, the range of a real model's row.
pub fn random_logits(n: usize, rng: &mut impl Rng) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-12.0f32..12.0)).collect()
}

/// `n` token ids drawn uniformly from `0..vocab`.
pub fn random_tokens(n: usize, vocab: u32, rng: &mut impl Rng) -> Vec<u32> {
    (0..n).map(|_| rng.gen_range(0..vocab)).collect()
}

/// The memory floor of a bias pass: `x += 0.0` on every float of `row`, once. The `0.0` goes
/// through [`black_box`], so the compiler must load, add and store each float, and the loop is
/// compiled for AVX-512F / AVX2 / baseline and picked at run time like the library's, so the
/// ratio compares the library with the same vector width, not with an SSE2 loop.
pub fn floor_pass(row: &mut [f32]) {
    let zero = black_box(0.0f32);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F, checked just above.
            unsafe { add_avx512(row, zero) };
            black_box(row);
            return;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            unsafe { add_avx2(row, zero) };
            black_box(row);
            return;
        }
    }
    add_portable(row, zero);
    black_box(row);
}

#[inline(always)]
fn add_portable(row: &mut [f32], z: f32) {
    for x in row.iter_mut() {
        *x += z;
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_avx2(row: &mut [f32], z: f32) {
    add_portable(row, z)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn add_avx512(row: &mut [f32], z: f32) {
    add_portable(row, z)
}

/// The widest vector path this CPU takes in the library's `add_green` dispatch (and in
/// [`floor_pass`]).
pub fn dispatch_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512f";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    "portable"
}

/// Criterion with the benches' settings: 30 samples, 1 s warm-up, 2 s measurement, and the
/// command line (filters, `--bench`, baselines) applied on top.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// Whether the binary runs as a measuring benchmark (`cargo bench`) rather than as a smoke
/// test (`cargo test --benches`, `cargo bench -- --test`), a listing or a profile run, where
/// criterion writes no estimates.
pub fn benchmarking() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| matches!(a.as_str(), "--test" | "--list" | "--profile-time"))
}

/// Where criterion writes its estimates, found as criterion finds it: `$CRITERION_HOME`, then
/// `$CARGO_TARGET_DIR/criterion`, then the target directory this binary was built in
/// (`<target>/<profile>/deps/<bench>`).
pub fn criterion_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return Some(PathBuf::from(home));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Some(Path::new(&target).join("criterion"));
    }
    let exe = std::env::current_exe().ok()?;
    Some(exe.ancestors().nth(3)?.join("criterion"))
}

/// The median time per iteration, in nanoseconds, of criterion's latest run of `bench` (the
/// path criterion prints: `group/function/parameter`).
pub fn median_ns(bench: &str) -> Option<f64> {
    let path = criterion_dir()?
        .join(bench)
        .join("new")
        .join("estimates.json");
    let text = std::fs::read_to_string(path).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// One line of a [`print_ratios`] table.
#[derive(Debug, Clone)]
pub struct Ratio {
    /// The measured bench's path, as criterion prints it.
    pub bench: String,
    /// Its floor's path.
    pub floor: String,
    /// Elements (logits or tokens) per iteration, for the throughput column.
    pub elements: u64,
}

/// Prints, for each line, the bench's median time and throughput, its floor's, and the ratio,
/// from the estimates criterion just wrote. Silent unless [`benchmarking`].
pub fn print_ratios(title: &str, lines: &[Ratio]) {
    if !benchmarking() || lines.is_empty() {
        return;
    }
    println!("\n{title} (medians; dispatch path: {})", dispatch_path());
    println!(
        "{:<40} {:>12} {:>12} {:>12} {:>12} {:>7}",
        "bench", "median", "Melem/s", "floor", "floor Me/s", "ratio"
    );
    for line in lines {
        let (Some(t), Some(f)) = (median_ns(&line.bench), median_ns(&line.floor)) else {
            println!("{:<40} (no estimates: filtered out?)", line.bench);
            continue;
        };
        let rate = |ns: f64| line.elements as f64 / ns * 1e3;
        println!(
            "{:<40} {:>12} {:>12.0} {:>12} {:>12.0} {:>7.2}",
            line.bench,
            format_ns(t),
            rate(t),
            format_ns(f),
            rate(f),
            t / f
        );
    }
}

/// Prints each bench's median time and throughput (no floor). Silent unless [`benchmarking`].
pub fn print_medians(title: &str, lines: &[(String, u64)]) {
    if !benchmarking() || lines.is_empty() {
        return;
    }
    println!("\n{title} (medians)");
    println!("{:<40} {:>12} {:>12}", "bench", "median", "Melem/s");
    for (bench, elements) in lines {
        match median_ns(bench) {
            Some(t) => println!(
                "{:<40} {:>12} {:>12.1}",
                bench,
                format_ns(t),
                *elements as f64 / t * 1e3
            ),
            None => println!("{bench:<40} (no estimates: filtered out?)"),
        }
    }
}

/// `ns` with a unit that keeps three or four significant digits.
pub fn format_ns(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} us", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}
