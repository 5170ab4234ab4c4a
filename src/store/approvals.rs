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
use std::collections::BTreeSet;

use serde::Serialize;

use crate::audit::{AuditEntry, append};
use crate::entity::agent;
use crate::entity::approval_decision::{self, ApprovalVote};
use crate::entity::approval_request::ApprovalSubjectKind;
use crate::entity::approval_request::{self, ApprovalRule, ApprovalStatus};
use crate::entity::audit_log::{AuditActorType, AuditStatus};
use crate::entity::purchase_intent::{self, PurchaseIntentStatus};
use crate::entity::reservation::{self, ReservationStatus};
use crate::entity::tenant;
use crate::entity::tenant_member::{self, MemberStatus};
use crate::events::{NewEvent, approval_event, emit, types};
use crate::id::{AgentId, ApprovalDecisionId, ApprovalRequestId, RoleId, UserId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::policy::{ApprovalSettings, Quorum, Verdict, verdict};
use crate::store::approvers::{active_among, escalate_if_due};
use crate::store::merchants::record_seen;
use crate::store::repo::{Ctx, finish};
use crate::store::reservations::end_hold_in;
use crate::store::roles::{RoleRepository, Roles, permissions};
use crate::store::tenants::DEFAULT_RESERVATION_TTL;
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
    /// rejected with `APPROVAL_REJECTED`). A due escalation is applied first.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown request or an approver who is not an
    /// active member of the tenant; [`Error::Forbidden`] for a member without
    /// the `approvals:write` permission (the built-in admin and finance roles
    /// have it); [`Error::Conflict`] when the request is no longer pending,
    /// has expired, the approver is not among its eligible approvers (fixed
    /// when it was created; see `docs/approvals.md`) or already voted;
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
    /// Withdraws a pending request and releases its hold; its purchase
    /// intent is rejected with `APPROVAL_CANCELLED`. Allowed to the
    /// requesting agent, the member who created that agent, and any member
    /// holding `members:write` (the built-in admin role).
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown request; [`Error::Forbidden`] for
    /// anyone else; [`Error::Conflict`] when it is no longer pending.
    async fn cancel(&self, id: ApprovalRequestId, by: Canceller)
    -> Result<approval_request::Model>;
    /// The sweep the host calls on a timer: escalates every pending request
    /// whose escalation is due, then expires every pending request past its
    /// expiry (releasing its hold). Each request is handled in its own
    /// transaction.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn expire_and_escalate_due(&self, now: DateTime<Utc>) -> Result<ApprovalSweep>;
    /// The pending, unexpired requests `member` can vote on now (eligible,
    /// active, holding `approvals:write`, not yet voted), optionally of one
    /// subject kind, oldest first, at most `limit`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a `limit` of 0 or above 1,000.
    async fn decidable_by(
        &self,
        member: UserId,
        subject: Option<ApprovalSubjectKind>,
        limit: u64,
    ) -> Result<Vec<approval_request::Model>>;
}

/// Who cancels an approval request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Canceller {
    /// The agent that made the request.
    Agent(AgentId),
    /// A member: the one who created the requesting agent, or an admin.
    Member(UserId),
}

/// What [`ApprovalRepository::expire_and_escalate_due`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApprovalSweep {
    /// The requests escalated.
    pub escalated: Vec<ApprovalRequestId>,
    /// The requests expired.
    pub expired: Vec<ApprovalRequestId>,
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
        escalated: Option<NewEvent>,
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
                crate::store::repo::update_owned(txn, row).await?;
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
                let (code, why) = if status == ApprovalStatus::Cancelled {
                    (
                        codes::APPROVAL_CANCELLED,
                        "the approval request was cancelled",
                    )
                } else {
                    (codes::APPROVAL_REJECTED, "an approver rejected the request")
                };
                row.rejection_code = Set(Some(code.to_owned()));
                row.rejection_reason = Set(Some(why.to_owned()));
            }
            row.updated_at = Set(now);
            crate::store::repo::update_owned(txn, row).await?;
        }
        let id = request.id;
        let mut row: approval_request::ActiveModel = request.into();
        row.status = Set(status);
        row.decided_at = Set(Some(now));
        row.updated_at = Set(now);
        let closed = crate::store::repo::update_owned(txn, row).await?;
        let event_type = if status == ApprovalStatus::Expired {
            types::APPROVAL_EXPIRED
        } else {
            types::APPROVAL_DECIDED
        };
        if let Some(event) = escalated {
            emit(txn, tenant, event, now).await?;
        }
        emit(txn, tenant, approval_event(event_type, &closed, None)?, now).await?;
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
        self.close(txn, current, ApprovalStatus::Expired, None, None, now)
            .await?;
        Ok(true)
    }

    /// Escalates one pending request whose escalation is due, inside the
    /// caller's write transaction. Returns the role it escalated to.
    pub(crate) async fn escalate_one(
        &self,
        txn: &DatabaseTransaction,
        id: ApprovalRequestId,
        now: DateTime<Utc>,
    ) -> Result<Option<RoleId>> {
        let current = self.load(txn, id, true).await?;
        if current.status != ApprovalStatus::Pending || current.expires_at <= now {
            return Ok(None);
        }
        let (request, role) = escalate_if_due(txn, current, now).await?;
        if let Some(role) = role {
            let event = approval_event(types::APPROVAL_ESCALATED, &request, Some(role))?;
            emit(txn, self.ctx.tenant, event, now).await?;
            append(
                txn,
                self.ctx.tenant,
                AuditEntry::new("approval.escalated", "approval_request")
                    .resource_id(request.id)
                    .message(format!("escalated to role {role}")),
                now,
            )
            .await?;
        }
        Ok(role)
    }

    /// Whether `by` may cancel `request`.
    async fn may_cancel(
        &self,
        conn: &DatabaseTransaction,
        request: &approval_request::Model,
        by: Canceller,
    ) -> Result<bool> {
        match by {
            Canceller::Agent(agent) => Ok(request.agent_id == Some(agent)),
            Canceller::Member(user) => {
                let creator = match request.agent_id {
                    Some(a) => agent::Entity::find()
                        .filter(agent::Column::TenantId.eq(self.ctx.tenant))
                        .filter(agent::Column::Id.eq(a))
                        .one(conn)
                        .await?
                        .and_then(|a| a.created_by),
                    None => None,
                };
                let active = !active_among(conn, self.ctx.tenant, &[user])
                    .await?
                    .is_empty();
                if !active {
                    return Ok(false);
                }
                if creator == Some(user) {
                    return Ok(true);
                }
                let roles = Roles::new(Ctx::new(conn, self.ctx.tenant, self.ctx.clock));
                roles.can(user, permissions::MEMBERS_WRITE).await
            }
        }
    }
}

/// Whether the votes decide the request, and how. The eligible count is the
/// eligible approvers still active plus every one who voted: a member
/// deactivated before voting loses the vote and no longer counts.
fn decide_votes(
    request: &approval_request::Model,
    votes: &[approval_decision::Model],
    active: &BTreeSet<UserId>,
) -> Option<ApprovalStatus> {
    let voters: BTreeSet<UserId> = votes.iter().map(|v| v.approver_id).collect();
    let eligible = request
        .eligible_approvers
        .0
        .iter()
        .filter(|u| active.contains(u) || voters.contains(u))
        .count();
    let approves = votes
        .iter()
        .filter(|v| v.decision == ApprovalVote::Approve)
        .count();
    let rejects = votes.len() - approves;
    let n = |x: usize| u32::try_from(x).unwrap_or(u32::MAX);
    verdict(quorum_of(request), n(eligible), n(approves), n(rejects)).map(|v| match v {
        Verdict::Approved => ApprovalStatus::Approved,
        Verdict::Rejected => ApprovalStatus::Rejected,
    })
}

/// The quorum a stored request carries.
pub(crate) fn quorum_of(request: &approval_request::Model) -> Quorum {
    match request.rule {
        ApprovalRule::Single => Quorum::Single,
        ApprovalRule::AnyN => Quorum::AnyN {
            n: u32::try_from(request.required_approvals.max(1)).unwrap_or(1),
        },
        ApprovalRule::Unanimous => Quorum::Unanimous,
        ApprovalRule::Majority => Quorum::Majority,
    }
}

/// The stored rule and required approvals of a quorum among `eligible`.
pub(crate) fn approval_rule_of(quorum: Quorum, eligible: usize) -> (ApprovalRule, i32) {
    let eligible = u32::try_from(eligible).unwrap_or(u32::MAX);
    let required = i32::try_from(quorum.required(eligible)).unwrap_or(i32::MAX);
    let rule = match quorum {
        Quorum::AnyN { .. } => ApprovalRule::AnyN,
        Quorum::Unanimous => ApprovalRule::Unanimous,
        Quorum::Majority => ApprovalRule::Majority,
        _ => ApprovalRule::Single,
    };
    (rule, required)
}

#[async_trait]
impl ApprovalRepository for Approvals<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.approvals.get", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn get(&self, id: ApprovalRequestId) -> Result<ApprovalState> {
        let request = self.load(&self.ctx.db, id, false).await?;
        let decisions = self.votes(&self.ctx.db, id).await?;
        Ok(ApprovalState { request, decisions })
    }

    #[tracing::instrument(level = "debug", name = "bursar.approvals.list", skip_all, fields(tenant = %self.ctx.tenant))]
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

    #[tracing::instrument(level = "info", name = "bursar.approvals.decide", skip_all, fields(tenant = %self.ctx.tenant, approval = %id))]
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
                // An escalation due now applies before the vote; its event is
                // appended with the others, after the hold and its windows
                // are locked (events and the audit chain come last).
                let (request, role) = escalate_if_due(&txn, request, now).await?;
                let escalated = role
                    .map(|r| approval_event(types::APPROVAL_ESCALATED, &request, Some(r)))
                    .transpose()?;
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
                if !request.eligible_approvers.0.contains(&approver) {
                    return Err(Error::conflict(
                        "approval_request",
                        format!(
                            "user {approver} is not an eligible approver of approval request {id} (eligible approvers are fixed when it is created)"
                        ),
                    ));
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
                let active =
                    active_among(&txn, self.ctx.tenant, &request.eligible_approvers.0).await?;
                let request = match decide_votes(&request, &votes, &active) {
                    Some(status) => {
                        self.close(&txn, request, status, Some(vote_entry), escalated, now)
                            .await?
                    }
                    None => {
                        if let Some(event) = escalated {
                            emit(&txn, self.ctx.tenant, event, now).await?;
                        }
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

    #[tracing::instrument(level = "info", name = "bursar.approvals.cancel", skip_all, fields(tenant = %self.ctx.tenant, approval = %id))]
    async fn cancel(
        &self,
        id: ApprovalRequestId,
        by: Canceller,
    ) -> Result<approval_request::Model> {
        let now = self.ctx.now();
        crate::store::repo::retry_contention(|| async move {
            let txn = self.ctx.begin_write().await?;
            let result = async {
                let request = self.load(&txn, id, true).await?;
                if !self.may_cancel(&txn, &request, by).await? {
                    let who = match by {
                        Canceller::Agent(a) => a.to_string(),
                        Canceller::Member(u) => u.to_string(),
                    };
                    return Err(Error::Forbidden {
                        user: who,
                        permission: permissions::MEMBERS_WRITE,
                    });
                }
                if request.status != ApprovalStatus::Pending {
                    return Err(Error::conflict(
                        "approval_request",
                        format!(
                            "approval request {id} is {}, not pending",
                            request.status.to_value()
                        ),
                    ));
                }
                let entry = AuditEntry::new("approval.cancel", "approval_request")
                    .resource_id(id)
                    .actor(
                        match by {
                            Canceller::Agent(_) => AuditActorType::Agent,
                            Canceller::Member(_) => AuditActorType::User,
                        },
                        Some(match by {
                            Canceller::Agent(a) => a.as_uuid(),
                            Canceller::Member(u) => u.as_uuid(),
                        }),
                    );
                self.close(
                    &txn,
                    request,
                    ApprovalStatus::Cancelled,
                    Some(entry),
                    None,
                    now,
                )
                .await
            }
            .await;
            finish(txn, result).await
        })
        .await
    }

    #[tracing::instrument(level = "info", name = "bursar.approvals.expire_and_escalate_due", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn expire_and_escalate_due(&self, now: DateTime<Utc>) -> Result<ApprovalSweep> {
        let mut sweep = ApprovalSweep::default();
        let due = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
            .filter(approval_request::Column::EscalationRoleId.is_not_null())
            .filter(approval_request::Column::EscalateAt.lte(now))
            .order_by_asc(approval_request::Column::Id)
            .all(&self.ctx.db)
            .await?;
        for request in due {
            let txn = self.ctx.begin_write().await?;
            let result = self.escalate_one(&txn, request.id, now).await;
            if finish(txn, result).await?.is_some() {
                sweep.escalated.push(request.id);
            }
        }
        let due = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
            .filter(approval_request::Column::ExpiresAt.lte(now))
            .order_by_asc(approval_request::Column::Id)
            .all(&self.ctx.db)
            .await?;
        for request in due {
            let txn = self.ctx.begin_write().await?;
            let result = self.expire_one(&txn, request.id, now).await;
            if finish(txn, result).await? {
                sweep.expired.push(request.id);
            }
        }
        Ok(sweep)
    }

    #[tracing::instrument(level = "debug", name = "bursar.approvals.decidable_by", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn decidable_by(
        &self,
        member: UserId,
        subject: Option<ApprovalSubjectKind>,
        limit: u64,
    ) -> Result<Vec<approval_request::Model>> {
        if limit == 0 || limit > 1_000 {
            return Err(Error::invalid(
                "limit",
                format!("{limit}, must be 1 to 1000"),
            ));
        }
        let now = self.ctx.now();
        let conn = &self.ctx.db;
        let roles = Roles::new(self.ctx.reborrow());
        if active_among(conn, self.ctx.tenant, &[member])
            .await?
            .is_empty()
            || !roles.can(member, permissions::APPROVALS_WRITE).await?
        {
            return Ok(Vec::new());
        }
        let mut query = approval_request::Entity::find()
            .filter(approval_request::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_request::Column::Status.eq(ApprovalStatus::Pending))
            .filter(approval_request::Column::ExpiresAt.gt(now));
        if let Some(kind) = subject {
            query = query.filter(approval_request::Column::SubjectKind.eq(kind));
        }
        let pending = query
            .order_by_asc(approval_request::Column::CreatedAt)
            .order_by_asc(approval_request::Column::Id)
            .all(conn)
            .await?;
        let voted: BTreeSet<ApprovalRequestId> = approval_decision::Entity::find()
            .filter(approval_decision::Column::TenantId.eq(self.ctx.tenant))
            .filter(approval_decision::Column::ApproverId.eq(member))
            .all(conn)
            .await?
            .into_iter()
            .map(|d| d.approval_request_id)
            .collect();
        Ok(pending
            .into_iter()
            .filter(|r| r.eligible_approvers.0.contains(&member) && !voted.contains(&r.id))
            .take(usize::try_from(limit).unwrap_or(usize::MAX))
            .collect())
    }

    #[tracing::instrument(level = "info", name = "bursar.approvals.expire_due", skip_all, fields(tenant = %self.ctx.tenant))]
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

/// The combined approval settings of the `require_approval` policies behind
/// `reasons` (see [`ApprovalSettings::strictest`]) and the eligible approvers
/// of a new request under them.
pub(crate) async fn approval_settings(
    txn: &DatabaseTransaction,
    tenant: crate::id::TenantId,
    cache: &crate::store::policies::PolicyCache,
    reasons: &[crate::policy::Reason],
    agent: Option<AgentId>,
    clock: &dyn crate::clock::Clock,
) -> Result<(ApprovalSettings, Vec<UserId>)> {
    use crate::store::policies::{Policies, PolicyRepository};
    let compiled = Policies::new(Ctx::new(txn, tenant, clock), cache)
        .compiled()
        .await?;
    let all: Vec<ApprovalSettings> = reasons
        .iter()
        .filter_map(crate::policy::Reason::policy_id)
        .filter_map(|id| compiled.approval_settings(id).copied())
        .collect();
    let role = all.iter().find_map(|s| s.approver_role);
    let eligible = crate::store::approvers::snapshot(txn, tenant, role, agent).await?;
    let count = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    Ok((ApprovalSettings::strictest(&all, |_| count), eligible))
}
