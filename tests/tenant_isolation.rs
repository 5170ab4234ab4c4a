//! Tenant isolation: an id of tenant A used through tenant B's scope behaves
//! exactly like an id that does not exist, for every repository, and changes
//! nothing of A's.

mod common;

use bursar::audit::{AuditEntry, AuditLogRepository};
use bursar::entity::agent::AgentStatus;
use bursar::entity::json::{Metadata, ReasonList};
use bursar::entity::purchase_intent::{self, PurchaseIntentStatus};
use bursar::entity::tenant_member::{MemberStatus, SeatType};
use bursar::entity::transaction::{self, TransactionStatus};
use bursar::entity::virtual_card::{self, VirtualCardStatus};
use bursar::entity::{blocked_attempt, merchant};
use bursar::id::{
    AgentId, ApiKeyId, BlockedAttemptId, BudgetId, MerchantId, ProjectId, PurchaseIntentId,
    ReservationId, RoleId, TeamId, TenantId, TransactionId, UserId, VirtualCardId,
};
use bursar::money::{Amount, Currency, Money};
use bursar::store::{
    AgentKeyRepository, AgentRepository, BlockedAttemptRepository, BudgetRepository,
    CardRepository, MemberRepository, MerchantRepository, NewAgent, NewBudget, NewGroup, NewRole,
    NewTenant, NewUser, PageRequest, ProjectRepository, ReservationRepository, ReserveRequest,
    RoleRepository, TeamRepository, TenantRepository, TransactionRepository, UserRepository,
    builtin, permissions,
};
use bursar::{Error, Store, TenantScope};
use chrono::{Duration, Utc};
use common::{backends, dec, fresh};
use sea_orm::ActiveModelTrait;

/// What B's attempt on A's row must produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    /// `Error::NotFound`, as for an id that does not exist.
    NotFound,
    /// `Error::Unauthenticated`, as for a key that does not exist.
    Unauthenticated,
    /// `Ok(false)`.
    False,
    /// A listing that holds no row of A.
    NoRowOfA,
}

use Expect::{False, NoRowOfA, NotFound, Unauthenticated};

/// Every repository, every way of naming one of A's rows from B's scope.
const CASES: &[(&str, Expect)] = &[
    ("teams.get", NotFound),
    ("teams.rename", NotFound),
    ("teams.list", NoRowOfA),
    ("projects.get", NotFound),
    ("projects.rename", NotFound),
    ("projects.list", NoRowOfA),
    ("agents.get", NotFound),
    ("agents.set_status", NotFound),
    ("agents.assign", NotFound),
    ("agents.assign_to_foreign_team", NotFound),
    ("agents.create_with_foreign_team", NotFound),
    ("agents.create_with_foreign_project", NotFound),
    ("agents.list", NoRowOfA),
    ("budgets.get", NotFound),
    ("budgets.status", NotFound),
    ("budgets.set_active", NotFound),
    ("budgets.create_for_foreign_agent", NotFound),
    ("budgets.list", NoRowOfA),
    ("reservations.get", NotFound),
    ("reservations.reserve_for_foreign_agent", NotFound),
    ("reservations.capture", NotFound),
    ("reservations.release", NotFound),
    ("reservations.refund", NotFound),
    ("members.get", NotFound),
    ("members.set_status", NotFound),
    ("members.set_seat", NotFound),
    ("members.remove", NotFound),
    ("members.list", NoRowOfA),
    ("roles.get", NotFound),
    ("roles.permissions_of", NotFound),
    ("roles.assign_foreign_role", NotFound),
    ("roles.assign_to_foreign_member", NotFound),
    ("roles.revoke_foreign_role", NotFound),
    ("roles.roles_of", NotFound),
    ("roles.can", False),
    ("roles.list", NoRowOfA),
    ("agent_keys.get", NotFound),
    ("agent_keys.revoke", NotFound),
    ("agent_keys.list", NotFound),
    ("agent_keys.issue", NotFound),
    ("agent_keys.verify", Unauthenticated),
    ("merchants.get", NotFound),
    ("merchants.by_name", NotFound),
    ("merchants.is_known", False),
    ("merchants.list", NoRowOfA),
    ("blocked_attempts.get", NotFound),
    ("blocked_attempts.list", NoRowOfA),
    ("cards.get", NotFound),
    ("cards.list", NoRowOfA),
    ("transactions.get", NotFound),
    ("transactions.by_provider_charge_id", NotFound),
    ("transactions.list", NoRowOfA),
    ("audit_log.list", NoRowOfA),
];

/// A's rows, one (at least) per repository.
struct SeededA {
    team: TeamId,
    project: ProjectId,
    agent: AgentId,
    budget: BudgetId,
    reservation: ReservationId,
    user: UserId,
    role: RoleId,
    key: ApiKeyId,
    secret: String,
    merchant: MerchantId,
    blocked: BlockedAttemptId,
    card: VirtualCardId,
    transaction: TransactionId,
}

/// A few rows of B's own, so that B's listings are not empty by accident.
struct SeededB {
    agent: AgentId,
    user: UserId,
    admin: RoleId,
}

const CHARGE_ID: &str = "ch_tenant_a_1";

async fn tenant(store: &Store, slug: &str) -> TenantScope {
    let t = store
        .tenants()
        .create(NewTenant::new(slug, slug))
        .await
        .expect("tenant");
    store.tenant(t.id)
}

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").expect("money")
}

async fn seed_a(store: &Store, a: &TenantScope) -> SeededA {
    let tenant = a.tenant_id();
    let now = Utc::now();
    let team = common::team(a, "research").await;
    let project = a
        .projects()
        .create(NewGroup::new("Evals", "evals"))
        .await
        .expect("project")
        .id;
    let agent = a
        .agents()
        .create(NewAgent::new("bot").team(team).project(project))
        .await
        .expect("agent")
        .id;
    let budget = a
        .budgets()
        .create(NewBudget::tenant().monthly(dec("100"), "USD"))
        .await
        .expect("budget")
        .id;
    let reservation = a
        .reservations()
        .reserve(ReserveRequest::new(usd("5"), now + Duration::hours(1)))
        .await
        .expect("reserve")
        .reservation()
        .expect("reserved")
        .id;
    let user = store
        .users()
        .create(NewUser::new("ada@a.example", "Ada"))
        .await
        .expect("user")
        .id;
    a.members().add(user, SeatType::Pro).await.expect("member");
    let role = a
        .roles()
        .create(NewRole::new("auditor").permission(permissions::AUDIT_READ))
        .await
        .expect("role")
        .id;
    a.roles().assign(user, role).await.expect("assign");
    let (issued, _) = a
        .agent_keys()
        .issue(agent, Some("ci"), None)
        .await
        .expect("key");
    let db = store.connection();
    let merchant = merchant::ActiveModel::from(merchant::Model {
        id: MerchantId::new(),
        tenant_id: tenant,
        name: "GitHub".into(),
        normalized_name: "github".into(),
        domain: Some("github.com".into()),
        first_seen_at: now,
        last_seen_at: now,
        purchase_count: 1,
        created_at: now,
        updated_at: now,
    })
    .reset_all()
    .insert(db)
    .await
    .expect("merchant")
    .id;
    let intent = purchase_intent::ActiveModel::from(purchase_intent::Model {
        id: PurchaseIntentId::new(),
        tenant_id: tenant,
        agent_id: Some(agent),
        team_id: Some(team),
        project_id: None,
        run_id: None,
        idempotency_key: None,
        amount: Amount::new(dec("5")).expect("amount"),
        currency: Currency::from_code("USD").expect("usd"),
        merchant_name: "GitHub".into(),
        action_kind: "purchase".into(),
        merchant_domain: None,
        merchant_url: None,
        mcc: None,
        description: None,
        metadata: Metadata::default(),
        status: PurchaseIntentStatus::Approved,
        rejection_code: None,
        rejection_reason: None,
        reasons: ReasonList::default(),
        reservation_id: Some(reservation),
        approval_request_id: None,
        created_at: now,
        updated_at: now,
    })
    .reset_all()
    .insert(db)
    .await
    .expect("purchase intent")
    .id;
    let blocked = blocked_attempt::ActiveModel::from(blocked_attempt::Model {
        id: BlockedAttemptId::new(),
        tenant_id: tenant,
        agent_id: Some(agent),
        purchase_intent_id: None,
        policy_id: None,
        run_id: None,
        reason_code: "MERCHANT_BLOCKED".into(),
        reason: "casino is blocked".into(),
        amount: Some(Amount::new(dec("20")).expect("amount")),
        currency: Some(Currency::from_code("USD").expect("usd")),
        merchant_name: Some("Casino".into()),
        created_at: now,
    })
    .reset_all()
    .insert(db)
    .await
    .expect("blocked attempt")
    .id;
    let card = virtual_card::ActiveModel::from(virtual_card::Model {
        id: VirtualCardId::new(),
        tenant_id: tenant,
        purchase_intent_id: intent,
        agent_id: Some(agent),
        provider: "fake".into(),
        provider_card_id: "card_a_1".into(),
        last4: "4242".into(),
        exp_month: 12,
        exp_year: 2030,
        hard_limit: Amount::new(dec("5")).expect("amount"),
        currency: Currency::from_code("USD").expect("usd"),
        status: VirtualCardStatus::Active,
        expires_at: None,
        created_at: now,
        updated_at: now,
    })
    .reset_all()
    .insert(db)
    .await
    .expect("card")
    .id;
    let transaction = transaction::ActiveModel::from(transaction::Model {
        id: TransactionId::new(),
        tenant_id: tenant,
        purchase_intent_id: Some(intent),
        virtual_card_id: Some(card),
        reservation_id: Some(reservation),
        provider_charge_id: CHARGE_ID.into(),
        provider_authorization_id: None,
        amount: Amount::new(dec("5")).expect("amount"),
        currency: Currency::from_code("USD").expect("usd"),
        merchant_name: Some("GitHub".into()),
        mcc: None,
        status: TransactionStatus::Authorized,
        refunded_amount: Amount::ZERO,
        attention: None,
        settled_at: None,
        raw_event: None,
        created_at: now,
        updated_at: now,
    })
    .reset_all()
    .insert(db)
    .await
    .expect("transaction")
    .id;
    a.audit_log()
        .record(AuditEntry::new("test.seeded", "tenant").resource_id(tenant))
        .await
        .expect("audit");
    SeededA {
        team,
        project,
        agent,
        budget,
        reservation,
        user,
        role,
        key: issued.id,
        secret: issued.secret,
        merchant,
        blocked,
        card,
        transaction,
    }
}

async fn seed_b(store: &Store, b: &TenantScope) -> SeededB {
    let team = common::team(b, "research").await;
    let agent = common::agent(b, "bot", Some(team)).await;
    b.budgets()
        .create(NewBudget::tenant().monthly(dec("10"), "USD"))
        .await
        .expect("budget");
    let user = store
        .users()
        .create(NewUser::new("bob@b.example", "Bob"))
        .await
        .expect("user")
        .id;
    b.members().add(user, SeatType::Free).await.expect("member");
    let admin = b.roles().by_name(builtin::ADMIN).await.expect("admin").id;
    b.roles().assign(user, admin).await.expect("assign");
    b.audit_log()
        .record(AuditEntry::new("test.seeded", "tenant"))
        .await
        .expect("audit");
    SeededB { agent, user, admin }
}

/// What one attempt produced.
#[derive(Debug)]
enum Outcome {
    Failed(Error),
    Bool(bool),
    /// The tenants of the rows a listing returned.
    Rows(Vec<TenantId>),
    /// An operation that should have failed returned this (shown on failure).
    Succeeded(#[allow(dead_code)] String),
}

fn one<T: std::fmt::Debug>(r: bursar::Result<T>) -> Outcome {
    match r {
        Ok(v) => Outcome::Succeeded(format!("{v:?}")),
        Err(e) => Outcome::Failed(e),
    }
}

fn flag(r: bursar::Result<bool>) -> Outcome {
    match r {
        Ok(v) => Outcome::Bool(v),
        Err(e) => Outcome::Failed(e),
    }
}

fn rows<T>(r: bursar::Result<Vec<T>>, tenant_of: impl Fn(&T) -> TenantId) -> Outcome {
    match r {
        Ok(v) => Outcome::Rows(v.iter().map(tenant_of).collect()),
        Err(e) => Outcome::Failed(e),
    }
}

/// Runs one case through B's scope against A's rows.
async fn attempt(case: &str, b: &TenantScope, a: &SeededA, own: &SeededB) -> Outcome {
    let all = PageRequest::new().limit(500);
    match case {
        "teams.get" => one(b.teams().get(a.team).await),
        "teams.rename" => one(b.teams().rename(a.team, "taken over").await),
        "teams.list" => rows(b.teams().list(all).await.map(|p| p.items), |r| r.tenant_id),
        "projects.get" => one(b.projects().get(a.project).await),
        "projects.rename" => one(b.projects().rename(a.project, "taken over").await),
        "projects.list" => rows(b.projects().list(all).await.map(|p| p.items), |r| {
            r.tenant_id
        }),
        "agents.get" => one(b.agents().get(a.agent).await),
        "agents.set_status" => one(b.agents().set_status(a.agent, AgentStatus::Suspended).await),
        "agents.assign" => one(b.agents().assign(a.agent, None, None).await),
        "agents.assign_to_foreign_team" => {
            one(b.agents().assign(own.agent, Some(a.team), None).await)
        }
        "agents.create_with_foreign_team" => {
            one(b.agents().create(NewAgent::new("spy").team(a.team)).await)
        }
        "agents.create_with_foreign_project" => one(b
            .agents()
            .create(NewAgent::new("spy").project(a.project))
            .await),
        "agents.list" => rows(b.agents().list(all).await.map(|p| p.items), |r| r.tenant_id),
        "budgets.get" => one(b.budgets().get(a.budget).await),
        "budgets.status" => one(b.budgets().status(a.budget).await),
        "budgets.set_active" => one(b.budgets().set_active(a.budget, false).await),
        "budgets.create_for_foreign_agent" => one(b
            .budgets()
            .create(NewBudget::agent(a.agent).daily(dec("1"), "USD"))
            .await),
        "budgets.list" => rows(b.budgets().list().await, |r| r.tenant_id),
        "reservations.get" => one(b.reservations().get(a.reservation).await),
        "reservations.reserve_for_foreign_agent" => one(b
            .reservations()
            .reserve(
                ReserveRequest::new(usd("1"), Utc::now() + Duration::hours(1))
                    .principal(bursar::budget::Principal::agent(a.agent)),
            )
            .await),
        "reservations.capture" => one(b.reservations().capture(a.reservation, usd("5")).await),
        "reservations.release" => one(b.reservations().release(a.reservation).await),
        "reservations.refund" => one(b
            .reservations()
            .refund(a.reservation, usd("1"), "refund-1")
            .await),
        "members.get" => one(b.members().get(a.user).await),
        "members.set_status" => one(b
            .members()
            .set_status(a.user, MemberStatus::Suspended)
            .await),
        "members.set_seat" => one(b.members().set_seat(a.user, SeatType::Free).await),
        "members.remove" => one(b.members().remove(a.user).await),
        "members.list" => rows(b.members().list(all).await.map(|p| p.items), |r| {
            r.tenant_id
        }),
        "roles.get" => one(b.roles().get(a.role).await),
        "roles.permissions_of" => one(b.roles().permissions_of(a.role).await),
        "roles.assign_foreign_role" => one(b.roles().assign(own.user, a.role).await),
        "roles.assign_to_foreign_member" => one(b.roles().assign(a.user, own.admin).await),
        "roles.revoke_foreign_role" => one(b.roles().revoke(own.user, a.role).await),
        "roles.roles_of" => one(b.roles().roles_of(a.user).await),
        "roles.can" => flag(b.roles().can(a.user, permissions::AUDIT_READ).await),
        "roles.list" => rows(b.roles().list(all).await.map(|p| p.items), |r| r.tenant_id),
        "agent_keys.get" => one(b.agent_keys().get(a.key).await),
        "agent_keys.revoke" => one(b.agent_keys().revoke(a.key).await),
        "agent_keys.list" => one(b.agent_keys().list(a.agent, PageRequest::new()).await),
        "agent_keys.issue" => one(b.agent_keys().issue(a.agent, None, None).await),
        "agent_keys.verify" => one(b.agent_keys().verify(&a.secret).await),
        "merchants.get" => one(b.merchants().get(a.merchant).await),
        "merchants.by_name" => one(b.merchants().by_name("GitHub").await),
        "merchants.is_known" => flag(b.merchants().is_known("GitHub").await),
        "merchants.list" => rows(b.merchants().list(all).await.map(|p| p.items), |r| {
            r.tenant_id
        }),
        "blocked_attempts.get" => one(b.blocked_attempts().get(a.blocked).await),
        "blocked_attempts.list" => {
            rows(b.blocked_attempts().list(all).await.map(|p| p.items), |r| {
                r.tenant_id
            })
        }
        "cards.get" => one(b.cards().get(a.card).await),
        "cards.list" => rows(b.cards().list(all).await.map(|p| p.items), |r| r.tenant_id),
        "transactions.get" => one(b.transactions().get(a.transaction).await),
        "transactions.by_provider_charge_id" => {
            one(b.transactions().by_provider_charge_id(CHARGE_ID).await)
        }
        "transactions.list" => rows(b.transactions().list(all).await.map(|p| p.items), |r| {
            r.tenant_id
        }),
        "audit_log.list" => rows(b.audit_log().list(all).await.map(|p| p.items), |r| {
            r.tenant_id
        }),
        other => panic!("no attempt written for case {other}"),
    }
}

/// Everything of A's, read through A's own scope, as text to compare.
async fn snapshot(a: &TenantScope, s: &SeededA) -> Vec<String> {
    let all = PageRequest::new().limit(500);
    vec![
        format!("{:?}", a.teams().get(s.team).await),
        format!("{:?}", a.projects().get(s.project).await),
        format!("{:?}", a.agents().list(all.clone()).await),
        format!("{:?}", a.budgets().list().await),
        format!("{:?}", a.budgets().status(s.budget).await),
        format!("{:?}", a.reservations().get(s.reservation).await),
        format!("{:?}", a.members().list(all.clone()).await),
        format!("{:?}", a.roles().list(all.clone()).await),
        format!("{:?}", a.roles().roles_of(s.user).await),
        format!("{:?}", a.roles().permissions_of(s.role).await),
        format!("{:?}", a.agent_keys().list(s.agent, all.clone()).await),
        format!("{:?}", a.merchants().list(all.clone()).await),
        format!("{:?}", a.blocked_attempts().list(all.clone()).await),
        format!("{:?}", a.cards().list(all.clone()).await),
        format!("{:?}", a.transactions().list(all.clone()).await),
        format!("{:?}", a.audit_log().list(all).await),
    ]
}

#[tokio::test]
async fn every_repository_treats_another_tenants_id_as_missing_and_changes_nothing() {
    for backend in backends() {
        let store = fresh(backend).await;
        let a = tenant(&store, "tenant-a").await;
        let b = tenant(&store, "tenant-b").await;
        let seeded = seed_a(&store, &a).await;
        let own = seed_b(&store, &b).await;
        let before = snapshot(&a, &seeded).await;
        assert!(
            before.iter().all(|s| s.starts_with("Ok(")),
            "A reads its own rows: {before:#?}"
        );

        let mut failures = Vec::new();
        for (case, expect) in CASES {
            let outcome = attempt(case, &b, &seeded, &own).await;
            let ok = match (expect, &outcome) {
                (NotFound, Outcome::Failed(Error::NotFound { .. })) => true,
                (Unauthenticated, Outcome::Failed(Error::Unauthenticated)) => true,
                (False, Outcome::Bool(false)) => true,
                (NoRowOfA, Outcome::Rows(tenants)) => tenants.iter().all(|t| *t == b.tenant_id()),
                _ => false,
            };
            if !ok {
                failures.push(format!("{case}: expected {expect:?}, got {outcome:?}"));
            }
        }
        assert!(failures.is_empty(), "{backend:?}:\n{}", failures.join("\n"));

        let after = snapshot(&a, &seeded).await;
        assert_eq!(before, after, "{backend:?}: tenant A's rows changed");
        // A's key still works for A, and its use was not recorded by B's attempt.
        let key = a.agent_keys().get(seeded.key).await.unwrap();
        assert!(key.last_used_at.is_none(), "{backend:?}");
        assert_eq!(
            a.agent_keys()
                .verify(&seeded.secret)
                .await
                .unwrap()
                .agent_id,
            seeded.agent
        );
    }
}

#[tokio::test]
async fn every_case_names_its_repository_once() {
    let mut seen = std::collections::BTreeSet::new();
    for (case, _) in CASES {
        assert!(seen.insert(*case), "{case} listed twice");
    }
    let repositories: std::collections::BTreeSet<&str> = CASES
        .iter()
        .filter_map(|(c, _)| c.split('.').next())
        .collect();
    for repo in [
        "teams",
        "projects",
        "agents",
        "budgets",
        "reservations",
        "members",
        "roles",
        "agent_keys",
        "merchants",
        "blocked_attempts",
        "cards",
        "transactions",
        "audit_log",
    ] {
        assert!(repositories.contains(repo), "no isolation case for {repo}");
    }
}

#[tokio::test]
async fn a_made_up_id_gives_the_same_error_as_a_foreign_one() {
    for backend in backends() {
        let store = fresh(backend).await;
        let a = tenant(&store, "tenant-a").await;
        let b = tenant(&store, "tenant-b").await;
        let team = common::team(&a, "research").await;
        let foreign = b.teams().get(team).await.unwrap_err();
        let ghost = TeamId::new();
        let missing = b.teams().get(ghost).await.unwrap_err();
        assert_eq!(foreign.code(), missing.code(), "{backend:?}");
        assert_eq!(
            foreign.to_string().replace(&team.to_string(), "<id>"),
            missing.to_string().replace(&ghost.to_string(), "<id>"),
            "{backend:?}"
        );
    }
}
