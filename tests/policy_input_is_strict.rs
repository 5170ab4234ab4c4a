//! Input the policy engine cannot read with certainty is refused, never
//! guessed at: deep or unknown policy JSON, blank request texts, spoofable
//! merchant identities and money written in anything but plain decimals.

use bursar::Error;
use bursar::id::AgentId;
use bursar::money::Currency;
use bursar::policy::{
    CompiledPolicies, Condition, DefaultEffect, Effect, Facts, Outcome, Policy, Request, evaluate,
};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn policy_with(condition: Value) -> Value {
    // Inserted, not interpolated: `json!` would serialize the condition again,
    // recursively.
    let mut policy = json!({
        "id": "0190a0b0-0000-7000-8000-000000000001",
        "name": "p",
        "effect": "deny",
        "reason_code": "DENIED",
    });
    policy["condition"] = condition;
    policy
}

/// `{"type":"not","condition":{...}}` nested `depth` times around `always`,
/// built without recursion.
fn deep_not(depth: usize) -> Value {
    let mut v = json!({"type": "always"});
    for _ in 0..depth {
        let mut not = json!({"type": "not"});
        not["condition"] = v;
        v = not;
    }
    v
}

/// Runs `f` on a thread with a small stack, so that any recursion over the
/// input's depth shows up as a crash.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_deep_policy_value_is_refused_without_overflowing_the_stack() {
    for depth in [1_000, 100_000] {
        let value = policy_with(deep_not(depth));
        let err = on_small_stack(move || Policy::from_value(value).unwrap_err());
        match err {
            Error::InvalidPolicy { path, reason } => {
                assert_eq!(path, "$", "{depth}");
                assert!(reason.contains("deeper than"), "{depth}: {reason}");
            }
            other => panic!("{depth}: {other:?}"),
        }
    }
}

#[test]
fn a_policy_value_within_the_depth_bound_still_parses() {
    let p = Policy::from_value(policy_with(deep_not(3))).unwrap();
    assert_eq!(p.condition.type_name(), "not");
}

/// One valid example of every condition kind.
fn every_condition_kind() -> Vec<Value> {
    vec![
        json!({"type": "always"}),
        json!({"type": "all", "of": []}),
        json!({"type": "any", "of": []}),
        json!({"type": "not", "condition": {"type": "always"}}),
        json!({"type": "amount_above", "amount": "100", "currency": "USD"}),
        json!({"type": "amount_at_least", "amount": "100", "currency": "USD"}),
        json!({"type": "amount_below", "amount": "100", "currency": "USD"}),
        json!({"type": "currency_in", "currencies": ["USD"]}),
        json!({"type": "merchant_in", "merchants": ["aws"]}),
        json!({"type": "merchant_not_in", "merchants": ["aws"]}),
        json!({"type": "mcc_in", "codes": [7995]}),
        json!({"type": "mcc_not_in", "codes": ["5734"]}),
        json!({"type": "action_in", "actions": ["purchase"]}),
        json!({"type": "tool_in", "tools": ["search"]}),
        json!({"type": "tool_not_in", "tools": ["search"]}),
        json!({"type": "model_in", "models": ["gpt-4o"]}),
        json!({"type": "time_of_day", "start": "22:00", "end": "06:00"}),
        json!({"type": "day_of_week", "days": ["sat"]}),
        json!({"type": "new_vendor"}),
        json!({"type": "velocity_above", "window_seconds": 60, "max": 5}),
        json!({"type": "budget_exceeded", "period": "monthly"}),
        json!({"type": "metadata_equals", "key": "env", "value": "prod"}),
        json!({"type": "metadata_number", "key": "rows", "op": "gt", "value": "1000"}),
        json!({"type": "writes"}),
        json!({"type": "fields_in", "fields": ["ssn"]}),
    ]
}

#[test]
fn every_condition_kind_refuses_an_unknown_field() {
    let kinds = every_condition_kind();
    assert_eq!(kinds.len(), 25, "one example per condition kind");
    for valid in kinds {
        let kind = valid["type"].as_str().unwrap().to_owned();
        Policy::from_value(policy_with(valid.clone()))
            .unwrap_or_else(|e| panic!("{kind} is a valid example: {e}"));
        let text = serde_json::to_string(&policy_with(valid.clone())).unwrap();
        Policy::from_json(&text).unwrap_or_else(|e| panic!("{kind} as text: {e}"));

        let mut extra = valid;
        extra["extra"] = json!(1);
        let err = Policy::from_value(policy_with(extra.clone())).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `extra`"),
            "{kind}: {err}"
        );
        let text = serde_json::to_string(&policy_with(extra)).unwrap();
        let err = Policy::from_json(&text).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `extra`"),
            "{kind} as text: {err}"
        );
    }
}

fn invalid_field(err: Error) -> String {
    match err {
        Error::Invalid { field, .. } => field,
        other => panic!("not an invalid-input error: {other:?}"),
    }
}

fn buy(merchant: &str) -> Request {
    Request::purchase(AgentId::new(), Decimal::from(30), Currency::USD, merchant)
}

#[test]
fn blank_request_texts_are_refused_naming_the_field() {
    let agent = AgentId::new();
    let cases: Vec<(Request, &str)> = vec![
        (buy(""), "merchant.name"),
        (buy("   "), "merchant.name"),
        (buy("\t\n\u{3000}"), "merchant.name"),
        (buy("GitHub").merchant_domain(""), "merchant.domain"),
        (buy("GitHub").merchant_domain("  "), "merchant.domain"),
        (
            buy("GitHub").merchant_domain("not a host"),
            "merchant.domain",
        ),
        (Request::tool_call(agent, ""), "tool"),
        (Request::tool_call(agent, " "), "tool"),
        (
            Request::llm_usage(agent, " ", Decimal::ONE, Currency::USD),
            "model",
        ),
        (buy("GitHub").metadata(" ", "x"), "metadata key"),
        (buy("GitHub").idempotency_key("  "), "idempotency_key"),
    ];
    for (request, field) in cases {
        let err = request.validate().unwrap_err();
        assert_eq!(invalid_field(err), field, "{request:?}");
    }
}

#[test]
fn an_action_without_its_subject_is_refused() {
    let agent = AgentId::new();
    let mut purchase = buy("GitHub");
    purchase.merchant = None;
    assert_eq!(invalid_field(purchase.validate().unwrap_err()), "merchant");
    let mut tool = Request::tool_call(agent, "search");
    tool.tool = None;
    assert_eq!(invalid_field(tool.validate().unwrap_err()), "tool");
    let mut llm = Request::llm_usage(agent, "gpt-4o", Decimal::ONE, Currency::USD);
    llm.model = None;
    assert_eq!(invalid_field(llm.validate().unwrap_err()), "model");
}

#[test]
fn ordinary_requests_still_validate() {
    let agent = AgentId::new();
    buy("GitHub").validate().unwrap();
    buy(" GitHub ")
        .merchant_domain("https://api.github.com/x")
        .metadata("env", "")
        .validate()
        .unwrap();
    Request::tool_call(agent, "search").validate().unwrap();
    Request::llm_usage(agent, "gpt-4o", Decimal::ONE, Currency::USD)
        .validate()
        .unwrap();
    Request::custom(agent, "deploy").validate().unwrap();
}

fn facts() -> Facts {
    Facts::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        chrono_tz::UTC,
    )
}

fn decide(policy: Policy, default: DefaultEffect, request: &Request) -> Outcome {
    let compiled = CompiledPolicies::compile(&[policy], default).unwrap();
    evaluate(&compiled, request, &facts()).outcome()
}

/// An allow list written both ways: an `allow` on `merchant_in`, and (as
/// spending controls write it) a `deny` on `merchant_not_in`.
fn allow_list_admits(entries: &[&str], request: &Request) -> bool {
    let merchants: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    let allow = Policy::new(
        "allow",
        Effect::Allow,
        "OK",
        Condition::MerchantIn {
            merchants: merchants.clone(),
        },
    );
    let deny_others = Policy::new(
        "others",
        Effect::Deny,
        "MERCHANT_NOT_ALLOWED",
        Condition::MerchantNotIn { merchants },
    );
    let by_allow = decide(allow, DefaultEffect::Deny, request) == Outcome::Approved;
    let by_deny = decide(deny_others, DefaultEffect::Allow, request) == Outcome::Approved;
    assert_eq!(
        by_allow, by_deny,
        "both ways of writing it agree: {request:?}"
    );
    by_allow
}

/// A block list written both ways: a `deny` on `merchant_in`, and an `allow`
/// on `merchant_not_in` under a default of deny.
fn block_list_blocks(entries: &[&str], request: &Request) -> bool {
    let merchants: Vec<String> = entries.iter().map(|s| s.to_string()).collect();
    let deny = Policy::new(
        "block",
        Effect::Deny,
        "MERCHANT_BLOCKED",
        Condition::MerchantIn {
            merchants: merchants.clone(),
        },
    );
    let allow_others = Policy::new(
        "others",
        Effect::Allow,
        "OK",
        Condition::MerchantNotIn { merchants },
    );
    let by_deny = decide(deny, DefaultEffect::Allow, request) == Outcome::Rejected;
    let by_allow = decide(allow_others, DefaultEffect::Deny, request) == Outcome::Rejected;
    assert_eq!(
        by_deny, by_allow,
        "both ways of writing it agree: {request:?}"
    );
    by_deny
}

#[test]
fn an_allow_list_refuses_spoofed_merchant_identities() {
    let github = ["github"];
    // A GitHub Pages user site is its owner's, not GitHub's.
    assert!(!allow_list_admits(&github, &buy("evil.github.io")));
    assert!(!allow_list_admits(
        &github,
        &buy("Attacker").merchant_domain("attacker.github.io")
    ));
    assert!(!allow_list_admits(
        &github,
        &buy("GitHub").merchant_domain("attacker.github.io")
    ));
    // The name says GitHub, the domain says otherwise: the domain decides.
    assert!(!allow_list_admits(
        &github,
        &buy("GitHub").merchant_domain("evil.com")
    ));
    assert!(!allow_list_admits(
        &["github.com"],
        &buy("github.com").merchant_domain("https://evil.com/github.com")
    ));
}

#[test]
fn an_allow_list_still_admits_the_real_merchant() {
    let github = ["github"];
    assert!(allow_list_admits(&github, &buy("GitHub")));
    assert!(allow_list_admits(&github, &buy("github.com")));
    assert!(allow_list_admits(&github, &buy("api.github.com")));
    assert!(allow_list_admits(
        &github,
        &buy("GitHub").merchant_domain("github.com")
    ));
    assert!(allow_list_admits(
        &github,
        &buy("GitHub").merchant_domain("https://api.github.com/x")
    ));
    // With a domain, the domain decides, whatever the name.
    assert!(allow_list_admits(
        &github,
        &buy("GitHub, Inc.").merchant_domain("github.com")
    ));
    assert!(allow_list_admits(
        &["github.com"],
        &buy("GitHub").merchant_domain("api.github.com")
    ));
    assert!(allow_list_admits(
        &["user.github.io"],
        &buy("x").merchant_domain("user.github.io")
    ));
    // Registrable domains under multi-label public suffixes.
    assert!(allow_list_admits(
        &["example"],
        &buy("x").merchant_domain("shop.example.co.uk")
    ));
    assert!(!allow_list_admits(
        &["co"],
        &buy("x").merchant_domain("shop.example.co.uk")
    ));
}

#[test]
fn a_block_list_blocks_when_the_name_or_the_domain_matches() {
    let ads = ["facebook"];
    assert!(block_list_blocks(&ads, &buy("Facebook")));
    assert!(block_list_blocks(
        &ads,
        &buy("Facebook").merchant_domain("innocent.com")
    ));
    assert!(block_list_blocks(
        &ads,
        &buy("Innocent").merchant_domain("ads.facebook.com")
    ));
    assert!(block_list_blocks(
        &["facebook.com"],
        &buy("facebook.com").merchant_domain("innocent.com")
    ));
    assert!(!block_list_blocks(
        &ads,
        &buy("Innocent").merchant_domain("innocent.com")
    ));
}

#[test]
fn names_never_match_as_substrings() {
    for request in [
        buy("Laws Firm LLC"),
        buy("laws.com"),
        buy("Laws").merchant_domain("laws.com"),
        buy("x").merchant_domain("aws.laws.com"),
    ] {
        assert!(!allow_list_admits(&["aws"], &request), "{request:?}");
        assert!(!block_list_blocks(&["aws"], &request), "{request:?}");
    }
    assert!(block_list_blocks(&["aws"], &buy(" AWS ")));
}

#[test]
fn a_public_suffix_is_not_a_merchant_entry() {
    for entry in ["github.io", "co.uk", "https://www.github.io/"] {
        let p = Policy::new(
            "p",
            Effect::Deny,
            "MERCHANT_BLOCKED",
            Condition::MerchantIn {
                merchants: vec!["aws".into(), entry.into()],
            },
        );
        match bursar::policy::validate(&p).unwrap_err() {
            Error::InvalidPolicy { path, reason } => {
                assert_eq!(path, "condition.merchant_in[1]");
                assert!(reason.contains("public suffix"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

const NOT_PLAIN_DECIMALS: [&str; 16] = [
    "1e3", "1E3", "1.5e-2", "+5", " 5", "5 ", "", "-", "NaN", "inf", "0x10", ".5", "5.", "1_000",
    "1,5", "٣",
];

#[test]
fn money_text_is_plain_decimals_only() {
    use bursar::money::{Amount, Money};
    for text in NOT_PLAIN_DECIMALS {
        assert!(Money::parse(text, "USD").is_err(), "Money::parse {text:?}");
        let json = serde_json::to_string(text).unwrap();
        assert!(
            serde_json::from_str::<Amount>(&json).is_err(),
            "Amount {text:?}"
        );
        let money = format!(r#"{{"amount":{json},"currency":"USD"}}"#);
        assert!(
            serde_json::from_str::<Money>(&money).is_err(),
            "Money {text:?}"
        );
        let mut request = serde_json::to_value(buy("GitHub")).unwrap();
        request["amount"] = Value::String(text.to_owned());
        assert!(
            serde_json::from_value::<Request>(request).is_err(),
            "Request {text:?}"
        );
        let condition = json!({"type": "amount_above", "amount": text, "currency": "USD"});
        assert!(
            Policy::from_value(policy_with(condition)).is_err(),
            "condition {text:?}"
        );
    }
    assert_eq!(
        Money::parse("12.50", "USD").unwrap().amount(),
        Decimal::new(1250, 2)
    );
    assert_eq!(
        Money::parse("-0.9", "USD").unwrap().amount(),
        Decimal::new(-9, 1)
    );
    let a: Amount = serde_json::from_str(r#""1000""#).unwrap();
    assert_eq!(a.get(), Decimal::from(1000));
    let m: Money = serde_json::from_str(r#"{"amount":"29.50","currency":"USD"}"#).unwrap();
    assert_eq!(m.amount(), Decimal::new(295, 1));
    // Deserialized money is checked like constructed money.
    assert!(serde_json::from_str::<Money>(r#"{"amount":"0.0000001","currency":"USD"}"#).is_err());
    let r: Request = serde_json::from_value(serde_json::to_value(buy("GitHub")).unwrap()).unwrap();
    assert_eq!(r.amount, Some(Decimal::from(30)));
}

fn eur(amount: i64) -> Request {
    Request::purchase(
        AgentId::new(),
        Decimal::from(amount),
        Currency::EUR,
        "GitHub",
    )
}

#[test]
fn an_amount_in_another_currency_says_what_it_could_not_compare() {
    use bursar::policy::SpendingControls;
    let agent = AgentId::new();
    let controls = SpendingControls::new(Currency::USD)
        .agent(agent)
        .per_transaction_limit(Decimal::from(200))
        .build()
        .unwrap();
    let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
    let mut request = eur(5);
    request.principal.agent_id = agent;
    let decision = evaluate(&compiled, &request, &facts());
    assert!(decision.is_rejected());
    let reason = &decision.reasons()[0];
    assert!(reason.is_undetermined());
    assert_eq!(
        reason.message(),
        "Amount 5.00 EUR cannot be compared with the limit of 200.00 USD of \"Per-transaction limit\" (different currency)"
    );

    // Every amount comparison, in the threshold's own scale.
    for kind in ["amount_above", "amount_at_least", "amount_below"] {
        let condition = json!({"type": kind, "amount": "1000", "currency": "JPY"});
        let mut p = Policy::from_value(policy_with(condition)).unwrap();
        p.message = "Amount {amount} {currency} is over {limit}".into();
        let decision = evaluate(
            &CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap(),
            &eur(5),
            &facts(),
        );
        assert_eq!(
            decision.reasons()[0].message(),
            "Amount 5.00 EUR cannot be compared with the limit of 1000 JPY of \"p\" (different currency)",
            "{kind}"
        );
    }
}

#[test]
fn a_budget_in_another_currency_is_undetermined_and_says_so() {
    use bursar::budget::{Period, Scope, WindowBalance};
    use bursar::id::BudgetId;
    let window = WindowBalance {
        budget_id: BudgetId::new(),
        scope: Scope::Tenant,
        period: Period::Monthly,
        currency: Currency::USD,
        limit: Decimal::from(500),
        spent: Decimal::ZERO,
        reserved: Decimal::ZERO,
    };
    let p = Policy::new(
        "Monthly budget",
        Effect::Deny,
        "ORG_BUDGET_EXCEEDED",
        Condition::BudgetExceeded {
            period: Some(Period::Monthly),
            scope: None,
        },
    )
    .message("Over the {period} budget");
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap();
    let decision = evaluate(&compiled, &eur(5), &facts().budget(window.clone()));
    assert!(decision.is_rejected());
    assert!(decision.reasons()[0].is_undetermined());
    assert_eq!(
        decision.reasons()[0].message(),
        "Amount 5.00 EUR cannot be compared with the monthly budget of 500.00 USD of \"Monthly budget\" (different currency)"
    );
    // In its own currency the budget decides as before.
    let usd = Request::purchase(AgentId::new(), Decimal::from(5), Currency::USD, "GitHub");
    assert!(evaluate(&compiled, &usd, &facts().budget(window)).is_approved());
}
