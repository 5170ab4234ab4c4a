//! The transactional outbox: events exist exactly when their change
//! committed, are handed out in commit order, acknowledged per consumer, and
//! never handed twice to concurrent pollers of one consumer.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use bursar::clock::ManualClock;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::entity::approval_request::ApprovalStatus;
use bursar::events::{ApprovalPayload, EVENT_VERSION, EventRepository, PurchaseRejectedPayload};
use bursar::id::AgentId;
use bursar::money::Currency;
use bursar::policy::{Outcome, Request, SpendingControls};
use bursar::store::{
    AgentRepository, ApprovalRepository, BudgetRepository, MemberRepository, NewAgent, NewTenant,
    NewUser, PaymentRepository, ReservationRepository, RoleRepository, TenantRepository,
    UserRepository, builtin,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, FailingHook, backends, dec, fresh_postgres_schema};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    acme: TenantScope,
    agent: AgentId,
}

async fn world(backend: Backend) -> World {
    let clock = Arc::new(ManualClock::new(noon()));
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    let store = Store::builder(&url)
        .clock(clock.clone())
        .max_connections(8)
        .connect()
        .await
        .unwrap();
    let t = store
        .tenants()
        .create(NewTenant::new(
            "Acme",
            format!("t{}", uuid::Uuid::now_v7().simple()),
        ))
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .per_transaction_limit(dec("5000"))
            .monthly_limit(dec("100000"))
            .approval_threshold(dec("1000"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    World {
        store,
        clock,
        acme,
        agent,
    }
}

impl World {
    fn buy(&self, amount: &str) -> Request {
        Request::purchase(self.agent, dec(amount), Currency::USD, "Lambda Labs")
    }

    async fn finance(&self) -> bursar::id::UserId {
        let email = format!("u{}@example.com", uuid::Uuid::now_v7().simple());
        let user = self
            .store
            .users()
            .create(NewUser::new(email, "Finance"))
            .await
            .unwrap();
        self.acme
            .members()
            .add(user.id, bursar::entity::tenant_member::SeatType::Pro)
            .await
            .unwrap();
        let role = self.acme.roles().by_name(builtin::FINANCE).await.unwrap();
        self.acme.roles().assign(user.id, role.id).await.unwrap();
        user.id
    }
}

fn types(events: &[bursar::entity::event::Model]) -> Vec<&str> {
    events.iter().map(|e| e.event_type.as_str()).collect()
}

#[tokio::test]
async fn approvals_and_rejections_announce_themselves_in_commit_order() {
    for backend in backends() {
        let w = world(backend).await;
        let finance = w.finance().await;
        let pending = w.acme.authorize(w.buy("1500")).await.unwrap();
        assert_eq!(pending.outcome, Outcome::PendingApproval);
        let approval = pending.approval.unwrap().id;
        let rejected = w.acme.authorize(w.buy("9000")).await.unwrap();
        assert_eq!(rejected.outcome, Outcome::Rejected);
        w.acme
            .approvals()
            .decide(approval, finance, ApprovalVote::Approve, None)
            .await
            .unwrap();
        // An approved purchase announces nothing.
        w.acme.authorize(w.buy("10")).await.unwrap();

        let events = w.acme.events().poll("host", 100).await.unwrap();
        assert_eq!(
            types(&events),
            [
                "approval.requested",
                "purchase.rejected",
                "approval.decided"
            ],
            "{backend:?}"
        );
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert!(events.iter().all(|e| e.version == EVENT_VERSION));
        let requested: ApprovalPayload = serde_json::from_value(events[0].payload.clone()).unwrap();
        assert_eq!(requested.approval_request_id, approval);
        assert_eq!(requested.status, ApprovalStatus::Pending);
        assert_eq!(requested.eligible_approvers, [finance]);
        assert_eq!(requested.reason_codes, ["OVER_THRESHOLD"]);
        let refused: PurchaseRejectedPayload =
            serde_json::from_value(events[1].payload.clone()).unwrap();
        assert_eq!(refused.reason_codes, ["OVER_TRANSACTION_LIMIT"]);
        assert_eq!(refused.amount, dec("9000"));
        let decided: ApprovalPayload = serde_json::from_value(events[2].payload.clone()).unwrap();
        assert_eq!(decided.status, ApprovalStatus::Approved);

        // Acknowledged events are not handed out again; another consumer has
        // its own cursor.
        w.acme.events().ack("host", 3).await.unwrap();
        assert!(w.acme.events().poll("host", 100).await.unwrap().is_empty());
        assert_eq!(
            w.acme.events().poll("audit-sink", 2).await.unwrap().len(),
            2
        );
        let err = w.acme.events().ack("host", 4).await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert!(matches!(
            w.acme.events().poll("", 10).await,
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            w.acme.events().poll("host", 0).await,
            Err(Error::Invalid { .. })
        ));
    }
}

#[tokio::test]
async fn an_event_never_exists_for_a_rolled_back_change() {
    for backend in backends() {
        let w = world(backend).await;
        for amount in ["1500", "9000"] {
            let err = w
                .acme
                .authorize_with(w.buy(amount), &FailingHook)
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
        }
        assert!(
            w.acme.events().poll("host", 100).await.unwrap().is_empty(),
            "{backend:?}"
        );
        w.acme.authorize(w.buy("9000")).await.unwrap();
        let events = w.acme.events().poll("host", 100).await.unwrap();
        assert_eq!(types(&events), ["purchase.rejected"]);
        assert_eq!(events[0].seq, 1, "no sequence number was burnt");
    }
}

#[tokio::test]
async fn an_unacknowledged_batch_is_handed_out_again_after_its_lease() {
    for backend in backends() {
        let w = world(backend).await;
        for _ in 0..3 {
            w.acme.authorize(w.buy("9000")).await.unwrap();
        }
        let first = w.acme.events().poll("host", 2).await.unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        // Within the lease the next poll continues after the leased batch.
        let next = w.acme.events().poll("host", 2).await.unwrap();
        assert_eq!(next.iter().map(|e| e.seq).collect::<Vec<_>>(), [3]);
        w.acme.events().ack("host", 1).await.unwrap();
        w.clock
            .set(noon() + bursar::events::DELIVERY_LEASE + Duration::seconds(1));
        let again = w.acme.events().poll("host", 10).await.unwrap();
        assert_eq!(
            again.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [2, 3],
            "{backend:?}"
        );
        w.acme.events().ack("host", 3).await.unwrap();
        assert!(w.acme.events().poll("host", 10).await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_pollers_of_one_consumer_never_receive_the_same_event() {
    for backend in backends() {
        let w = world(backend).await;
        for _ in 0..60 {
            w.acme.authorize(w.buy("9000")).await.unwrap();
        }
        let acme = Arc::new(w.acme.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..8 {
            let acme = acme.clone();
            tasks.spawn(async move {
                let mut got = Vec::new();
                loop {
                    let batch = acme.events().poll("host", 4).await.unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|e| e.seq));
                }
            });
        }
        let mut all = Vec::new();
        let mut pollers_with_events = 0;
        while let Some(done) = tasks.join_next().await {
            let got = done.unwrap();
            pollers_with_events += usize::from(!got.is_empty());
            all.extend(got);
        }
        let unique: BTreeSet<i64> = all.iter().copied().collect();
        assert_eq!(all.len(), unique.len(), "{backend:?}: an event twice");
        assert_eq!(unique, (1..=60).collect(), "{backend:?}");
        assert!(pollers_with_events >= 1);
    }
}

/// A tenant whose agent may buy anything in USD, under one monthly agent
/// budget of `limit` with `thresholds` (default ones when `None`).
async fn budget_world(backend: Backend, limit: &str, thresholds: Option<Vec<u32>>) -> World {
    use bursar::policy::{Condition, Effect, Policy};
    use bursar::store::{NewBudget, PolicyRepository};
    let w = world(backend).await;
    // A fresh agent without the world's controls: one allow policy and one budget.
    let agent = w
        .acme
        .agents()
        .create(NewAgent::new("metered"))
        .await
        .unwrap()
        .id;
    w.acme
        .policies()
        .create(
            Policy::new("Allow", Effect::Allow, "OK", Condition::Always)
                .scope(bursar::policy::PolicyScope::agent(agent)),
        )
        .await
        .unwrap();
    let mut budget = NewBudget::agent(agent).monthly(dec(limit), "USD");
    if let Some(t) = thresholds {
        budget = budget.alert_thresholds(t);
    }
    w.acme.budgets().create(budget).await.unwrap();
    World { agent, ..w }
}

async fn thresholds_announced(acme: &TenantScope) -> Vec<u32> {
    let mut out = Vec::new();
    loop {
        let batch = acme.events().poll("thresholds", 1000).await.unwrap();
        let Some(last) = batch.last().map(|e| e.seq) else {
            return out;
        };
        for e in batch {
            if e.event_type == "budget.threshold_crossed" {
                let p: bursar::events::ThresholdPayload =
                    serde_json::from_value(e.payload).unwrap();
                out.push(p.threshold_percent);
            }
        }
        acme.events().ack("thresholds", last).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_reservations_cross_each_threshold_exactly_once() {
    for backend in backends() {
        let w = budget_world(backend, "64", None).await;
        let acme = Arc::new(w.acme.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let (acme, agent) = (acme.clone(), w.agent);
            tasks.spawn(async move {
                acme.authorize(Request::purchase(agent, dec("1"), Currency::USD, "GPU Co"))
                    .await
                    .unwrap()
            });
        }
        let mut held = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let auth = done.unwrap();
            assert_eq!(
                auth.outcome,
                Outcome::Approved,
                "{backend:?}: {:?}",
                auth.reasons
            );
            held.push(auth.reservation_id().unwrap());
        }
        let mut crossed = thresholds_announced(&acme).await;
        crossed.sort_unstable();
        assert_eq!(crossed, [50, 80, 100], "{backend:?}");
        // Falling below and rising again in the same window announces nothing new.
        for id in held.iter().take(40) {
            acme.reservations().release(*id).await.unwrap();
        }
        for _ in 0..40 {
            acme.authorize(Request::purchase(
                w.agent,
                dec("1"),
                Currency::USD,
                "GPU Co",
            ))
            .await
            .unwrap();
        }
        assert!(thresholds_announced(&acme).await.is_empty(), "{backend:?}");
    }
}

#[tokio::test]
async fn a_budget_announces_its_own_thresholds_and_refuses_bad_ones() {
    use bursar::store::NewBudget;
    for backend in backends() {
        let w = budget_world(backend, "100", Some(vec![100, 90, 80])).await;
        let buy = |amount: &str| Request::purchase(w.agent, dec(amount), Currency::USD, "GPU Co");
        w.acme.authorize(buy("79")).await.unwrap();
        assert!(
            thresholds_announced(&w.acme).await.is_empty(),
            "{backend:?}"
        );
        // One purchase from 79 to 95 crosses 80 and 90 at once.
        w.acme.authorize(buy("16")).await.unwrap();
        assert_eq!(thresholds_announced(&w.acme).await, [80, 90]);
        w.acme.authorize(buy("5")).await.unwrap();
        assert_eq!(thresholds_announced(&w.acme).await, [100]);
        for bad in [vec![0], vec![80, 80], vec![1001], (1..=11).collect()] {
            let err = w
                .acme
                .budgets()
                .create(
                    NewBudget::tenant()
                        .monthly(dec("10"), "USD")
                        .alert_thresholds(bad),
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, Error::Invalid { ref field, .. } if field == "alert_thresholds"),
                "{err:?}"
            );
        }
    }
}

#[tokio::test]
async fn key_revocation_reservation_expiry_and_overspend_announce_themselves() {
    use bursar::store::{AgentKeyRepository, ChargeStatus, TransactionEvent};
    for backend in backends() {
        let w = budget_world(backend, "100", Some(Vec::new())).await;
        // A key revoked twice is announced once.
        let (issued, _) = w
            .acme
            .agent_keys()
            .issue(w.agent, None, None)
            .await
            .unwrap();
        w.acme.agent_keys().revoke(issued.id).await.unwrap();
        w.acme.agent_keys().revoke(issued.id).await.unwrap();
        // A hold nobody captures expires.
        let lapsed = w
            .acme
            .authorize(Request::purchase(
                w.agent,
                dec("10"),
                Currency::USD,
                "GPU Co",
            ))
            .await
            .unwrap();
        let later = noon() + Duration::hours(1);
        assert_eq!(w.acme.reservations().expire_due(later).await.unwrap(), 1);
        // A charge above the limit is posted as overspend.
        let big = w
            .acme
            .authorize(Request::purchase(
                w.agent,
                dec("90"),
                Currency::USD,
                "GPU Co",
            ))
            .await
            .unwrap();
        w.acme
            .payments()
            .record_transaction(
                TransactionEvent::new(
                    "ch_1",
                    ChargeStatus::Captured,
                    bursar::money::Money::parse("130", "USD").unwrap(),
                )
                .intent(big.intent.id),
            )
            .await
            .unwrap();
        let events = w.acme.events().poll("host", 100).await.unwrap();
        assert_eq!(
            types(&events),
            ["key.revoked", "reservation.expired", "budget.overspent"],
            "{backend:?}"
        );
        let revoked: bursar::events::KeyRevokedPayload =
            serde_json::from_value(events[0].payload.clone()).unwrap();
        assert_eq!((revoked.api_key_id, revoked.agent_id), (issued.id, w.agent));
        let expired: bursar::events::ReservationExpiredPayload =
            serde_json::from_value(events[1].payload.clone()).unwrap();
        assert_eq!(
            expired.reservation_id,
            lapsed.reservation.as_ref().unwrap().id
        );
        let over: bursar::events::OverspentPayload =
            serde_json::from_value(events[2].payload.clone()).unwrap();
        assert_eq!(over.charged, dec("130"));
        assert_eq!(over.overspend.len(), 1);
        assert_eq!(over.overspend[0].amount, dec("30"));
    }
}
