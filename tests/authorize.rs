//! The one authorize flow: every outcome and the rows it writes, idempotency,
//! a failure midway, cards and provider webhooks.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::authorize::{DEFAULT_APPROVAL_TTL, DEFAULT_RESERVATION_TTL};
use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::agent::AgentStatus;
use bursar::entity::approval_request::ApprovalStatus;
use bursar::entity::audit_log::AuditStatus;
use bursar::entity::purchase_intent::PurchaseIntentStatus;
use bursar::entity::reservation::ReservationStatus;
use bursar::entity::{audit_log, blocked_attempt, merchant, purchase_intent, reservation};
use bursar::id::{AgentId, TenantId};
use bursar::money::{Currency, Money};
use bursar::policy::{Condition, Effect, Outcome, Policy, Request};
use bursar::store::{
    AgentRepository, BudgetRepository, ChargeStatus, FakeCardIssuer, NewAgent, NewBudget,
    NewTenant, PaymentRepository, PolicyRepository, ReservationRepository, TenantRepository,
    TransactionEvent, UserRepository,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use common::{
    Backend, FailingHook, backends, dec, fresh_postgres_schema, postgres_url, sqlite_file_url,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").unwrap()
}

async fn store_for(backend: Backend) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    Store::builder(&url)
        .clock(Arc::new(ManualClock::new(noon())))
        .connect()
        .await
        .unwrap()
}

/// A tenant with one agent under controls: per transaction 200, monthly 500,
/// approval above 100, blocked "facebook ads".
async fn setup(store: &Store) -> (TenantScope, AgentId) {
    common::tenant_under_controls(store, |c| {
        c.per_transaction_limit(dec("200"))
            .monthly_limit(dec("500"))
            .approval_threshold(dec("100"))
            .blocked_merchants(["facebook ads"])
    })
    .await
}

fn buy(agent: AgentId, amount: &str, merchant: &str) -> Request {
    Request::purchase(agent, dec(amount), Currency::USD, merchant)
}

async fn count<E: EntityTrait>(store: &Store, tenant: TenantId, col: E::Column) -> u64
where
    E::Model: Send + Sync,
{
    E::find()
        .filter(col.eq(tenant))
        .count(store.connection())
        .await
        .unwrap()
}

/// The audit entries of decisions (the setup's administrative entries —
/// agent, policies, budgets — left out).
async fn audit_actions(store: &Store, tenant: TenantId) -> Vec<(String, AuditStatus)> {
    const ADMIN: [&str; 4] = ["agent", "policy", "budget", "agent_api_key"];
    audit_log::Entity::find()
        .filter(audit_log::Column::TenantId.eq(tenant))
        .filter(audit_log::Column::ResourceType.is_not_in(ADMIN))
        .all(store.connection())
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.action, a.status))
        .collect()
}

#[tokio::test]
async fn approved_reserves_records_the_intent_the_merchant_and_an_audit_entry() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let auth = acme
            .authorize(buy(agent, "30", "GitHub").merchant_domain("github.com"))
            .await
            .unwrap();
        assert_eq!(
            auth.outcome,
            Outcome::Approved,
            "{backend:?}: {:?}",
            auth.reasons
        );
        assert!(auth.reasons.is_empty());
        assert_eq!(auth.intent.status, PurchaseIntentStatus::Approved);
        let reservation = auth.reservation.as_ref().unwrap();
        assert_eq!(auth.intent.reservation_id, Some(reservation.id));
        assert_eq!(reservation.status, ReservationStatus::Held);
        assert_eq!(reservation.amount.get(), dec("30"));
        assert_eq!(reservation.expires_at, noon() + DEFAULT_RESERVATION_TTL);
        let tenant = acme.tenant_id();
        let known = merchant::Entity::find()
            .filter(merchant::Column::TenantId.eq(tenant))
            .one(store.connection())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (known.normalized_name.as_str(), known.purchase_count),
            ("github", 1)
        );
        assert_eq!(
            count::<blocked_attempt::Entity>(&store, tenant, blocked_attempt::Column::TenantId)
                .await,
            0
        );
        assert_eq!(
            audit_actions(&store, tenant).await,
            [("purchase.approved".to_owned(), AuditStatus::Success)]
        );
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
    }
}

/// The calls an approved purchase makes to the database on SQLite, `BEGIN`
/// and `COMMIT` aside, with the policies cached (docs/performance.md): the
/// tenant with its agent, its policies' stamp and the merchant's history;
/// the budgets with their current windows; one guarded update of the
/// windows; and one call with every write after it (the reservation, its
/// lines, its ledger entries, the merchant's upsert, the intent and its
/// audit entry).
#[tokio::test]
async fn an_approved_purchase_makes_four_calls_on_sqlite() {
    let (store, sent) = common::counting_store(noon()).await;
    // A budget of every period: each window is found by the budgets' read
    // (a window it missed would cost a read of its own).
    let periods = |agent| {
        [
            NewBudget::agent(agent).daily(dec("1000"), "USD"),
            NewBudget::agent(agent).weekly(dec("1000"), "USD"),
            NewBudget::tenant().yearly(dec("1000"), "USD"),
            NewBudget::tenant().lifetime(dec("1000"), "USD"),
        ]
    };
    assert_eq!(
        calls_of_approved_purchases(&store, &sent, periods).await,
        [4, 4]
    );
}

/// The same purchase on PostgreSQL (`BEGIN` and `COMMIT` aside): the tenant
/// with its agent, its policies' stamp and the merchant's history; the
/// budgets with their current windows, locked; one guarded update of the
/// windows; one statement with every write after it (the reservation, its
/// lines, its ledger entries, the merchant's upsert and the intent, each a
/// data-modifying `WITH`) that then takes the audit chain's lock; the audit
/// entry.
#[tokio::test]
async fn an_approved_purchase_makes_five_round_trips_on_postgres() {
    if common::postgres_url().is_none() {
        return;
    }
    let url = common::fresh_postgres_schema().await;
    let (store, sent) = common::counting_store_at(&url, noon()).await;
    let periods = |agent| {
        [
            NewBudget::agent(agent).daily(dec("1000"), "USD"),
            NewBudget::tenant().yearly(dec("1000"), "USD"),
        ]
    };
    assert_eq!(
        calls_of_approved_purchases(&store, &sent, periods).await,
        [5, 5]
    );
}

/// The calls `store` sends for an approved purchase from a new merchant and
/// then from a known one, after a first purchase that compiles and caches
/// the policies and opens the windows of the `budgets` the agent is under.
async fn calls_of_approved_purchases<const N: usize>(
    store: &Store,
    sent: &std::sync::atomic::AtomicUsize,
    budgets: impl FnOnce(AgentId) -> [NewBudget; N],
) -> Vec<usize> {
    use std::sync::atomic::Ordering;
    let (acme, agent) = setup(store).await;
    for budget in budgets(agent) {
        acme.budgets().create(budget).await.unwrap();
    }
    let mut counts = Vec::new();
    for merchant in ["GitHub", "Linear", "Linear"] {
        sent.store(0, Ordering::Relaxed);
        let auth = acme.authorize(buy(agent, "3", merchant)).await.unwrap();
        assert!(auth.is_approved(), "{:?}", auth.reasons);
        counts.push(sent.load(Ordering::Relaxed));
    }
    let known = merchant::Entity::find()
        .filter(merchant::Column::TenantId.eq(acme.tenant_id()))
        .filter(merchant::Column::NormalizedName.eq("linear"))
        .one(store.connection())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(known.purchase_count, 2);
    counts.split_off(1)
}

#[tokio::test]
async fn pending_approval_opens_a_request_and_holds_the_budget_until_it_expires() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let auth = acme
            .authorize(buy(agent, "150", "Lambda Labs"))
            .await
            .unwrap();
        assert_eq!(auth.outcome, Outcome::PendingApproval, "{backend:?}");
        assert_eq!(auth.codes().collect::<Vec<_>>(), [codes::OVER_THRESHOLD]);
        assert_eq!(auth.intent.status, PurchaseIntentStatus::PendingApproval);
        let approval = auth.approval.as_ref().unwrap();
        assert_eq!(approval.status, ApprovalStatus::Pending);
        assert_eq!(approval.expires_at, noon() + DEFAULT_APPROVAL_TTL);
        assert_eq!(approval.reasons.0[0].code(), codes::OVER_THRESHOLD);
        assert_eq!(auth.intent.approval_request_id, Some(approval.id));
        let hold = auth.reservation.as_ref().unwrap();
        assert_eq!(
            hold.expires_at, approval.expires_at,
            "the hold lasts as long as the approval"
        );
        assert_eq!(approval.reservation_id, Some(hold.id));
        // The held amount counts against the budget: 500 - 150 leaves 350.
        let next = acme.authorize(buy(agent, "199", "GitHub")).await.unwrap();
        assert_eq!(next.outcome, Outcome::PendingApproval);
        let over = acme.authorize(buy(agent, "190", "GitHub")).await.unwrap();
        assert_eq!(
            over.codes().collect::<Vec<_>>(),
            [codes::MONTHLY_LIMIT_EXCEEDED]
        );
        assert_eq!(
            audit_actions(&store, acme.tenant_id())
                .await
                .iter()
                .map(|a| a.0.as_str())
                .collect::<Vec<_>>(),
            [
                "purchase.pending_approval",
                "purchase.pending_approval",
                "purchase.rejected"
            ]
        );
    }
}

#[tokio::test]
async fn rejected_records_the_intent_one_blocked_attempt_per_reason_and_holds_nothing() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        // Blocked merchant and over the per-transaction limit: two reasons.
        let auth = acme
            .authorize(buy(agent, "250", " Facebook ADS "))
            .await
            .unwrap();
        assert_eq!(auth.outcome, Outcome::Rejected, "{backend:?}");
        let mut codes_seen: Vec<&str> = auth.codes().collect();
        codes_seen.sort_unstable();
        assert_eq!(
            codes_seen,
            [codes::MERCHANT_BLOCKED, codes::OVER_TRANSACTION_LIMIT]
        );
        assert!(auth.reservation.is_none());
        assert!(matches!(auth.reservation_id(), Err(Error::Conflict { .. })));
        assert_eq!(auth.intent.status, PurchaseIntentStatus::Rejected);
        assert_eq!(
            auth.intent.rejection_code.as_deref(),
            Some(auth.reasons[0].code())
        );
        let attempts = blocked_attempt::Entity::find()
            .filter(blocked_attempt::Column::TenantId.eq(acme.tenant_id()))
            .all(store.connection())
            .await
            .unwrap();
        assert_eq!(attempts.len(), 2);
        for a in &attempts {
            assert!(a.policy_id.is_some(), "the policy is named: {a:?}");
            assert_eq!(a.purchase_intent_id, Some(auth.intent.id));
            assert_eq!(a.agent_id, Some(agent));
        }
        let tenant = acme.tenant_id();
        assert_eq!(
            count::<reservation::Entity>(&store, tenant, reservation::Column::TenantId).await,
            0
        );
        assert_eq!(
            audit_actions(&store, tenant).await,
            [("purchase.rejected".to_owned(), AuditStatus::Denied)]
        );
    }
}

#[tokio::test]
async fn a_budget_taken_between_evaluation_and_reservation_is_a_rejection_not_an_overspend() {
    for backend in backends() {
        let store = store_for(backend).await;
        let t = store
            .tenants()
            .create(NewTenant::new("Acme", "acme").default_allow(true))
            .await
            .unwrap();
        let acme = store.tenant(t.id);
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        // No policy looks at this budget: only the reservation enforces it.
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(dec("50"), "USD"))
            .await
            .unwrap();
        assert!(
            acme.authorize(buy(agent, "40", "GitHub"))
                .await
                .unwrap()
                .is_approved()
        );
        let auth = acme.authorize(buy(agent, "20", "GitHub")).await.unwrap();
        assert_eq!(auth.outcome, Outcome::Rejected, "{backend:?}");
        assert_eq!(auth.reasons[0].code(), codes::ORG_BUDGET_EXCEEDED);
        let detail = auth.reasons[0].budget().unwrap();
        assert_eq!(
            (detail.budget_id, detail.remaining, detail.limit),
            (budget.id, dec("10"), dec("50"))
        );
        let balance = acme.budgets().status(budget.id).await.unwrap().balance;
        assert_eq!(balance.reserved, dec("40"));
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn unknown_and_inactive_agents_are_refused_with_a_blocked_attempt() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let ghost = AgentId::new();
        let auth = acme.authorize(buy(ghost, "5", "GitHub")).await.unwrap();
        assert_eq!(
            auth.codes().collect::<Vec<_>>(),
            [codes::AGENT_NOT_FOUND],
            "{backend:?}"
        );
        assert!(auth.reasons[0].message().contains(&ghost.to_string()));
        acme.agents()
            .set_status(agent, AgentStatus::Paused)
            .await
            .unwrap();
        let auth = acme.authorize(buy(agent, "5", "GitHub")).await.unwrap();
        assert_eq!(auth.codes().collect::<Vec<_>>(), [codes::AGENT_INACTIVE]);
        assert_eq!(
            count::<blocked_attempt::Entity>(
                &store,
                acme.tenant_id(),
                blocked_attempt::Column::TenantId
            )
            .await,
            2
        );
        // Another tenant's agent is unknown here.
        let (other, other_agent) = setup(&store).await;
        let auth = acme
            .authorize(buy(other_agent, "5", "GitHub"))
            .await
            .unwrap();
        assert_eq!(auth.codes().collect::<Vec<_>>(), [codes::AGENT_NOT_FOUND]);
        assert_eq!(
            count::<purchase_intent::Entity>(
                &store,
                other.tenant_id(),
                purchase_intent::Column::TenantId
            )
            .await,
            0
        );
    }
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_first_outcome() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let first = acme
            .authorize(buy(agent, "30", "GitHub").idempotency_key("req-1"))
            .await
            .unwrap();
        let again = acme
            .authorize(buy(agent, "30", "GitHub").idempotency_key("req-1"))
            .await
            .unwrap();
        assert!(!first.replayed && again.replayed, "{backend:?}");
        assert_eq!(first.intent.id, again.intent.id);
        assert_eq!(
            first.reservation_id().unwrap(),
            again.reservation_id().unwrap()
        );
        let rejected = acme
            .authorize(buy(agent, "30", "facebook ads").idempotency_key("req-2"))
            .await
            .unwrap();
        let rejected_again = acme
            .authorize(buy(agent, "30", "facebook ads").idempotency_key("req-2"))
            .await
            .unwrap();
        assert_eq!(rejected.reasons, rejected_again.reasons);
        let err = acme
            .authorize(buy(agent, "31", "GitHub").idempotency_key("req-1"))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        // Another agent, or another merchant, under the same key is not a replay.
        let other = acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap()
            .id;
        for request in [buy(other, "30", "GitHub"), buy(agent, "30", "GitLab")] {
            let err = acme
                .authorize(request.idempotency_key("req-1"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        }
        let tenant = acme.tenant_id();
        assert_eq!(
            count::<purchase_intent::Entity>(&store, tenant, purchase_intent::Column::TenantId)
                .await,
            2
        );
        assert_eq!(
            count::<reservation::Entity>(&store, tenant, reservation::Column::TenantId).await,
            1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_concurrent_retries_authorize_once() {
    let (_dir, file) = sqlite_file_url();
    let mut urls = vec![file];
    if postgres_url().is_some() {
        urls.push(fresh_postgres_schema().await);
    }
    for url in urls {
        let store = Store::builder(&url)
            .clock(Arc::new(ManualClock::new(noon())))
            .connect()
            .await
            .unwrap();
        let (acme, agent) = setup(&store).await;
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let acme = acme.clone();
            tasks.push(tokio::spawn(async move {
                acme.authorize(buy(agent, "30", "GitHub").idempotency_key("same"))
                    .await
            }));
        }
        let mut ids = Vec::new();
        for t in tasks {
            ids.push(t.await.unwrap().unwrap().intent.id);
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "{url}");
        let tenant = acme.tenant_id();
        assert_eq!(
            count::<reservation::Entity>(&store, tenant, reservation::Column::TenantId).await,
            1
        );
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn a_failure_midway_leaves_nothing_half_written() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        for request in [
            buy(agent, "30", "GitHub"),
            buy(agent, "150", "GitHub"),
            buy(agent, "30", "facebook ads"),
        ] {
            let err = acme
                .authorize_with(request, &FailingHook)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("card provider is down"), "{err}");
        }
        let tenant = acme.tenant_id();
        assert_eq!(
            count::<purchase_intent::Entity>(&store, tenant, purchase_intent::Column::TenantId)
                .await,
            0,
            "{backend:?}"
        );
        assert_eq!(
            count::<reservation::Entity>(&store, tenant, reservation::Column::TenantId).await,
            0
        );
        assert_eq!(
            count::<blocked_attempt::Entity>(&store, tenant, blocked_attempt::Column::TenantId)
                .await,
            0
        );
        assert_eq!(audit_actions(&store, tenant).await, []);
        assert_eq!(
            count::<merchant::Entity>(&store, tenant, merchant::Column::TenantId).await,
            0
        );
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
        // And the next call works normally.
        assert!(
            acme.authorize(buy(agent, "30", "GitHub"))
                .await
                .unwrap()
                .is_approved()
        );
    }
}

#[tokio::test]
async fn only_merchants_never_approved_before_count_as_new_vendors() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        assert!(
            acme.authorize(buy(agent, "20", "GitHub"))
                .await
                .unwrap()
                .is_approved()
        );
        acme.policies()
            .create(
                Policy::new(
                    "new vendors need a human",
                    Effect::RequireApproval,
                    codes::NEW_VENDOR,
                    Condition::NewVendor,
                )
                .message("{merchant} is new"),
            )
            .await
            .unwrap();
        // Seen before, under any spelling policies treat as the same name.
        assert!(
            acme.authorize(buy(agent, "20", "  github "))
                .await
                .unwrap()
                .is_approved(),
            "{backend:?}"
        );
        let vercel = acme.authorize(buy(agent, "20", "Vercel")).await.unwrap();
        assert_eq!(vercel.codes().collect::<Vec<_>>(), [codes::NEW_VENDOR]);
        assert_eq!(vercel.reasons[0].message(), "Vercel is new");
    }
}

#[tokio::test]
async fn cards_are_issued_only_for_approved_intents_with_the_reserved_limit() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let approved = acme.authorize(buy(agent, "30", "GitHub")).await.unwrap();
        let issuer = FakeCardIssuer::new();
        let card = acme
            .payments()
            .issue_card_with(approved.intent.id, &issuer)
            .await
            .unwrap();
        assert_eq!(card.hard_limit.get(), dec("30"), "{backend:?}");
        assert_eq!(card.purchase_intent_id, approved.intent.id);
        assert_eq!(issuer.requests().len(), 1);
        let pending = acme.authorize(buy(agent, "150", "GitHub")).await.unwrap();
        let err = acme
            .payments()
            .issue_card_with(pending.intent.id, &issuer)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert_eq!(
            issuer.requests().len(),
            1,
            "the issuer is not called for a pending intent"
        );
        let err = acme
            .payments()
            .issue_card_with(bursar::id::PurchaseIntentId::new(), &issuer)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn a_webhook_replayed_five_times_captures_once() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let auth = acme.authorize(buy(agent, "30", "GitHub")).await.unwrap();
        let card = acme
            .payments()
            .issue_card_with(auth.intent.id, &FakeCardIssuer::new())
            .await
            .unwrap();
        let authorized = TransactionEvent::new("ch_1", ChargeStatus::Authorized, usd("29.50"))
            .card(&card.provider_card_id);
        acme.payments()
            .record_transaction(authorized)
            .await
            .unwrap();
        let captured = TransactionEvent::new("ch_1", ChargeStatus::Captured, usd("29.50"))
            .card(&card.provider_card_id);
        let mut replays = 0;
        for _ in 0..5 {
            replays += usize::from(
                acme.payments()
                    .record_transaction(captured.clone())
                    .await
                    .unwrap()
                    .replayed,
            );
        }
        assert_eq!(replays, 4, "{backend:?}");
        let (res, _) = acme
            .reservations()
            .get(auth.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status, ReservationStatus::Captured);
        assert_eq!(res.captured_amount.get(), dec("29.5"));
        // A late "authorized" replay changes nothing; a refund refunds once.
        let late = TransactionEvent::new("ch_1", ChargeStatus::Authorized, usd("29.50"))
            .card(&card.provider_card_id);
        assert!(
            acme.payments()
                .record_transaction(late)
                .await
                .unwrap()
                .replayed
        );
        let refund =
            TransactionEvent::new("ch_1", ChargeStatus::Refunded, usd("9.50")).refund_id("re_1");
        acme.payments()
            .record_transaction(refund.clone())
            .await
            .unwrap();
        assert!(
            acme.payments()
                .record_transaction(refund)
                .await
                .unwrap()
                .replayed
        );
        let (res, _) = acme
            .reservations()
            .get(auth.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(res.refunded_amount.get(), dec("9.5"));
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
        // A failed charge releases its hold.
        let other = acme.authorize(buy(agent, "40", "GitHub")).await.unwrap();
        let failed =
            TransactionEvent::new("ch_2", ChargeStatus::Failed, usd("40")).intent(other.intent.id);
        acme.payments().record_transaction(failed).await.unwrap();
        let (res, _) = acme
            .reservations()
            .get(other.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(res.status, ReservationStatus::Released);
        let wrong = TransactionEvent::new(
            "ch_3",
            ChargeStatus::Captured,
            Money::parse("1", "EUR").unwrap(),
        )
        .intent(other.intent.id);
        let err = acme.payments().record_transaction(wrong).await.unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "currency"),
            "{err:?}"
        );
    }
}

/// A user who is an active member of the scope's tenant, with `role`.
async fn member(store: &Store, acme: &TenantScope, role: Option<&str>) -> bursar::id::UserId {
    use bursar::entity::tenant_member::SeatType;
    use bursar::store::{MemberRepository, NewUser, RoleRepository};
    let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
    let user = store
        .users()
        .create(NewUser::new(email, "Finance"))
        .await
        .unwrap();
    acme.members().add(user.id, SeatType::Pro).await.unwrap();
    if let Some(role) = role {
        let role = acme.roles().by_name(role).await.unwrap();
        acme.roles().assign(user.id, role.id).await.unwrap();
    }
    user.id
}

#[tokio::test]
async fn approving_turns_the_hold_into_a_reservation_and_rejecting_releases_it() {
    use bursar::entity::approval_decision::ApprovalVote;
    use bursar::store::{ApprovalRepository, PurchaseIntentRepository};
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let finance = member(&store, &acme, Some(bursar::store::builtin::FINANCE)).await;
        let developer = member(&store, &acme, Some(bursar::store::builtin::DEVELOPER)).await;
        let gpus = acme
            .authorize(buy(agent, "150", "Lambda Labs"))
            .await
            .unwrap();
        let approval = gpus.approval.as_ref().unwrap().id;
        let err = acme
            .approvals()
            .decide(approval, developer, ApprovalVote::Approve, None)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Forbidden {
                    permission: "approvals:write",
                    ..
                }
            ),
            "{err:?}"
        );
        let decided = acme
            .approvals()
            .decide(approval, finance, ApprovalVote::Approve, Some("ok".into()))
            .await
            .unwrap();
        assert_eq!(
            decided.request.status,
            ApprovalStatus::Approved,
            "{backend:?}"
        );
        assert_eq!(decided.decisions.len(), 1);
        let intent = acme.purchase_intents().get(gpus.intent.id).await.unwrap();
        assert_eq!(intent.status, PurchaseIntentStatus::Approved);
        let (hold, _) = acme
            .reservations()
            .get(gpus.reservation.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(
            (hold.status, hold.expires_at),
            (ReservationStatus::Held, noon() + DEFAULT_RESERVATION_TTL)
        );
        acme.reservations()
            .capture(hold.id, usd("150"))
            .await
            .unwrap();
        // A second vote on a decided request is refused, naming the state.
        let err = acme
            .approvals()
            .decide(approval, finance, ApprovalVote::Reject, None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("approved"), "{err}");

        let second = acme
            .authorize(buy(agent, "120", "Lambda Labs"))
            .await
            .unwrap();
        let approval = second.approval.as_ref().unwrap().id;
        let stranger = bursar::id::UserId::new();
        let err = acme
            .approvals()
            .decide(approval, stranger, ApprovalVote::Approve, None)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
        acme.approvals()
            .decide(approval, finance, ApprovalVote::Reject, None)
            .await
            .unwrap();
        let intent = acme.purchase_intents().get(second.intent.id).await.unwrap();
        assert_eq!(
            intent.rejection_code.as_deref(),
            Some(codes::APPROVAL_REJECTED)
        );
        let (hold, _) = acme
            .reservations()
            .get(second.reservation.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(hold.status, ReservationStatus::Released);
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn an_approval_nobody_answers_expires_and_returns_its_hold() {
    use bursar::store::ApprovalRepository;
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let pending = acme
            .authorize(buy(agent, "150", "Lambda Labs"))
            .await
            .unwrap();
        assert_eq!(acme.approvals().expire_due(noon()).await.unwrap(), 0);
        let later = noon() + DEFAULT_APPROVAL_TTL;
        assert_eq!(
            acme.approvals().expire_due(later).await.unwrap(),
            1,
            "{backend:?}"
        );
        let state = acme
            .approvals()
            .get(pending.approval.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(state.request.status, ApprovalStatus::Expired);
        let (hold, _) = acme
            .reservations()
            .get(pending.reservation.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(hold.status, ReservationStatus::Expired);
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn a_policy_change_is_seen_at_once_even_by_another_store() {
    let (_dir, url) = sqlite_file_url();
    // One clock that never moves: the cache may not rely on timestamps.
    let clock = Arc::new(ManualClock::new(noon()));
    let a = Store::builder(&url)
        .clock(clock.clone())
        .connect()
        .await
        .unwrap();
    let b = Store::builder(&url).clock(clock).connect().await.unwrap();
    let (acme_a, agent) = setup(&a).await;
    let acme_b = b.tenant(acme_a.tenant_id());
    // Both stores compile (and cache) the policies.
    assert!(
        acme_a
            .authorize(buy(agent, "10", "GitHub"))
            .await
            .unwrap()
            .is_approved()
    );
    assert!(
        acme_b
            .authorize(buy(agent, "10", "GitHub"))
            .await
            .unwrap()
            .is_approved()
    );
    // A blocks GitHub: B must not serve its stale compilation.
    let deny = Policy::new(
        "no github",
        Effect::Deny,
        codes::MERCHANT_BLOCKED,
        Condition::MerchantIn {
            merchants: vec!["github".into()],
        },
    );
    let id = acme_a.policies().create(deny).await.unwrap().id;
    let auth = acme_b.authorize(buy(agent, "10", "GitHub")).await.unwrap();
    assert_eq!(auth.codes().collect::<Vec<_>>(), [codes::MERCHANT_BLOCKED]);
    let auth = acme_a.authorize(buy(agent, "10", "GitHub")).await.unwrap();
    assert_eq!(auth.codes().collect::<Vec<_>>(), [codes::MERCHANT_BLOCKED]);
    // B disables it: A, which has the deny compiled, must see the change.
    acme_b.policies().set_enabled(id, false).await.unwrap();
    assert!(
        acme_a
            .authorize(buy(agent, "10", "GitHub"))
            .await
            .unwrap()
            .is_approved()
    );
    // It rejected purchases, so it cannot be deleted: the blocked attempts
    // keep naming it.
    let err = acme_b.policies().delete(id).await.unwrap_err();
    assert!(
        matches!(err, Error::Conflict { .. }) && err.to_string().contains("disable"),
        "{err:?}"
    );
    // A policy that never decided anything can be deleted, and A sees it go.
    let unused = Policy::new(
        "nobody",
        Effect::Deny,
        "NOBODY",
        Condition::MerchantIn {
            merchants: vec!["nobody".into()],
        },
    );
    let unused = acme_b.policies().create(unused).await.unwrap().id;
    assert!(
        acme_a
            .authorize(buy(agent, "10", "GitHub"))
            .await
            .unwrap()
            .is_approved()
    );
    acme_b.policies().delete(unused).await.unwrap();
    assert!(
        acme_a
            .authorize(buy(agent, "10", "GitHub"))
            .await
            .unwrap()
            .is_approved()
    );
    let err = acme_a.policies().get(unused).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
}

#[tokio::test]
async fn velocity_counts_the_agents_recent_requests_per_window() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let burst = Condition::VelocityAbove {
            window_seconds: 3_600,
            max: 2,
        };
        acme.policies()
            .create(Policy::new("two an hour", Effect::Deny, "TOO_FAST", burst))
            .await
            .unwrap();
        // Two earlier requests within the hour: the third is refused.
        assert!(
            acme.authorize(buy(agent, "5", "GitHub"))
                .await
                .unwrap()
                .is_approved()
        );
        assert!(
            acme.authorize(buy(agent, "5", "GitHub"))
                .await
                .unwrap()
                .is_approved()
        );
        let third = acme.authorize(buy(agent, "5", "GitHub")).await.unwrap();
        assert_eq!(
            third.codes().collect::<Vec<_>>(),
            ["TOO_FAST"],
            "{backend:?}"
        );
        // Another agent has its own count: the tenant-wide limit does not
        // stop its first request.
        let other = acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap()
            .id;
        let allow_other = Policy::new("allow other", Effect::Allow, "OK", Condition::Always)
            .scope(bursar::policy::PolicyScope::agent(other));
        acme.policies().create(allow_other).await.unwrap();
        let first = acme.authorize(buy(other, "5", "GitHub")).await.unwrap();
        assert!(first.is_approved(), "{:?}", first.reasons);
    }
}
