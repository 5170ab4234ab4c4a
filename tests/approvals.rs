//! Human approvals: quorums, approver roles, eligibility fixed at creation,
//! escalation, separation of duties, cancel, expiry, and listing what a
//! member can decide.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::Error;
use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::entity::approval_request::{ApprovalRule, ApprovalStatus, ApprovalSubjectKind};
use bursar::entity::purchase_intent::PurchaseIntentStatus;
use bursar::entity::reservation::ReservationStatus;
use bursar::entity::tenant::TenantSettings;
use bursar::entity::tenant_member::{MemberStatus, SeatType};
use bursar::id::{AgentId, ApprovalRequestId, RoleId, UserId};
use bursar::money::Currency;
use bursar::policy::{
    ApprovalSettings, Condition, Effect, Outcome, Policy, PolicyScope, Quorum, Request,
    SpendingControls,
};
use bursar::store::{
    AgentRepository, ApprovalRepository, Canceller, MemberRepository, NewAgent, NewTenant, NewUser,
    PolicyRepository, PurchaseIntentRepository, ReservationRepository, RoleRepository,
    TenantRepository, UserRepository, builtin,
};
use bursar::{Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
}

struct World {
    store: Store,
    clock: Arc<ManualClock>,
    acme: TenantScope,
    owner: UserId,
    agent: AgentId,
}

async fn world(backend: Backend, settings: TenantSettings) -> World {
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
        .create(
            NewTenant::new("Acme", format!("t{}", uuid::Uuid::now_v7().simple()))
                .settings(settings),
        )
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let owner = new_member(&store, &acme, Some(builtin::ADMIN)).await;
    let agent = acme
        .agents()
        .create(NewAgent::new("bot").created_by(owner))
        .await
        .unwrap()
        .id;
    World {
        store,
        clock,
        acme,
        owner,
        agent,
    }
}

impl World {
    /// Purchases above 1,000 need approval under `settings`; the rest pass.
    async fn controls(&self, settings: ApprovalSettings) {
        self.acme
            .apply_controls(
                &SpendingControls::new(Currency::USD)
                    .agent(self.agent)
                    .monthly_limit(dec("100000"))
                    .approval_threshold(dec("1000"))
                    .approval(settings)
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
    }

    async fn member(&self, role: Option<&str>) -> UserId {
        new_member(&self.store, &self.acme, role).await
    }

    async fn role(&self, name: &str) -> RoleId {
        self.acme.roles().by_name(name).await.unwrap().id
    }

    /// A purchase of `amount` that must be pending approval; its request id.
    async fn pending(&self, amount: &str) -> ApprovalRequestId {
        let auth = self
            .acme
            .authorize(Request::purchase(
                self.agent,
                dec(amount),
                Currency::USD,
                "Lambda Labs",
            ))
            .await
            .unwrap();
        assert_eq!(auth.outcome, Outcome::PendingApproval, "{:?}", auth.reasons);
        auth.approval.unwrap().id
    }

    async fn vote(
        &self,
        id: ApprovalRequestId,
        who: UserId,
        vote: ApprovalVote,
    ) -> bursar::Result<ApprovalStatus> {
        self.acme
            .approvals()
            .decide(id, who, vote, None)
            .await
            .map(|s| s.request.status)
    }

    async fn status(&self, id: ApprovalRequestId) -> ApprovalStatus {
        self.acme.approvals().get(id).await.unwrap().request.status
    }

    async fn assert_clean(&self) {
        let report = self.acme.reservations().reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert!(self.acme.audit_log().verify().await.unwrap().is_intact());
    }
}

async fn new_member(store: &Store, acme: &TenantScope, role: Option<&str>) -> UserId {
    let email = format!("u{}@example.com", uuid::Uuid::now_v7().simple());
    let user = store
        .users()
        .create(NewUser::new(email, "Member"))
        .await
        .unwrap();
    acme.members().add(user.id, SeatType::Pro).await.unwrap();
    if let Some(role) = role {
        let role = acme.roles().by_name(role).await.unwrap();
        acme.roles().assign(user.id, role.id).await.unwrap();
    }
    user.id
}

fn is_conflict(r: &bursar::Result<ApprovalStatus>, needle: &str) -> bool {
    matches!(r, Err(e @ Error::Conflict { .. }) if e.to_string().contains(needle))
}

#[tokio::test]
async fn two_of_three_finance_approvers_decide_and_a_rejection_alone_does_not() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        w.controls(ApprovalSettings::new(Quorum::AnyN { n: 2 }).approver_role(finance))
            .await;
        let f: Vec<UserId> = [
            w.member(Some(builtin::FINANCE)).await,
            w.member(Some(builtin::FINANCE)).await,
            w.member(Some(builtin::FINANCE)).await,
        ]
        .into();
        let id = w.pending("1500").await;
        let state = w.acme.approvals().get(id).await.unwrap().request;
        assert_eq!(
            (state.rule, state.required_approvals, state.approver_role_id),
            (ApprovalRule::AnyN, 2, Some(finance)),
            "{backend:?}"
        );
        let mut eligible = f.clone();
        eligible.sort();
        assert_eq!(
            state.eligible_approvers.0, eligible,
            "the admin is not in the finance role"
        );
        // The admin holds approvals:write but not the approver role.
        assert!(is_conflict(
            &w.vote(id, w.owner, ApprovalVote::Approve).await,
            "not an eligible approver"
        ));
        assert_eq!(
            w.vote(id, f[0], ApprovalVote::Reject).await.unwrap(),
            ApprovalStatus::Pending,
            "one rejection leaves two who can still approve"
        );
        assert_eq!(
            w.vote(id, f[1], ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Pending
        );
        assert_eq!(
            w.vote(id, f[2], ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
        // Two rejections make two approvals out of three impossible.
        let id = w.pending("1200").await;
        w.vote(id, f[0], ApprovalVote::Reject).await.unwrap();
        assert_eq!(
            w.vote(id, f[1], ApprovalVote::Reject).await.unwrap(),
            ApprovalStatus::Rejected
        );
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn eligible_approvers_are_fixed_when_the_request_is_created() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        w.controls(ApprovalSettings::new(Quorum::Single)).await;
        let id = w.pending("1500").await;
        let late = w.member(Some(builtin::FINANCE)).await;
        assert!(
            is_conflict(&w.vote(id, late, ApprovalVote::Approve).await, "eligible"),
            "{backend:?}"
        );
        assert_eq!(
            w.vote(id, w.owner, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
    }
}

#[tokio::test]
async fn unanimous_needs_everyone_and_any_rejection_rejects() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        w.controls(ApprovalSettings::new(Quorum::Unanimous).approver_role(finance))
            .await;
        let a = w.member(Some(builtin::FINANCE)).await;
        let b = w.member(Some(builtin::FINANCE)).await;
        let c = w.member(Some(builtin::FINANCE)).await;
        let id = w.pending("1500").await;
        assert_eq!(
            w.vote(id, a, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Pending
        );
        assert_eq!(
            w.vote(id, b, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Pending
        );
        assert_eq!(
            w.vote(id, c, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved,
            "{backend:?}"
        );
        let id = w.pending("1500").await;
        w.vote(id, a, ApprovalVote::Approve).await.unwrap();
        assert_eq!(
            w.vote(id, b, ApprovalVote::Reject).await.unwrap(),
            ApprovalStatus::Rejected
        );
        // A member deactivated before voting loses the vote and no longer
        // counts: the remaining two decide.
        let id = w.pending("1500").await;
        w.acme
            .members()
            .set_status(c, MemberStatus::Suspended)
            .await
            .unwrap();
        assert!(w.vote(id, c, ApprovalVote::Approve).await.is_err());
        w.vote(id, a, ApprovalVote::Approve).await.unwrap();
        assert_eq!(
            w.vote(id, b, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn majority_needs_more_than_half_and_a_tie_rejects() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        w.controls(ApprovalSettings::new(Quorum::Majority).approver_role(finance))
            .await;
        let mut f = Vec::new();
        for _ in 0..4 {
            f.push(w.member(Some(builtin::FINANCE)).await);
        }
        // 4 eligible: 3 approvals approve.
        let id = w.pending("1500").await;
        assert_eq!(
            w.acme
                .approvals()
                .get(id)
                .await
                .unwrap()
                .request
                .required_approvals,
            3
        );
        w.vote(id, f[0], ApprovalVote::Approve).await.unwrap();
        w.vote(id, f[1], ApprovalVote::Reject).await.unwrap();
        w.vote(id, f[2], ApprovalVote::Approve).await.unwrap();
        assert_eq!(w.status(id).await, ApprovalStatus::Pending, "{backend:?}");
        assert_eq!(
            w.vote(id, f[3], ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
        // 2 against 2 is a tie: rejected at the second rejection.
        let id = w.pending("1500").await;
        w.vote(id, f[0], ApprovalVote::Approve).await.unwrap();
        w.vote(id, f[1], ApprovalVote::Approve).await.unwrap();
        w.vote(id, f[2], ApprovalVote::Reject).await.unwrap();
        assert_eq!(
            w.vote(id, f[3], ApprovalVote::Reject).await.unwrap(),
            ApprovalStatus::Rejected
        );
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn separation_of_duties_keeps_the_agents_creator_from_approving() {
    for backend in backends() {
        let settings = TenantSettings {
            separate_approver: true,
            ..TenantSettings::default()
        };
        let w = world(backend, settings).await;
        w.controls(ApprovalSettings::new(Quorum::Single)).await;
        let other = w.member(Some(builtin::FINANCE)).await;
        let id = w.pending("1500").await;
        let state = w.acme.approvals().get(id).await.unwrap().request;
        assert_eq!(state.eligible_approvers.0, [other], "{backend:?}");
        assert!(is_conflict(
            &w.vote(id, w.owner, ApprovalVote::Approve).await,
            "not an eligible approver"
        ));
        assert_eq!(
            w.vote(id, other, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
        // Without the setting the creator may approve.
        let w = world(backend, TenantSettings::default()).await;
        w.controls(ApprovalSettings::new(Quorum::Single)).await;
        let id = w.pending("1500").await;
        assert_eq!(
            w.vote(id, w.owner, ApprovalVote::Approve).await.unwrap(),
            ApprovalStatus::Approved
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_votes_resolve_the_request_exactly_once() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        w.controls(ApprovalSettings::new(Quorum::Majority).approver_role(finance))
            .await;
        let mut voters = Vec::new();
        for _ in 0..20 {
            voters.push(w.member(Some(builtin::FINANCE)).await);
        }
        let id = w.pending("1500").await;
        let acme = Arc::new(w.acme.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for voter in voters {
            let acme = acme.clone();
            tasks.spawn(async move {
                acme.approvals()
                    .decide(id, voter, ApprovalVote::Approve, None)
                    .await
                    .map(|s| s.request.status)
            });
        }
        let mut approved_by = 0;
        let mut accepted = 0;
        let mut refused = 0;
        while let Some(done) = tasks.join_next().await {
            match done.unwrap() {
                Ok(ApprovalStatus::Approved) => {
                    approved_by += 1;
                    accepted += 1;
                }
                Ok(_) => accepted += 1,
                Err(e @ Error::Conflict { .. }) => {
                    assert!(e.to_string().contains("approved"), "{e}");
                    refused += 1;
                }
                Err(e) => panic!("{backend:?}: {e:?}"),
            }
        }
        // Majority of 20 is 11: the eleventh vote decides, the rest are refused.
        assert_eq!((approved_by, accepted, refused), (1, 11, 9), "{backend:?}");
        let state = acme.approvals().get(id).await.unwrap();
        assert_eq!(state.request.status, ApprovalStatus::Approved);
        assert_eq!(state.decisions.len(), 11);
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn cancel_by_the_requesting_side_or_an_admin_releases_the_hold() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        w.controls(ApprovalSettings::new(Quorum::Single)).await;
        let developer = w.member(Some(builtin::DEVELOPER)).await;
        let auth = w
            .acme
            .authorize(Request::purchase(
                w.agent,
                dec("1500"),
                Currency::USD,
                "Lambda Labs",
            ))
            .await
            .unwrap();
        let id = auth.approval.as_ref().unwrap().id;
        let err = w
            .acme
            .approvals()
            .cancel(id, Canceller::Member(developer))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Forbidden { .. }),
            "{backend:?}: {err:?}"
        );
        let other = w
            .acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap();
        let err = w
            .acme
            .approvals()
            .cancel(id, Canceller::Agent(other.id))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden { .. }), "{err:?}");
        let cancelled = w
            .acme
            .approvals()
            .cancel(id, Canceller::Agent(w.agent))
            .await
            .unwrap();
        assert_eq!(cancelled.status, ApprovalStatus::Cancelled);
        let intent = w.acme.purchase_intents().get(auth.intent.id).await.unwrap();
        assert_eq!(intent.status, PurchaseIntentStatus::Rejected);
        assert_eq!(
            intent.rejection_code.as_deref(),
            Some(codes::APPROVAL_CANCELLED)
        );
        let (hold, _) = w
            .acme
            .reservations()
            .get(auth.reservation.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(hold.status, ReservationStatus::Released);
        // Cancelled is final.
        assert!(is_conflict(
            &w.vote(id, w.owner, ApprovalVote::Approve).await,
            "cancelled"
        ));
        // An admin cancels another.
        let id = w.pending("1500").await;
        let admin = w.member(Some(builtin::ADMIN)).await;
        w.acme
            .approvals()
            .cancel(id, Canceller::Member(admin))
            .await
            .unwrap();
        assert_eq!(w.status(id).await, ApprovalStatus::Cancelled);
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn escalation_makes_the_second_role_eligible_then_the_request_expires() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        let admin = w.role(builtin::ADMIN).await;
        w.controls(
            ApprovalSettings::new(Quorum::Single)
                .approver_role(finance)
                .expires_after_secs(4 * 3600)
                .escalate_after(3600, admin),
        )
        .await;
        let auth = w
            .acme
            .authorize(Request::purchase(
                w.agent,
                dec("1500"),
                Currency::USD,
                "Lambda Labs",
            ))
            .await
            .unwrap();
        let request = auth.approval.clone().unwrap();
        assert!(request.eligible_approvers.0.is_empty(), "{backend:?}");
        assert_eq!(request.expires_at, noon() + Duration::hours(4));
        assert_eq!(request.escalate_at, Some(noon() + Duration::hours(1)));
        assert_eq!(
            auth.reservation.as_ref().unwrap().expires_at,
            request.expires_at,
            "the hold lives as long as the request"
        );
        let id = request.id;
        // Nobody is eligible before the escalation.
        assert!(w.vote(id, w.owner, ApprovalVote::Approve).await.is_err());
        let sweep = w
            .acme
            .approvals()
            .expire_and_escalate_due(noon() + Duration::minutes(30))
            .await
            .unwrap();
        assert!(sweep.escalated.is_empty() && sweep.expired.is_empty());
        let sweep = w
            .acme
            .approvals()
            .expire_and_escalate_due(noon() + Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(sweep.escalated, [id]);
        let state = w.acme.approvals().get(id).await.unwrap().request;
        assert_eq!(state.eligible_approvers.0, [w.owner]);
        assert_eq!(state.escalation_role_id, None, "escalation happens once");
        // Nobody votes; at expiry the sweep expires it and returns the hold.
        let sweep = w
            .acme
            .approvals()
            .expire_and_escalate_due(noon() + Duration::hours(4))
            .await
            .unwrap();
        assert_eq!((sweep.escalated.len(), sweep.expired), (0, vec![id]));
        assert_eq!(w.status(id).await, ApprovalStatus::Expired);
        assert!(is_conflict(
            &w.vote(id, w.owner, ApprovalVote::Approve).await,
            "expired"
        ));
        w.assert_clean().await;
    }
}

#[tokio::test]
async fn an_expired_request_cannot_be_decided_before_the_sweep_runs() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        w.controls(ApprovalSettings::new(Quorum::Single).expires_after_secs(600))
            .await;
        let id = w.pending("1500").await;
        w.clock.set(noon() + Duration::minutes(10));
        assert!(
            is_conflict(&w.vote(id, w.owner, ApprovalVote::Approve).await, "expired"),
            "{backend:?}"
        );
        assert_eq!(w.status(id).await, ApprovalStatus::Pending);
    }
}

#[tokio::test]
async fn the_strictest_settings_win_when_several_approval_policies_match() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        w.controls(
            ApprovalSettings::new(Quorum::AnyN { n: 2 })
                .approver_role(finance)
                .expires_after_secs(7200),
        )
        .await;
        for _ in 0..3 {
            w.member(Some(builtin::FINANCE)).await;
        }
        w.acme
            .policies()
            .create(
                Policy::new(
                    "Very large",
                    Effect::RequireApproval,
                    "VERY_LARGE",
                    Condition::AmountAbove {
                        amount: dec("5000"),
                        currency: Currency::USD,
                    },
                )
                .scope(PolicyScope::agent(w.agent))
                .approval(ApprovalSettings::new(Quorum::Unanimous).expires_after_secs(3600)),
            )
            .await
            .unwrap();
        let small = w.pending("1500").await;
        let small = w.acme.approvals().get(small).await.unwrap().request;
        assert_eq!(
            (small.rule, small.required_approvals),
            (ApprovalRule::AnyN, 2),
            "{backend:?}"
        );
        let large = w.pending("6000").await;
        let large = w.acme.approvals().get(large).await.unwrap().request;
        assert_eq!(
            (
                large.rule,
                large.required_approvals,
                large.approver_role_id,
                large.expires_at
            ),
            (
                ApprovalRule::Unanimous,
                3,
                Some(finance),
                noon() + Duration::hours(1)
            )
        );
    }
}

#[tokio::test]
async fn a_member_lists_what_they_can_decide_now_oldest_first() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        w.controls(ApprovalSettings::new(Quorum::AnyN { n: 2 }))
            .await;
        let f = w.member(Some(builtin::FINANCE)).await;
        let first = w.pending("1500").await;
        w.clock.set(noon() + Duration::seconds(1));
        let second = w.pending("1600").await;
        let approvals = w.acme.approvals();
        let ids = |v: Vec<bursar::entity::approval_request::Model>| {
            v.into_iter().map(|r| r.id).collect::<Vec<_>>()
        };
        assert_eq!(
            ids(approvals.decidable_by(f, None, 10).await.unwrap()),
            [first, second],
            "{backend:?}"
        );
        approvals
            .decide(first, f, ApprovalVote::Approve, None)
            .await
            .unwrap();
        assert_eq!(
            ids(approvals
                .decidable_by(f, Some(ApprovalSubjectKind::PurchaseIntent), 10)
                .await
                .unwrap()),
            [second],
            "a member who voted no longer lists it"
        );
        assert!(
            approvals
                .decidable_by(f, Some(ApprovalSubjectKind::ToolCall), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let developer = w.member(Some(builtin::DEVELOPER)).await;
        assert!(
            approvals
                .decidable_by(developer, None, 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            approvals.decidable_by(f, None, 0).await,
            Err(Error::Invalid { .. })
        ));
    }
}

#[test]
fn approval_settings_are_validated_when_written() {
    let settings = ApprovalSettings::new(Quorum::Single);
    let allow = Policy::new("ok", Effect::Allow, "OK", Condition::Always).approval(settings);
    let err = bursar::policy::validate(&allow).unwrap_err();
    assert!(
        matches!(err, Error::InvalidPolicy { ref path, .. } if path == "approval"),
        "{err:?}"
    );
    let zero = Policy::new("ask", Effect::RequireApproval, "ASK", Condition::Always)
        .approval(ApprovalSettings::new(Quorum::AnyN { n: 0 }));
    let err = bursar::policy::validate(&zero).unwrap_err();
    assert!(
        matches!(err, Error::InvalidPolicy { ref path, .. } if path == "approval.quorum.n"),
        "{err:?}"
    );
    let json = r#"{"id": "0190a0b0-0000-7000-8000-000000000001", "name": "Big",
        "effect": "require_approval", "reason_code": "BIG", "condition": {"type": "always"},
        "approval": {"quorum": {"type": "any_n", "n": 2}, "expires_after_secs": 3600}}"#;
    let policy = Policy::from_json(json).unwrap();
    assert_eq!(policy.approval.unwrap().quorum, Quorum::AnyN { n: 2 });
}

#[tokio::test]
async fn the_store_wide_sweep_escalates_and_expires_every_tenants_requests() {
    for backend in backends() {
        let w = world(backend, TenantSettings::default()).await;
        let finance = w.role(builtin::FINANCE).await;
        let admin = w.role(builtin::ADMIN).await;
        w.controls(
            ApprovalSettings::new(Quorum::Single)
                .approver_role(finance)
                .expires_after_secs(7200)
                .escalate_after(3600, admin),
        )
        .await;
        let first = w.pending("1500").await;
        // A second tenant in the same store.
        let t = w
            .store
            .tenants()
            .create(NewTenant::new(
                "Beta",
                format!("t{}", uuid::Uuid::now_v7().simple()),
            ))
            .await
            .unwrap();
        let beta = w.store.tenant(t.id);
        let bot = beta.agents().create(NewAgent::new("bot")).await.unwrap().id;
        beta.apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(bot)
                .monthly_limit(dec("100000"))
                .approval_threshold(dec("1000"))
                .approval_expires_after_secs(600)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let second = beta
            .authorize(Request::purchase(bot, dec("1500"), Currency::USD, "GPU Co"))
            .await
            .unwrap()
            .approval
            .unwrap()
            .id;
        let sweep = w
            .store
            .expire_and_escalate_due_all(noon() + Duration::hours(1))
            .await
            .unwrap();
        assert!(
            sweep.failures.is_empty(),
            "{backend:?}: {:?}",
            sweep.failures
        );
        assert_eq!(
            (sweep.escalated, sweep.expired),
            (vec![first], vec![second])
        );
        assert_eq!(
            beta.approvals().get(second).await.unwrap().request.status,
            ApprovalStatus::Expired
        );
    }
}
