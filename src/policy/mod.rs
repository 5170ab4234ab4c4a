//! Policies: what an agent may do, decided by a pure function.
//!
//! A [`Policy`] has a scope (the whole tenant, or lists of teams, projects and
//! agents), an [`Effect`] (`allow`, `deny`, `require_approval`), a priority, a
//! reason code, a message template and a [`Condition`] tree over the
//! [`Request`] and the [`Facts`]. Policies are [validated](validate) when
//! written, [compiled](CompiledPolicies::compile) once per tenant into an
//! evaluation form, and [`evaluate`]d per request into a [`Decision`].
//!
//! Nothing here does I/O or reads a clock: `now`, the time zone, the budget
//! windows, the new-vendor flag and the request counts all come in as
//! [`Facts`]. The language, the combination rules and the bounds are described
//! in `docs/policies.md`.
//!
//! ```
//! use bursar::policy::{evaluate, CompiledPolicies, DefaultEffect, Facts, Outcome, Request, SpendingControls};
//! use bursar::{codes, id::AgentId, money::Currency};
//! use chrono::{TimeZone, Utc};
//! use rust_decimal::Decimal;
//!
//! let agent = AgentId::new();
//! let controls = SpendingControls::new(Currency::USD)
//!     .agent(agent)
//!     .per_transaction_limit(Decimal::from(50))
//!     .approval_threshold(Decimal::from(40))
//!     .blocked_merchants(["facebook ads", "google ads"])
//!     .build()?;
//! let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny)?;
//! let facts = Facts::new(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(), chrono_tz::UTC);
//!
//! let ok = Request::purchase(agent, Decimal::from(30), Currency::USD, "GitHub");
//! assert_eq!(evaluate(&compiled, &ok, &facts).outcome(), Outcome::Approved);
//!
//! let ads = Request::purchase(agent, Decimal::from(30), Currency::USD, " Facebook ADS ");
//! let decision = evaluate(&compiled, &ads, &facts);
//! assert!(decision.is_rejected());
//! assert_eq!(decision.codes().collect::<Vec<_>>(), [codes::MERCHANT_BLOCKED]);
//! # Ok::<(), bursar::Error>(())
//! ```

mod approval;
mod compile;
mod controls;
mod evaluate;
mod facts;
pub mod limits;
pub(crate) mod merchant;
mod model;
mod names;
pub use names::{fold_merchant, merchant_host};
mod normalize;
mod reason;
mod request;
mod strict;
mod template;
mod validate;

pub use approval::{
    ApprovalSettings, Escalation, MAX_APPROVAL_TTL_SECS, MAX_REQUIRED_APPROVALS,
    MIN_APPROVAL_TTL_SECS, Quorum, Verdict, verdict,
};
pub use compile::CompiledPolicies;
pub use controls::{BudgetSpec, Controls, SpendingControls, priority};
pub use evaluate::{Decision, Outcome, evaluate};
pub use facts::{Facts, Velocity};
pub use model::{
    BudgetScopeKind, Condition, DefaultEffect, Effect, MccSpec, NumberOp, Policy, PolicyScope,
};
pub use reason::{BudgetDetail, Reason};
pub use request::{ActionKind, Merchant, Principal, Request};
pub use template::PLACEHOLDERS;
pub use validate::validate;

#[cfg(test)]
mod tests;
