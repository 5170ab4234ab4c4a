//! Interleaved rounds shared by the benches that compare two paths in one
//! run (`authorize`, `metering`): each path runs for a short budget, in
//! turn, and the two are compared on the medians of their rounds.

use std::time::{Duration, Instant};

/// Runs `f` for about `budget`, returning the mean time per call.
pub async fn batch<F, Fut>(budget: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    let mut n = 0_u32;
    while start.elapsed() < budget || n == 0 {
        f().await;
        n += 1;
    }
    start.elapsed() / n
}

/// The median of the rounds.
pub fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}
