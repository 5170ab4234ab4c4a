//! Settlement: every settled charge and refund reaches the ledger exactly once,
//! whatever the order and timing of provider webhooks and sweeps.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::audit_log::{self, AuditLevel};
use bursar::entity::ledger_entry::{self, LedgerEntryType};
use bursar::entity::reservation::ReservationStatus;
use bursar::entity::transaction::TransactionStatus;
use bursar::id::{AgentId, BudgetId, PurchaseIntentId};
use bursar::money::{Currency, Money};
use bursar::policy::{Outcome, Request, SpendingControls};
use bursar::store::{
    ApprovalRepository, BudgetRepository, ChargeStatus, NewAgent, NewTenant, PaymentRepository,
    ReservationRepository, ReserveRequest, TenantRepository, TransactionEvent,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").unwrap()
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    acme: TenantScope,
    agent: AgentId,
    budget: BudgetId,
}

/// A tenant whose agent may spend 100 USD a month, with approval above 50.
async fn world(backend: Backend) -> World {
    let clock = Arc::new(ManualClock::new(noon()));
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    let store = Store::builder(&url)
        .clock(clock.clone())
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
    let agent = {
        use bursar::store::AgentRepository;
        acme.agents().create(NewAgent::new("bot")).await.unwrap().id
    };
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .monthly_limit(dec("100"))
            .approval_threshold(dec("50"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let budget = acme.budgets().list().await.unwrap()[0].id;
    World {
        store,
        clock,
        acme,
        agent,
        budget,
    }
}

impl World {
    async fn buy(&self, amount: &str) -> bursar::authorize::Authorization {
        self.acme
            .authorize(Request::purchase(
                self.agent,
                dec(amount),
                Currency::USD,
                "GitHub",
            ))
            .await
            .unwrap()
    }

    async fn charge(
        &self,
        intent: PurchaseIntentId,
        charge: &str,
        amount: &str,
    ) -> bursar::Result<bursar::store::Recorded> {
        self.acme
            .payments()
            .record_transaction(
                TransactionEvent::new(charge, ChargeStatus::Captured, usd(amount)).intent(intent),
            )
            .await
    }

    async fn refund(
        &self,
        intent: PurchaseIntentId,
        charge: &str,
        refund: &str,
        amount: &str,
    ) -> bursar::Result<bursar::store::Recorded> {
        self.acme
            .payments()
            .record_transaction(
                TransactionEvent::new(charge, ChargeStatus::Refunded, usd(amount))
                    .intent(intent)
                    .refund_id(refund),
            )
            .await
    }

    /// `(spent, reserved)` of the budget's current window.
    async fn balance(&self) -> (Decimal, Decimal) {
        let status = self.acme.budgets().status(self.budget).await.unwrap();
        (status.balance.spent, status.balance.reserved)
    }

    async fn ledger(&self, entry_type: LedgerEntryType) -> Vec<Decimal> {
        ledger_entry::Entity::find()
            .filter(ledger_entry::Column::TenantId.eq(self.acme.tenant_id()))
            .filter(ledger_entry::Column::EntryType.eq(entry_type))
            .all(self.store.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.amount.get())
            .collect()
    }

    async fn warnings(&self) -> Vec<String> {
        audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(self.acme.tenant_id()))
            .filter(audit_log::Column::Level.eq(AuditLevel::Warn))
            .all(self.store.connection())
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.action)
            .collect()
    }

    async fn assert_clean(&self) {
        let report = self.acme.reservations().reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert!(self.acme.audit_log().verify().await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn distinct_charges_on_one_purchase_add_up_and_a_replay_moves_nothing() {
    for backend in backends() {
        let w = world(backend).await;
        let auth = w.buy("40").await;
        assert_eq!(auth.outcome, Outcome::Approved);
        let intent = auth.intent.id;
        let first = w.charge(intent, "ch_1", "40").await.unwrap();
        assert!(!first.replayed);
        // A second charge for the same amount is a second charge, not a replay.
        let second = w.charge(intent, "ch_2", "40").await.unwrap();
        assert!(!second.replayed, "{backend:?}");
        assert_eq!(w.balance().await, (dec("80"), dec("0")), "{backend:?}");
        // The same charge id again is a replay.
        assert!(w.charge(intent, "ch_2", "40").await.unwrap().replayed);
        // A third of another amount adds up too, past the limit: 20 fits, 10
        // is overspend.
        w.charge(intent, "ch_3", "30").await.unwrap();
        assert_eq!(w.balance().await, (dec("110"), dec("0")), "{backend:?}");
        assert_eq!(w.ledger(LedgerEntryType::Overspend).await, vec![dec("10")]);
        let (reservation, lines) = w
            .acme
            .reservations()
            .get(auth.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(reservation.captured_amount.get(), dec("110"));
        assert_eq!(lines[0].captured_amount.get(), dec("110"));
        assert!(
            w.warnings()
                .await
                .contains(&"reservation.overspend".to_owned())
        );
        let report = w.acme.reservations().reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.overspent.len(), 1);
        assert_eq!(report.overspent[0].1, dec("10"));
        // The budget now refuses further spending with its usual code.
        let next = w.buy("1").await;
        assert_eq!(next.outcome, Outcome::Rejected);
        assert_eq!(
            next.codes().collect::<Vec<_>>(),
            [codes::MONTHLY_LIMIT_EXCEEDED]
        );
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn a_hold_pending_approval_cannot_be_captured_and_its_charge_waits_for_attention() {
    for backend in backends() {
        let w = world(backend).await;
        // Eligible approvers are fixed when the request is created.
        let finance = common::member(&w.store, &w.acme, bursar::store::builtin::FINANCE).await;
        let auth = w.buy("60").await;
        assert_eq!(auth.outcome, Outcome::PendingApproval);
        let err = auth.reservation_id().unwrap_err();
        assert!(err.to_string().contains("pending approval"), "{err}");
        let hold = auth.reservation.as_ref().unwrap().id;
        let err = w
            .acme
            .reservations()
            .capture(hold, usd("60"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }) && err.to_string().contains("pending_approval"),
            "{err:?}"
        );
        // The provider settled it anyway: recorded for attention, not posted.
        let recorded = w.charge(auth.intent.id, "ch_p", "60").await.unwrap();
        assert_eq!(
            recorded.transaction.status,
            TransactionStatus::NeedsAttention
        );
        assert!(recorded.transaction.attention.is_some());
        assert_eq!(w.balance().await, (dec("0"), dec("60")));
        assert!(
            w.warnings()
                .await
                .contains(&"transaction.needs_attention".to_owned()),
            "{:?}",
            w.warnings().await
        );
        // Delivered again while still pending: nothing moves.
        assert!(
            w.charge(auth.intent.id, "ch_p", "60")
                .await
                .unwrap()
                .replayed
        );
        // Once approved, the next delivery posts it.
        w.acme
            .approvals()
            .decide(
                auth.approval.as_ref().unwrap().id,
                finance,
                bursar::entity::approval_decision::ApprovalVote::Approve,
                None,
            )
            .await
            .unwrap();
        let posted = w.charge(auth.intent.id, "ch_p", "60").await.unwrap();
        assert_eq!(posted.transaction.status, TransactionStatus::Captured);
        assert_eq!(posted.transaction.attention, None);
        assert_eq!(w.balance().await, (dec("60"), dec("0")));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn a_late_charge_is_posted_whether_or_not_the_sweep_ran_first() {
    for backend in backends() {
        let mut results = Vec::new();
        for sweep_first in [false, true] {
            let w = world(backend).await;
            let auth = w.buy("30").await;
            w.clock.advance(Duration::days(2));
            if sweep_first {
                assert_eq!(
                    w.acme
                        .reservations()
                        .expire_due(bursar::clock::Clock::now(&*w.clock))
                        .await
                        .unwrap(),
                    1
                );
            }
            let recorded = w.charge(auth.intent.id, "ch_late", "25").await.unwrap();
            assert_eq!(recorded.transaction.status, TransactionStatus::Captured);
            // A sweep after the capture finds nothing to expire.
            assert_eq!(
                w.acme
                    .reservations()
                    .expire_due(bursar::clock::Clock::now(&*w.clock))
                    .await
                    .unwrap(),
                0
            );
            let (reservation, _) = w
                .acme
                .reservations()
                .get(auth.reservation_id().unwrap())
                .await
                .unwrap();
            assert_eq!(reservation.status, ReservationStatus::Captured);
            w.assert_clean().await;
            results.push((w.balance().await, reservation.captured_amount));
        }
        assert_eq!(results[0], results[1], "{backend:?}");
        assert_eq!(results[0].0, (dec("25"), dec("0")));
    }
}

#[tokio::test]
async fn an_over_capture_that_no_longer_fits_is_posted_as_overspend() {
    for backend in backends() {
        let w = world(backend).await;
        let auth = w.buy("45").await;
        let other = w.buy("40").await;
        assert_eq!(other.outcome, Outcome::Approved);
        // 45 held, 40 held by another purchase: capturing 70 covers the 45
        // held, 15 more fits, 10 does not.
        let reservation = w
            .acme
            .reservations()
            .capture(auth.reservation_id().unwrap(), usd("70"))
            .await
            .unwrap();
        assert_eq!(reservation.captured_amount.get(), dec("70"));
        assert_eq!(w.balance().await, (dec("70"), dec("40")));
        assert_eq!(w.ledger(LedgerEntryType::Overspend).await, vec![dec("10")]);
        // Capturing zero settles with nothing spent.
        let zero = w
            .acme
            .reservations()
            .capture(other.reservation_id().unwrap(), usd("0"))
            .await
            .unwrap();
        assert_eq!(zero.status, ReservationStatus::Captured);
        assert_eq!(w.balance().await, (dec("70"), dec("0")));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn partial_refunds_add_up_by_refund_id_and_never_exceed_the_charge() {
    for backend in backends() {
        let w = world(backend).await;
        let auth = w.buy("50").await;
        let intent = auth.intent.id;
        w.charge(intent, "ch_r", "50").await.unwrap();
        let first = w.refund(intent, "ch_r", "re_1", "30").await.unwrap();
        assert_eq!(
            first.transaction.status,
            TransactionStatus::PartiallyRefunded
        );
        let second = w.refund(intent, "ch_r", "re_2", "20").await.unwrap();
        assert!(!second.replayed);
        assert_eq!(second.transaction.refunded_amount.get(), dec("50"));
        assert_eq!(second.transaction.status, TransactionStatus::Refunded);
        assert_eq!(w.balance().await, (dec("0"), dec("0")), "{backend:?}");
        // The same refund id again moves nothing.
        assert!(
            w.refund(intent, "ch_r", "re_2", "20")
                .await
                .unwrap()
                .replayed
        );
        // The same id with another amount is a conflict, recorded for attention.
        let err = w.refund(intent, "ch_r", "re_2", "5").await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        // Nothing is left to refund.
        let err = w.refund(intent, "ch_r", "re_3", "0.01").await.unwrap_err();
        assert!(
            matches!(err, Error::Invalid { ref field, .. } if field == "amount"),
            "{err:?}"
        );
        assert_eq!(
            w.ledger(LedgerEntryType::Refund).await,
            vec![dec("30"), dec("20")]
        );
        let (reservation, _) = w
            .acme
            .reservations()
            .get(auth.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(reservation.refunded_amount.get(), dec("50"));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn a_charge_delivered_again_with_another_amount_is_a_conflict_recorded_for_attention() {
    for backend in backends() {
        let w = world(backend).await;
        let auth = w.buy("30").await;
        w.charge(auth.intent.id, "ch_x", "30").await.unwrap();
        let err = w.charge(auth.intent.id, "ch_x", "31").await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        assert!(!err.to_string().contains("31"), "{err}");
        let tx = {
            use bursar::store::TransactionRepository;
            w.acme
                .transactions()
                .by_provider_charge_id("ch_x")
                .await
                .unwrap()
        };
        assert_eq!(tx.amount.get(), dec("30"));
        assert!(
            tx.attention.as_deref().unwrap_or("").contains("31"),
            "{tx:?}"
        );
        assert!(
            w.warnings()
                .await
                .contains(&"transaction.conflict".to_owned())
        );
        assert_eq!(w.balance().await, (dec("30"), dec("0")));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn refund_ids_are_remembered_without_any_budget() {
    for backend in backends() {
        let w = world(backend).await;
        // A reservation no budget applies to: tenant budgets in EUR only.
        let r = w.acme.reservations();
        let held = r
            .reserve(ReserveRequest::new(usd("10"), noon() + Duration::hours(1)))
            .await
            .unwrap();
        let id = held.reservation().unwrap().id;
        assert!(held.reservation().is_some());
        r.capture(id, usd("10")).await.unwrap();
        for _ in 0..3 {
            r.refund(id, usd("4"), "re_nobudget").await.unwrap();
        }
        let (reservation, _) = r.get(id).await.unwrap();
        assert_eq!(reservation.refunded_amount.get(), dec("4"), "{backend:?}");
        let err = r.refund(id, usd("5"), "re_nobudget").await.unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
        // Distinct ids add up, to what was captured and no further.
        r.refund(id, usd("6"), "re_other").await.unwrap();
        let err = r.refund(id, usd("0.01"), "re_third").await.unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn reconcile_reports_a_corrupted_balance_and_a_deleted_ledger_row() {
    for backend in backends() {
        let w = world(backend).await;
        let auth = w.buy("30").await;
        w.charge(auth.intent.id, "ch_c", "20").await.unwrap();
        w.buy("10").await;
        w.assert_clean().await;
        let db = w.store.connection();
        let window = bursar::entity::budget_window::Entity::find()
            .filter(bursar::entity::budget_window::Column::TenantId.eq(w.acme.tenant_id()))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        // Direct writes behind bursar's back, through plain UPDATE / DELETE.
        use bursar::entity::budget_window::{Column as W, Entity as Windows};
        use sea_orm::sea_query::Expr;
        let set = |col: W, value: &str| {
            let value = bursar::money::Amount::new(dec(value)).unwrap();
            Windows::update_many()
                .col_expr(col, Expr::value(value))
                .filter(W::Id.eq(window.id))
                .exec(db)
        };
        set(W::Spent, "21").await.unwrap();
        let report = w.acme.reservations().reconcile().await.unwrap();
        assert_eq!(report.discrepancies.len(), 1, "{report:#?}");
        let d = &report.discrepancies[0];
        assert_eq!((d.stored_spent, d.ledger_spent), (dec("21"), dec("20")));
        set(W::Spent, "20").await.unwrap();
        set(W::Reserved, "9").await.unwrap();
        let report = w.acme.reservations().reconcile().await.unwrap();
        let d = &report.discrepancies[0];
        assert_eq!(
            (
                d.stored_spent,
                d.ledger_spent,
                d.stored_reserved,
                d.ledger_reserved
            ),
            (dec("20"), dec("20"), dec("9"), dec("10"))
        );
        set(W::Reserved, "10").await.unwrap();
        w.assert_clean().await;
        // Delete the capture's spent entry: the ledger now says 0 spent.
        let entry = ledger_entry::Entity::find()
            .filter(ledger_entry::Column::TenantId.eq(w.acme.tenant_id()))
            .filter(ledger_entry::Column::EntryType.eq(LedgerEntryType::Capture))
            .filter(ledger_entry::Column::Bucket.eq(ledger_entry::LedgerBucket::Spent))
            .one(db)
            .await
            .unwrap()
            .unwrap();
        // The ledger is append-only: the owner has to drop the trigger first.
        {
            use bursar_migration::m20250101_000003_append_only::drop_sql;
            use sea_orm::ConnectionTrait;
            let refused = ledger_entry::Entity::delete_by_id(entry.id).exec(db).await;
            assert!(refused.is_err(), "{refused:?}");
            for sql in drop_sql(db.get_database_backend(), "ledger_entries") {
                db.execute_unprepared(&sql).await.unwrap();
            }
        }
        ledger_entry::Entity::delete_by_id(entry.id)
            .exec(db)
            .await
            .unwrap();
        let report = w.acme.reservations().reconcile().await.unwrap();
        let d = &report.discrepancies[0];
        assert_eq!((d.stored_spent, d.ledger_spent), (dec("20"), dec("0")));
        // Over the limit with no overspend to explain it.
        set(W::LimitAmount, "25").await.unwrap();
        let report = w.acme.reservations().reconcile().await.unwrap();
        assert!(report.discrepancies[0].over_limit, "{report:#?}");
    }
}

#[tokio::test]
async fn the_sweep_expires_pending_approvals_with_their_holds_and_goes_past_a_failing_tenant() {
    use bursar::entity::approval_request::ApprovalStatus;
    use bursar::entity::budget_window::{Column as W, Entity as Windows};
    use sea_orm::sea_query::Expr;
    for backend in backends() {
        let w = world(backend).await;
        let pending = w.buy("60").await;
        assert_eq!(pending.outcome, Outcome::PendingApproval);
        // A second tenant on the same store whose sweep fails: its window's
        // balance is unreadable.
        let broken = w
            .store
            .tenants()
            .create(NewTenant::new(
                "Broken",
                format!("b{}", uuid::Uuid::now_v7().simple()),
            ))
            .await
            .unwrap();
        let broken = w.store.tenant(broken.id);
        broken
            .budgets()
            .create(bursar::store::NewBudget::tenant().monthly(dec("10"), "USD"))
            .await
            .unwrap();
        broken
            .reservations()
            .reserve(ReserveRequest::new(usd("1"), noon() + Duration::hours(1)))
            .await
            .unwrap();
        Windows::update_many()
            .col_expr(W::Reserved, Expr::value("not money"))
            .filter(W::TenantId.eq(broken.tenant_id()))
            .exec(w.store.connection())
            .await
            .unwrap();

        let later = noon() + Duration::days(2);
        let sweep = w.store.expire_due_all(later).await.unwrap();
        assert_eq!(sweep.failures.len(), 1, "{backend:?}: {sweep:?}");
        assert_eq!(sweep.failures[0].0, broken.tenant_id());
        assert_eq!(sweep.expired, 1, "{sweep:?}");
        let state = w
            .acme
            .approvals()
            .get(pending.approval.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(state.request.status, ApprovalStatus::Expired);
        let intent = {
            use bursar::store::PurchaseIntentRepository;
            w.acme
                .purchase_intents()
                .get(pending.intent.id)
                .await
                .unwrap()
        };
        assert_eq!(
            intent.status,
            bursar::entity::purchase_intent::PurchaseIntentStatus::Expired
        );
        assert_eq!(w.balance().await, (dec("0"), dec("0")));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn settlements_and_direct_reservations_announce_the_thresholds_they_cross() {
    use bursar::events::EventRepository;
    for backend in backends() {
        let w = world(backend).await;
        // 40 held: below 50 %.
        let auth = w.buy("40").await;
        // Settled for 60: 20 more than held, 60 % used.
        w.charge(auth.intent.id, "ch_t1", "60").await.unwrap();
        // A second charge of 30: 90 % used.
        w.charge(auth.intent.id, "ch_t2", "30").await.unwrap();
        // A direct hold of 10 for the agent: 100 % used.
        w.acme
            .reservations()
            .reserve(
                ReserveRequest::new(usd("10"), noon() + Duration::hours(1))
                    .principal(bursar::budget::Principal::agent(w.agent)),
            )
            .await
            .unwrap();
        let events = w.acme.events().poll("test", 100).await.unwrap();
        let crossed: Vec<u64> = events
            .iter()
            .filter(|e| e.event_type == "budget.threshold_crossed")
            .map(|e| e.payload["threshold_percent"].as_u64().unwrap())
            .collect();
        assert_eq!(crossed, [50, 80, 100], "{backend:?}");
        w.assert_clean().await;
    }
}
