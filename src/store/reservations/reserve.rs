//! Reserve: one all-or-nothing hold on every window that applies.

use super::*;
use crate::store::group_commit::{self, Step};

impl Reservations<'_> {
    pub(super) async fn reserve_once(&self, request: &ReserveRequest) -> Result<ReserveOutcome> {
        let work = ReserveWork {
            tenant: self.ctx.tenant,
            request,
            now: self.ctx.now(),
        };
        group_commit::run(&self.ctx, &work).await
    }
}

/// One reservation, run inside a transaction someone else begins and ends
/// (a transaction of its own, or a group-commit batch).
struct ReserveWork<'a> {
    tenant: TenantId,
    request: &'a ReserveRequest,
    now: DateTime<Utc>,
}

#[async_trait::async_trait]
impl group_commit::Work for ReserveWork<'_> {
    type Output = ReserveOutcome;

    async fn run(&self, txn: &sea_orm::DatabaseTransaction) -> Step<ReserveOutcome> {
        match reserve_in(txn, self.tenant, self.request, self.now).await {
            Ok(
                outcome @ ReserveOutcome::Reserved {
                    replayed: false, ..
                },
            ) => Step::Keep(outcome),
            // A replay or a refusal holds nothing new.
            Ok(outcome) => Step::Read(outcome),
            // A concurrent call with the same idempotency key won the race:
            // run again, and the replay returns its reservation (or, if the
            // winner rolled back, this call reserves).
            Err(err @ Error::Conflict { .. }) if self.request.idempotency_key.is_some() => {
                Step::Again(err)
            }
            Err(err) => Step::failed(err),
        }
    }
}

/// Reserves inside the caller's transaction (which must be a write
/// transaction: `BEGIN IMMEDIATE` on SQLite).
///
/// 1. With an idempotency key, an existing reservation for it is returned
///    (`replayed: true`) and nothing moves.
/// 2. The reservation row is inserted first, so a concurrent call with the
///    same key waits on the unique key and then fails with
///    [`Error::Conflict`] (the caller then returns the winner's reservation).
/// 3. The current window of every applicable budget is created if absent, and
///    all of them are locked in ascending id order (`SELECT … FOR UPDATE` on
///    PostgreSQL; SQLite's write lock is already held).
/// 4. If `spent + reserved + amount > limit` for any window, the outcome is
///    [`ReserveOutcome::Rejected`] naming every such budget; the caller rolls
///    back, so nothing was written.
/// 5. Otherwise each window's `reserved` grows by the amount through a guarded
///    update, and one line and one ledger entry per window are written.
///
/// # Errors
/// See [`ReservationRepository::reserve`].
pub async fn reserve_in(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    request: &ReserveRequest,
    now: DateTime<Utc>,
) -> Result<ReserveOutcome> {
    reserve_with(txn, tenant, request, now, None).await
}

/// What `authorize` hands [`reserve_with`]: the applicable budgets with
/// their current windows, which it read and locked for its facts (so they
/// are not read twice in one transaction), and the writes it holds to send
/// with its own ([`Deferred`]).
pub(crate) struct Inside<'a> {
    pub(crate) windows: Vec<(budget::Model, budget_window::Model)>,
    pub(crate) writes: &'a mut Deferred,
}

/// [`reserve_in`], or inside `authorize` ([`Inside`]). There the request has
/// no idempotency key to claim, so the reservation is written with its lines
/// and ledger entries after the guarded update of the windows, added to the
/// caller's held writes (on SQLite, sent in one call with the intent and its
/// audit entry).
pub(crate) async fn reserve_with(
    txn: &impl ConnectionTrait,
    tenant: TenantId,
    request: &ReserveRequest,
    now: DateTime<Utc>,
    inside: Option<Inside<'_>>,
) -> Result<ReserveOutcome> {
    let amount = positive_amount("amount", &request.amount)?;
    if request.expires_at <= now {
        return Err(Error::invalid(
            "expires_at",
            format!("{} is not after now ({now})", request.expires_at),
        ));
    }
    if let Some(key) = &request.idempotency_key {
        validate_key(key)?;
        if let Some((found, lines)) = find_by_key(txn, tenant, key).await? {
            check_replay(&found, request)?;
            return Ok(ReserveOutcome::Reserved {
                reservation: found,
                lines,
                replayed: true,
            });
        }
    }
    let currency = request.amount.currency();
    let mut own = Deferred::default();
    // Inside authorize, the windows were read and locked (in the lock order)
    // by this transaction, and a budget in another currency refused the
    // request already; they are not read again.
    let (to_read, writes, inside_authorize) = match inside {
        Some(Inside { windows, writes }) => (Ok(windows), writes, true),
        None => {
            let budgets = applicable_budgets(txn, tenant, request.principal.as_ref()).await?;
            // A budget in another currency cannot evaluate the amount:
            // refused, never skipped.
            let mismatched = currency_mismatches(&budgets, currency);
            if !mismatched.is_empty() {
                return Ok(ReserveOutcome::Rejected {
                    shortfalls: mismatched,
                });
            }
            (
                Err((tenant_timezone(txn, tenant).await?, budgets)),
                &mut own,
                false,
            )
        }
    };
    let run_id = request.principal.and_then(|p| p.run_id);
    // Inside authorize the run was locked and checked already.
    if let (Some(run), false) = (run_id, inside_authorize) {
        // A run of another tenant is reported exactly like a missing one.
        let found = crate::entity::agent_run::Entity::find()
            .filter(crate::entity::agent_run::Column::TenantId.eq(tenant))
            .filter(crate::entity::agent_run::Column::Id.eq(run))
            .all(txn)
            .await
            .map(crate::store::repo::first)?;
        if found.is_none() {
            return Err(Error::not_found(crate::id::RunId::ENTITY, run));
        }
    }
    let reservation_id = ReservationId::new();
    let reservation = reservation::Model {
        id: reservation_id,
        tenant_id: tenant,
        agent_id: request.principal.map(|p| p.agent_id),
        run_id,
        purchase_intent_id: request.purchase_intent_id,
        idempotency_key: request.idempotency_key.clone(),
        currency,
        amount,
        captured_amount: Amount::ZERO,
        refunded_amount: Amount::ZERO,
        status: ReservationStatus::Held,
        expires_at: request.expires_at,
        captured_at: None,
        released_at: None,
        created_at: now,
        updated_at: now,
    };
    if !inside_authorize {
        // First, so that a concurrent call with the same key waits on it.
        crate::store::repo::insert_known(txn, reservation.clone())
            .await
            .map_err(|e| match Error::from(e) {
                // The agent is a composite foreign key (tenant, agent):
                // another tenant's agent fails it exactly like a missing one.
                Error::Invalid { ref field, .. } if field == "reference" => {
                    match request.principal {
                        Some(p) => Error::not_found(AgentId::ENTITY, p.agent_id),
                        None => {
                            Error::invalid("reference", "the reservation refers to a missing row")
                        }
                    }
                }
                Error::Conflict { .. } => {
                    Error::key_taken("reservation", request.idempotency_key.as_deref())
                }
                other => other,
            })?;
    }

    let windows = match to_read {
        Ok(windows) => windows,
        Err((tz, budgets)) => current_windows(txn, tenant, budgets, tz, now, true).await?,
    };

    let balances: Vec<WindowBalance> = windows.iter().map(|(b, w)| balance_of(b, w)).collect();
    if let crate::budget::Fit::Exceeds(shortfalls) = check_fit(&balances, amount.get())? {
        if !inside_authorize {
            // Give the idempotency key back: a rejection holds nothing and
            // records nothing, whoever commits this transaction.
            reservation::Entity::delete_many()
                .filter(reservation::Column::TenantId.eq(tenant))
                .filter(reservation::Column::Id.eq(reservation_id))
                .exec(txn)
                .await?;
        }
        return Ok(ReserveOutcome::Rejected { shortfalls });
    }

    let mut balances = Vec::with_capacity(windows.len());
    for (_, w) in &windows {
        let reserved = w
            .reserved
            .checked_add(amount)
            .map_err(|e| Error::invalid("amount", e))?;
        balances.push(NewBalance {
            window: w,
            spent: w.spent,
            reserved,
        });
    }
    write_windows(txn, &balances, true, now).await?;
    if inside_authorize {
        writes.insert(txn.get_database_backend(), reservation.clone());
    }
    let mut lines = Vec::with_capacity(windows.len());
    let mut entries = Vec::with_capacity(windows.len());
    for (_, w) in &windows {
        lines.push(reservation_line::Model {
            id: ReservationLineId::new(),
            tenant_id: tenant,
            reservation_id,
            budget_id: w.budget_id,
            window_id: w.id,
            amount,
            captured_amount: Amount::ZERO,
            refunded_amount: Amount::ZERO,
            created_at: now,
        });
        entries.push(ledger_row(
            tenant,
            w,
            reservation_id,
            currency,
            EntryType::Reserve,
            Bucket::Reserved,
            Direction::Debit,
            amount,
            None,
            now,
        ));
    }
    if !lines.is_empty() {
        // The lines are known: insert them and return them, no read-back.
        let insert = reservation_line::Entity::insert_many(
            lines
                .iter()
                .map(|l| reservation_line::ActiveModel::from(l.clone()).reset_all()),
        )
        .build(txn.get_database_backend());
        writes.add(insert, lines.len() as u64);
    }
    hold_ledger(txn.get_database_backend(), writes, entries);
    if !inside_authorize {
        writes.flush(txn).await?;
        // A direct reservation announces the thresholds its hold crossed
        // (inside authorize, the flow announces them with its outcome).
        let crossings = crate::events::threshold_events(&windows, amount.get())?;
        crate::events::emit_all(txn, tenant, crossings, now).await?;
    }
    Ok(ReserveOutcome::Reserved {
        reservation,
        lines,
        replayed: false,
    })
}
