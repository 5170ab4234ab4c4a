//! Input the policy engine cannot read with certainty is refused, never
//! guessed at: deep or unknown policy JSON, blank request texts, spoofable
//! merchant identities and money written in anything but plain decimals.

use bursar::Error;
use bursar::id::AgentId;
use bursar::money::Currency;
use bursar::policy::{Policy, Request};
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
    ]
}

#[test]
fn every_condition_kind_refuses_an_unknown_field() {
    let kinds = every_condition_kind();
    assert_eq!(kinds.len(), 22, "one example per condition kind");
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
