//! Properties of the policy engine, and arbitrary JSON through the whole path
//! (parse → validate → compile → evaluate) without a panic.
//!
//! Every property runs with a fixed seed (see `config`) so a failure reproduces.

use bursar::budget::{Period, Scope, WindowBalance};
use bursar::codes;
use bursar::id::{AgentId, BudgetId, PolicyId, TeamId};
use bursar::money::Currency;
use bursar::policy::{
    CompiledPolicies, Condition, DefaultEffect, Effect, Facts, MccSpec, NumberOp, Outcome, Policy,
    PolicyScope, Request, evaluate,
};
use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rust_decimal::Decimal;
use uuid::Uuid;

const AGENTS: [u128; 3] = [1, 2, 3];
const TEAMS: [u128; 2] = [10, 11];
const MERCHANTS: [&str; 6] = [
    "GitHub",
    "aws",
    "Laws Firm LLC",
    "Facebook Ads",
    "aws.amazon.com",
    "casino",
];

fn agent(i: usize) -> AgentId {
    AgentId::from_uuid(Uuid::from_u128(AGENTS[i]))
}

fn team(i: usize) -> TeamId {
    TeamId::from_uuid(Uuid::from_u128(TEAMS[i]))
}

fn runner() -> TestRunner {
    let config = Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]))
}

fn leaf() -> impl Strategy<Value = Condition> {
    let usd_or_eur = prop_oneof![Just(Currency::USD), Just(Currency::EUR)];
    prop_oneof![
        Just(Condition::Always),
        Just(Condition::NewVendor),
        (0u32..200, usd_or_eur.clone()).prop_map(|(a, currency)| Condition::AmountAbove {
            amount: a.into(),
            currency
        }),
        (0u32..200, usd_or_eur).prop_map(|(a, currency)| Condition::AmountBelow {
            amount: a.into(),
            currency
        }),
        prop::sample::subsequence(MERCHANTS.to_vec(), 1..3).prop_map(|m| Condition::MerchantIn {
            merchants: m.into_iter().map(String::from).collect()
        }),
        prop::sample::subsequence(MERCHANTS.to_vec(), 1..3).prop_map(|m| {
            Condition::MerchantNotIn {
                merchants: m.into_iter().map(String::from).collect(),
            }
        }),
        (5000u32..8000).prop_map(|c| Condition::MccIn {
            codes: vec![MccSpec::Code(c), MccSpec::Text(format!("{}-{}", c, c + 50))]
        }),
        Just(Condition::BudgetExceeded {
            period: Some(Period::Monthly),
            scope: None
        }),
        (1u32..5).prop_map(|max| Condition::VelocityAbove {
            window_seconds: 60,
            max
        }),
        (0u32..2000, 0usize..5).prop_map(|(v, op)| Condition::MetadataNumber {
            key: "rows".into(),
            op: [
                NumberOp::Lt,
                NumberOp::Le,
                NumberOp::Gt,
                NumberOp::Ge,
                NumberOp::Eq
            ][op],
            value: v.into(),
        }),
        Just(Condition::Writes),
        Just(Condition::FieldsIn {
            fields: vec!["ssn".into(), "salary".into()]
        }),
    ]
}

fn condition() -> impl Strategy<Value = Condition> {
    leaf().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(|of| Condition::All { of }),
            prop::collection::vec(inner.clone(), 0..3).prop_map(|of| Condition::Any { of }),
            inner.prop_map(Condition::not),
        ]
    })
}

fn scope() -> impl Strategy<Value = PolicyScope> {
    prop_oneof![
        Just(PolicyScope::Tenant),
        (0..AGENTS.len()).prop_map(|i| PolicyScope::agent(agent(i))),
        (0..TEAMS.len()).prop_map(|i| PolicyScope::team(team(i))),
    ]
}

fn effect() -> impl Strategy<Value = Effect> {
    prop_oneof![
        Just(Effect::Allow),
        Just(Effect::Deny),
        Just(Effect::RequireApproval)
    ]
}

fn policy() -> impl Strategy<Value = Policy> {
    (
        any::<u128>(),
        effect(),
        -5i32..5,
        prop::bool::weighted(0.9),
        scope(),
        condition(),
    )
        .prop_map(|(id, effect, priority, enabled, scope, condition)| {
            let code = match effect {
                Effect::Deny => "DENIED",
                Effect::RequireApproval => "ASK",
                _ => "OK",
            };
            Policy::new("p", effect, code, condition)
                .id(PolicyId::from_uuid(Uuid::from_u128(id)))
                .priority(priority)
                .enabled(enabled)
                .scope(scope)
                .message("{amount} {merchant} {limit} {remaining}")
        })
}

fn request() -> impl Strategy<Value = Request> {
    (
        0..AGENTS.len(),
        prop::option::of(0..TEAMS.len()),
        0u32..300,
        prop::bool::ANY,
        prop::sample::select(MERCHANTS.to_vec()),
        prop::option::of(5000u16..8000),
        (
            prop::option::of(prop::sample::select(vec![
                "0", "999", "1000", "1001", "many",
            ])),
            prop::option::of(prop::sample::select(vec!["read", "write", "delete", "x"])),
            prop::option::of(prop::sample::select(vec!["name", "ssn,name", "Salary"])),
        ),
    )
        .prop_map(
            |(a, t, amount, usd, merchant, mcc, (rows, access, fields))| {
                let currency = if usd { Currency::USD } else { Currency::EUR };
                let mut r = Request::purchase(agent(a), amount.into(), currency, merchant);
                for (key, value) in [("rows", rows), ("access", access), ("fields", fields)] {
                    if let Some(value) = value {
                        r = r.metadata(key, value);
                    }
                }
                if let Some(t) = t {
                    r = r.team(team(t));
                }
                if let Some(m) = mcc {
                    r = r.mcc(m);
                }
                r
            },
        )
}

fn facts() -> impl Strategy<Value = Facts> {
    (prop::bool::ANY, 0u32..10, 0u32..600, prop::bool::ANY).prop_map(
        |(new_vendor, count, spent, with_velocity)| {
            let mut f = Facts::new(
                Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
                chrono_tz::Europe::Berlin,
            )
            .new_vendor(new_vendor)
            .budget(WindowBalance {
                budget_id: BudgetId::from_uuid(Uuid::from_u128(99)),
                scope: Scope::Tenant,
                period: Period::Monthly,
                currency: Currency::USD,
                limit: Decimal::from(500),
                spent: spent.into(),
                reserved: Decimal::ZERO,
            });
            if with_velocity {
                f = f.velocity(60, count);
            }
            f
        },
    )
}

fn default_effect() -> impl Strategy<Value = DefaultEffect> {
    prop_oneof![Just(DefaultEffect::Allow), Just(DefaultEffect::Deny)]
}

fn case() -> impl Strategy<Value = (Vec<Policy>, DefaultEffect, Request, Facts)> {
    (
        prop::collection::vec(policy(), 0..12),
        default_effect(),
        request(),
        facts(),
    )
}

fn run(
    policies: &[Policy],
    default: DefaultEffect,
    r: &Request,
    f: &Facts,
) -> bursar::policy::Decision {
    let compiled = CompiledPolicies::compile(policies, default).unwrap();
    evaluate(&compiled, r, f)
}

fn rejected_by_deny(d: &bursar::policy::Decision) -> bool {
    d.is_rejected() && d.codes().all(|c| c != codes::NO_MATCHING_POLICY)
}

#[test]
fn evaluation_is_deterministic_and_independent_of_input_order() {
    runner()
        .run(&case(), |(policies, default, r, f)| {
            let first = run(&policies, default, &r, &f);
            prop_assert_eq!(&first, &run(&policies, default, &r, &f));
            let mut reversed = policies.clone();
            reversed.reverse();
            prop_assert_eq!(&first, &run(&reversed, default, &r, &f));
            Ok(())
        })
        .unwrap();
}

#[test]
fn adding_a_deny_never_turns_a_rejection_into_something_else() {
    runner()
        .run(
            &(case(), policy()),
            |((mut policies, default, r, f), mut extra)| {
                extra.effect = Effect::Deny;
                let before = run(&policies, default, &r, &f);
                policies.push(extra);
                let after = run(&policies, default, &r, &f);
                if before.is_rejected() {
                    prop_assert_eq!(after.outcome(), Outcome::Rejected);
                }
                // And it never approves what was not approved.
                if !before.is_approved() {
                    prop_assert!(!after.is_approved());
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn adding_an_allow_never_overrides_a_deny() {
    runner()
        .run(
            &(case(), policy()),
            |((mut policies, default, r, f), mut extra)| {
                extra.effect = Effect::Allow;
                let before = run(&policies, default, &r, &f);
                policies.push(extra);
                let after = run(&policies, default, &r, &f);
                if rejected_by_deny(&before) {
                    prop_assert_eq!(&before, &after);
                }
                if before.is_pending_approval() {
                    prop_assert!(after.is_pending_approval());
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn with_every_policy_disabled_only_the_default_decides() {
    runner()
        .run(&case(), |(policies, default, r, f)| {
            let disabled: Vec<Policy> = policies.into_iter().map(|p| p.enabled(false)).collect();
            let d = run(&disabled, default, &r, &f);
            match default {
                DefaultEffect::Allow => prop_assert!(d.is_approved() && d.allowed_by().is_none()),
                DefaultEffect::Deny => {
                    prop_assert!(d.is_rejected());
                    prop_assert_eq!(
                        d.codes().collect::<Vec<_>>(),
                        vec![codes::NO_MATCHING_POLICY]
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn scope_filtering_never_applies_another_principals_policy() {
    runner()
        .run(&case(), |(policies, default, r, f)| {
            let d = run(&policies, default, &r, &f);
            let applies = |id: PolicyId| {
                let p = policies.iter().find(|p| p.id == id).unwrap();
                p.enabled
                    && match &p.scope {
                        PolicyScope::Tenant => true,
                        PolicyScope::Principals { agents, teams, .. } => {
                            agents.contains(&r.principal.agent_id)
                                || r.principal.team_id.is_some_and(|t| teams.contains(&t))
                        }
                        _ => false,
                    }
            };
            for reason in d.reasons() {
                if let Some(id) = reason.policy_id() {
                    prop_assert!(
                        applies(id),
                        "reason from a policy that does not apply: {reason:?}"
                    );
                }
            }
            if let Some(id) = d.allowed_by() {
                prop_assert!(applies(id));
            }
            // The same policies scoped to nobody relevant change nothing... but
            // scoped to an agent not in the request, they never decide.
            let elsewhere: Vec<Policy> = policies
                .iter()
                .cloned()
                .map(|p| p.scope(PolicyScope::agent(AgentId::from_uuid(Uuid::from_u128(404)))))
                .collect();
            let d = run(&elsewhere, default, &r, &f);
            prop_assert!(d.reasons().iter().all(|r| r.policy_id().is_none()));
            Ok(())
        })
        .unwrap();
}

/// The first amount threshold of a condition, in tree order (what `{limit}`
/// shows when no budget is exceeded).
fn first_threshold(c: &Condition) -> Option<(Decimal, Currency)> {
    match c {
        Condition::AmountAbove { amount, currency }
        | Condition::AmountAtLeast { amount, currency }
        | Condition::AmountBelow { amount, currency } => Some((*amount, *currency)),
        Condition::All { of } | Condition::Any { of } => of.iter().find_map(first_threshold),
        Condition::Not { condition } => first_threshold(condition),
        _ => None,
    }
}

/// Every amount threshold of a condition, in tree order.
fn thresholds(c: &Condition, out: &mut Vec<(Decimal, Currency)>) {
    match c {
        Condition::AmountAbove { amount, currency }
        | Condition::AmountAtLeast { amount, currency }
        | Condition::AmountBelow { amount, currency } => out.push((*amount, *currency)),
        Condition::All { of } | Condition::Any { of } => {
            of.iter().for_each(|c| thresholds(c, out));
        }
        Condition::Not { condition } => thresholds(condition, out),
        _ => {}
    }
}

fn uses_budget(c: &Condition) -> bool {
    match c {
        Condition::BudgetExceeded { .. } => true,
        Condition::All { of } | Condition::Any { of } => of.iter().any(uses_budget),
        Condition::Not { condition } => uses_budget(condition),
        _ => false,
    }
}

/// `d` as a message shows it: at least `scale` decimal places.
fn shown(d: Decimal, scale: u32) -> String {
    let mut d = d;
    if d.scale() < scale {
        d.rescale(scale);
    }
    d.to_string()
}

/// The message a policy's reason must read as, written from the policy, the
/// request and the facts: the generated template
/// `{amount} {merchant} {limit} {remaining}`, or what could not be compared.
fn expected_message(p: &Policy, reason: &bursar::policy::Reason, r: &Request, f: &Facts) -> String {
    let (amount, currency) = r.money().unwrap();
    let amount_text = format!(
        "{} {}",
        shown(amount, currency.minor_units()),
        currency.code()
    );
    if reason.is_undetermined() {
        let mut all = Vec::new();
        thresholds(&p.condition, &mut all);
        if let Some((limit, c)) = all.iter().find(|(_, c)| *c != currency) {
            return format!(
                "Amount {amount_text} cannot be compared with the limit of {} {} of \"{}\" (different currency)",
                shown(*limit, c.minor_units()),
                c.code(),
                p.name
            );
        }
        // The facts hold one monthly tenant window, which every generated
        // budget condition looks at.
        let w = &f.budgets[0];
        if uses_budget(&p.condition) && w.currency != currency {
            return format!(
                "Amount {amount_text} cannot be compared with the monthly budget of {} {} of \"{}\" (different currency)",
                shown(w.limit, w.currency.minor_units()),
                w.currency.code(),
                p.name
            );
        }
    }
    let limit = match (reason.budget(), first_threshold(&p.condition)) {
        (Some(b), _) => shown(b.limit, b.currency.minor_units()),
        (None, Some((l, c))) => shown(l, c.minor_units()),
        (None, None) => String::new(),
    };
    let remaining = reason
        .budget()
        .map(|b| shown(b.remaining, b.currency.minor_units()))
        .unwrap_or_default();
    let merchant = r.merchant.as_ref().map(|m| m.name.trim()).unwrap_or("");
    format!(
        "{} {merchant} {limit} {remaining}",
        shown(amount, currency.minor_units())
    )
}

#[test]
fn every_message_read_on_demand_is_the_message_its_template_gives() {
    runner()
        .run(&case(), |(policies, default, r, f)| {
            let d = run(&policies, default, &r, &f);
            let stored = serde_json::to_value(&d).unwrap();
            for (i, reason) in d.reasons().iter().enumerate() {
                let message = reason.message();
                let expected = match reason.policy_id() {
                    Some(id) => {
                        let p = policies.iter().find(|p| p.id == id).unwrap();
                        expected_message(p, reason, &r, &f)
                    }
                    None => {
                        prop_assert_eq!(reason.code(), codes::NO_MATCHING_POLICY);
                        "no policy allows this request and the tenant's default is deny".to_owned()
                    }
                };
                prop_assert_eq!(&*message, expected.as_str());
                let mut buf = String::new();
                reason.write_message(&mut buf);
                prop_assert_eq!(&buf, &expected);
                // Stored as before: the message is in the JSON.
                prop_assert_eq!(
                    stored["reasons"][i]["message"].as_str(),
                    Some(expected.as_str())
                );
                prop_assert_eq!(stored["reasons"][i]["code"].as_str(), Some(reason.code()));
            }
            let back: bursar::policy::Decision = serde_json::from_value(stored).unwrap();
            prop_assert_eq!(&back, &d);
            Ok(())
        })
        .unwrap();
}

/// Arbitrary JSON values, biased towards the shape of a policy.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let keys = prop::sample::select(vec![
        "type",
        "of",
        "condition",
        "amount",
        "currency",
        "merchants",
        "codes",
        "actions",
        "tools",
        "models",
        "start",
        "end",
        "timezone",
        "days",
        "window_seconds",
        "max",
        "period",
        "scope",
        "key",
        "value",
        "kind",
        "agents",
        "teams",
        "x",
    ]);
    let strings = prop::sample::select(vec![
        "all",
        "any",
        "not",
        "always",
        "amount_above",
        "amount_below",
        "amount_at_least",
        "merchant_in",
        "merchant_not_in",
        "mcc_in",
        "mcc_not_in",
        "currency_in",
        "action_in",
        "tool_in",
        "tool_not_in",
        "model_in",
        "time_of_day",
        "day_of_week",
        "new_vendor",
        "velocity_above",
        "budget_exceeded",
        "metadata_equals",
        "metadata_number",
        "writes",
        "fields_in",
        "gt",
        "USD",
        "EUR",
        "100",
        "-1",
        "1e30",
        "99999999999999999999999",
        "5960-5969",
        "9999-0",
        "23:59",
        "24:00",
        "sun",
        "Europe/Berlin",
        "",
        " ",
        "aws",
        "https://aws.amazon.com",
        "monthly",
        "tenant",
        "purchase",
        "custom:",
        "custom:x",
        "{amount}",
        "{",
        "}",
    ])
    .prop_map(|s| Value::String(s.to_owned()));
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| Value::Number(n.into())),
        any::<u32>().prop_map(|n| Value::Number(n.into())),
        strings,
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((keys.clone(), inner), 0..6).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

/// The same path as the fuzz target (`fuzz/fuzz_targets/policy_json.rs`).
fn through_the_whole_path(policy_json: &str, r: &Request, f: &Facts) {
    if let Ok(policy) = Policy::from_json(policy_json) {
        let compiled =
            CompiledPolicies::compile(std::slice::from_ref(&policy), DefaultEffect::Deny)
                .expect("a validated policy compiles");
        let d = evaluate(&compiled, r, f);
        assert!(!d.reasons().is_empty() || d.is_approved());
        let _ = serde_json::to_string(&d).unwrap();
        // What was accepted serializes and parses back to itself.
        let again = Policy::from_json(&serde_json::to_string(&policy).unwrap()).unwrap();
        assert_eq!(again, policy);
    }
}

#[test]
fn arbitrary_json_never_panics_anywhere_in_the_path() {
    let wrapper = (json_value(), effect(), request(), facts()).prop_map(|(cond, effect, r, f)| {
        let doc = serde_json::json!({
            "id": "0190a0b0-0000-7000-8000-000000000001",
            "name": "fuzz",
            "effect": effect,
            "reason_code": "FUZZ",
            "message": "{amount} {limit}",
            "condition": cond,
        });
        (doc.to_string(), r, f)
    });
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases: 2_000,
            failure_persistence: None,
            ..Config::default()
        },
        TestRng::from_seed(RngAlgorithm::ChaCha, &[11; 32]),
    );
    runner
        .run(&wrapper, |(json, r, f)| {
            through_the_whole_path(&json, &r, &f);
            Ok(())
        })
        .unwrap();
    // Raw strings, including truncations of a valid document.
    let valid = r#"{"id":"0190a0b0-0000-7000-8000-000000000001","name":"n","effect":"deny","reason_code":"X","condition":{"type":"all","of":[{"type":"merchant_in","merchants":["aws"]},{"type":"mcc_in","codes":[7995,"5960-5969"]}]}}"#;
    runner
        .run(
            &(0..valid.len(), ".{0,40}", request(), facts()),
            |(cut, noise, r, f)| {
                let cut = (0..=cut)
                    .rev()
                    .find(|i| valid.is_char_boundary(*i))
                    .unwrap_or(0);
                through_the_whole_path(&format!("{}{noise}", &valid[..cut]), &r, &f);
                through_the_whole_path(&noise, &r, &f);
                Ok(())
            },
        )
        .unwrap();
    // Nesting far beyond the bounds is refused, not overflowed.
    let deep = format!(
        "{}{}",
        r#"{"type":"not","condition":"#.repeat(10_000),
        "}".repeat(10_000)
    );
    let doc = valid.replace(r#"{"type":"all""#, &deep);
    assert!(Policy::from_json(&doc).is_err());
}
