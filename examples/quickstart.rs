//! bursar in one screen: an in-memory store, one tenant, two agents under
//! spending controls, four purchases (approved, sent to approval, rejected
//! for a blocked merchant, rejected for the monthly limit) and a capture.
//!
//! Run it with `cargo run --example quickstart`.

use bursar::audit::AuditLogRepository;
use bursar::money::{Currency, Money};
use bursar::policy::{Request, SpendingControls};
use bursar::store::{
    AgentRepository, BudgetRepository, NewAgent, NewTenant, ReservationRepository, TenantRepository,
};
use bursar::{Store, TenantScope};
use rust_decimal::Decimal;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), bursar::Error> {
    // 1. A store (migrations run on connect) and a tenant.
    let store = Store::connect("sqlite::memory:").await?;
    let tenant = store
        .tenants()
        .create(NewTenant::new("Acme Research", "acme").timezone("America/New_York"))
        .await?;
    let acme = store.tenant(tenant.id);

    // 2. Two agents, each under Roony-style spending controls.
    let researcher = acme.agents().create(NewAgent::new("research-bot")).await?;
    let marketer = acme.agents().create(NewAgent::new("marketing-bot")).await?;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(researcher.id)
            .per_transaction_limit(usd(450))
            .monthly_limit(usd(500))
            .approval_threshold(usd(100))
            .build()?,
    )
    .await?;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(marketer.id)
            .monthly_limit(usd(1_000))
            .blocked_merchants(["facebook ads", "google ads"])
            .build()?,
    )
    .await?;

    // 3. Four purchases.
    let github = acme
        .authorize(
            Request::purchase(researcher.id, usd(30), Currency::USD, "GitHub")
                .merchant_domain("github.com")
                .idempotency_key("req-1"),
        )
        .await?;
    show(
        "research-bot buys GitHub Copilot for 30.00",
        &github,
        &acme,
        researcher.id,
    )
    .await?;

    let gpus = acme
        .authorize(
            Request::purchase(researcher.id, usd(150), Currency::USD, "Lambda Labs")
                .idempotency_key("req-2"),
        )
        .await?;
    show(
        "research-bot rents GPUs for 150.00",
        &gpus,
        &acme,
        researcher.id,
    )
    .await?;

    let ads = acme
        .authorize(
            Request::purchase(marketer.id, usd(40), Currency::USD, " Facebook ADS ")
                .idempotency_key("req-3"),
        )
        .await?;
    show("marketing-bot buys ads for 40.00", &ads, &acme, marketer.id).await?;

    let dataset = acme
        .authorize(
            Request::purchase(researcher.id, usd(400), Currency::USD, "Scale AI")
                .idempotency_key("req-4"),
        )
        .await?;
    show(
        "research-bot buys a dataset for 400.00",
        &dataset,
        &acme,
        researcher.id,
    )
    .await?;

    // 4. The first purchase settles for a little less than was held.
    let settled = Money::new(Decimal::new(2950, 2), Currency::USD)?;
    acme.reservations()
        .capture(github.reservation_id()?, settled)
        .await?;
    println!("captured 29.50 of the GitHub hold");
    print_budgets(&acme, researcher.id).await?;

    // The audit log is hash-chained: any edit shows up here.
    let chain = acme.audit_log().verify().await?;
    println!(
        "audit log: {} entries, intact: {}",
        chain.entries,
        chain.is_intact()
    );
    Ok(())
}

fn usd(units: i64) -> Decimal {
    Decimal::from(units)
}

async fn show(
    what: &str,
    result: &bursar::authorize::Authorization,
    acme: &TenantScope,
    agent: bursar::id::AgentId,
) -> Result<(), bursar::Error> {
    println!("{what}: {:?}", result.outcome);
    for reason in &result.reasons {
        println!("  {} — {}", reason.code(), reason.message());
    }
    print_budgets(acme, agent).await
}

async fn print_budgets(
    acme: &TenantScope,
    agent: bursar::id::AgentId,
) -> Result<(), bursar::Error> {
    for budget in acme.budgets().list().await? {
        if budget.scope_id != Some(agent.as_uuid()) {
            continue;
        }
        let b = acme.budgets().status(budget.id).await?.balance;
        let money = |amount| Money::new(amount, b.currency);
        println!(
            "  {} budget: {} spent, {} held, {} left of {}",
            budget.period,
            money(b.spent)?,
            money(b.reserved)?,
            money(b.remaining())?,
            money(b.limit)?,
        );
    }
    Ok(())
}
