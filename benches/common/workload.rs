//! The spending workload shared by `benches/policy.rs` and the peer
//! comparisons in `benches/peers/`: one agent's 10 policies, tenants of 1,000
//! and 10,000 policies of which the same 10 apply, and a list of requests with
//! the decisions bursar must give.
#![allow(dead_code)]

use bursar::budget::{Period, Scope, WindowBalance};
use bursar::id::{AgentId, BudgetId, PolicyId, TeamId};
use bursar::money::Currency;
use bursar::policy::{
    BudgetScopeKind, CompiledPolicies, Condition, DefaultEffect, Effect, Facts, MccSpec, Policy,
    PolicyScope, Request,
};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

/// The agent whose requests are evaluated.
pub fn agent() -> AgentId {
    AgentId::from_uuid(Uuid::from_u128(0xA1))
}

/// Its team.
pub fn team() -> TeamId {
    TeamId::from_uuid(Uuid::from_u128(0x7E))
}

/// The blocked merchants.
pub const BLOCKED: [&str; 2] = ["facebook ads", "google ads"];
/// Per-transaction limit (agent), USD.
pub const PER_TX: i64 = 500;
/// Maximum transaction (tenant), USD.
pub const ORG_MAX: i64 = 1000;
/// Approval threshold (agent), USD.
pub const THRESHOLD: i64 = 100;
/// Approval guardrail (tenant), USD.
pub const GUARDRAIL: i64 = 250;
/// Daily and monthly budgets (agent), USD.
pub const DAILY: i64 = 1000;
/// Monthly budget (agent), USD.
pub const MONTHLY: i64 = 5000;

fn id(n: u128) -> PolicyId {
    PolicyId::from_uuid(Uuid::from_u128(n))
}

fn usd(n: i64) -> Condition {
    Condition::AmountAbove {
        amount: Decimal::from(n),
        currency: Currency::USD,
    }
}

fn purchase() -> Condition {
    Condition::ActionIn {
        actions: vec![bursar::policy::ActionKind::Purchase],
    }
}

/// The 10 policies that apply to `agent` (scoped to it, or to its team, or
/// tenant-wide when `tenant_wide` allows; the tenant-level ones are scoped to
/// the team in big tenants so that only these 10 apply).
pub fn ten_policies(agent: AgentId, team: TeamId, base: u128) -> Vec<Policy> {
    let a = PolicyScope::agent(agent);
    let t = PolicyScope::team(team);
    let p = |n: u128, name: &str, effect, code: &str, prio, scope: &PolicyScope, c| {
        Policy::new(name, effect, code, c)
            .id(id(base + n))
            .priority(prio)
            .scope(scope.clone())
            .message("{amount} {currency}: {policy} (limit {limit}, remaining {remaining})")
    };
    vec![
        p(
            1,
            "Per-transaction limit",
            Effect::Deny,
            "OVER_TRANSACTION_LIMIT",
            1000,
            &a,
            Condition::all([purchase(), usd(PER_TX)]),
        ),
        p(
            2,
            "Org max transaction",
            Effect::Deny,
            "OVER_ORG_MAX_TRANSACTION",
            990,
            &t,
            Condition::all([purchase(), usd(ORG_MAX)]),
        ),
        p(
            3,
            "Blocked merchants",
            Effect::Deny,
            "MERCHANT_BLOCKED",
            980,
            &a,
            Condition::MerchantIn {
                merchants: BLOCKED.iter().map(|s| s.to_string()).collect(),
            },
        ),
        p(
            4,
            "Blocked categories",
            Effect::Deny,
            "CATEGORY_BLOCKED",
            960,
            &t,
            Condition::MccIn {
                codes: vec![MccSpec::Code(7995), MccSpec::Text("5960-5969".into())],
            },
        ),
        p(
            5,
            "Daily limit",
            Effect::Deny,
            "DAILY_LIMIT_EXCEEDED",
            950,
            &a,
            Condition::all([
                purchase(),
                Condition::BudgetExceeded {
                    period: Some(Period::Daily),
                    scope: Some(BudgetScopeKind::Agent),
                },
            ]),
        ),
        p(
            6,
            "Monthly limit",
            Effect::Deny,
            "MONTHLY_LIMIT_EXCEEDED",
            940,
            &a,
            Condition::all([
                purchase(),
                Condition::BudgetExceeded {
                    period: Some(Period::Monthly),
                    scope: Some(BudgetScopeKind::Agent),
                },
            ]),
        ),
        p(
            7,
            "Approval threshold",
            Effect::RequireApproval,
            "OVER_THRESHOLD",
            900,
            &a,
            Condition::all([purchase(), usd(THRESHOLD)]),
        ),
        p(
            8,
            "Org guardrail",
            Effect::RequireApproval,
            "ORG_GUARDRAIL",
            890,
            &t,
            Condition::all([purchase(), usd(GUARDRAIL)]),
        ),
        p(
            9,
            "New vendor",
            Effect::RequireApproval,
            "NEW_VENDOR",
            880,
            &a,
            Condition::all([purchase(), Condition::NewVendor]),
        ),
        p(
            10,
            "Within controls",
            Effect::Allow,
            "WITHIN_CONTROLS",
            0,
            &a,
            Condition::all([
                purchase(),
                Condition::CurrencyIn {
                    currencies: vec![Currency::USD],
                },
            ]),
        ),
    ]
}

/// A tenant of `total` policies: the 10 of [`agent`] and the rest in sets of
/// 10 for other agents and teams.
pub fn tenant(total: usize) -> Vec<Policy> {
    let mut out = ten_policies(agent(), team(), 0);
    let mut n: u128 = 1;
    while out.len() < total {
        let other = AgentId::from_uuid(Uuid::from_u128(0x1_0000 + n));
        let other_team = TeamId::from_uuid(Uuid::from_u128(0x2_0000 + n));
        out.extend(ten_policies(other, other_team, n * 100));
        n += 1;
    }
    out.truncate(total);
    out
}

/// Compiles a policy list with a default of deny.
pub fn compile(policies: &[Policy]) -> CompiledPolicies {
    match CompiledPolicies::compile(policies, DefaultEffect::Deny) {
        Ok(c) => c,
        Err(e) => panic!("workload does not compile: {e}"),
    }
}

/// One request of the shared list, with its facts and the decision expected.
pub struct Case {
    /// A short name.
    pub name: &'static str,
    /// The request.
    pub request: Request,
    /// The facts.
    pub facts: Facts,
    /// The expected outcome: "approved", "pending_approval" or "rejected".
    pub outcome: &'static str,
    /// The expected reason codes, highest priority first.
    pub codes: Vec<&'static str>,
}

fn window(period: Period, limit: i64, spent: i64) -> WindowBalance {
    WindowBalance {
        budget_id: BudgetId::from_uuid(Uuid::from_u128(period as u128 + 1)),
        scope: Scope::Agent(agent()),
        period,
        currency: Currency::USD,
        limit: Decimal::from(limit),
        spent: Decimal::from(spent),
        reserved: Decimal::ZERO,
    }
}

/// Facts with the agent's daily and monthly windows at `daily_spent` and
/// `monthly_spent`.
pub fn facts(daily_spent: i64, monthly_spent: i64, new_vendor: bool) -> Facts {
    Facts::new(
        Utc.with_ymd_and_hms(2025, 3, 4, 10, 0, 0).unwrap(),
        chrono_tz::Europe::Berlin,
    )
    .budget(window(Period::Daily, DAILY, daily_spent))
    .budget(window(Period::Monthly, MONTHLY, monthly_spent))
    .new_vendor(new_vendor)
}

fn buy(amount: i64, merchant: &str, mcc: u16) -> Request {
    Request::purchase(agent(), Decimal::from(amount), Currency::USD, merchant)
        .team(team())
        .mcc(mcc)
}

/// The shared requests. The first is the ordinary approved purchase (every
/// policy is evaluated for it).
pub fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "ordinary purchase",
            request: buy(30, "GitHub", 5734),
            facts: facts(0, 100, false),
            outcome: "approved",
            codes: vec![],
        },
        Case {
            name: "blocked merchant",
            request: buy(20, " Facebook Ads ", 7311),
            facts: facts(0, 100, false),
            outcome: "rejected",
            codes: vec!["MERCHANT_BLOCKED"],
        },
        Case {
            name: "gambling",
            request: buy(20, "Lucky Casino", 7995),
            facts: facts(0, 100, false),
            outcome: "rejected",
            codes: vec!["CATEGORY_BLOCKED"],
        },
        Case {
            name: "catalog merchant",
            request: buy(20, "Catalog Co", 5964),
            facts: facts(0, 100, false),
            outcome: "rejected",
            codes: vec!["CATEGORY_BLOCKED"],
        },
        Case {
            name: "over per-transaction",
            request: buy(600, "GitHub", 5734),
            facts: facts(0, 100, false),
            outcome: "rejected",
            codes: vec!["OVER_TRANSACTION_LIMIT"],
        },
        Case {
            name: "over everything",
            request: buy(1200, "google ads", 7311),
            facts: facts(0, 100, false),
            outcome: "rejected",
            codes: vec![
                "OVER_TRANSACTION_LIMIT",
                "OVER_ORG_MAX_TRANSACTION",
                "MERCHANT_BLOCKED",
                "DAILY_LIMIT_EXCEEDED",
            ],
        },
        Case {
            name: "daily exhausted",
            request: buy(20, "GitHub", 5734),
            facts: facts(990, 1000, false),
            outcome: "rejected",
            codes: vec!["DAILY_LIMIT_EXCEEDED"],
        },
        Case {
            name: "monthly exhausted",
            request: buy(20, "GitHub", 5734),
            facts: facts(0, 4990, false),
            outcome: "rejected",
            codes: vec!["MONTHLY_LIMIT_EXCEEDED"],
        },
        Case {
            name: "over threshold",
            request: buy(150, "GitHub", 5734),
            facts: facts(0, 100, false),
            outcome: "pending_approval",
            codes: vec!["OVER_THRESHOLD"],
        },
        Case {
            name: "over guardrail",
            request: buy(300, "GitHub", 5734),
            facts: facts(0, 100, false),
            outcome: "pending_approval",
            codes: vec!["OVER_THRESHOLD", "ORG_GUARDRAIL"],
        },
        Case {
            name: "new vendor",
            request: buy(20, "Brand New Tools", 5734),
            facts: facts(0, 100, true),
            outcome: "pending_approval",
            codes: vec!["NEW_VENDOR"],
        },
    ]
}

/// bursar's decision as (outcome, codes).
pub fn bursar_answer(compiled: &CompiledPolicies, case: &Case) -> (String, Vec<String>) {
    let d = bursar::policy::evaluate(compiled, &case.request, &case.facts);
    let outcome = serde_json::to_value(d.outcome())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    (outcome, d.codes().map(str::to_owned).collect())
}
