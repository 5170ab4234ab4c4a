//! bursar vs Cedar on the same spending workload.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/Cargo.toml
//! ```
//!
//! The 10 policies of `benches/common/workload.rs` are written in Cedar as a
//! Cedar user would: the agent is `Agent::"…"` in `Team::"…"`, the merchant is
//! the resource `Merchant::"<folded name>"`, the action is
//! `Action::"purchase"`, and the context carries `amount` (in cents),
//! `currency`, `mcc`, `new_vendor` and the remaining room of the daily and
//! monthly budgets (in cents). Blocks and limits are `forbid` policies;
//! approvals are `forbid` policies annotated `@approval`, so one authorization
//! call decides: Deny by an unannotated forbid → rejected; Deny only by
//! annotated ones → pending approval; Allow → approved. Every policy carries
//! `@code("…")`, and the codes of the determining policies are compared with
//! bursar's reasons.

use std::collections::{HashMap, HashSet};

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityUid, PolicySet, Request,
    RestrictedExpression,
};

mod timing;
#[path = "../../common/workload.rs"]
mod workload;

fn uid(s: &str) -> EntityUid {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// The 10 policies for one agent and team, in Cedar.
fn cedar_ten(agent: &str, team: &str) -> String {
    let blocked = workload::BLOCKED
        .iter()
        .map(|m| format!("Merchant::\"{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let a = format!("principal == Agent::\"{agent}\"");
    let t = format!("principal in Team::\"{team}\"");
    let buy = "action == Action::\"purchase\"";
    format!(
        r#"
@code("OVER_TRANSACTION_LIMIT") forbid({a}, {buy}, resource) when {{ context.amount > {per_tx} }};
@code("OVER_ORG_MAX_TRANSACTION") forbid({t}, {buy}, resource) when {{ context.amount > {org_max} }};
@code("MERCHANT_BLOCKED") forbid({a}, action, resource) when {{ resource in [{blocked}] }};
@code("CATEGORY_BLOCKED") forbid({t}, action, resource) when {{ context.mcc == 7995 || (context.mcc >= 5960 && context.mcc <= 5969) }};
@code("DAILY_LIMIT_EXCEEDED") forbid({a}, {buy}, resource) when {{ context.amount > context.daily_remaining }};
@code("MONTHLY_LIMIT_EXCEEDED") forbid({a}, {buy}, resource) when {{ context.amount > context.monthly_remaining }};
@code("OVER_THRESHOLD") @approval forbid({a}, {buy}, resource) when {{ context.amount > {threshold} }};
@code("ORG_GUARDRAIL") @approval forbid({t}, {buy}, resource) when {{ context.amount > {guardrail} }};
@code("NEW_VENDOR") @approval forbid({a}, {buy}, resource) when {{ context.new_vendor }};
@code("WITHIN_CONTROLS") permit({a}, {buy}, resource) when {{ context.currency == "USD" }};
"#,
        per_tx = workload::PER_TX * 100,
        org_max = workload::ORG_MAX * 100,
        threshold = workload::THRESHOLD * 100,
        guardrail = workload::GUARDRAIL * 100,
    )
}

fn cedar_tenant(total: usize) -> PolicySet {
    let mut src = cedar_ten("a1", "t1");
    let mut n = 1;
    while src.matches(';').count() < total {
        src.push_str(&cedar_ten(&format!("other{n}"), &format!("other_team{n}")));
        n += 1;
    }
    let policies: PolicySet = src
        .parse()
        .unwrap_or_else(|e| panic!("cedar policies: {e:?}"));
    assert_eq!(policies.policies().count(), total);
    policies
}

fn cents(d: rust_decimal::Decimal) -> i64 {
    (d * rust_decimal::Decimal::from(100)).trunc().mantissa() as i64
}

/// The Cedar request for a shared case (built once, outside the timing).
fn cedar_request(case: &workload::Case) -> Request {
    let r = &case.request;
    let m = r.merchant.as_ref().expect("purchases have merchants");
    let remaining = |p: bursar::budget::Period| {
        case.facts
            .budgets
            .iter()
            .find(|w| w.period == p)
            .map_or(i64::MAX, |w| cents(w.remaining()))
    };
    let context = Context::from_pairs([
        (
            "amount".to_owned(),
            RestrictedExpression::new_long(cents(r.amount.unwrap_or_default())),
        ),
        (
            "currency".to_owned(),
            RestrictedExpression::new_string(
                r.currency.map(|c| c.code().to_owned()).unwrap_or_default(),
            ),
        ),
        (
            "mcc".to_owned(),
            RestrictedExpression::new_long(i64::from(m.mcc.unwrap_or(0))),
        ),
        (
            "new_vendor".to_owned(),
            RestrictedExpression::new_bool(case.facts.new_vendor),
        ),
        (
            "daily_remaining".to_owned(),
            RestrictedExpression::new_long(remaining(bursar::budget::Period::Daily)),
        ),
        (
            "monthly_remaining".to_owned(),
            RestrictedExpression::new_long(remaining(bursar::budget::Period::Monthly)),
        ),
    ])
    .expect("context");
    // The caller folds the merchant name into the entity id, as bursar does.
    let merchant = m
        .name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    Request::new(
        uid("Agent::\"a1\""),
        uid("Action::\"purchase\""),
        uid(&format!("Merchant::{merchant:?}")),
        context,
        None,
    )
    .expect("request")
}

fn entities() -> Entities {
    let agent = Entity::new(
        uid("Agent::\"a1\""),
        HashMap::new(),
        HashSet::from([uid("Team::\"t1\"")]),
    )
    .expect("entity");
    Entities::from_entities(
        [
            agent,
            Entity::new_no_attrs(uid("Team::\"t1\""), HashSet::new()),
        ],
        None,
    )
    .expect("entities")
}

fn cedar_answer(
    auth: &Authorizer,
    policies: &PolicySet,
    entities: &Entities,
    request: &Request,
) -> (String, Vec<String>) {
    let response = auth.is_authorized(request, policies, entities);
    let mut codes: Vec<String> = response
        .diagnostics()
        .reason()
        .filter_map(|id| policies.annotation(id, "code").map(str::to_owned))
        .collect();
    assert!(
        response.diagnostics().errors().next().is_none(),
        "cedar evaluation errors"
    );
    let outcome = match response.decision() {
        Decision::Allow => {
            codes.clear();
            "approved"
        }
        Decision::Deny if codes.is_empty() => "rejected",
        Decision::Deny => {
            let approvals_only = response
                .diagnostics()
                .reason()
                .all(|id| policies.annotation(id, "approval").is_some());
            if approvals_only {
                "pending_approval"
            } else {
                codes.retain(|c| {
                    !["OVER_THRESHOLD", "ORG_GUARDRAIL", "NEW_VENDOR"].contains(&c.as_str())
                });
                "rejected"
            }
        }
    };
    codes.sort();
    (outcome.to_owned(), codes)
}

fn main() {
    let cases = workload::cases();
    let auth = Authorizer::new();
    let entities = entities();
    let requests: Vec<Request> = cases.iter().map(cedar_request).collect();
    let mut lines = Vec::new();
    for total in [10, 1_000] {
        let compiled = workload::compile(&workload::tenant(total));
        let cedar = cedar_tenant(total);
        for (case, request) in cases.iter().zip(&requests) {
            let (outcome, mut codes) = workload::bursar_answer(&compiled, case);
            assert_eq!(
                (
                    outcome.as_str(),
                    codes.iter().map(String::as_str).collect::<Vec<_>>()
                ),
                (case.outcome, case.codes.clone()),
                "bursar: {}",
                case.name
            );
            codes.sort();
            let theirs = cedar_answer(&auth, &cedar, &entities, request);
            assert_eq!(
                (outcome, codes),
                theirs,
                "cedar disagrees with bursar on {:?} ({total} policies)",
                case.name
            );
        }
        println!(
            "{total} policies: cedar and bursar agree on all {} requests",
            cases.len()
        );
        let ordinary = &cases[0];
        let ours = timing::median_ns(|| {
            bursar::policy::evaluate(&compiled, &ordinary.request, &ordinary.facts)
        });
        let theirs = timing::median_ns(|| auth.is_authorized(&requests[0], &cedar, &entities));
        println!(
            "{total} policies, ordinary purchase: bursar {ours:.0} ns, cedar {theirs:.0} ns ({:.1}x)",
            theirs / ours
        );
        let ours_all = timing::median_ns(|| {
            for c in &cases {
                std::hint::black_box(bursar::policy::evaluate(&compiled, &c.request, &c.facts));
            }
        }) / cases.len() as f64;
        let theirs_all = timing::median_ns(|| {
            for r in &requests {
                std::hint::black_box(auth.is_authorized(r, &cedar, &entities));
            }
        }) / cases.len() as f64;
        println!(
            "{total} policies, mean over the {} requests: bursar {ours_all:.0} ns, cedar {theirs_all:.0} ns ({:.1}x)",
            cases.len(),
            theirs_all / ours_all
        );
        lines.push((total, ours, theirs));
    }
    let (_, ours, theirs) = lines[0];
    println!(
        "bursar vs cedar: {:.1}x (median ns: {ours:.0} vs {theirs:.0})",
        theirs / ours
    );
}
