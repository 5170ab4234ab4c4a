//! Concurrent write paths: one lock order everywhere (no deadlock between
//! approvals and authorize), velocity counted one request at a time per
//! agent, fail-closed currencies and idempotency keys that never match a
//! different request.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::codes;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::id::AgentId;
use bursar::money::{Currency, Money};
use bursar::policy::{Condition, Effect, Outcome, Policy, Request, SpendingControls};
use bursar::store::{
    AgentRepository, ApprovalRepository, BudgetRepository, NewAgent, NewBudget, NewTenant,
    PolicyRepository, ReservationRepository, ReserveRequest, TenantRepository, builtin,
};
use bursar::{Error, Store, TenantScope};
use chrono::{Duration, Utc};
use common::{backends, dec, fresh_postgres_schema, postgres_url, sqlite_file_url};

async fn tenant(store: &Store, default_allow: bool) -> TenantScope {
    let t = store
        .tenants()
        .create(
            NewTenant::new("Acme", format!("t{}", uuid::Uuid::now_v7().simple()))
                .default_allow(default_allow),
        )
        .await
        .unwrap();
    store.tenant(t.id)
}

fn buy(agent: AgentId, amount: &str) -> Request {
    Request::purchase(agent, dec(amount), Currency::USD, "GitHub")
}

/// Every error must be a decision-level one: never a deadlock, never a
/// database failure.
fn check(result: &Result<impl std::fmt::Debug, Error>, what: &str) {
    if let Err(err) = result {
        let text = format!("{err:?}");
        assert!(
            !text.contains("40P01") && !matches!(err, Error::Database(_)),
            "{what}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn approvals_and_authorizations_sharing_a_budget_never_deadlock_on_postgres() {
    if postgres_url().is_none() {
        eprintln!("BURSAR_TEST_POSTGRES_URL not set; skipping");
        return;
    }
    const ROUNDS: usize = 300;
    let store = Store::builder(&fresh_postgres_schema().await)
        .max_connections(12)
        .connect()
        .await
        .unwrap();
    let acme = tenant(&store, false).await;
    let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .monthly_limit(dec("10000000"))
            .approval_threshold(dec("100"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let approver = common::member(&store, &acme, builtin::FINANCE).await;
    let mut pending = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let auth = acme.authorize(buy(agent, "150")).await.unwrap();
        pending.push(auth.approval.unwrap().id);
    }
    let acme = Arc::new(acme);
    let mut tasks = tokio::task::JoinSet::new();
    let (mut decided, mut authorized) = (0_usize, 0_usize);
    for (round, approval) in pending.into_iter().enumerate() {
        let acme = acme.clone();
        tasks.spawn(async move {
            let vote = if round % 2 == 0 {
                ApprovalVote::Approve
            } else {
                ApprovalVote::Reject
            };
            let approvals = acme.approvals();
            let (decision, small, large) = tokio::join!(
                approvals.decide(approval, approver, vote, None),
                acme.authorize(buy(agent, "5")),
                acme.authorize(buy(agent, "120")),
            );
            check(&decision, "decide");
            check(&small, "authorize");
            check(&large, "authorize pending");
            (
                usize::from(decision.is_ok()),
                usize::from(small.is_ok()) + usize::from(large.is_ok()),
            )
        });
        // Keep eight rounds in flight.
        if tasks.len() >= 8 {
            let (d, a) = tasks.join_next().await.unwrap().unwrap();
            decided += d;
            authorized += a;
        }
    }
    while let Some(done) = tasks.join_next().await {
        let (d, a) = done.unwrap();
        decided += d;
        authorized += a;
    }
    assert_eq!(decided, ROUNDS);
    assert_eq!(authorized, 2 * ROUNDS);
    let report = acme.reservations().reconcile().await.unwrap();
    assert!(report.is_clean(), "{report:#?}");
    assert!(acme.audit_log().verify().await.unwrap().is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_one_of_ten_concurrent_requests_passes_a_velocity_limit_of_one() {
    let mut targets: Vec<(&str, String, Option<tempfile::TempDir>)> = Vec::new();
    let (dir, file) = sqlite_file_url();
    targets.push(("sqlite file", file, Some(dir)));
    if postgres_url().is_some() {
        targets.push(("postgres", fresh_postgres_schema().await, None));
    }
    for (name, url, _dir) in targets {
        let store = Store::builder(&url).connect().await.unwrap();
        let acme = tenant(&store, true).await;
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        acme.policies()
            .create(Policy::new(
                "one a minute",
                Effect::Deny,
                "TOO_FAST",
                Condition::VelocityAbove {
                    window_seconds: 60,
                    max: 1,
                },
            ))
            .await
            .unwrap();
        let acme = Arc::new(acme);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let acme = acme.clone();
            tasks.spawn(async move { acme.authorize(buy(agent, "1")).await });
        }
        let mut approved = 0;
        while let Some(done) = tasks.join_next().await {
            let auth = done.unwrap().unwrap();
            if auth.is_approved() {
                approved += 1;
            } else {
                assert_eq!(auth.codes().collect::<Vec<_>>(), ["TOO_FAST"], "{name}");
            }
        }
        assert_eq!(approved, 1, "{name}");
    }
}

#[tokio::test]
async fn a_budget_in_another_currency_refuses_instead_of_approving_unchecked() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, true).await;
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        acme.budgets()
            .create(NewBudget::agent(agent).monthly(dec("100"), "USD"))
            .await
            .unwrap();
        let auth = acme
            .authorize(Request::purchase(
                agent,
                dec("10000"),
                Currency::EUR,
                "GitHub",
            ))
            .await
            .unwrap();
        assert_eq!(auth.outcome, Outcome::Rejected, "{backend:?}");
        assert_eq!(
            auth.codes().collect::<Vec<_>>(),
            [codes::BUDGET_CURRENCY_MISMATCH]
        );
        assert!(auth.reasons[0].is_undetermined());
        // In its own currency the same agent is approved.
        assert!(
            acme.authorize(buy(agent, "10"))
                .await
                .unwrap()
                .is_approved()
        );
        // A direct reservation is refused the same way, and holds nothing.
        let outcome = acme
            .reservations()
            .reserve(
                ReserveRequest::new(
                    Money::parse("5", "EUR").unwrap(),
                    Utc::now() + Duration::hours(1),
                )
                .principal(bursar::budget::Principal::agent(agent)),
            )
            .await
            .unwrap();
        assert_eq!(
            outcome.shortfalls()[0].code,
            codes::BUDGET_CURRENCY_MISMATCH
        );
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn an_idempotency_key_never_matches_a_different_request_nor_reveals_it() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, true).await;
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        let other = acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap()
            .id;
        let first = Request::purchase(agent, dec("12.34"), Currency::USD, "Secret Vendor")
            .idempotency_key("k-1");
        assert!(acme.authorize(first.clone()).await.unwrap().is_approved());
        assert!(acme.authorize(first).await.unwrap().replayed);
        let variants = [
            Request::purchase(other, dec("12.34"), Currency::USD, "Secret Vendor"),
            Request::purchase(agent, dec("12.35"), Currency::USD, "Secret Vendor"),
            Request::purchase(agent, dec("12.34"), Currency::EUR, "Secret Vendor"),
            Request::purchase(agent, dec("12.34"), Currency::USD, "Other Vendor"),
            Request::purchase(agent, dec("12.34"), Currency::USD, "Secret Vendor")
                .merchant_domain("secret.example"),
        ];
        for variant in variants {
            let err = acme
                .authorize(variant.idempotency_key("k-1"))
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Conflict { .. }),
                "{backend:?}: {err:?}"
            );
            let text = err.to_string();
            assert!(
                !text.contains("Secret") && !text.contains("12.34"),
                "{text}"
            );
        }
        // The same key in another tenant is another key.
        let beta = tenant(&store, true).await;
        let beta_agent = beta.agents().create(NewAgent::new("bot")).await.unwrap().id;
        let auth = beta
            .authorize(
                Request::purchase(beta_agent, dec("1"), Currency::USD, "X").idempotency_key("k-1"),
            )
            .await
            .unwrap();
        assert!(!auth.replayed);

        // Reservations compare agent and amount, and say no more.
        let later = Utc::now() + Duration::hours(1);
        let usd = |s: &str| Money::parse(s, "USD").unwrap();
        let r = acme.reservations();
        r.reserve(
            ReserveRequest::new(usd("7.77"), later)
                .principal(bursar::budget::Principal::agent(agent))
                .idempotency_key("r-1"),
        )
        .await
        .unwrap();
        let err = r
            .reserve(
                ReserveRequest::new(usd("7.77"), later)
                    .principal(bursar::budget::Principal::agent(other))
                    .idempotency_key("r-1"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        let err = r
            .reserve(ReserveRequest::new(usd("7.78"), later).idempotency_key("r-1"))
            .await
            .unwrap_err();
        assert!(!err.to_string().contains("7.77"), "{err}");
    }
}

#[tokio::test]
async fn a_known_merchant_name_sent_with_another_sites_domain_is_a_new_vendor() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, true).await;
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        let github = |domain: Option<&str>| {
            let request = buy(agent, "5");
            match domain {
                Some(d) => request.merchant_domain(d),
                None => request,
            }
        };
        assert!(
            acme.authorize(github(Some("github.com")))
                .await
                .unwrap()
                .is_approved()
        );
        acme.policies()
            .create(Policy::new(
                "new vendors need a human",
                Effect::RequireApproval,
                codes::NEW_VENDOR,
                Condition::NewVendor,
            ))
            .await
            .unwrap();
        for (domain, outcome) in [
            (Some("https://api.github.com/orders"), Outcome::Approved),
            (None, Outcome::Approved),
            (Some("evil.com"), Outcome::PendingApproval),
            (Some("attacker.github.io"), Outcome::PendingApproval),
        ] {
            let auth = acme.authorize(github(domain)).await.unwrap();
            assert_eq!(auth.outcome, outcome, "{backend:?} {domain:?}");
        }
    }
}
