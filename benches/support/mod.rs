//! Shared by the benchmarks: a median timer.

use std::time::Instant;

/// Median nanoseconds per call over `rounds` rounds of `iters` calls.
pub fn measure(rounds: usize, iters: u32, mut f: impl FnMut()) -> f64 {
    let mut per_call: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    per_call[rounds / 2]
}
