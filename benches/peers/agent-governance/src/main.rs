//! bursar vs agent-governance 3.2.2 on the closest workload it can express.
//!
//! ```text
//! cargo run --release --manifest-path benches/peers/agent-governance/Cargo.toml
//! ```
//!
//! agent-governance evaluates YAML rules in order, first match wins, and its
//! conditions only test equality of context values. So the caller does the
//! arithmetic and the normalization beforehand: it bands the amount into
//! booleans (`over_transaction_limit`, `over_org_max`, `over_threshold`,
//! `over_guardrail`), computes `daily_exceeded` / `monthly_exceeded` from the
//! budget windows, folds the merchant name, maps the MCC to `category:
//! blocked`, and passes `new_vendor` and `currency`. The 11 rules (one per
//! blocked merchant, since a condition holds one value) are ordered as
//! bursar's priorities, so the first rule that matches must be bursar's first
//! reason. bursar evaluates the real conditions and returns every reason
//! (their messages are rendered when read; one line times the list with every
//! message read).

use std::collections::HashMap;

use agent_governance::{PolicyDecision, PolicyEngine};
use serde_yaml::Value;

#[path = "../../src/timing.rs"]
mod timing;
#[path = "../../../common/workload.rs"]
mod workload;

fn profile() -> String {
    let deny = |code: &str, key: &str, value: &str| {
        format!(
            "  - name: {code}\n    type: capability\n    denied_actions: [\"purchase\"]\n    conditions: {{ {key}: {value} }}\n"
        )
    };
    let approve = |code: &str, key: &str| {
        format!(
            "  - name: {code}\n    type: approval\n    actions: [\"purchase\"]\n    min_approvals: 1\n    conditions: {{ {key}: true }}\n"
        )
    };
    let mut y = String::from("version: \"1\"\nagent: a1\npolicies:\n");
    y += &deny("OVER_TRANSACTION_LIMIT", "over_transaction_limit", "true");
    y += &deny("OVER_ORG_MAX_TRANSACTION", "over_org_max", "true");
    for m in workload::BLOCKED {
        y += &deny("MERCHANT_BLOCKED", "merchant", &format!("{m:?}"));
    }
    y += &deny("CATEGORY_BLOCKED", "category", "\"blocked\"");
    y += &deny("DAILY_LIMIT_EXCEEDED", "daily_exceeded", "true");
    y += &deny("MONTHLY_LIMIT_EXCEEDED", "monthly_exceeded", "true");
    y += &approve("OVER_THRESHOLD", "over_threshold");
    y += &approve("ORG_GUARDRAIL", "over_guardrail");
    y += &approve("NEW_VENDOR", "new_vendor");
    y += "  - name: WITHIN_CONTROLS\n    type: capability\n    allowed_actions: [\"purchase\"]\n    conditions: { currency: \"USD\" }\n";
    y
}

/// The caller's pre-computed context for a shared case (built once, outside the timing).
fn context(case: &workload::Case) -> HashMap<String, Value> {
    let r = &case.request;
    let amount = r.amount.unwrap_or_default();
    let m = r.merchant.as_ref().expect("purchases have merchants");
    let over = |n: i64| Value::Bool(amount > n.into());
    let exceeded = |p: bursar::budget::Period| {
        Value::Bool(
            case.facts
                .budgets
                .iter()
                .any(|w| w.period == p && !w.fits(amount)),
        )
    };
    let mcc = m.mcc.unwrap_or(0);
    let blocked = mcc == 7995 || (5960..=5969).contains(&mcc);
    let merchant = m
        .name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    HashMap::from([
        ("over_transaction_limit".to_owned(), over(workload::PER_TX)),
        ("over_org_max".to_owned(), over(workload::ORG_MAX)),
        ("over_threshold".to_owned(), over(workload::THRESHOLD)),
        ("over_guardrail".to_owned(), over(workload::GUARDRAIL)),
        (
            "daily_exceeded".to_owned(),
            exceeded(bursar::budget::Period::Daily),
        ),
        (
            "monthly_exceeded".to_owned(),
            exceeded(bursar::budget::Period::Monthly),
        ),
        ("merchant".to_owned(), Value::String(merchant)),
        (
            "category".to_owned(),
            Value::String(if blocked { "blocked" } else { "other" }.to_owned()),
        ),
        ("new_vendor".to_owned(), Value::Bool(case.facts.new_vendor)),
        (
            "currency".to_owned(),
            Value::String(r.currency.map(|c| c.code().to_owned()).unwrap_or_default()),
        ),
    ])
}

/// (outcome, first code) from agent-governance's decision.
fn answer(d: &PolicyDecision) -> (String, Option<String>) {
    let name = |msg: &str| msg.split('\'').nth(1).map(str::to_owned);
    match d {
        PolicyDecision::Allow => ("approved".to_owned(), None),
        PolicyDecision::Deny(msg) => ("rejected".to_owned(), name(msg)),
        PolicyDecision::RequiresApproval(msg) => ("pending_approval".to_owned(), name(msg)),
        other => (format!("{other:?}"), None),
    }
}

fn main() {
    let cases = workload::cases();
    let engine = PolicyEngine::new();
    engine.load_from_yaml(&profile()).expect("profile loads");
    let contexts: Vec<HashMap<String, Value>> = cases.iter().map(context).collect();
    let compiled = workload::compile(&workload::tenant(10));
    for (case, ctx) in cases.iter().zip(&contexts) {
        let (outcome, codes) = workload::bursar_answer(&compiled, case);
        assert_eq!(
            (
                outcome.as_str(),
                codes.iter().map(String::as_str).collect::<Vec<_>>()
            ),
            (case.outcome, case.codes.clone()),
            "bursar: {}",
            case.name
        );
        let theirs = answer(&engine.evaluate("purchase", Some(ctx)));
        assert_eq!(
            (outcome, codes.first().cloned()),
            theirs,
            "agent-governance disagrees with bursar on {:?}",
            case.name
        );
    }
    println!(
        "agent-governance and bursar agree on all {} requests (outcome and first reason)",
        cases.len()
    );
    let ordinary = &cases[0];
    let ours = timing::median_ns(|| {
        bursar::policy::evaluate(&compiled, &ordinary.request, &ordinary.facts)
    });
    let theirs = timing::median_ns(|| engine.evaluate("purchase", Some(&contexts[0])));
    println!(
        "10 policies / 11 rules, ordinary purchase: bursar {ours:.0} ns, agent-governance {theirs:.0} ns"
    );
    let ours_all = timing::median_ns(|| {
        for c in &cases {
            std::hint::black_box(bursar::policy::evaluate(&compiled, &c.request, &c.facts));
        }
    }) / cases.len() as f64;
    let theirs_all = timing::median_ns(|| {
        for ctx in &contexts {
            std::hint::black_box(engine.evaluate("purchase", Some(ctx)));
        }
    }) / cases.len() as f64;
    println!(
        "mean over the {} requests: bursar {ours_all:.0} ns, agent-governance {theirs_all:.0} ns ({:.2}x)",
        cases.len(),
        theirs_all / ours_all
    );
    // The same list with every reason's message read into one reused buffer,
    // as a caller that logs or shows them would: agent-governance always
    // formats its one message, bursar renders each of its reasons' when read.
    let mut buf = String::with_capacity(256);
    let ours_read = timing::median_ns(|| {
        for c in &cases {
            let d = bursar::policy::evaluate(&compiled, &c.request, &c.facts);
            for r in d.reasons() {
                buf.clear();
                r.write_message(&mut buf);
                std::hint::black_box(&buf);
            }
        }
    }) / cases.len() as f64;
    println!(
        "mean over the {} requests, every message read: bursar {ours_read:.0} ns, agent-governance {theirs_all:.0} ns ({:.2}x)",
        cases.len(),
        theirs_all / ours_read
    );
    println!(
        "bursar vs agent-governance: {:.2}x (median ns: {ours:.0} vs {theirs:.0})",
        theirs / ours
    );
    println!(
        "bursar vs agent-governance (mixed): {:.2}x (mean ns per request: {ours_all:.0} vs {theirs_all:.0})",
        theirs_all / ours_all
    );
}
