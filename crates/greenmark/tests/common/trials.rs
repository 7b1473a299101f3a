//! Seeded trials on two threads, for the statistical tests: trial `i` draws from its own RNG
//! (ChaCha8 from the test's seed, stream `i`), so a trial's result does not depend on the
//! thread that ran it, and a run is the same on every machine.
#![allow(dead_code)]

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Worker threads (CI has two cores).
pub const THREADS: usize = 2;

/// Runs `f(i, rng)` for `i in 0..n` on [`THREADS`] threads, with an RNG per trial (seed,
/// stream `i`), and returns the results in trial order.
pub fn trials<T: Send>(
    n: usize,
    seed: u64,
    f: impl Fn(usize, &mut ChaCha8Rng) -> T + Sync,
) -> Vec<T> {
    let chunks: Vec<Vec<T>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let f = &f;
                scope.spawn(move || {
                    (t..n)
                        .step_by(THREADS)
                        .map(|i| {
                            let mut rng = ChaCha8Rng::seed_from_u64(seed);
                            rng.set_stream(i as u64);
                            f(i, &mut rng)
                        })
                        .collect::<Vec<T>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut iters: Vec<_> = chunks.into_iter().map(Vec::into_iter).collect();
    (0..n).map(|i| iters[i % THREADS].next().unwrap()).collect()
}
