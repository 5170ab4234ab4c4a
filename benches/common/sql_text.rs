//! Statement text shared by the raw baselines (`benches/reservations.rs`,
//! `benches/common/minimal.rs`, `benches/common/same_statements.rs`).
#![allow(dead_code)]

/// A statement written once per fixture, kept for the life of the process
/// (sqlx and rusqlite cache prepared statements by their text).
pub fn leak(s: String) -> &'static str {
    s.leak()
}

/// `($1, …, $k), ($k+1, …)`: `rows` groups of `width` numbered placeholders
/// introduced by `sigil` (`$` or `?`; SQLite reads both as numbered).
pub fn values(sigil: char, width: usize, rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let group: Vec<String> = (1..=width)
                .map(|i| format!("{sigil}{}", r * width + i))
                .collect();
            format!("({})", group.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}
