//! Unit tests: one per condition, the combination rules, validation, and the
//! spending-controls scenarios.

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::budget::{Period, Scope, WindowBalance};
use crate::codes;
use crate::id::{AgentId, BudgetId, ProjectId, TeamId};
use crate::money::Currency;

fn d(s: &str) -> Decimal {
    Decimal::from_str_exact(s).unwrap()
}

/// Saturday 2025-03-01 12:00 UTC.
fn facts() -> Facts {
    Facts::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(),
        chrono_tz::UTC,
    )
}

fn c(json: &str) -> Condition {
    serde_json::from_str(json).unwrap()
}

/// Whether a single deny policy with condition `cond` rejects the request.
fn denies(cond: Condition, req: &Request, facts: &Facts) -> bool {
    let p = Policy::new("p", Effect::Deny, "DENIED", cond);
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap();
    evaluate(&compiled, req, facts).is_rejected()
}

/// Whether a single allow policy with condition `cond` approves the request.
fn allows(cond: Condition, req: &Request, facts: &Facts) -> bool {
    let p = Policy::new("p", Effect::Allow, "OK", cond);
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Deny).unwrap();
    evaluate(&compiled, req, facts).is_approved()
}

fn buy(amount: &str, merchant: &str) -> Request {
    Request::purchase(AgentId::new(), d(amount), Currency::USD, merchant)
}

#[test]
fn always_all_any_not() {
    let r = buy("1", "x");
    assert!(allows(c(r#"{"type":"always"}"#), &r, &facts()));
    assert!(allows(c(r#"{"type":"all","of":[]}"#), &r, &facts()));
    assert!(!allows(c(r#"{"type":"any","of":[]}"#), &r, &facts()));
    assert!(!allows(
        c(r#"{"type":"not","condition":{"type":"always"}}"#),
        &r,
        &facts()
    ));
    assert!(allows(
        c(r#"{"type":"any","of":[{"type":"new_vendor"},{"type":"always"}]}"#),
        &r,
        &facts()
    ));
}

#[test]
fn amount_comparisons_are_exact_and_strict_where_named() {
    let above = c(r#"{"type":"amount_above","amount":"100","currency":"USD"}"#);
    let at_least = c(r#"{"type":"amount_at_least","amount":"100","currency":"USD"}"#);
    let below = c(r#"{"type":"amount_below","amount":"100","currency":"USD"}"#);
    assert!(!allows(above.clone(), &buy("100", "x"), &facts()));
    assert!(allows(above.clone(), &buy("100.01", "x"), &facts()));
    assert!(allows(at_least.clone(), &buy("100.00", "x"), &facts()));
    assert!(!allows(at_least, &buy("99.999999", "x"), &facts()));
    assert!(allows(below.clone(), &buy("99.99", "x"), &facts()));
    assert!(!allows(below, &buy("100", "x"), &facts()));
    // No amount at all: a tool call is not above anything.
    let tool = Request::tool_call(AgentId::new(), "search");
    assert!(!denies(above, &tool, &facts()));
}

#[test]
fn amounts_in_another_currency_fail_closed_for_deny_and_never_allow() {
    let above = c(r#"{"type":"amount_above","amount":"100","currency":"USD"}"#);
    let below = c(r#"{"type":"amount_below","amount":"100","currency":"USD"}"#);
    let eur = Request::purchase(AgentId::new(), d("5"), Currency::EUR, "x");
    // A USD threshold cannot be compared with EUR: the deny fires (undetermined)...
    let p = Policy::new("Max", Effect::Deny, "OVER_TRANSACTION_LIMIT", above.clone());
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap();
    let decision = evaluate(&compiled, &eur, &facts());
    assert!(decision.is_rejected());
    assert!(decision.reasons()[0].is_undetermined());
    // ...and an allow never approves on it, whichever way it compares.
    assert!(!allows(below.clone(), &eur, &facts()));
    assert!(!allows(Condition::not(above), &eur, &facts()));
    // not(unknown) stays unknown: a deny on "not below" fails closed too.
    assert!(denies(Condition::not(below), &eur, &facts()));
}

#[test]
fn currency_in() {
    let cond = c(r#"{"type":"currency_in","currencies":["EUR","usd"]}"#);
    assert!(allows(cond.clone(), &buy("1", "x"), &facts()));
    let jpy = Request::purchase(AgentId::new(), d("1"), Currency::JPY, "x");
    assert!(!allows(cond.clone(), &jpy, &facts()));
    assert!(!allows(
        cond,
        &Request::tool_call(AgentId::new(), "t"),
        &facts()
    ));
}

#[test]
fn merchant_in_matches_names_and_domains_but_never_substrings() {
    let cond = c(r#"{"type":"merchant_in","merchants":["aws","aws.amazon.com"]}"#);
    for name in [
        "AWS",
        " Aws ",
        "aws.amazon.com",
        "https://aws.amazon.com/ec2",
    ] {
        assert!(denies(cond.clone(), &buy("1", name), &facts()), "{name}");
    }
    let by_domain = buy("1", "Amazon Web Services").merchant_domain("console.aws.amazon.com");
    assert!(denies(cond.clone(), &by_domain, &facts()));
    for name in ["Laws Firm LLC", "laws", "awsome", "Amazon"] {
        assert!(!denies(cond.clone(), &buy("1", name), &facts()), "{name}");
    }
    // No merchant: neither in nor not in.
    let tool = Request::tool_call(AgentId::new(), "t");
    assert!(!denies(cond, &tool, &facts()));
    let not_in = c(r#"{"type":"merchant_not_in","merchants":["github"]}"#);
    assert!(!denies(not_in.clone(), &tool, &facts()));
    assert!(!denies(not_in.clone(), &buy("1", "GitHub"), &facts()));
    assert!(!denies(
        not_in.clone(),
        &buy("1", "x").merchant_domain("api.github.com"),
        &facts()
    ));
    assert!(denies(not_in, &buy("1", "GitLab"), &facts()));
}

#[test]
fn mcc_codes_and_ranges() {
    let cond = c(r#"{"type":"mcc_in","codes":[7995,"5960-5969","5962"]}"#);
    assert!(denies(cond.clone(), &buy("1", "x").mcc(7995), &facts()));
    assert!(denies(cond.clone(), &buy("1", "x").mcc(5960), &facts()));
    assert!(denies(cond.clone(), &buy("1", "x").mcc(5969), &facts()));
    assert!(!denies(cond.clone(), &buy("1", "x").mcc(5970), &facts()));
    assert!(!denies(cond.clone(), &buy("1", "x").mcc(7994), &facts()));
    assert!(!denies(cond, &buy("1", "x"), &facts()));
    let not_in = c(r#"{"type":"mcc_not_in","codes":["5734"]}"#);
    assert!(!denies(not_in.clone(), &buy("1", "x").mcc(5734), &facts()));
    assert!(denies(not_in.clone(), &buy("1", "x").mcc(5735), &facts()));
    assert!(!denies(not_in, &buy("1", "x"), &facts()));
}

#[test]
fn action_kinds_including_custom_names() {
    let cond = c(r#"{"type":"action_in","actions":["tool_call","custom:Deploy"]}"#);
    let agent = AgentId::new();
    assert!(allows(
        cond.clone(),
        &Request::tool_call(agent, "t"),
        &facts()
    ));
    assert!(allows(
        cond.clone(),
        &Request::custom(agent, "deploy"),
        &facts()
    ));
    assert!(!allows(
        cond.clone(),
        &Request::custom(agent, "delete"),
        &facts()
    ));
    assert!(!allows(cond, &buy("1", "x"), &facts()));
    // Each kind matches only itself.
    let requests = [
        ("purchase", buy("1", "x")),
        ("tool_call", Request::tool_call(agent, "t")),
        ("llm_usage", Request::new(agent, ActionKind::LlmUsage)),
    ];
    for (kind, _) in &requests {
        let only = c(&format!(r#"{{"type":"action_in","actions":["{kind}"]}}"#));
        for (other, request) in &requests {
            assert_eq!(
                allows(only.clone(), request, &facts()),
                kind == other,
                "action_in [{kind}] on a {other}"
            );
        }
    }
    assert!(
        serde_json::from_str::<Condition>(r#"{"type":"action_in","actions":["fly"]}"#).is_err()
    );
}

#[test]
fn tools_and_models() {
    let agent = AgentId::new();
    let tool_in = c(r#"{"type":"tool_in","tools":["shell.exec","Files.Delete"]}"#);
    assert!(denies(
        tool_in.clone(),
        &Request::tool_call(agent, "files.delete"),
        &facts()
    ));
    assert!(!denies(
        tool_in.clone(),
        &Request::tool_call(agent, "files.deleted"),
        &facts()
    ));
    assert!(!denies(tool_in, &buy("1", "x"), &facts()));
    let not_in = c(r#"{"type":"tool_not_in","tools":["search"]}"#);
    assert!(denies(
        not_in.clone(),
        &Request::tool_call(agent, "shell"),
        &facts()
    ));
    assert!(!denies(
        not_in.clone(),
        &Request::tool_call(agent, " Search "),
        &facts()
    ));
    assert!(!denies(not_in, &buy("1", "x"), &facts()));
    let model_in = c(r#"{"type":"model_in","models":["gpt-4o","claude-opus"]}"#);
    let usage = Request::llm_usage(agent, "GPT-4o", d("0.02"), Currency::USD);
    assert!(allows(model_in.clone(), &usage, &facts()));
    let other = Request::llm_usage(agent, "gpt-4o-mini", d("0.02"), Currency::USD);
    assert!(!allows(model_in, &other, &facts()));
}

#[test]
fn time_of_day_in_zones_and_across_midnight() {
    let at = |h, m| {
        Facts::new(
            Utc.with_ymd_and_hms(2025, 3, 1, h, m, 0).unwrap(),
            chrono_tz::UTC,
        )
    };
    let office = c(r#"{"type":"time_of_day","start":"09:00","end":"17:00"}"#);
    assert!(allows(office.clone(), &buy("1", "x"), &at(9, 0)));
    assert!(allows(office.clone(), &buy("1", "x"), &at(16, 59)));
    assert!(!allows(office.clone(), &buy("1", "x"), &at(17, 0)));
    // Minutes count after the hour: 09:30 is inside, 06:30 after the night.
    assert!(allows(office.clone(), &buy("1", "x"), &at(9, 30)));
    assert!(!allows(office.clone(), &buy("1", "x"), &at(8, 30)));
    let night = c(r#"{"type":"time_of_day","start":"22:00","end":"06:00"}"#);
    assert!(denies(night.clone(), &buy("1", "x"), &at(23, 30)));
    assert!(denies(night.clone(), &buy("1", "x"), &at(0, 0)));
    assert!(denies(night.clone(), &buy("1", "x"), &at(5, 59)));
    assert!(!denies(night.clone(), &buy("1", "x"), &at(6, 0)));
    assert!(!denies(night.clone(), &buy("1", "x"), &at(6, 30)));
    assert!(!denies(night.clone(), &buy("1", "x"), &at(21, 59)));
    // 12:00 UTC is 21:00 in Tokyo: inside 20:00-23:00 there.
    let tokyo =
        c(r#"{"type":"time_of_day","start":"20:00","end":"23:00","timezone":"Asia/Tokyo"}"#);
    assert!(allows(tokyo, &buy("1", "x"), &at(12, 0)));
    // The tenant's zone applies when the condition names none.
    let mut berlin = at(22, 30);
    berlin.timezone = chrono_tz::Europe::Berlin; // 23:30 local
    assert!(denies(night, &buy("1", "x"), &berlin));
}

#[test]
fn day_of_week_in_zones() {
    // Saturday 2025-03-01 23:30 UTC is Sunday in Tokyo.
    let late = Facts::new(
        Utc.with_ymd_and_hms(2025, 3, 1, 23, 30, 0).unwrap(),
        chrono_tz::UTC,
    );
    let weekend = c(r#"{"type":"day_of_week","days":["sat","Sunday"]}"#);
    assert!(denies(weekend, &buy("1", "x"), &late));
    let sunday_tokyo = c(r#"{"type":"day_of_week","days":["sun"],"timezone":"Asia/Tokyo"}"#);
    assert!(denies(sunday_tokyo.clone(), &buy("1", "x"), &late));
    assert!(!denies(sunday_tokyo, &buy("1", "x"), &facts()));
}

#[test]
fn new_vendor_and_velocity() {
    let r = buy("1", "x");
    assert!(denies(Condition::NewVendor, &r, &facts().new_vendor(true)));
    assert!(!denies(Condition::NewVendor, &r, &facts()));
    let v = c(r#"{"type":"velocity_above","window_seconds":3600,"max":10}"#);
    // 9 earlier requests + this one = 10: not above 10.
    assert!(!denies(v.clone(), &r, &facts().velocity(3600, 9)));
    assert!(denies(v.clone(), &r, &facts().velocity(3600, 10)));
    // Another window's count says nothing about this one.
    assert!(!allows(v.clone(), &r, &facts().velocity(60, 100)));
    // A window the store did not load is undetermined: deny fails closed.
    let p = Policy::new("Burst", Effect::Deny, "VELOCITY", v);
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap();
    assert_eq!(compiled.velocity_windows(), &[3600]);
    let decision = evaluate(&compiled, &r, &facts());
    assert!(decision.is_rejected() && decision.reasons()[0].is_undetermined());
}

fn window(scope: Scope, period: Period, limit: &str, spent: &str, reserved: &str) -> WindowBalance {
    WindowBalance {
        budget_id: BudgetId::new(),
        scope,
        period,
        currency: Currency::USD,
        limit: d(limit),
        spent: d(spent),
        reserved: d(reserved),
    }
}

#[test]
fn budget_exceeded_names_the_budget_limit_and_remaining() {
    let agent = AgentId::new();
    let daily = window(Scope::Agent(agent), Period::Daily, "100", "60", "30");
    let monthly = window(Scope::Agent(agent), Period::Monthly, "1000", "0", "0");
    let f = facts().budget(monthly).budget(daily.clone());
    let cond = c(r#"{"type":"budget_exceeded","period":"daily","scope":"agent"}"#);
    let p = Policy::new("Daily", Effect::Deny, codes::DAILY_LIMIT_EXCEEDED, cond)
        .message("{amount} would exceed the {period} limit of {limit} ({remaining} left)");
    let compiled =
        CompiledPolicies::compile(std::slice::from_ref(&p), DefaultEffect::Allow).unwrap();
    let req = Request::purchase(agent, d("10.01"), Currency::USD, "x");
    let decision = evaluate(&compiled, &req, &f);
    assert!(decision.is_rejected());
    let reason = &decision.reasons()[0];
    assert_eq!(reason.code(), codes::DAILY_LIMIT_EXCEEDED);
    assert_eq!(reason.policy_id(), Some(p.id));
    let budget = reason.budget().unwrap();
    assert_eq!(budget.budget_id, daily.budget_id);
    assert_eq!((budget.limit, budget.remaining), (d("100"), d("10")));
    assert_eq!(
        reason.message(),
        "10.01 would exceed the daily limit of 100.00 (10.00 left)"
    );
    // Exactly the remainder fits.
    let fits = Request::purchase(agent, d("10"), Currency::USD, "x");
    assert!(evaluate(&compiled, &fits, &f).is_approved());
    // A budget in another currency cannot be compared: the deny fails closed.
    let eur = Request::purchase(agent, d("5"), Currency::EUR, "x");
    let decision = evaluate(&compiled, &eur, &f);
    assert!(decision.is_rejected());
    assert!(decision.reasons()[0].is_undetermined());
    assert!(decision.reasons()[0].budget().is_none());
}

/// A budget condition looks only at the windows of its period and scope: a
/// full window of another period, or of the same period at another scope,
/// neither refuses nor makes the request undetermined.
#[test]
fn a_budget_condition_looks_only_at_windows_of_its_period_and_scope() {
    let agent = AgentId::new();
    let team = TeamId::new();
    let daily = window(Scope::Agent(agent), Period::Daily, "100", "0", "0");
    let full_monthly = window(Scope::Agent(agent), Period::Monthly, "10", "10", "0");
    let full_team_daily = window(Scope::Team(team), Period::Daily, "10", "10", "0");
    let f = facts()
        .budget(full_monthly)
        .budget(full_team_daily)
        .budget(daily);
    let cond = c(r#"{"type":"budget_exceeded","period":"daily","scope":"agent"}"#);
    let p = Policy::new("Daily", Effect::Deny, codes::DAILY_LIMIT_EXCEEDED, cond);
    let compiled = CompiledPolicies::compile(&[p], DefaultEffect::Allow).unwrap();
    let req = Request::purchase(agent, d("5"), Currency::USD, "x");
    let decision = evaluate(&compiled, &req, &f);
    assert!(decision.is_approved(), "{:?}", decision.reasons());
    // The same windows, the condition on every daily window: the team's
    // full one refuses.
    let any_scope = c(r#"{"type":"budget_exceeded","period":"daily"}"#);
    assert!(denies(any_scope, &req, &f));
}

#[test]
fn metadata_number_compares_plain_decimals_and_is_undetermined_otherwise() {
    let over = |op: &str, value: &str| {
        c(&format!(
            r#"{{"type":"metadata_number","key":"rows","op":"{op}","value":"{value}"}}"#
        ))
    };
    let rows = |n: &str| buy("1", "x").metadata("rows", n);
    let f = facts();
    // Each operator at, below and above its boundary.
    for (op, below, at, above) in [
        ("lt", true, false, false),
        ("le", true, true, false),
        ("gt", false, false, true),
        ("ge", false, true, true),
        ("eq", false, true, false),
    ] {
        assert_eq!(
            denies(over(op, "1000"), &rows("999.99"), &f),
            below,
            "{op} below"
        );
        assert_eq!(denies(over(op, "1000"), &rows("1000"), &f), at, "{op} at");
        assert_eq!(
            denies(over(op, "1000"), &rows("1000.01"), &f),
            above,
            "{op} above"
        );
        assert_eq!(
            allows(over(op, "1000"), &rows("1000"), &f),
            at,
            "{op} allow at"
        );
    }
    // Absent or not a plain number: undetermined, so a deny fires and an allow
    // never matches.
    for req in [buy("1", "x"), rows("1e3"), rows(" 5"), rows("lots")] {
        assert!(denies(over("gt", "1000"), &req, &f), "{req:?}");
        assert!(!allows(over("le", "1000"), &req, &f), "{req:?}");
    }
    let blank = Policy::new(
        "p",
        Effect::Deny,
        "X",
        c(r#"{"type":"metadata_number","key":" ","op":"gt","value":"1"}"#),
    );
    let err = crate::policy::validate(&blank).unwrap_err();
    assert!(err.to_string().contains("metadata_number.key"), "{err}");
}

#[test]
fn writes_is_true_for_writes_false_for_reads_and_undetermined_otherwise() {
    let f = facts();
    let access = |a: &str| buy("1", "x").metadata("access", a);
    assert!(denies(Condition::Writes, &access("write"), &f));
    assert!(denies(Condition::Writes, &access("DELETE"), &f));
    assert!(!denies(Condition::Writes, &access("read"), &f));
    // Determined, not merely undetermined: an allow on it approves.
    assert!(allows(Condition::Writes, &access("write"), &f));
    assert!(allows(Condition::Writes, &access(" Delete "), &f));
    assert!(!allows(Condition::Writes, &access("append"), &f));
    assert!(allows(
        Condition::Not {
            condition: Box::new(Condition::Writes)
        },
        &access("read"),
        &f
    ));
    // Read-only mode fails closed on an action that does not say.
    assert!(denies(Condition::Writes, &buy("1", "x"), &f));
    assert!(denies(Condition::Writes, &access("append"), &f));
    assert!(!allows(
        Condition::Not {
            condition: Box::new(Condition::Writes)
        },
        &buy("1", "x"),
        &f
    ));
}

#[test]
fn fields_in_matches_any_named_field_case_insensitively() {
    let f = facts();
    let blocked = c(r#"{"type":"fields_in","fields":["SSN","salary"]}"#);
    let fields = |list: &str| buy("1", "x").metadata("fields", list);
    assert!(denies(blocked.clone(), &fields("name, ssn"), &f));
    assert!(denies(blocked.clone(), &fields("Salary"), &f));
    assert!(!denies(blocked.clone(), &fields("name,email"), &f));
    assert!(!denies(blocked.clone(), &fields("ssn_hash"), &f));
    assert!(!denies(blocked, &buy("1", "x"), &f));
}

#[test]
fn metadata_equals_is_exact() {
    let cond = c(r#"{"type":"metadata_equals","key":"env","value":"prod"}"#);
    assert!(denies(
        cond.clone(),
        &buy("1", "x").metadata("env", "prod"),
        &facts()
    ));
    assert!(!denies(
        cond.clone(),
        &buy("1", "x").metadata("env", "Prod"),
        &facts()
    ));
    assert!(!denies(cond, &buy("1", "x"), &facts()));
}

#[test]
fn combination_deny_beats_approval_beats_allow_and_reports_every_reason() {
    let agent = AgentId::new();
    let deny_low = Policy::new("low", Effect::Deny, "LOW", Condition::Always).priority(1);
    let deny_high = Policy::new("high", Effect::Deny, "HIGH", Condition::Always).priority(10);
    let approve = Policy::new("ask", Effect::RequireApproval, "ASK", Condition::Always);
    let allow = Policy::new("ok", Effect::Allow, "OK", Condition::Always).priority(100);
    let all = [
        deny_low.clone(),
        approve.clone(),
        allow.clone(),
        deny_high.clone(),
    ];
    let compiled = CompiledPolicies::compile(&all, DefaultEffect::Deny).unwrap();
    let r = Request::purchase(agent, d("1"), Currency::USD, "x");
    let decision = evaluate(&compiled, &r, &facts());
    assert_eq!(decision.outcome(), Outcome::Rejected);
    assert!(decision.is_rejected());
    assert!(!decision.is_pending_approval() && !decision.is_approved());
    assert_eq!(decision.codes().collect::<Vec<_>>(), ["HIGH", "LOW"]);

    let compiled =
        CompiledPolicies::compile(&[approve.clone(), allow.clone()], DefaultEffect::Deny).unwrap();
    let decision = evaluate(&compiled, &r, &facts());
    assert!(decision.is_pending_approval());
    assert!(!decision.is_approved() && !decision.is_rejected());
    assert_eq!(decision.codes().collect::<Vec<_>>(), ["ASK"]);

    let compiled =
        CompiledPolicies::compile(std::slice::from_ref(&allow), DefaultEffect::Deny).unwrap();
    let decision = evaluate(&compiled, &r, &facts());
    assert!(decision.is_approved());
    assert!(!decision.is_pending_approval() && !decision.is_rejected());
    assert_eq!(decision.allowed_by(), Some(allow.id));
    assert!(decision.reasons().is_empty());

    let disabled = allow.enabled(false);
    let compiled =
        CompiledPolicies::compile(std::slice::from_ref(&disabled), DefaultEffect::Deny).unwrap();
    let decision = evaluate(&compiled, &r, &facts());
    assert_eq!(
        decision.codes().collect::<Vec<_>>(),
        [codes::NO_MATCHING_POLICY]
    );
    let compiled = CompiledPolicies::compile(&[disabled], DefaultEffect::Allow).unwrap();
    let decision = evaluate(&compiled, &r, &facts());
    assert!(decision.is_approved() && decision.allowed_by().is_none());
}

#[test]
fn scopes_select_agents_teams_and_projects() {
    let (agent, other) = (AgentId::new(), AgentId::new());
    let (team, project) = (TeamId::new(), ProjectId::new());
    let deny = |scope| Policy::new("p", Effect::Deny, "NO", Condition::Always).scope(scope);
    let compiled = CompiledPolicies::compile(
        &[
            deny(PolicyScope::agent(agent)),
            deny(PolicyScope::team(team)),
            deny(PolicyScope::project(project)),
            // Reachable twice (agent and team): reported once.
            deny(PolicyScope::Principals {
                teams: vec![team],
                projects: vec![],
                agents: vec![agent, agent],
            }),
        ],
        DefaultEffect::Allow,
    )
    .unwrap();
    let at = |r: Request| evaluate(&compiled, &r, &facts()).reasons().len();
    assert_eq!(at(Request::tool_call(other, "t")), 0);
    assert_eq!(at(Request::tool_call(agent, "t")), 2);
    assert_eq!(at(Request::tool_call(other, "t").team(team)), 2);
    assert_eq!(at(Request::tool_call(other, "t").project(project)), 1);
    assert_eq!(
        at(Request::tool_call(agent, "t").team(team).project(project)),
        4
    );
}

#[test]
fn validation_names_the_path_and_the_value() {
    let err = |json: &str| match Policy::from_json(json) {
        Err(crate::Error::InvalidPolicy { path, reason }) => format!("{path}: {reason}"),
        other => panic!("{other:?}"),
    };
    let base = |cond: &str| {
        format!(
            r#"{{"id":"0190a0b0-0000-7000-8000-000000000001","name":"n","effect":"deny","reason_code":"X","condition":{cond}}}"#
        )
    };
    assert_eq!(
        err(&base(
            r#"{"type":"all","of":[{"type":"always"},{"type":"always"},{"type":"merchant_in","merchants":[" "]}]}"#
        )),
        "condition.all[2].merchant_in[0]: empty pattern \" \""
    );
    assert!(
        err(&base(r#"{"type":"mcc_in","codes":["99999"]}"#))
            .starts_with("condition.mcc_in[0]: \"99999\"")
    );
    assert!(
        err(&base(r#"{"type":"mcc_in","codes":["5969-5960"]}"#))
            .contains("range start is above its end")
    );
    assert!(
        err(&base(
            r#"{"type":"amount_above","amount":"-1","currency":"USD"}"#
        ))
        .starts_with("condition.amount_above.amount: -1")
    );
    assert!(
        err(&base(
            r#"{"type":"amount_above","amount":"0.0000001","currency":"USD"}"#
        ))
        .contains("decimal places")
    );
    assert!(
        err(&base(
            r#"{"type":"time_of_day","start":"25:00","end":"01:00"}"#
        ))
        .starts_with("condition.time_of_day.start")
    );
    assert!(
        err(&base(
            r#"{"type":"time_of_day","start":"01:00","end":"01:00"}"#
        ))
        .contains("empty window")
    );
    assert!(
        err(&base(r#"{"type":"day_of_week","days":["funday"]}"#))
            .starts_with("condition.day_of_week[0]")
    );
    assert!(
        err(&base(
            r#"{"type":"day_of_week","days":["mon"],"timezone":"Mars/Base"}"#
        ))
        .contains("Mars/Base")
    );
    assert!(
        err(&base(
            r#"{"type":"velocity_above","window_seconds":0,"max":1}"#
        ))
        .contains("window_seconds")
    );
    assert!(err(&base(r#"{"type":"merchant_in","merchants":[]}"#)).contains("empty list"));
    assert!(err(&base(r#"{"type":"nope"}"#)).starts_with("$: unknown variant `nope`"));
    let deep = (0..13).fold(r#"{"type":"always"}"#.to_owned(), |acc, _| {
        format!(r#"{{"type":"not","condition":{acc}}}"#)
    });
    assert!(err(&base(&deep)).contains("nested deeper than 12"));
    let long = format!(
        r#"{{"type":"merchant_in","merchants":["{}"]}}"#,
        "a".repeat(300)
    );
    assert!(err(&base(&long)).contains("300 bytes, at most 256"));
    let many = format!(
        r#"{{"type":"tool_in","tools":[{}]}}"#,
        vec!["\"t\""; 1001].join(",")
    );
    assert!(err(&base(&many)).contains("1001 entries, at most 1000"));
    let bad_code = base(r#"{"type":"always"}"#).replace(r#""X""#, r#""lower case""#);
    assert!(err(&bad_code).starts_with("reason_code: \"lower case\""));
    let bad_msg =
        base(r#"{"type":"always"}"#).replace(r#""name":"n""#, r#""name":"n","message":"{amont}""#);
    assert!(err(&bad_msg).starts_with("message: unknown placeholder {amont}"));
    let empty_scope = base(r#"{"type":"always"}"#).replace(
        r#""name":"n""#,
        r#""name":"n","scope":{"kind":"principals"}"#,
    );
    assert!(err(&empty_scope).starts_with("scope: a principals scope needs"));
    let too_big = " ".repeat(limits::MAX_POLICY_JSON_LEN + 1);
    assert!(err(&too_big).contains("at most"));
    // Compile prefixes the policy's position.
    let ok = Policy::new("ok", Effect::Allow, "OK", Condition::Always);
    let bad = Policy::new("", Effect::Allow, "OK", Condition::Always);
    let e = CompiledPolicies::compile(&[ok, bad], DefaultEffect::Deny).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid policy at policies[1].name: empty name"
    );
    assert_eq!(e.code(), "invalid_policy");
}

#[test]
fn policies_round_trip_through_json() {
    let p = Policy::new(
        "Block gambling",
        Effect::Deny,
        codes::CATEGORY_BLOCKED,
        c(r#"{"type":"all","of":[{"type":"mcc_in","codes":[7995,"5960-5969"]},{"type":"not","condition":{"type":"currency_in","currencies":["EUR"]}}]}"#),
    )
    .scope(PolicyScope::team(TeamId::new()))
    .priority(7)
    .message("{merchant} is blocked");
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(Policy::from_json(&json).unwrap(), p);
}

#[test]
fn requests_are_json_and_validate_their_bounds() {
    let r = buy("30", "GitHub")
        .merchant_domain("github.com")
        .mcc(5734)
        .metadata("k", "v")
        .idempotency_key("req-1");
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["action"], "purchase");
    assert_eq!(json["amount"], "30");
    assert_eq!(serde_json::from_value::<Request>(json).unwrap(), r);
    assert!(r.validate().is_ok());
    let long = buy("1", &"x".repeat(limits::MAX_REQUEST_TEXT_LEN + 1));
    assert!(
        matches!(long.validate(), Err(crate::Error::Invalid { field, .. }) if field == "merchant.name")
    );
    let negative = buy("-1", "x");
    assert!(negative.validate().is_err());
    let custom: Request = serde_json::from_str(&format!(
        r#"{{"principal":{{"agent_id":"{}"}},"action":"custom:deploy"}}"#,
        AgentId::new()
    ))
    .unwrap();
    assert_eq!(custom.action, ActionKind::Custom("deploy".into()));
}

mod roony {
    //! The spending-controls scenarios.
    use super::*;

    fn agent_window(agent: AgentId, period: Period, limit: &str, spent: &str) -> WindowBalance {
        window(Scope::Agent(agent), period, limit, spent, "0")
    }

    #[test]
    fn scenario_1_within_monthly_and_per_transaction_limits_is_approved() {
        let agent = AgentId::new();
        let controls = SpendingControls::new(Currency::USD)
            .agent(agent)
            .monthly_limit(d("500"))
            .per_transaction_limit(d("50"))
            .build()
            .unwrap();
        assert_eq!(controls.budgets.len(), 1);
        assert_eq!(controls.budgets[0].scope, Scope::Agent(agent));
        assert_eq!(
            (controls.budgets[0].period, controls.budgets[0].limit),
            (Period::Monthly, d("500"))
        );
        let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
        let f = facts().budget(agent_window(agent, Period::Monthly, "500", "100"));
        let decision = evaluate(
            &compiled,
            &Request::purchase(agent, d("30"), Currency::USD, "GitHub"),
            &f,
        );
        assert_eq!(decision.outcome(), Outcome::Approved, "{decision:?}");
        // And above the per-transaction limit it is not.
        let decision = evaluate(
            &compiled,
            &Request::purchase(agent, d("60"), Currency::USD, "GitHub"),
            &f,
        );
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            [codes::OVER_TRANSACTION_LIMIT]
        );
        assert_eq!(
            decision.reasons()[0].message(),
            "Amount 60.00 USD exceeds the per-transaction limit of 50.00 USD"
        );
    }

    #[test]
    fn scenario_2_above_the_approval_threshold_needs_approval() {
        let agent = AgentId::new();
        let controls = SpendingControls::new(Currency::USD)
            .agent(agent)
            .approval_threshold(d("100"))
            .build()
            .unwrap();
        let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
        let decision = evaluate(
            &compiled,
            &Request::purchase(agent, d("150"), Currency::USD, "GitHub"),
            &facts(),
        );
        assert_eq!(decision.outcome(), Outcome::PendingApproval);
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            [codes::OVER_THRESHOLD]
        );
    }

    #[test]
    fn scenario_3_over_the_monthly_limit_is_rejected_with_what_remained() {
        let agent = AgentId::new();
        let controls = SpendingControls::new(Currency::USD)
            .agent(agent)
            .monthly_limit(d("500"))
            .build()
            .unwrap();
        let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
        let w = agent_window(agent, Period::Monthly, "500", "480");
        let decision = evaluate(
            &compiled,
            &Request::purchase(agent, d("50"), Currency::USD, "GitHub"),
            &facts().budget(w.clone()),
        );
        assert_eq!(decision.outcome(), Outcome::Rejected);
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            [codes::MONTHLY_LIMIT_EXCEEDED]
        );
        let b = decision.reasons()[0].budget().unwrap();
        assert_eq!(
            (b.budget_id, b.limit, b.remaining),
            (w.budget_id, d("500"), d("20"))
        );
        assert_eq!(
            decision.reasons()[0].message(),
            "Amount 50.00 USD would exceed the monthly limit of 500.00 USD (20.00 remaining)"
        );
    }

    #[test]
    fn scenario_4_a_never_seen_merchant_needs_approval() {
        let agent = AgentId::new();
        let controls = SpendingControls::new(Currency::USD)
            .agent(agent)
            .flag_new_vendors(true)
            .build()
            .unwrap();
        let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
        let r = Request::purchase(agent, d("20"), Currency::USD, "Brand New Tools Inc");
        let decision = evaluate(&compiled, &r, &facts().new_vendor(true));
        assert_eq!(decision.outcome(), Outcome::PendingApproval);
        assert_eq!(decision.codes().collect::<Vec<_>>(), [codes::NEW_VENDOR]);
        assert!(evaluate(&compiled, &r, &facts()).is_approved());
    }

    #[test]
    fn scenario_5_a_blocked_merchant_is_rejected() {
        let agent = AgentId::new();
        let controls = SpendingControls::new(Currency::USD)
            .agent(agent)
            .blocked_merchants(["facebook ads", "google ads"])
            .build()
            .unwrap();
        let compiled = CompiledPolicies::compile(&controls.policies, DefaultEffect::Deny).unwrap();
        let decision = evaluate(
            &compiled,
            &Request::purchase(agent, d("10"), Currency::USD, "Facebook Ads"),
            &facts(),
        );
        assert_eq!(decision.outcome(), Outcome::Rejected);
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            [codes::MERCHANT_BLOCKED]
        );
        assert_eq!(
            decision.reasons()[0].message(),
            "Merchant Facebook Ads is blocked"
        );
        let ok = Request::purchase(agent, d("10"), Currency::USD, "Facebook Adsense Consulting");
        assert!(evaluate(&compiled, &ok, &facts()).is_approved());
    }

    #[test]
    fn every_control_reports_its_code_in_order() {
        let agent = AgentId::new();
        let mut policies = SpendingControls::new(Currency::USD)
            .agent(agent)
            .per_transaction_limit(d("50"))
            .daily_limit(d("100"))
            .monthly_limit(d("500"))
            .approval_threshold(d("40"))
            .flag_new_vendors(true)
            .blocked_merchants(["casino"])
            .allowed_merchants(["github", "aws.amazon.com"])
            .build()
            .unwrap()
            .policies;
        let tenant = SpendingControls::new(Currency::USD)
            .monthly_budget(d("1000"))
            .max_transaction(d("45"))
            .require_approval_above(d("30"))
            .flag_all_new_vendors(true)
            .blocked_categories([7995u16])
            .build()
            .unwrap();
        assert_eq!(tenant.budgets[0].reason_code, codes::ORG_BUDGET_EXCEEDED);
        policies.extend(tenant.policies);
        let compiled = CompiledPolicies::compile(&policies, DefaultEffect::Deny).unwrap();
        let f = facts()
            .budget(agent_window(agent, Period::Daily, "100", "99"))
            .budget(agent_window(agent, Period::Monthly, "500", "499"))
            .budget(window(Scope::Tenant, Period::Monthly, "1000", "999", "0"));
        let all_wrong = Request::purchase(agent, d("60"), Currency::USD, "Casino").mcc(7995);
        let decision = evaluate(&compiled, &all_wrong, &f);
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            [
                codes::OVER_TRANSACTION_LIMIT,
                codes::OVER_ORG_MAX_TRANSACTION,
                codes::MERCHANT_BLOCKED,
                codes::MERCHANT_NOT_ALLOWED,
                codes::CATEGORY_BLOCKED,
                codes::DAILY_LIMIT_EXCEEDED,
                codes::MONTHLY_LIMIT_EXCEEDED,
                codes::ORG_BUDGET_EXCEEDED,
            ]
        );
        let ask = Request::purchase(agent, d("41"), Currency::USD, "GitHub");
        let decision = evaluate(&compiled, &ask, &facts().new_vendor(true));
        assert_eq!(
            decision.codes().collect::<Vec<_>>(),
            // Agent and tenant both flag new vendors: two policies, two reasons.
            [
                codes::OVER_THRESHOLD,
                codes::ORG_GUARDRAIL,
                codes::NEW_VENDOR,
                codes::NEW_VENDOR
            ]
        );
        let fine = Request::purchase(agent, d("5"), Currency::USD, "x")
            .merchant_domain("https://aws.amazon.com/s3");
        assert!(evaluate(&compiled, &fine, &facts()).is_approved());
        let err = SpendingControls::new(Currency::USD)
            .daily_limit(d("1"))
            .build()
            .unwrap_err();
        assert!(matches!(err, crate::Error::Invalid { field, .. } if field == "controls.agent"));
    }
}

#[test]
fn compiled_policies_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledPolicies>();
    assert_send_sync::<Decision>();
}

#[test]
fn an_outcome_is_named_as_it_is_serialized() {
    for outcome in [
        Outcome::Approved,
        Outcome::PendingApproval,
        Outcome::Rejected,
    ] {
        assert_eq!(
            serde_json::to_value(outcome).unwrap(),
            serde_json::Value::String(outcome.as_str().to_owned())
        );
    }
    assert_ne!(Outcome::Approved.as_str(), Outcome::Rejected.as_str());
}

/// Reasons render their messages when read: for every kind of reason the
/// message read (`message`, `write_message`, the serialized `message`, and
/// after a round trip through JSON) is the text the template and the
/// request's values give, written here by hand.
mod messages_on_demand {
    use super::*;

    const EVERY_PLACEHOLDER: &str = "{amount}|{currency}|{limit}|{remaining}|{merchant}|{policy}|{code}|{tool}|{model}|{action}|{period}";

    /// Asserts every way of reading `reason`'s message gives `expected`, and
    /// that its JSON is the stored shape with that message.
    fn reads(reason: &Reason, expected: &str) {
        assert_eq!(reason.message(), expected);
        // The message is rendered into one allocation: at least its size, and
        // not much more.
        if let Some(hint) = reason.message_capacity_hint() {
            assert!(
                hint >= expected.len() && hint <= expected.len() + 128,
                "capacity {hint} for {expected:?} ({} bytes)",
                expected.len()
            );
        }
        let mut buf = String::from("» ");
        reason.write_message(&mut buf);
        assert_eq!(buf, format!("» {expected}"));
        let json = serde_json::to_value(reason).unwrap();
        let mut want = serde_json::json!({ "code": reason.code(), "message": expected });
        if let Some(id) = reason.policy_id() {
            want["policy_id"] = serde_json::to_value(id).unwrap();
        }
        if let Some(b) = reason.budget() {
            want["budget"] = serde_json::to_value(b).unwrap();
        }
        if reason.is_undetermined() {
            want["undetermined"] = true.into();
        }
        assert_eq!(json, want);
        // The struct's declared length is the number of fields it writes.
        assert_eq!(
            reason.serialized_field_count(),
            json.as_object().map_or(0, serde_json::Map::len)
        );
        // The keys keep their order: code, message, then the optional ones.
        let text = serde_json::to_string(reason).unwrap();
        assert!(text.starts_with(&format!(
            "{{\"code\":{},\"message\":{}",
            serde_json::to_string(reason.code()).unwrap(),
            serde_json::to_string(expected).unwrap()
        )));
        let back: Reason = serde_json::from_value(json).unwrap();
        assert_eq!(&back, reason);
        assert_eq!(back.message(), expected);
        assert_eq!(
            (
                back.code(),
                back.policy_id(),
                back.budget(),
                back.is_undetermined()
            ),
            (
                reason.code(),
                reason.policy_id(),
                reason.budget(),
                reason.is_undetermined()
            )
        );
        assert!(format!("{reason:?}").contains(&format!("{expected:?}")));
    }

    fn only_reason(policy: Policy, req: &Request, f: &Facts) -> Reason {
        let compiled = CompiledPolicies::compile(&[policy], DefaultEffect::Allow).unwrap();
        let decision = evaluate(&compiled, req, f);
        assert_eq!(decision.reasons().len(), 1, "{decision:?}");
        decision.into_reasons().remove(0)
    }

    #[test]
    fn every_placeholder_with_an_exceeded_budget() {
        let agent = AgentId::new();
        let f = facts().budget(window(Scope::Agent(agent), Period::Daily, "100", "90", "7"));
        let p = Policy::new(
            "Daily cap",
            Effect::Deny,
            "DAILY_CAP",
            c(r#"{"type":"budget_exceeded","period":"daily"}"#),
        )
        .message(EVERY_PLACEHOLDER);
        let req = Request::custom(agent, "Deploy")
            .cost(d("12.5"), Currency::USD)
            .merchant("  Acme  Corp ")
            .tool("shell")
            .model("gpt-x");
        let reason = only_reason(p, &req, &f);
        assert!(reason.budget().is_some() && !reason.is_undetermined());
        reads(
            &reason,
            "12.50|USD|100.00|3.00|Acme  Corp|Daily cap|DAILY_CAP|shell|gpt-x|custom:Deploy|daily",
        );
    }

    #[test]
    fn every_placeholder_with_a_threshold_and_no_budget() {
        let p = Policy::new(
            "Per-transaction",
            Effect::Deny,
            "OVER",
            c(r#"{"type":"amount_above","amount":"50","currency":"JPY"}"#),
        )
        .message(EVERY_PLACEHOLDER);
        let req = Request::purchase(AgentId::new(), d("60"), Currency::JPY, "GitHub");
        reads(
            &only_reason(p, &req, &facts()),
            "60|JPY|50||GitHub|Per-transaction|OVER|||purchase|",
        );
        // A threshold in BHD (3 minor units) and an amount given with more.
        let p = Policy::new(
            "Fine",
            Effect::RequireApproval,
            "ASK",
            c(r#"{"type":"amount_above","amount":"1.5","currency":"BHD"}"#),
        )
        .message("{amount} over {limit} {currency} ({action})");
        let req = Request::llm_usage(AgentId::new(), "m", d("2.12345"), Currency::BHD);
        reads(
            &only_reason(p, &req, &facts()),
            "2.12345 over 1.500 BHD (llm_usage)",
        );
    }

    #[test]
    fn placeholders_without_values_are_empty() {
        let p = Policy::new("Tools", Effect::Deny, "NO_TOOLS", Condition::Always)
            .message(EVERY_PLACEHOLDER);
        let req = Request::tool_call(AgentId::new(), "rm -rf");
        reads(
            &only_reason(p, &req, &facts()),
            "|||||Tools|NO_TOOLS|rm -rf||tool_call|",
        );
    }

    #[test]
    fn an_empty_template_is_the_policy_name() {
        let p = Policy::new("Just the name", Effect::Deny, "NAMED", Condition::Always);
        let reason = only_reason(p, &buy("5", "x"), &facts());
        reads(&reason, "Just the name");
    }

    #[test]
    fn braces_and_repeated_placeholders() {
        let p = Policy::new("P", Effect::Deny, "C", Condition::Always)
            .message("{{{merchant}}} {merchant} {code}{code}");
        reads(
            &only_reason(p, &buy("5", " Shop "), &facts()),
            "{Shop} Shop CC",
        );
    }

    #[test]
    fn an_amount_in_another_currency_than_the_threshold_says_so() {
        let p = Policy::new(
            "Per-transaction limit",
            Effect::Deny,
            "OVER",
            c(r#"{"type":"amount_above","amount":"200","currency":"USD"}"#),
        )
        .message("{merchant} {amount}");
        let req = Request::purchase(AgentId::new(), d("5"), Currency::EUR, "x");
        let reason = only_reason(p, &req, &facts());
        assert!(reason.is_undetermined());
        reads(
            &reason,
            "Amount 5.00 EUR cannot be compared with the limit of 200.00 USD of \"Per-transaction limit\" (different currency)",
        );
    }

    #[test]
    fn an_amount_in_another_currency_than_the_budget_says_so() {
        let agent = AgentId::new();
        let f = facts().budget(window(
            Scope::Agent(agent),
            Period::Monthly,
            "500",
            "0",
            "0",
        ));
        let p = Policy::new(
            "Monthly budget",
            Effect::Deny,
            "MONTHLY",
            c(r#"{"type":"budget_exceeded","period":"monthly"}"#),
        );
        let req = Request::purchase(agent, d("5"), Currency::EUR, "x");
        let reason = only_reason(p, &req, &f);
        assert!(reason.is_undetermined() && reason.budget().is_none());
        reads(
            &reason,
            "Amount 5.00 EUR cannot be compared with the monthly budget of 500.00 USD of \"Monthly budget\" (different currency)",
        );
    }

    #[test]
    fn undetermined_for_another_cause_renders_the_template() {
        let p = Policy::new(
            "Fast",
            Effect::Deny,
            "VELOCITY",
            c(r#"{"type":"velocity_above","window_seconds":60,"max":3}"#),
        )
        .message("{merchant}: too fast");
        let reason = only_reason(p, &buy("5", "Shop"), &facts());
        assert!(reason.is_undetermined());
        reads(&reason, "Shop: too fast");
    }

    #[test]
    fn the_default_deny_and_given_reasons() {
        let compiled = CompiledPolicies::compile(&[], DefaultEffect::Deny).unwrap();
        let decision = evaluate(&compiled, &buy("5", "x"), &facts());
        let reason = &decision.reasons()[0];
        assert_eq!(reason.code(), codes::NO_MATCHING_POLICY);
        assert_eq!(reason.policy_id(), None);
        reads(
            reason,
            "no policy allows this request and the tenant's default is deny",
        );
        reads(&Reason::new("PAUSED", String::from("paused")), "paused");
        let budget = BudgetDetail {
            budget_id: BudgetId::new(),
            period: Period::Weekly,
            currency: Currency::USD,
            limit: d("10"),
            remaining: d("1"),
        };
        let with = Reason::new("SPENT", "spent").with_budget(budget.clone());
        assert_eq!(with.budget(), Some(&budget));
        reads(&with, "spent");
        let unsure = Reason::new("UNSURE", "unsure").with_undetermined(true);
        assert!(unsure.is_undetermined());
        reads(&unsure, "unsure");
        assert!(!unsure.with_undetermined(false).is_undetermined());
        let id = crate::id::PolicyId::new();
        let named = Reason::new("NAMED", "named").with_policy_id(id);
        assert_eq!(named.policy_id(), Some(id));
        reads(&named, "named");
    }

    #[test]
    fn a_budget_set_on_a_policy_reason_keeps_its_message() {
        let agent = AgentId::new();
        let f = facts().budget(window(Scope::Agent(agent), Period::Daily, "100", "90", "7"));
        let p = Policy::new(
            "Daily",
            Effect::Deny,
            "DAILY",
            c(r#"{"type":"budget_exceeded","period":"daily"}"#),
        )
        .message("{limit} {remaining} {period}");
        let reason = only_reason(p, &Request::purchase(agent, d("5"), Currency::USD, "x"), &f);
        reads(&reason, "100.00 3.00 daily");
        let other = BudgetDetail {
            budget_id: BudgetId::new(),
            period: Period::Yearly,
            currency: Currency::JPY,
            limit: d("7"),
            remaining: d("0"),
        };
        let moved = reason.clone().with_budget(other.clone());
        assert_eq!(moved.budget(), Some(&other));
        assert_eq!(moved.code(), "DAILY");
        assert_eq!(moved.policy_id(), reason.policy_id());
        reads(&moved, "100.00 3.00 daily");
    }

    #[test]
    fn reasons_differing_in_anything_readable_are_not_equal() {
        let base = Reason::new("A", "m");
        assert_eq!(base, Reason::new(String::from("A"), String::from("m")));
        assert_ne!(base, Reason::new("B", "m"));
        assert_ne!(base, Reason::new("A", "n"));
        assert_ne!(base, base.clone().with_undetermined(true));
        let budget = BudgetDetail {
            budget_id: BudgetId::new(),
            period: Period::Daily,
            currency: Currency::USD,
            limit: d("1"),
            remaining: d("0"),
        };
        assert_ne!(base, base.clone().with_budget(budget));
        let mut json = serde_json::to_value(&base).unwrap();
        json["policy_id"] = serde_json::to_value(crate::id::PolicyId::new()).unwrap();
        assert_ne!(base, serde_json::from_value::<Reason>(json).unwrap());
        // A policy's reason equals the same reason read back from storage.
        let p = Policy::new("P", Effect::Deny, "C", Condition::Always).message("{amount}");
        let ours = only_reason(p, &buy("5", "x"), &facts());
        let stored: Reason = serde_json::from_str(&serde_json::to_string(&ours).unwrap()).unwrap();
        assert_eq!(ours, stored);
        assert_eq!(stored, ours);
    }

    #[test]
    fn a_decision_keeps_none_one_or_many_reasons_and_stores_them_as_a_list() {
        let agent = AgentId::new();
        let deny = |code: &str, prio| {
            Policy::new(code, Effect::Deny, code, Condition::Always)
                .priority(prio)
                .message("{code}!")
        };
        for n in 0..5usize {
            let policies: Vec<Policy> = (0..n)
                .map(|i| deny(&format!("D{i}"), 10 - i as i32))
                .collect();
            let compiled = CompiledPolicies::compile(&policies, DefaultEffect::Allow).unwrap();
            let decision = evaluate(
                &compiled,
                &Request::purchase(agent, d("1"), Currency::USD, "x"),
                &facts(),
            );
            let codes: Vec<String> = (0..n).map(|i| format!("D{i}")).collect();
            assert_eq!(decision.codes().collect::<Vec<_>>(), codes);
            assert_eq!(decision.is_rejected(), n > 0);
            let messages: Vec<String> = decision
                .reasons()
                .iter()
                .map(|r| r.message().into_owned())
                .collect();
            assert_eq!(
                messages,
                codes.iter().map(|c| format!("{c}!")).collect::<Vec<_>>()
            );
            let json = serde_json::to_value(&decision).unwrap();
            match n {
                0 => assert!(json.get("reasons").is_none(), "{json}"),
                _ => assert_eq!(json["reasons"].as_array().map(Vec::len), Some(n)),
            }
            let back: Decision = serde_json::from_value(json).unwrap();
            assert_eq!(back, decision);
            assert_eq!(back.reasons(), decision.reasons());
            assert_eq!(
                format!("{:?}", decision.reasons()),
                format!("{:?}", back.reasons())
            );
            assert!(format!("{decision:?}").contains(&format!("{:?}", decision.reasons())));
            let owned = decision.clone().into_reasons();
            assert_eq!(owned.as_slice(), decision.reasons());
            assert_eq!(owned.len(), n);
        }
    }
}

/// A decision's reasons: none and one are held without a vector, equal lists
/// compare equal and different ones do not, and an empty list read back is
/// empty (so it is left out when written again).
#[test]
fn reasons_are_held_compared_and_read_back_as_lists() {
    use super::reason::Reasons;
    let a = Reason::new("A", "first");
    let b = Reason::new("B", "second");
    assert!(matches!(Reasons::from(Vec::new()), Reasons::None));
    assert!(matches!(Reasons::from(vec![a.clone()]), Reasons::One(_)));
    assert!(matches!(
        Reasons::from(vec![a.clone(), b.clone()]),
        Reasons::Many(_)
    ));
    assert_eq!(
        Reasons::from(vec![a.clone()]),
        Reasons::from(vec![a.clone()])
    );
    assert_ne!(
        Reasons::from(vec![a.clone()]),
        Reasons::from(vec![b.clone()])
    );
    assert_ne!(Reasons::from(vec![a.clone()]), Reasons::from(Vec::new()));
    let empty: Reasons = serde_json::from_str("[]").unwrap();
    assert!(empty.is_empty());
    let two: Reasons = serde_json::to_string(&Reasons::from(vec![a, b]))
        .and_then(|json| serde_json::from_str(&json))
        .unwrap();
    assert_eq!(two.as_slice().len(), 2);
}
