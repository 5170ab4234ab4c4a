//! Arbitrary bytes as a policy document: parse → validate → compile →
//! evaluate must never panic, and whatever is accepted must compile.
//!
//! ```text
//! cargo +nightly fuzz run policy_json
//! ```
#![no_main]

use bursar::id::{AgentId, TeamId};
use bursar::money::Currency;
use bursar::policy::{CompiledPolicies, DefaultEffect, Facts, Policy, Request, evaluate};
use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use rust_decimal::Decimal;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(policy) = Policy::from_json(text) else {
        return;
    };
    let compiled = match CompiledPolicies::compile(&[policy], DefaultEffect::Deny) {
        Ok(c) => c,
        Err(e) => panic!("a validated policy failed to compile: {e}"),
    };
    let now = Utc.with_ymd_and_hms(2025, 3, 1, 23, 30, 0).single();
    let Some(now) = now else { return };
    let facts = Facts::new(now, chrono_tz::Europe::Berlin)
        .new_vendor(true)
        .velocity(60, 3);
    let requests = [
        Request::purchase(
            AgentId::new(),
            Decimal::new(12345, 2),
            Currency::USD,
            " Aws ",
        )
        .team(TeamId::new())
        .merchant_domain("https://aws.amazon.com/ec2")
        .mcc(7995)
        .metadata("env", "prod"),
        Request::purchase(
            AgentId::new(),
            Decimal::new(5, 0),
            Currency::EUR,
            "Laws Firm LLC",
        ),
        Request::tool_call(AgentId::new(), "shell.exec"),
        Request::llm_usage(AgentId::new(), "gpt-4o", Decimal::new(2, 2), Currency::USD),
        Request::custom(AgentId::new(), "deploy"),
    ];
    for r in &requests {
        let _ = evaluate(&compiled, r, &facts);
    }
});
