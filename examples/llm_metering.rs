//! LLM metering under a run's caps: a run with a 1.00 USD cost cap and a
//! 5-round cap makes simulated LLM calls until a cap stops it, then a second
//! run is killed mid-way.
//!
//! `cargo run --example llm_metering`

use bursar::audit::AuditLogRepository;
use bursar::money::{Currency, Money};
use bursar::store::{
    AgentRepository, MemberRepository, MeterRequest, NewAgent, NewPrice, NewRun, NewTenant,
    NewUser, ReservationRepository, RoleRepository, TenantRepository, Usage, UserRepository,
    builtin,
};
use bursar::{Store, TenantScope};
use rust_decimal::Decimal;

fn dec(s: &str) -> Decimal {
    s.parse().unwrap_or_default()
}

async fn remaining(acme: &TenantScope, run: bursar::id::RunId) -> Result<String, bursar::Error> {
    let state = acme.runs().get(run).await?;
    let cap = state.run.max_cost.map_or(Decimal::ZERO, |c| c.get());
    let rounds = match state.run.max_rounds {
        Some(max) => format!("{} of {max} rounds", state.run.rounds),
        None => format!("{} rounds", state.run.rounds),
    };
    Ok(format!(
        "{} USD left, {rounds} used, {} tokens",
        (cap - state.cost_spent - state.cost_held).normalize(),
        state.run.total_tokens
    ))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), bursar::Error> {
    let store = Store::connect("sqlite::memory:").await?;
    let tenant = store
        .tenants()
        .create(NewTenant::new("Acme", "acme").default_allow(true))
        .await?;
    let acme = store.tenant(tenant.id);
    let agent = acme.agents().create(NewAgent::new("researcher")).await?.id;
    // 3.00 USD per million input tokens, 15.00 per million output tokens.
    acme.prices()
        .set(NewPrice::new(
            "acme-ai",
            "sonnet",
            "USD",
            dec("3"),
            dec("15"),
        ))
        .await?;

    let run = acme
        .runs()
        .start(
            NewRun::new(agent)
                .description("summarise the quarter")
                .max_cost(Money::new(dec("1.00"), Currency::USD)?)
                .max_rounds(5),
        )
        .await?;
    println!("run 1: cap 1.00 USD and 5 rounds");
    // Each call sends a growing prompt and allows 10,000 output tokens.
    for call in 1..=8_u64 {
        let input = 10_000 * call;
        let begun = acme
            .meter()
            .begin(
                MeterRequest::new(agent, "acme-ai", "sonnet", input)
                    .max_output_tokens(10_000)
                    .run(run.id),
            )
            .await?;
        if !begun.is_approved() {
            let reason = &begun.reasons[0];
            println!(
                "call {call}: refused {} — {}",
                reason.code(),
                reason.message()
            );
            break;
        }
        let estimate = begun
            .reservation
            .as_ref()
            .map_or(Decimal::ZERO, |r| r.amount.get());
        let record = acme
            .meter()
            .finish(
                begun.intent.id,
                Usage {
                    input_tokens: input,
                    output_tokens: 6_000,
                    ..Usage::default()
                },
            )
            .await?;
        println!(
            "call {call}: estimate {} USD, actual {} USD; {}",
            estimate.normalize(),
            record.cost.get().normalize(),
            remaining(&acme, run.id).await?
        );
    }

    // A second run, killed by an admin after its first call.
    let email = "ops@acme.example";
    let admin = store.users().create(NewUser::new(email, "Ops")).await?;
    acme.members()
        .add(admin.id, bursar::entity::tenant_member::SeatType::Pro)
        .await?;
    let role = acme.roles().by_name(builtin::ADMIN).await?;
    acme.roles().assign(admin.id, role.id).await?;
    let second = acme
        .runs()
        .start(NewRun::new(agent).max_cost(Money::new(dec("1.00"), Currency::USD)?))
        .await?;
    println!("run 2: cap 1.00 USD");
    let call = || {
        MeterRequest::new(agent, "acme-ai", "sonnet", 10_000)
            .max_output_tokens(2_000)
            .run(second.id)
    };
    let held = acme.meter().begin(call()).await?;
    println!(
        "call 1: holding {} USD; {}",
        held.reservation
            .as_ref()
            .map_or(Decimal::ZERO, |r| r.amount.get())
            .normalize(),
        remaining(&acme, second.id).await?
    );
    acme.runs()
        .kill(second.id, admin.id, "looping on the same page")
        .await?;
    println!("killed: {}", remaining(&acme, second.id).await?);
    let refused = acme.meter().begin(call()).await?;
    println!(
        "call 2: refused {} — {}",
        refused.reasons[0].code(),
        refused.reasons[0].message()
    );
    let report = acme.reservations().reconcile().await?;
    println!(
        "ledger clean: {}, audit log intact: {}",
        report.is_clean(),
        acme.audit_log().verify().await?.is_intact()
    );
    Ok(())
}
