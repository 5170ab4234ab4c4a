//! Approval requests: a human approves or rejects what `authorize` held.
//!
//! A pending approval already holds its amount on the budgets (until the
//! approval expires), so approving it later can never overspend: approval only
//! turns the hold into an ordinary reservation, held for the tenant's
//! reservation TTL from the moment of approval.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::{AuditEntry, append};
use crate::authorize::DEFAULT_RESERVATION_TTL;
use crate::entity::approval_decision::{self, ApprovalVote};
use crate::entity::approval_request::{self, ApprovalRule, ApprovalStatus};
use crate::entity::audit_log::{AuditActorType, AuditStatus};
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::tenant;
use crate::entity::tenant_member::{self, MemberStatus};
use crate::id::{ApprovalDecisionId, ApprovalRequestId, UserId};
use crate::store::merchants::record_seen;
use crate::store::repo::{Ctx, finish, list_page};
use crate::store::reservations::end_hold_in;
use crate::store::{Page, PageRequest, RoleRepository, Roles, permissions};
use crate::{Error, Result, codes};

/// Longest decision comment, in characters.
pub const MAX_COMMENT_LEN: usize = 2_000;

/// An approval request with the votes cast so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ApprovalState {
    /// The request as it now stands.
    pub request: approval_request::Model,
    /// Every vote, oldest first.
    pub decisions: Vec<approval_decision::Model>,
}

/// Approval requests of one tenant.
#[async_trait]
pub trait ApprovalRepository {
    /// One approval request with its votes.
    ///
    /// # Errors
    /// [`Error::NotFound`] when it is not this tenant's.
    async fn get(&self, id: ApprovalRequestId) -> Result<ApprovalState>;
    /// Requests, oldest first, filtered by status (`pending`, `approved`,
    /// `rejected`, `expired`, `cancelled`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page or status.
    async fn list(&self, page: PageRequest) -> Result<Page<approval_request::Model>>;
    /// Casts `approver`'s vote. When the request's rule is satisfied it is
    /// decided: approved (the purchase intent becomes approved and its hold an
    /// ordinary reservation) or rejected (the hold is released and the intent
    /// rejected with `APPROVAL_REJECTED`).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown request or an approver who is not an
    /// active member of the tenant; [`Error::Forbidden`] for a member without
    /// the `approvals:write` permission (the built-in admin and finance roles
    /// have it); [`Error::Conflict`] when the request is no
    /// longer pending, has expired, or the approver already voted;
    /// [`Error::Invalid`] for an over-long comment.
    async fn decide(
        &self,
        id: ApprovalRequestId,
        approver: UserId,
        vote: ApprovalVote,
        comment: Option<String>,
    ) -> Result<ApprovalState>;
    /// Expires every pending request past its expiry (releasing its hold and
    /// expiring its intent); returns how many.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64>;
}

/// The SeaORM [`ApprovalRepository`]. Get it from
/// [`TenantScope::approvals`](crate::store::TenantScope::approvals).
#[derive(Debug)]
pub struct Approvals<'a> {
    ctx: Ctx<'a>,
}

impl<'a> Approvals<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }

    async fn load(
        &self,
        conn: &impl ConnectionTrait,
        id: ApprovalRequestId,
        lock: bool,
    ) -> Result<approval_request::Model> {
        let mut query = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_request::Column::Id.eq(id));
        if lock {
            query = query.lock_exclusive();
        }
        query
            .one(conn)
            .await?
            .ok_or_else(|| Error::not_found(ApprovalRequestId::ENTITY, id))
    }

    async fn votes(
        &self,
        conn: &impl ConnectionTrait,
        id: ApprovalRequestId,
    ) -> Result<Vec<approval_decision::Model>> {
        Ok(approval_decision::Entity::find()
            .filter(approval_decision::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_decision::Column::ApprovalRequestId.eq(id))
            .order_by_asc(approval_decision::Column::Id)
            .all(conn)
            .await?)
    }

    /// Closes a request: sets its status, settles the intent and the hold.
    /// `vote` is the audit entry of the vote that decided it, appended (with
    /// the decision's own) only once the hold and its windows are locked: the
    /// audit chain comes last in the lock order.
    async fn close(
        &self,
        txn: &DatabaseTransaction,
        request: approval_request::Model,
        status: ApprovalStatus,
        vote: Option<AuditEntry>,
        now: DateTime<Utc>,
    ) -> Result<approval_request::Model> {
        let tenant = self.ctx.tenant;
        let intent = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(tenant))
            .filter(purchase_intent::Column::Id.eq(request.subject_id))
            .one(txn)
            .await?;
        let hold = match request.reservation_id {
            Some(id) => {
                reservation::Entity::find()
                    .filter(reservation::Column::TenantId.eq(tenant))
                    .filter(reservation::Column::Id.eq(id))
                    .lock_exclusive()
                    .one(txn)
                    .await?
            }
            None => None,
        };
        let intent_status = match status {
            // An action without a cost holds nothing: approving it only marks
            // it approved.
            ApprovalStatus::Approved if request.reservation_id.is_none() => {
                PurchaseIntentStatus::Approved
            }
            ApprovalStatus::Approved => {
                let Some(hold) = hold.filter(|h| h.status == ReservationStatus::Held) else {
                    return Err(Error::conflict(
                        "approval_request",
                        format!(
                            "the hold of approval request {} is gone; authorize again",
                            request.id
                        ),
                    ));
                };
                let settings = tenant::Entity::find_by_id(tenant)
                    .one(txn)
                    .await?
                    .map(|t| t.settings)
                    .unwrap_or_default();
                let ttl = settings
                    .reservation_ttl_secs
                    .map_or(DEFAULT_RESERVATION_TTL, |s| {
                        chrono::Duration::seconds(i64::from(s))
                    });
                let mut row: reservation::ActiveModel = hold.into();
                row.expires_at = Set(now + ttl);
                row.updated_at = Set(now);
                row.update(txn).await?;
                if let Some(intent) = &intent {
                    record_seen(
                        txn,
                        tenant,
                        &intent.merchant_name,
                        intent.merchant_domain.as_deref(),
                        now,
                    )
                    .await?;
                }
                PurchaseIntentStatus::Approved
            }
            other => {
                if let Some(hold) = hold.filter(|h| h.status == ReservationStatus::Held) {
                    let to = if other == ApprovalStatus::Expired {
                        ReservationStatus::Expired
                    } else {
                        ReservationStatus::Released
                    };
                    end_hold_in(txn, tenant, hold.id, to, now).await?;
                }
                if other == ApprovalStatus::Expired {
                    PurchaseIntentStatus::Expired
                } else {
                    PurchaseIntentStatus::Rejected
                }
            }
        };
        if let Some(intent) = intent {
            let mut row: purchase_intent::ActiveModel = intent.into();
            row.status = Set(intent_status);
            if intent_status == PurchaseIntentStatus::Rejected {
                row.rejection_code = Set(Some(codes::APPROVAL_REJECTED.to_owned()));
                row.rejection_reason = Set(Some("an approver rejected the request".to_owned()));
            }
            row.updated_at = Set(now);
            row.update(txn).await?;
        }
        let id = request.id;
        let mut row: approval_request::ActiveModel = request.into();
        row.status = Set(status);
        row.decided_at = Set(Some(now));
        row.updated_at = Set(now);
        let closed = row.update(txn).await?;
        if let Some(vote) = vote {
            append(txn, tenant, vote, now).await?;
        }
        append(
            txn,
            tenant,
            AuditEntry::new(
                format!("approval.{}", status.to_value()),
                "approval_request",
            )
            .resource_id(id)
            .status(if status == ApprovalStatus::Approved {
                AuditStatus::Success
            } else {
                AuditStatus::Denied
            }),
            now,
        )
        .await?;
        Ok(closed)
    }
}

impl Approvals<'_> {
    /// Expires one pending request past its expiry, inside the caller's write
    /// transaction: the approval row is locked first, then (in `close`) its
    /// reservation and windows. Returns whether it expired it.
    pub(crate) async fn expire_one(
        &self,
        txn: &DatabaseTransaction,
        id: ApprovalRequestId,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let current = self.load(txn, id, true).await?;
        if current.status != ApprovalStatus::Pending || current.expires_at > now {
            return Ok(false);
        }
        self.close(txn, current, ApprovalStatus::Expired, None, now)
            .await?;
        Ok(true)
    }
}

/// Whether the votes decide the request, and how.
fn verdict(
    rule: ApprovalRule,
    required: i32,
    votes: &[approval_decision::Model],
) -> Option<ApprovalStatus> {
    let approves = votes
        .iter()
        .filter(|v| v.decision == ApprovalVote::Approve)
        .count();
    let rejects = votes.len() - approves;
    let required = usize::try_from(required.max(1)).unwrap_or(1);
    match rule {
        ApprovalRule::Single => votes.last().map(|v| match v.decision {
            ApprovalVote::Approve => ApprovalStatus::Approved,
            ApprovalVote::Reject => ApprovalStatus::Rejected,
        }),
        // Any rejection ends an any-n or unanimous request.
        ApprovalRule::AnyN | ApprovalRule::Unanimous if rejects > 0 => {
            Some(ApprovalStatus::Rejected)
        }
        ApprovalRule::AnyN | ApprovalRule::Unanimous => {
            (approves >= required).then_some(ApprovalStatus::Approved)
        }
        // Majority of `required` eligible approvers.
        ApprovalRule::Majority if approves * 2 > required => Some(ApprovalStatus::Approved),
        ApprovalRule::Majority if rejects * 2 >= required => Some(ApprovalStatus::Rejected),
        ApprovalRule::Majority => None,
    }
}

#[async_trait]
impl ApprovalRepository for Approvals<'_> {
    async fn get(&self, id: ApprovalRequestId) -> Result<ApprovalState> {
        let request = self.load(&self.ctx.db, id, false).await?;
        let decisions = self.votes(&self.ctx.db, id).await?;
        Ok(ApprovalState { request, decisions })
    }

    async fn list(&self, page: PageRequest) -> Result<Page<approval_request::Model>> {
        let mut query = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant));
        if let Some(status) = page.status_filter() {
            let status = ApprovalStatus::try_from_value(&status.to_owned()).map_err(|_| {
                Error::invalid(
                    "status",
                    format!(
                        "{status:?} is not one of pending, approved, rejected, expired, cancelled"
                    ),
                )
            })?;
            query = query.filter(approval_request::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            approval_request::Column::CreatedAt,
            approval_request::Column::Id,
            &page,
        )
        .await
    }

    async fn decide(
        &self,
        id: ApprovalRequestId,
        approver: UserId,
        vote: ApprovalVote,
        comment: Option<String>,
    ) -> Result<ApprovalState> {
        if let Some(c) = &comment {
            if c.chars().count() > MAX_COMMENT_LEN {
                return Err(Error::invalid(
                    "comment",
                    format!(
                        "is {} characters long; at most {MAX_COMMENT_LEN} are allowed",
                        c.chars().count()
                    ),
                ));
            }
        }
        let now = self.ctx.now();
        let comment = &comment;
        crate::store::repo::retry_contention(|| async move {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let request = self.load(&txn, id, true).await?;
                if request.status != ApprovalStatus::Pending {
                    return Err(Error::conflict(
                        "approval_request",
                        format!(
                            "approval request {id} is {}, not pending",
                            request.status.to_value()
                        ),
                    ));
                }
                if request.expires_at <= now {
                    return Err(Error::conflict(
                        "approval_request",
                        format!("approval request {id} expired at {}", request.expires_at),
                    ));
                }
                let member = tenant_member::Entity::find()
                    .filter(tenant_member::Column::TenantId.eq(self.ctx.tenant))
                    .filter(tenant_member::Column::UserId.eq(approver))
                    .one(&txn)
                    .await?
                    .filter(|m| m.status == MemberStatus::Active)
                    .ok_or_else(|| Error::not_found(UserId::ENTITY, approver))?;
                let roles = Roles::new(Ctx::new(&txn, self.ctx.tenant, self.ctx.clock));
                if !roles.can(approver, permissions::APPROVALS_WRITE).await? {
                    return Err(Error::Forbidden {
                        user: approver.to_string(),
                        permission: permissions::APPROVALS_WRITE,
                    });
                }
                let mut votes = self.votes(&txn, id).await?;
                if votes.iter().any(|v| v.approver_id == member.user_id) {
                    return Err(Error::conflict(
                        "approval_request",
                        format!("user {approver} already voted on approval request {id}"),
                    ));
                }
                let decision = approval_decision::ActiveModel {
                    id: Set(ApprovalDecisionId::new()),
                    tenant_id: Set(self.ctx.tenant),
                    approval_request_id: Set(id),
                    approver_id: Set(approver),
                    decision: Set(vote),
                    comment: Set(comment.clone()),
                    created_at: Set(now),
                }
                .insert(&txn)
                .await?;
                let vote_entry = AuditEntry::new(
                    format!("approval.vote.{}", vote.to_value()),
                    "approval_request",
                )
                .actor(AuditActorType::User, Some(approver.as_uuid()))
                .resource_id(id);
                votes.push(decision);
                // Lock order: the request row (locked above), then its hold and
                // windows (in `close`), then the audit chain last.
                let request = match verdict(request.rule, request.required_approvals, &votes) {
                    Some(status) => {
                        self.close(&txn, request, status, Some(vote_entry), now)
                            .await?
                    }
                    None => {
                        append(&txn, self.ctx.tenant, vote_entry, now).await?;
                        request
                    }
                };
                Ok(ApprovalState {
                    request,
                    decisions: votes,
                })
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    async fn expire_due(&self, now: DateTime<Utc>) -> Result<u64> {
        let due = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
            .filter(approval_request::Column::ExpiresAt.lte(now))
            .all(&self.ctx.db)
            .await?;
        let mut expired = 0;
        for request in due {
            let txn = self.ctx.begin_write().await?;
            let result = self.expire_one(&txn, request.id, now).await;
            if finish(txn, result).await? {
                expired += 1;
            }
        }
        Ok(expired)
    }
}
