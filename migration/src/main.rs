//! `bursar-migration`: applies or reverts bursar's schema.
//!
//! ```text
//! DATABASE_URL=sqlite://bursar.db?mode=rwc cargo run -p bursar-migration -- up
//! DATABASE_URL=postgres://user@host/db cargo run -p bursar-migration -- status
//! ```
//!
//! Subcommands: `up`, `down`, `status`, `fresh`, `refresh`, `reset`.

#[tokio::main]
async fn main() {
    sea_orm_migration::cli::run_cli(bursar_migration::Migrator).await;
}
