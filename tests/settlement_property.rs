//! Settlement property: random, seeded sequences of authorizations, approval
//! decisions, captures, split charges, late charges after expiry, partial
//! refunds, replays of any event and sweeps. After every sequence:
//!
//! - `reconcile` is clean;
//! - the settled charges minus their refunds equal the window's `spent`;
//! - no held amount outlives its reservation;
//! - no event was dropped: every charge id appears once in `transactions`, and
//!   every refund id once in `refunds`.
//!
//! `BURSAR_SETTLEMENT_CASES` sets the number of sequences (default 500);
//! a failure names its seed, and `BURSAR_SETTLEMENT_SEED` replays one.

mod common;

use bursar::audit::AuditLogRepository;
use std::collections::BTreeMap;
use std::sync::Arc;

use bursar::clock::{Clock, ManualClock};
use bursar::entity::approval_decision::ApprovalVote;
use bursar::entity::{refund, transaction};
use bursar::id::{AgentId, ApprovalRequestId, PurchaseIntentId, UserId};
use bursar::money::{Currency, Money};
use bursar::policy::{Outcome, Request, SpendingControls};
use bursar::store::{
    AgentRepository, ApprovalRepository, BudgetRepository, ChargeStatus, NewAgent, NewTenant,
    PaymentRepository, ReservationRepository, TenantRepository, TransactionEvent, builtin,
};
use bursar::{Store, TenantScope};
use chrono::{Duration, TimeZone, Utc};
use common::dec;
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

/// SplitMix64: small, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// 0.01 to `max` whole units, in cents.
    fn cents(&mut self, max: u64) -> Decimal {
        Decimal::new(i64::try_from(1 + self.below(max * 100)).unwrap_or(1), 2)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(usize::try_from(self.below(items.len() as u64)).unwrap_or(0))
        }
    }
}

fn usd(amount: Decimal) -> Money {
    Money::new(amount, Currency::USD).unwrap()
}

struct Case {
    acme: TenantScope,
    clock: Arc<ManualClock>,
    agent: AgentId,
    approver: UserId,
    intents: Vec<PurchaseIntentId>,
    pending: Vec<ApprovalRequestId>,
    /// Every event sent, to replay any of them.
    sent: Vec<TransactionEvent>,
    /// Charge id → intent, for refunds.
    charges: Vec<(String, PurchaseIntentId)>,
    refund_ids: Vec<String>,
    next_id: u64,
}

impl Case {
    fn fresh_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{}", self.next_id)
    }

    async fn send(&mut self, event: TransactionEvent) {
        // Errors are allowed (a refund above what is left, a conflicting
        // delivery); what matters is the state they leave, checked at the end.
        let _ = self.acme.payments().record_transaction(event.clone()).await;
        self.sent.push(event);
    }

    async fn step(&mut self, rng: &mut Rng, store: &Store) {
        match rng.below(10) {
            0 | 1 => {
                let amount = rng.cents(70);
                let auth = self
                    .acme
                    .authorize(Request::purchase(
                        self.agent,
                        amount,
                        Currency::USD,
                        "GitHub",
                    ))
                    .await
                    .expect("authorize");
                self.intents.push(auth.intent.id);
                if auth.outcome == Outcome::PendingApproval {
                    self.pending.push(auth.approval.expect("approval").id);
                }
            }
            2 => {
                if let Some(&approval) = self.pending.clone().as_slice().first() {
                    self.pending.remove(0);
                    let vote = if rng.below(2) == 0 {
                        ApprovalVote::Approve
                    } else {
                        ApprovalVote::Reject
                    };
                    // May fail when the approval expired meanwhile.
                    let _ = self
                        .acme
                        .approvals()
                        .decide(approval, self.approver, vote, None)
                        .await;
                }
            }
            3 | 4 => {
                // A charge (first, split or late) on any intent.
                if let Some(&intent) = rng.pick(&self.intents) {
                    let charge = self.fresh_id("ch");
                    let amount = rng.cents(60);
                    self.charges.push((charge.clone(), intent));
                    self.send(
                        TransactionEvent::new(charge, ChargeStatus::Captured, usd(amount))
                            .intent(intent),
                    )
                    .await;
                }
            }
            5 => {
                // A partial refund of a charge, sometimes more than is left.
                if let Some((charge, intent)) = rng.pick(&self.charges).cloned() {
                    let refund = self.fresh_id("re");
                    self.refund_ids.push(refund.clone());
                    let amount = rng.cents(30);
                    self.send(
                        TransactionEvent::new(charge, ChargeStatus::Refunded, usd(amount))
                            .intent(intent)
                            .refund_id(refund),
                    )
                    .await;
                }
            }
            6 | 7 => {
                // Any earlier event again, exactly.
                if let Some(event) = rng.pick(&self.sent).cloned() {
                    self.send(event).await;
                }
            }
            8 => {
                // A delivery of a known charge with another amount.
                if let Some((charge, intent)) = rng.pick(&self.charges).cloned() {
                    let amount = rng.cents(60);
                    self.send(
                        TransactionEvent::new(charge, ChargeStatus::Captured, usd(amount))
                            .intent(intent),
                    )
                    .await;
                }
            }
            _ => {
                // Time passes (holds and approvals come due), and a sweep runs.
                self.clock.advance(Duration::minutes(
                    i64::try_from(rng.below(30 * 60)).unwrap_or(0),
                ));
                if rng.below(2) == 0 {
                    let sweep = store.expire_due_all(self.clock.now()).await.unwrap();
                    assert!(sweep.is_complete(), "{sweep:?}");
                }
            }
        }
    }
}

async fn run_case(store: &Store, clock: &Arc<ManualClock>, seed: u64, coverage: &mut Coverage) {
    let mut rng = Rng(seed);
    clock.set(Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap());
    let t = store
        .tenants()
        .create(NewTenant::new(
            "Acme",
            format!("s{seed}-{}", uuid::Uuid::now_v7().simple()),
        ))
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .monthly_limit(dec("200"))
            .approval_threshold(dec("40"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    let approver = common::member(store, &acme, builtin::FINANCE).await;
    let mut case = Case {
        acme,
        clock: clock.clone(),
        agent,
        approver,
        intents: Vec::new(),
        pending: Vec::new(),
        sent: Vec::new(),
        charges: Vec::new(),
        refund_ids: Vec::new(),
        next_id: 0,
    };
    let steps = 8 + rng.below(20);
    for _ in 0..steps {
        case.step(&mut rng, store).await;
    }
    // Everything comes due (still within June), and a last sweep runs.
    clock.advance(Duration::days(3));
    let sweep = store.expire_due_all(clock.now()).await.unwrap();
    assert!(sweep.is_complete(), "seed {seed}: {sweep:?}");
    check(store, &case, seed, coverage).await;
}

/// How much of the space the sequences covered, summed over all cases.
#[derive(Debug, Default)]
struct Coverage {
    posted: usize,
    needs_attention: usize,
    conflicts: usize,
    refunded: usize,
    overspend: usize,
    split: usize,
    late: usize,
}

async fn check(store: &Store, case: &Case, seed: u64, coverage: &mut Coverage) {
    let acme = &case.acme;
    let tenant = acme.tenant_id();
    let report = acme.reservations().reconcile().await.unwrap();
    assert!(report.is_clean(), "seed {seed}: {report:#?}");
    let budget = acme.budgets().list().await.unwrap()[0].id;
    let balance = acme.budgets().status(budget).await.unwrap().balance;
    let rows = transaction::Entity::find()
        .filter(transaction::Column::TenantId.eq(tenant))
        .all(store.connection())
        .await
        .unwrap();
    // Settled charges minus refunds equal spent.
    use bursar::entity::transaction::TransactionStatus as S;
    let settled: Decimal = rows
        .iter()
        .filter(|t| matches!(t.status, S::Captured | S::PartiallyRefunded | S::Refunded))
        .map(|t| t.amount.get() - t.refunded_amount.get())
        .sum();
    assert_eq!(
        balance.spent, settled,
        "seed {seed}: spent vs settled charges"
    );
    // No hold outlives its reservation.
    assert_eq!(
        balance.reserved,
        Decimal::ZERO,
        "seed {seed}: reserved left"
    );
    let held = acme
        .reservations()
        .list(bursar::store::PageRequest::new().status("held").limit(500))
        .await
        .unwrap();
    assert!(held.items.is_empty(), "seed {seed}: still held");
    // No event dropped: each charge once, each accepted refund once.
    let mut by_charge: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &rows {
        *by_charge.entry(t.provider_charge_id.as_str()).or_default() += 1;
    }
    for (charge, _) in &case.charges {
        assert_eq!(
            by_charge.get(charge.as_str()).copied(),
            Some(1),
            "seed {seed}: charge {charge}"
        );
    }
    assert_eq!(rows.len(), by_charge.len());
    let refunds = refund::Entity::find()
        .filter(refund::Column::TenantId.eq(tenant))
        .all(store.connection())
        .await
        .unwrap();
    for t in &rows {
        let sum: Decimal = refunds
            .iter()
            .filter(|r| r.transaction_id == Some(t.id))
            .map(|r| r.amount.get())
            .sum();
        assert_eq!(
            sum,
            t.refunded_amount.get(),
            "seed {seed}: refunds of {t:?}"
        );
        assert!(
            t.refunded_amount <= t.amount,
            "seed {seed}: over-refunded {t:?}"
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    for r in &refunds {
        assert!(
            seen.insert(r.provider_refund_id.clone()),
            "seed {seed}: refund twice"
        );
        assert!(case.refund_ids.contains(&r.provider_refund_id));
    }
    assert!(
        acme.audit_log().verify().await.unwrap().is_intact(),
        "seed {seed}"
    );
    coverage.posted += rows
        .iter()
        .filter(|t| matches!(t.status, S::Captured | S::PartiallyRefunded | S::Refunded))
        .count();
    coverage.needs_attention += rows
        .iter()
        .filter(|t| t.status == S::NeedsAttention)
        .count();
    coverage.conflicts += rows.iter().filter(|t| t.attention.is_some()).count();
    coverage.refunded += refunds.len();
    coverage.overspend += report.overspent.len();
    let mut per_reservation: BTreeMap<_, usize> = BTreeMap::new();
    for t in rows.iter().filter(|t| t.settled_at.is_some()) {
        *per_reservation.entry(t.reservation_id).or_default() += 1;
    }
    coverage.split += per_reservation.values().filter(|n| **n > 1).count();
    for t in &rows {
        if let (Some(settled), Some(reservation)) = (t.settled_at, t.reservation_id) {
            let (r, _) = acme.reservations().get(reservation).await.unwrap();
            if settled > r.expires_at {
                coverage.late += 1;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_settled_charge_and_refund_is_in_the_ledger_exactly_once() {
    let cases: u64 = std::env::var("BURSAR_SETTLEMENT_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(500);
    let seeds: Vec<u64> = match std::env::var("BURSAR_SETTLEMENT_SEED") {
        Ok(seed) => vec![seed.parse().expect("a seed")],
        Err(_) => (0..cases).collect(),
    };
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let store = Store::builder("sqlite::memory:")
        .clock(clock.clone())
        .connect()
        .await
        .unwrap();
    let all = seeds.len() >= 500;
    let mut coverage = Coverage::default();
    for seed in seeds {
        run_case(&store, &clock, seed, &mut coverage).await;
    }
    println!("{coverage:?}");
    if all {
        // The sequences reach every kind of settlement the property is about.
        for (what, n) in [
            ("posted", coverage.posted),
            ("needs attention", coverage.needs_attention),
            ("conflicting deliveries", coverage.conflicts),
            ("refunds", coverage.refunded),
            ("overspent windows", coverage.overspend),
            ("split charges", coverage.split),
            ("late charges", coverage.late),
        ] {
            assert!(n >= 10, "only {n} {what}: {coverage:?}");
        }
    }
}
