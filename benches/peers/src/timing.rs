//! A plain median-of-samples timer shared by both peer comparisons.
#![allow(dead_code)]

use std::hint::black_box;
use std::time::Instant;

/// Samples taken per measurement.
pub const SAMPLES: usize = 101;

/// The median time of one call of `f`, in nanoseconds: `SAMPLES` samples, each
/// timing enough back-to-back calls to last about a millisecond, after a
/// warm-up of about 200 ms.
pub fn median_ns<R>(mut f: impl FnMut() -> R) -> f64 {
    let start = Instant::now();
    let mut calls: u64 = 0;
    while start.elapsed().as_millis() < 200 {
        black_box(f());
        calls += 1;
    }
    let per_call = start.elapsed().as_nanos() as f64 / calls as f64;
    let batch = ((1_000_000.0 / per_call) as u64).max(1);
    let mut samples: Vec<f64> = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..batch {
                black_box(f());
            }
            t.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[SAMPLES / 2]
}
