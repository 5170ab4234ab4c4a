//! Every administrative change leaves an audit entry, in the same
//! transaction as the change, and the log can be searched by level, actor,
//! action, resource and correlation id.

mod common;

use bursar::audit::{AuditEntry, AuditFilter, AuditLogRepository};
use bursar::entity::agent::AgentStatus;
use bursar::entity::audit_log::{AuditActorType, AuditLevel};
use bursar::entity::tenant_member::{MemberStatus, SeatType};
use bursar::money::Currency;
use bursar::policy::{Condition, Effect, Policy};
use bursar::store::{
    AgentKeyRepository, AgentRepository, BudgetRepository, MemberRepository, NewBudget, NewRole,
    NewTenant, NewUser, PageRequest, PolicyRepository, RoleRepository, TenantRepository,
    UserRepository,
};
use bursar::{Store, TenantScope};
use common::backends;

async fn tenant(store: &Store) -> TenantScope {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    store.tenant(t.id)
}

async fn find(acme: &TenantScope, filter: AuditFilter) -> Vec<bursar::entity::audit_log::Model> {
    acme.audit_log()
        .search(&filter, PageRequest::new().limit(500))
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn every_admin_change_is_audited_and_searchable() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let other = tenant(&store).await;

        let bot = common::agent(&acme, "bot", None).await;
        acme.agents()
            .set_status(bot, AgentStatus::Paused)
            .await
            .unwrap();
        let (key, _) = acme.agent_keys().issue(bot, None, None).await.unwrap();
        acme.agent_keys().revoke(key.id).await.unwrap();
        let policy = Policy::new("no ads", Effect::Deny, "NO_ADS", Condition::Always);
        let policy_id = policy.id;
        acme.policies().create(policy).await.unwrap();
        acme.policies().set_enabled(policy_id, false).await.unwrap();
        acme.policies().delete(policy_id).await.unwrap();
        let budget = acme
            .budgets()
            .create(NewBudget::tenant().monthly(common::dec("100"), "USD"))
            .await
            .unwrap();
        acme.budgets().set_active(budget.id, false).await.unwrap();
        let user = store
            .users()
            .create(NewUser::new("ops@example.com", "Ops"))
            .await
            .unwrap()
            .id;
        acme.members().add(user, SeatType::Pro).await.unwrap();
        acme.members()
            .set_status(user, MemberStatus::Suspended)
            .await
            .unwrap();
        acme.members().set_seat(user, SeatType::Free).await.unwrap();
        let role = acme
            .roles()
            .create(NewRole::new("auditor").permission("audit:read"))
            .await
            .unwrap();
        acme.roles().assign(user, role.id).await.unwrap();
        acme.roles().revoke(user, role.id).await.unwrap();
        acme.members().remove(user).await.unwrap();

        let all = find(&acme, AuditFilter::new()).await;
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        for expected in [
            "agent.created",
            "agent.status_changed",
            "agent_key.issued",
            "agent_key.revoked",
            "policy.created",
            "policy.updated",
            "policy.deleted",
            "budget.created",
            "budget.disabled",
            "member.added",
            "member.status_changed",
            "member.seat_changed",
            "role.created",
            "role.assigned",
            "role.revoked",
            "member.removed",
        ] {
            assert!(
                actions.contains(&expected),
                "{backend:?}: {expected} missing from {actions:?}"
            );
        }
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
        // Nothing leaked into the other tenant's log.
        assert!(find(&other, AuditFilter::new()).await.is_empty());

        // Filters.
        let by_action = find(&acme, AuditFilter::new().action("policy.updated")).await;
        assert_eq!(by_action.len(), 1);
        assert_eq!(
            by_action[0].resource_id.as_deref(),
            Some(policy_id.to_string().as_str())
        );
        let by_resource = find(
            &acme,
            AuditFilter::new().resource("policy", Some(policy_id.to_string())),
        )
        .await;
        assert_eq!(by_resource.len(), 3);
        acme.audit_log()
            .record(
                AuditEntry::new("login", "session")
                    .actor(AuditActorType::User, Some(user.0))
                    .level(AuditLevel::Warn)
                    .correlation_id("req-77"),
            )
            .await
            .unwrap();
        let warned = find(&acme, AuditFilter::new().level(AuditLevel::Warn)).await;
        assert_eq!(warned.len(), 1);
        assert_eq!(
            find(
                &acme,
                AuditFilter::new().actor(AuditActorType::User, Some(user.0))
            )
            .await
            .len(),
            1
        );
        assert_eq!(
            find(&acme, AuditFilter::new().correlation_id("req-77"))
                .await
                .len(),
            1
        );
        assert!(
            find(&acme, AuditFilter::new().correlation_id("req-78"))
                .await
                .is_empty()
        );
    }
}

#[tokio::test]
async fn a_change_that_fails_leaves_no_entry() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let before = find(&acme, AuditFilter::new()).await.len();
        // An unknown agent: nothing changes, nothing is audited.
        let err = acme
            .agents()
            .set_status(bursar::id::AgentId::new(), AgentStatus::Paused)
            .await;
        assert!(err.is_err());
        let dup = NewBudget::tenant().monthly(common::dec("-1"), "USD");
        assert!(acme.budgets().create(dup).await.is_err());
        assert_eq!(find(&acme, AuditFilter::new()).await.len(), before);
        let _ = Currency::USD;
    }
}
