//! The sweep: expire the holds that are due.

use super::*;

/// Expires this tenant's held reservations that are due at `now`, one
/// transaction each (see [`ReservationRepository::expire_due`]): a hold owned
/// by a pending approval request is expired with the request, at the
/// request's own time.
pub(super) async fn expire_due_in(ctx: &Ctx<'_>, now: DateTime<Utc>) -> Result<u64> {
    use crate::entity::approval_request::{self, ApprovalStatus};
    let due: Vec<ReservationId> = reservation::Entity::find()
        .filter(reservation::Column::TenantId.eq(ctx.tenant))
        .filter(reservation::Column::Status.eq(ReservationStatus::Held))
        .filter(reservation::Column::ExpiresAt.lte(now))
        .order_by_asc(reservation::Column::Id)
        .all(&ctx.db)
        .await?
        .into_iter()
        .map(|r| r.id)
        .collect();
    let mut expired = 0;
    for id in due {
        let txn = ctx.begin_write().await?;
        let result = async {
            // Lock order: an approval request before the reservation it
            // holds. A pending one is expired with its hold.
            let approval = approval_request::Entity::find()
                .filter(approval_request::Column::TenantId.eq(ctx.tenant))
                .filter(approval_request::Column::ReservationId.eq(id))
                .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
                .one(&txn)
                .await?;
            if let Some(approval) = approval {
                let approvals =
                    crate::store::approvals::Approvals::new(Ctx::new(&txn, ctx.tenant, ctx.clock));
                // The request expires at its own time; until then its
                // hold stays (the hold of a pending approval lasts as
                // long as the approval).
                return approvals.expire_one(&txn, approval.id, now).await;
            }
            // Another sweeper (or a capture) may have got there first: only
            // a reservation still held and still due is expired.
            let current = load(&txn, ctx.tenant, id, true).await?;
            if current.status != ReservationStatus::Held || current.expires_at > now {
                return Ok(false);
            }
            let ended = end_hold_in(&txn, ctx.tenant, id, ReservationStatus::Expired, now).await?;
            let event = crate::events::reservation_expired_event(&ended)?;
            crate::events::emit(&txn, ctx.tenant, event, now).await?;
            Ok(true)
        }
        .await;
        if finish(txn, result).await? {
            expired += 1;
        }
    }
    Ok(expired)
}
