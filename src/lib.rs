//! # bursar
//!
//! Govern what your AI agents may **do** and **spend**, tenant by tenant.
//!
//! bursar is a library a host application embeds. It keeps, per tenant, who may
//! act (members, roles, agents and their API keys), what is allowed
//! ([policies](policy)), how much may be spent ([budgets](budget) with atomic
//! [reservations](store::Reservations)), what needs a human (approval requests),
//! and what happened (an exact ledger and a hash-chained [audit log](audit)).
//! Everything is persisted through SeaORM: in-memory or file SQLite by default,
//! PostgreSQL in production.
//!
//! ```
//! use bursar::money::{Currency, Money};
//! use bursar::policy::{Outcome, Request, SpendingControls};
//! use bursar::store::{AgentRepository, NewAgent, NewTenant, ReservationRepository, TenantRepository};
//! use rust_decimal::Decimal;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), bursar::Error> {
//! let store = bursar::Store::connect("sqlite::memory:").await?; // runs the migrations
//! let tenant = store.tenants().create(NewTenant::new("Acme", "acme").timezone("Europe/Berlin")).await?;
//! let acme = store.tenant(tenant.id); // every call below is confined to Acme
//!
//! let bot = acme.agents().create(NewAgent::new("research-bot")).await?;
//! acme.apply_controls(
//!     &SpendingControls::new(Currency::USD)
//!         .agent(bot.id)
//!         .monthly_limit(Decimal::from(500))
//!         .approval_threshold(Decimal::from(100))
//!         .blocked_merchants(["facebook ads"])
//!         .build()?,
//! )
//! .await?;
//!
//! let purchase = Request::purchase(bot.id, Decimal::from(30), Currency::USD, "GitHub").idempotency_key("req-1");
//! let outcome = acme.authorize(purchase).await?;
//! assert_eq!(outcome.outcome, Outcome::Approved);
//!
//! // The purchase settled for a little less: capture it; the rest returns to the budget.
//! let settled = Money::new(Decimal::new(2950, 2), Currency::USD)?;
//! acme.reservations().capture(outcome.reservation_id()?, settled).await?;
//!
//! let blocked = acme.authorize(Request::purchase(bot.id, Decimal::from(20), Currency::USD, "Facebook Ads")).await?;
//! assert_eq!(blocked.codes().collect::<Vec<_>>(), ["MERCHANT_BLOCKED"]);
//! # Ok(())
//! # }
//! ```
//!
//! ## Map
//!
//! * [`Store`] connects (and migrates); [`Store::tenant`] gives a
//!   [`TenantScope`], which carries the tenant id so no call can name another
//!   tenant's rows: a foreign id behaves exactly like a missing one.
//! * [`TenantScope::authorize`] is the one flow: load the compiled policies and
//!   the facts → [`policy::evaluate`] (pure) → reserve (atomic) → record the
//!   purchase intent, blocked attempts or approval request, ledger and audit
//!   entry, all in one database transaction.
//! * [`policy`] is pure: no I/O, no clock; `evaluate(&compiled, &request, &facts)`.
//! * [`budget`] is pure: period windows in the tenant's time zone, which budgets
//!   apply, fit checks.
//! * [`money`]: exact amounts ([`rust_decimal::Decimal`], never floats), stored so
//!   that SQLite and PostgreSQL both compare them exactly and numerically.
//! * [`entity`]: the SeaORM entities of all 32 tables; the schema lives in the
//!   `bursar-migration` crate.
//! * [`audit`]: the per-tenant hash chain, append-only in the database, with
//!   signed checkpoints against dropped entries, search and export;
//!   [`vault`]: connection credentials sealed with envelope encryption under
//!   keys from a host's [`keys::KeyProvider`] — see `docs/security.md`.
//! * [`events`]: the transactional outbox; every event is written in the
//!   transaction of the change it announces, and polled and acknowledged per
//!   consumer (`docs/events.md`). Approvals: `docs/approvals.md`.
//!
//! * [`Error`]: one error type with a stable [`Error::code`]; database faults
//!   are classified (`contention`, `unavailable`, `storage_full`, `database`)
//!   and [`Error::is_transient`] says what is safe to retry with the same
//!   idempotency key — see [`error`] for the table of codes.
//!
//! ## Layers
//!
//! Imports run one way, from the top down:
//!
//! 1. [`store::TenantScope`], [`Store`] and metering ([`store::Meter`], which
//!    runs a call through the scope's `authorize`);
//! 2. [`authorize`], the flow;
//! 3. the repositories in `store/*`, the [`audit::AuditLog`], the event
//!    outbox ([`events`]) and the [`vault`];
//! 4. the audit chain (`audit`'s append and hash) and what every repository
//!    stands on: its executor and transaction helpers (`store::repo`), paging
//!    ([`store::PageRequest`], [`store::Page`]) and the text checks shared by
//!    every repository;
//! 5. the pure modules: [`policy`], [`budget`], [`money`], [`entity`], [`id`],
//!    [`codes`], [`clock`], [`error`], [`keys`].
//!
//! The guides in `docs/` cover the authorize flow (`authorize.md`), the
//! policy language (`policies.md`), budgets, reservations and the ledger
//! (`budgets.md`), approvals, payments and settlement (`payments.md`), runs,
//! LLM metering (`usage.md`), events, the audit log (`audit.md`), sweeps and
//! scheduling (`sweeps.md`), the repositories, security, the schema and its
//! mapping from the source schemas, and the measured performance. Every Rust
//! example in them is compiled and run as a doctest against in-memory SQLite.
//!
//! # Cargo features
//!
//! * `sqlite` (default): the SQLite driver, for `sqlite:` URLs; SQLite itself
//!   is compiled from source.
//! * `postgres` (default): the PostgreSQL driver, for `postgres://` and
//!   `postgresql://` URLs.
//!
//! Both also select the driver of the `bursar-migration` crate. A build needs
//! at least one of them; connecting to a URL whose driver was left out is an
//! [`Error::Invalid`] on the field `url` that names the missing feature.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(not(any(feature = "sqlite", feature = "postgres")))]
compile_error!(
    "bursar needs a database driver: enable its `sqlite` feature, its `postgres` feature, or both"
);

pub mod audit;
pub mod authorize;
pub mod budget;
pub mod clock;
pub mod codes;
pub mod entity;
pub mod error;
pub mod events;
pub mod id;
pub mod keys;
pub mod money;
mod page;
pub mod policy;
pub mod store;
mod validate;
pub mod vault;

pub use error::{Error, Result};
pub use store::{Store, TenantScope};

/// Compiles and runs the examples in `README.md`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Compiles and runs the examples in `docs/authorize.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/authorize.md")]
struct AuthorizeDoctests;

/// Compiles and runs the examples in `docs/policies.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/policies.md")]
struct PoliciesDoctests;

/// Compiles and runs the examples in `docs/budgets.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/budgets.md")]
struct BudgetsDoctests;

/// Compiles and runs the examples in `docs/approvals.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/approvals.md")]
struct ApprovalsDoctests;

/// Compiles and runs the examples in `docs/payments.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/payments.md")]
struct PaymentsDoctests;

/// Compiles and runs the examples in `docs/runs.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/runs.md")]
struct RunsDoctests;

/// Compiles and runs the examples in `docs/usage.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/usage.md")]
struct UsageDoctests;

/// Compiles and runs the examples in `docs/events.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/events.md")]
struct EventsDoctests;

/// Compiles and runs the examples in `docs/audit.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/audit.md")]
struct AuditDoctests;

/// Compiles and runs the examples in `docs/tracing.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/tracing.md")]
struct TracingDoctests;

/// Compiles and runs the examples in `docs/sweeps.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/sweeps.md")]
struct SweepsDoctests;

/// Compiles and runs the examples in `docs/repositories.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/repositories.md")]
struct RepositoriesDoctests;

/// Compiles and runs the examples in `docs/schema.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/schema.md")]
struct SchemaDoctests;

/// Compiles and runs the examples in `docs/security.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/security.md")]
struct SecurityDoctests;

/// Compiles and runs the examples in `docs/performance.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/performance.md")]
struct PerformanceDoctests;

/// Compiles and runs the examples in `docs/scaling.md`.
#[cfg(doctest)]
#[doc = include_str!("../docs/scaling.md")]
struct ScalingDoctests;
