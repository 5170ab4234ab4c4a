//! Tenants and users that can be shut off: a deactivated tenant's agents
//! neither authenticate nor act while its data stays readable; a deactivated
//! user holds no permission and decides no approval; tenant settings change
//! through one validated, audited call.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::id::AgentId;
use bursar::money::Currency;
use bursar::policy::{Outcome, Request, SpendingControls};
use bursar::store::{
    AgentKeyRepository, ApprovalRepository, BudgetRepository, NewTenant, PageRequest,
    RoleRepository, TenantRepository, TenantUpdate, UserRepository, builtin, permissions,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
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

/// A tenant with one agent under controls: approval above 100, monthly 500.
async fn setup(store: &Store) -> (TenantScope, AgentId) {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let agent = common::agent(&acme, "bot", None).await;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .per_transaction_limit(dec("200"))
            .monthly_limit(dec("500"))
            .approval_threshold(dec("100"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    (acme, agent)
}

fn buy(agent: AgentId, amount: &str) -> Request {
    Request::purchase(agent, dec(amount), Currency::USD, "GitHub")
}

use common::member;

async fn actions(acme: &TenantScope) -> Vec<String> {
    acme.audit_log()
        .list(PageRequest::new().limit(500))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.action)
        .collect()
}

#[tokio::test]
async fn a_deactivated_tenant_is_refused_until_reactivated_and_stays_readable() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let (key, _) = acme.agent_keys().issue(agent, None, None).await.unwrap();
        let admin = member(&store, &acme, builtin::ADMIN).await;
        let first = acme.authorize(buy(agent, "20")).await.unwrap();
        assert_eq!(first.outcome, Outcome::Approved, "{backend:?}");

        let row = store.tenants().deactivate(acme.tenant_id()).await.unwrap();
        assert!(!row.is_active);
        assert!(matches!(
            acme.agent_keys().verify(&key.secret).await,
            Err(Error::Unauthenticated)
        ));
        assert!(matches!(
            store.authenticate_agent(&key.secret).await,
            Err(Error::Unauthenticated)
        ));
        let refused = acme.authorize(buy(agent, "20")).await.unwrap();
        assert_eq!(refused.outcome, Outcome::Rejected, "{backend:?}");
        let codes_seen: Vec<&str> = refused.reasons.iter().map(|r| r.code()).collect();
        assert_eq!(codes_seen, [codes::TENANT_INACTIVE]);
        assert!(refused.reservation.is_none());
        // Reads still work for its admins.
        assert!(
            acme.roles()
                .can(admin, permissions::AUDIT_READ)
                .await
                .unwrap()
        );
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
        assert_eq!(acme.budgets().list().await.unwrap().len(), 1);

        store.tenants().reactivate(acme.tenant_id()).await.unwrap();
        acme.agent_keys().verify(&key.secret).await.unwrap();
        store.authenticate_agent(&key.secret).await.unwrap();
        let again = acme.authorize(buy(agent, "20")).await.unwrap();
        assert_eq!(again.outcome, Outcome::Approved, "{backend:?}");

        let seen = actions(&acme).await;
        let deact = seen.iter().position(|a| a == "tenant.deactivated");
        let react = seen.iter().position(|a| a == "tenant.reactivated");
        assert!(deact.is_some() && react > deact, "{seen:?}");
        // Deactivating twice changes nothing and writes no second entry.
        store.tenants().deactivate(acme.tenant_id()).await.unwrap();
        store.tenants().deactivate(acme.tenant_id()).await.unwrap();
        let seen = actions(&acme).await;
        assert_eq!(
            seen.iter().filter(|a| *a == "tenant.deactivated").count(),
            2,
            "{seen:?}"
        );
    }
}

#[tokio::test]
async fn a_deactivated_user_holds_no_permission_and_decides_no_approval() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let finance = member(&store, &acme, builtin::FINANCE).await;
        let pending = acme.authorize(buy(agent, "150")).await.unwrap();
        assert_eq!(pending.outcome, Outcome::PendingApproval);
        let approval = pending.approval.as_ref().unwrap().id;

        store.users().deactivate(finance).await.unwrap();
        assert!(
            !acme
                .roles()
                .can(finance, permissions::APPROVALS_WRITE)
                .await
                .unwrap()
        );
        let err = acme
            .approvals()
            .decide(approval, finance, ApprovalVote::Approve, None)
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

        store.users().reactivate(finance).await.unwrap();
        assert!(
            acme.roles()
                .can(finance, permissions::APPROVALS_WRITE)
                .await
                .unwrap()
        );
        acme.approvals()
            .decide(approval, finance, ApprovalVote::Approve, None)
            .await
            .unwrap();
        let seen = actions(&acme).await;
        assert!(seen.iter().any(|a| a == "user.deactivated"), "{seen:?}");
        assert!(seen.iter().any(|a| a == "user.reactivated"), "{seen:?}");
    }
}

#[tokio::test]
async fn tenant_settings_are_validated_applied_and_audited() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (acme, agent) = setup(&store).await;
        let tenants = store.tenants();
        let id = acme.tenant_id();
        for (update, field) in [
            (TenantUpdate::new().timezone("Mars/Olympus"), "timezone"),
            (
                TenantUpdate::new().reservation_ttl_secs(Some(0)),
                "reservation_ttl_secs",
            ),
            (
                TenantUpdate::new().approval_ttl_secs(Some(31 * 24 * 3600)),
                "approval_ttl_secs",
            ),
            (
                TenantUpdate::new().notification_email(Some("not an address".into())),
                "notification_email",
            ),
        ] {
            match tenants.update_settings(id, update).await {
                Err(Error::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: expected invalid, got {other:?}"),
            }
        }
        let before = actions(&acme).await.len();
        let row = tenants
            .update_settings(
                id,
                TenantUpdate::new()
                    .timezone("Europe/Berlin")
                    .reservation_ttl_secs(Some(600))
                    .approval_ttl_secs(Some(3600))
                    .notification_email(Some("ops@example.com".into())),
            )
            .await
            .unwrap();
        assert_eq!(row.timezone, "Europe/Berlin");
        assert_eq!(row.settings.reservation_ttl_secs, Some(600));
        assert_eq!(
            row.settings.notification_email.as_deref(),
            Some("ops@example.com")
        );
        // The new TTLs take effect.
        let approved = acme.authorize(buy(agent, "20")).await.unwrap();
        assert_eq!(
            approved.reservation.unwrap().expires_at,
            noon() + chrono::Duration::seconds(600)
        );
        let pending = acme.authorize(buy(agent, "150")).await.unwrap();
        assert_eq!(
            pending.approval.unwrap().expires_at,
            noon() + chrono::Duration::seconds(3600)
        );
        let log = acme
            .audit_log()
            .list(PageRequest::new().limit(500))
            .await
            .unwrap()
            .items;
        let entry = log
            .iter()
            .find(|e| e.action == "tenant.settings_updated")
            .expect("settings audited");
        assert_eq!(entry.resource_type, "tenant");
        let before_tz = entry.details.before.as_ref().unwrap()["timezone"].clone();
        let after_tz = entry.details.after.as_ref().unwrap()["timezone"].clone();
        assert_eq!(
            (before_tz.as_str(), after_tz.as_str()),
            (Some("UTC"), Some("Europe/Berlin"))
        );
        assert!(actions(&acme).await.len() > before);
        // Invalid updates wrote nothing.
        assert_eq!(
            log.iter()
                .filter(|e| e.action == "tenant.settings_updated")
                .count(),
            1
        );
        let missing = tenants
            .update_settings(
                bursar::id::TenantId::new(),
                TenantUpdate::new().default_allow(true),
            )
            .await;
        assert!(
            matches!(missing, Err(Error::NotFound { .. })),
            "{missing:?}"
        );
    }
}
