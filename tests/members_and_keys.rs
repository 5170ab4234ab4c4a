//! Users, members and roles (the `can` check), agent API key lifecycle, and
//! the bounds every listing enforces.

mod common;

use std::sync::Arc;

use bursar::clock::{Clock, ManualClock};
use bursar::entity::agent::AgentStatus;
use bursar::entity::tenant_member::{MemberStatus, SeatType};
use bursar::id::{AgentId, UserId};
use bursar::store::{
    AgentKeyRepository, AgentRepository, BlockedAttemptRepository, CardRepository, KEY_LEN,
    MAX_LIVE_KEYS_PER_AGENT, MemberRepository, MerchantRepository, NewRole, NewTenant, NewUser,
    PageRequest, RoleRepository, TenantRepository, TransactionRepository, UserRepository, builtin,
    permissions,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, fresh_postgres_schema};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

async fn store_at(backend: Backend, clock: Arc<ManualClock>) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    Store::builder(&url).clock(clock).connect().await.unwrap()
}

async fn tenant(store: &Store, slug: &str) -> TenantScope {
    let t = store
        .tenants()
        .create(NewTenant::new(slug, slug))
        .await
        .unwrap();
    store.tenant(t.id)
}

fn assert_invalid<T: std::fmt::Debug>(result: bursar::Result<T>, expected_field: &str) {
    match result {
        Err(Error::Invalid { field, reason }) => {
            assert_eq!(field, expected_field, "{reason}");
        }
        other => panic!("expected invalid {expected_field}, got {other:?}"),
    }
}

fn assert_unauthenticated<T: std::fmt::Debug>(result: bursar::Result<T>, what: &str) {
    match result {
        Err(err @ Error::Unauthenticated) => {
            assert_eq!(err.to_string(), "unauthenticated", "{what}");
            assert_eq!(err.code(), "unauthenticated", "{what}");
        }
        other => panic!("{what}: expected unauthenticated, got {other:?}"),
    }
}

async fn member(store: &Store, scope: &TenantScope, email: &str) -> UserId {
    let user = store
        .users()
        .create(NewUser::new(email, email))
        .await
        .unwrap()
        .id;
    scope.members().add(user, SeatType::Pro).await.unwrap();
    user
}

// ---------------------------------------------------------------- key lifecycle

#[tokio::test]
async fn keys_are_issued_once_verified_rotated_revoked_and_expire() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        let keys = acme.agent_keys();

        // Issue: the secret has the documented shape and is not stored.
        let (first, row) = keys.issue(bot, Some("ci"), None).await.unwrap();
        assert_eq!(first.secret.len(), KEY_LEN, "{backend:?}");
        assert!(first.secret.starts_with(&format!("{}_", first.prefix)));
        assert!(first.prefix.starts_with("bsk_") && first.prefix.len() == 16);
        assert_eq!(row.prefix, first.prefix);
        assert_eq!(row.key_hash.len(), 64);
        assert!(!row.key_hash.contains(&first.secret[17..]));
        assert!(!format!("{row:?}").contains(&first.secret));
        assert!(!format!("{first:?}").contains(&first.secret));
        assert_eq!(row.label.as_deref(), Some("ci"));
        assert!(row.last_used_at.is_none());

        // Verify, scoped and global; last use is recorded at the clock's time.
        clock.advance(Duration::minutes(5));
        let who = keys.verify(&first.secret).await.unwrap();
        assert_eq!(
            (who.tenant_id, who.agent_id, who.key_id),
            (acme.tenant_id(), bot, first.id)
        );
        assert_eq!(store.authenticate_agent(&first.secret).await.unwrap(), who);
        let used = keys.get(first.id).await.unwrap().last_used_at.unwrap();
        assert_eq!(used, noon() + Duration::minutes(5), "{backend:?}");

        // Rotate: a second key works alongside the first.
        let (second, _) = keys.issue(bot, Some("rotated"), None).await.unwrap();
        assert_ne!(second.secret, first.secret);
        assert_ne!(second.prefix, first.prefix);
        keys.verify(&first.secret).await.unwrap();
        keys.verify(&second.secret).await.unwrap();
        let live = keys
            .list(bot, PageRequest::new().status("live"))
            .await
            .unwrap();
        assert_eq!(live.items.len(), 2, "{backend:?}");

        // Revoke the first: refused from now on, the second still works.
        let revoked = keys.revoke(first.id).await.unwrap();
        assert_eq!(revoked.revoked_at, Some(noon() + Duration::minutes(5)));
        assert_eq!(keys.revoke(first.id).await.unwrap(), revoked, "idempotent");
        assert_unauthenticated(keys.verify(&first.secret).await, "revoked, scoped");
        assert_unauthenticated(
            store.authenticate_agent(&first.secret).await,
            "revoked, global",
        );
        keys.verify(&second.secret).await.unwrap();

        // Expire: a key with an expiry works until then, and not at or after it.
        let (short, _) = keys
            .issue(bot, None, Some(clock.now() + Duration::hours(1)))
            .await
            .unwrap();
        keys.verify(&short.secret).await.unwrap();
        clock.advance(Duration::hours(1));
        assert_unauthenticated(keys.verify(&short.secret).await, "expired");
        let expired = keys
            .list(bot, PageRequest::new().status("expired"))
            .await
            .unwrap();
        assert_eq!(
            expired.items.iter().map(|k| k.id).collect::<Vec<_>>(),
            vec![short.id]
        );
        let revoked_list = keys
            .list(bot, PageRequest::new().status("revoked"))
            .await
            .unwrap();
        assert_eq!(revoked_list.items.len(), 1);
        assert_eq!(
            keys.list(bot, PageRequest::new())
                .await
                .unwrap()
                .items
                .len(),
            3
        );

        // An expiry that is not in the future is refused, naming the field.
        assert_invalid(keys.issue(bot, None, Some(clock.now())).await, "expires_at");
        assert_invalid(
            keys.list(bot, PageRequest::new().status("active")).await,
            "status",
        );
        assert!(matches!(
            keys.issue(AgentId::new(), None, None).await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn keys_of_paused_or_suspended_agents_are_refused_until_reactivated() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        let (key, _) = acme.agent_keys().issue(bot, None, None).await.unwrap();
        for status in [AgentStatus::Paused, AgentStatus::Suspended] {
            acme.agents().set_status(bot, status).await.unwrap();
            assert_unauthenticated(acme.agent_keys().verify(&key.secret).await, "scoped");
            assert_unauthenticated(store.authenticate_agent(&key.secret).await, "global");
        }
        acme.agents()
            .set_status(bot, AgentStatus::Active)
            .await
            .unwrap();
        acme.agent_keys().verify(&key.secret).await.unwrap();
        store.authenticate_agent(&key.secret).await.unwrap();
    }
}

#[tokio::test]
async fn a_wrong_key_of_the_right_shape_is_refused_without_saying_why() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        let (key, _) = acme.agent_keys().issue(bot, None, None).await.unwrap();

        // Right prefix, one secret digit changed.
        let mut wrong_secret = key.secret.clone();
        let last = wrong_secret.pop().unwrap();
        wrong_secret.push(if last == '0' { '1' } else { '0' });
        // Right secret part, prefix changed.
        let mut wrong_prefix = key.secret.clone().into_bytes();
        wrong_prefix[4] = if wrong_prefix[4] == b'a' { b'b' } else { b'a' };
        let wrong_prefix = String::from_utf8(wrong_prefix).unwrap();
        let made_up = format!("bsk_{}_{}", "0".repeat(12), "f".repeat(64));
        let malformed = [
            String::new(),
            "hello".to_owned(),
            key.secret.to_uppercase(),
            format!("{}0", key.secret),
            key.secret.replace("bsk_", "sk_"),
        ];
        let mut messages = std::collections::BTreeSet::new();
        for candidate in [wrong_secret, wrong_prefix, made_up]
            .iter()
            .chain(malformed.iter())
        {
            for result in [
                acme.agent_keys().verify(candidate).await,
                store.authenticate_agent(candidate).await,
            ] {
                let err = result.expect_err(candidate);
                assert!(matches!(err, Error::Unauthenticated), "{backend:?} {err:?}");
                assert!(!err.to_string().contains(&key.prefix));
                messages.insert(err.to_string());
            }
        }
        assert_eq!(
            messages.into_iter().collect::<Vec<_>>(),
            vec!["unauthenticated"]
        );
        // None of the refusals counted as a use of the real key.
        let row = acme.agent_keys().get(key.id).await.unwrap();
        assert!(row.last_used_at.is_none(), "{backend:?}");
    }
}

#[tokio::test]
async fn an_agent_holds_a_bounded_number_of_live_keys() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        let mut first = None;
        for _ in 0..MAX_LIVE_KEYS_PER_AGENT {
            let (k, _) = acme.agent_keys().issue(bot, None, None).await.unwrap();
            first.get_or_insert(k.id);
        }
        assert!(matches!(
            acme.agent_keys().issue(bot, None, None).await,
            Err(Error::Conflict { .. })
        ));
        acme.agent_keys().revoke(first.unwrap()).await.unwrap();
        acme.agent_keys().issue(bot, None, None).await.unwrap();
        assert_invalid(
            acme.agent_keys()
                .issue(bot, Some(&"x".repeat(300)), None)
                .await,
            "label",
        );
    }
}

// ---------------------------------------------------------------- users, members, roles

#[tokio::test]
async fn users_are_global_with_one_normalized_email() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let ada = store
            .users()
            .create(NewUser::new("  Ada@Example.COM ", "Ada"))
            .await
            .unwrap();
        assert_eq!(ada.email, "ada@example.com");
        assert_eq!(
            store.users().by_email("ADA@example.com").await.unwrap().id,
            ada.id
        );
        assert_eq!(store.users().get(ada.id).await.unwrap(), ada);
        assert!(matches!(
            store
                .users()
                .create(NewUser::new("ada@EXAMPLE.com", "Other Ada"))
                .await,
            Err(Error::Conflict { entity: "user", .. })
        ));
        assert_invalid(
            store
                .users()
                .create(NewUser::new("not an email", "X"))
                .await,
            "email",
        );
        assert_invalid(
            store
                .users()
                .create(NewUser::new("x@example.com", " "))
                .await,
            "name",
        );
        assert!(matches!(
            store.users().by_email("nobody@example.com").await,
            Err(Error::NotFound { .. })
        ));

        // One user, member of two tenants.
        let a = tenant(&store, "tenant-a").await;
        let b = tenant(&store, "tenant-b").await;
        a.members().add(ada.id, SeatType::Pro).await.unwrap();
        b.members().add(ada.id, SeatType::Free).await.unwrap();
        assert!(matches!(
            a.members().add(ada.id, SeatType::Free).await,
            Err(Error::Conflict {
                entity: "member",
                ..
            })
        ));
        assert!(matches!(
            a.members().add(UserId::new(), SeatType::Free).await,
            Err(Error::NotFound { .. })
        ));
        assert_eq!(
            a.members().get(ada.id).await.unwrap().seat_type,
            SeatType::Pro
        );
        assert_eq!(
            b.members().get(ada.id).await.unwrap().seat_type,
            SeatType::Free
        );
        let m = a
            .members()
            .set_seat(ada.id, SeatType::Enterprise)
            .await
            .unwrap();
        assert_eq!(m.seat_type, SeatType::Enterprise);
        a.members()
            .set_status(ada.id, MemberStatus::Suspended)
            .await
            .unwrap();
        let suspended = a
            .members()
            .list(PageRequest::new().status("suspended"))
            .await
            .unwrap();
        assert_eq!(suspended.items.len(), 1, "{backend:?}");
        assert!(
            b.members()
                .list(PageRequest::new().status("suspended"))
                .await
                .unwrap()
                .items
                .is_empty()
        );
        assert_invalid(
            a.members().list(PageRequest::new().status("gone")).await,
            "status",
        );
        a.members().remove(ada.id).await.unwrap();
        assert!(matches!(
            a.members().get(ada.id).await,
            Err(Error::NotFound { .. })
        ));
        // Still a user, still a member of B.
        store.users().get(ada.id).await.unwrap();
        b.members().get(ada.id).await.unwrap();
    }
}

#[tokio::test]
async fn each_builtin_role_can_exactly_what_it_grants() {
    use permissions as p;
    // (role, granted, refused)
    let matrix: [(&str, &[&str], &[&str]); 4] = [
        (
            builtin::ADMIN,
            &[
                p::POLICIES_WRITE,
                p::BUDGETS_WRITE,
                p::MEMBERS_WRITE,
                p::AUDIT_READ,
            ],
            &[],
        ),
        (
            builtin::FINANCE,
            &[
                p::BUDGETS_READ,
                p::BUDGETS_WRITE,
                p::RESERVATIONS_WRITE,
                p::TRANSACTIONS_WRITE,
                p::APPROVALS_WRITE,
                p::POLICIES_READ,
            ],
            &[
                p::POLICIES_WRITE,
                p::AGENTS_WRITE,
                p::KEYS_WRITE,
                p::MEMBERS_WRITE,
            ],
        ),
        (
            builtin::DEVELOPER,
            &[
                p::AGENTS_WRITE,
                p::KEYS_WRITE,
                p::POLICIES_READ,
                p::POLICIES_WRITE,
                p::BUDGETS_READ,
            ],
            &[p::BUDGETS_WRITE, p::APPROVALS_WRITE, p::MEMBERS_WRITE],
        ),
        (
            builtin::READONLY,
            &[
                p::POLICIES_READ,
                p::BUDGETS_READ,
                p::AUDIT_READ,
                p::AGENTS_READ,
            ],
            &[p::POLICIES_WRITE, p::BUDGETS_WRITE, p::AGENTS_WRITE],
        ),
    ];
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, "acme").await;
        let roles = acme.roles();
        for (role, granted, refused) in matrix {
            let user = member(&store, &acme, &format!("{role}@acme.example")).await;
            let id = roles.by_name(role).await.unwrap().id;
            assert!(
                !roles.can(user, p::POLICIES_READ).await.unwrap(),
                "no role yet"
            );
            roles.assign(user, id).await.unwrap();
            roles.assign(user, id).await.unwrap(); // idempotent
            for code in granted {
                assert!(roles.can(user, code).await.unwrap(), "{role} {code}");
            }
            for code in refused {
                assert!(!roles.can(user, code).await.unwrap(), "{role} {code}");
            }
            assert_eq!(
                roles.permissions_of(id).await.unwrap().len(),
                builtin::permissions_of(role).unwrap().len(),
                "{backend:?} {role}"
            );
            assert_eq!(
                roles
                    .roles_of(user)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>(),
                vec![role]
            );
        }
        // Admin can every known code.
        let admin = member(&store, &acme, "root@acme.example").await;
        roles
            .assign(admin, roles.by_name(builtin::ADMIN).await.unwrap().id)
            .await
            .unwrap();
        for code in p::ALL {
            assert!(roles.can(admin, code).await.unwrap(), "admin {code}");
        }
    }
}

#[tokio::test]
async fn can_is_false_for_strangers_and_inactive_members_and_refuses_unknown_codes() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, "acme").await;
        let roles = acme.roles();
        let admin_role = roles.by_name(builtin::ADMIN).await.unwrap().id;
        let user = member(&store, &acme, "ada@acme.example").await;
        roles.assign(user, admin_role).await.unwrap();
        assert!(roles.can(user, "policies:write").await.unwrap());

        // Not a member at all (a user of no tenant, and an id that is no user).
        let stranger = store
            .users()
            .create(NewUser::new("eve@else.example", "Eve"))
            .await
            .unwrap()
            .id;
        assert!(!roles.can(stranger, "policies:write").await.unwrap());
        assert!(!roles.can(UserId::new(), "policies:write").await.unwrap());

        // Suspended and invited members can nothing; reactivated, they can again.
        for status in [MemberStatus::Suspended, MemberStatus::Invited] {
            acme.members().set_status(user, status).await.unwrap();
            assert!(
                !roles.can(user, "policies:write").await.unwrap(),
                "{backend:?} {status:?}"
            );
        }
        acme.members()
            .set_status(user, MemberStatus::Active)
            .await
            .unwrap();
        assert!(roles.can(user, "policies:write").await.unwrap());

        // Unknown codes are an error, not a silent false.
        for bad in ["policies:delete", "POLICIES:WRITE", "", "everything"] {
            assert_invalid(roles.can(user, bad).await, "permission");
        }

        // Revoking the role, or removing the member, takes the permission away.
        roles.revoke(user, admin_role).await.unwrap();
        roles.revoke(user, admin_role).await.unwrap(); // idempotent
        assert!(!roles.can(user, "policies:write").await.unwrap());
        roles.assign(user, admin_role).await.unwrap();
        acme.members().remove(user).await.unwrap();
        assert!(!roles.can(user, "policies:write").await.unwrap());
        assert!(matches!(
            roles.assign(user, admin_role).await,
            Err(Error::NotFound { .. })
        ));
    }
}

#[tokio::test]
async fn builtin_roles_are_created_once_and_custom_roles_are_checked() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, "acme").await;
        let roles = acme.roles();
        let first = roles.ensure_builtin().await.unwrap();
        let second = roles.ensure_builtin().await.unwrap();
        assert_eq!(first, second, "{backend:?}");
        assert_eq!(
            first.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            builtin::ALL.to_vec()
        );
        assert!(first.iter().all(|r| r.is_builtin));
        assert_eq!(roles.list(PageRequest::new()).await.unwrap().items.len(), 4);

        let auditor = roles
            .create(
                NewRole::new("auditor")
                    .description("Reads the log")
                    .permission(permissions::AUDIT_READ),
            )
            .await
            .unwrap();
        assert!(!auditor.is_builtin);
        assert_eq!(
            roles.permissions_of(auditor.id).await.unwrap(),
            vec!["audit:read"]
        );
        assert!(matches!(
            roles.create(NewRole::new("auditor")).await,
            Err(Error::Conflict { entity: "role", .. })
        ));
        assert!(matches!(
            roles.create(NewRole::new(builtin::ADMIN)).await,
            Err(Error::Conflict { .. })
        ));
        assert_invalid(
            roles
                .create(NewRole::new("x").permission("audit:erase"))
                .await,
            "permission",
        );
        assert_invalid(roles.create(NewRole::new("Has Spaces")).await, "name");
        assert_invalid(roles.create(NewRole::new("a".repeat(65))).await, "name");
        let user = member(&store, &acme, "ada@acme.example").await;
        roles.assign(user, auditor.id).await.unwrap();
        assert!(roles.can(user, permissions::AUDIT_READ).await.unwrap());
        assert!(!roles.can(user, permissions::AUDIT_WRITE).await.unwrap());
    }
}

// ---------------------------------------------------------------- paging bounds

#[tokio::test]
async fn every_listing_refuses_a_page_of_zero_or_more_than_five_hundred_rows() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        for limit in [0, 501] {
            let page = || PageRequest::new().limit(limit);
            assert_invalid(acme.members().list(page()).await, "limit");
            assert_invalid(acme.roles().list(page()).await, "limit");
            assert_invalid(acme.agent_keys().list(bot, page()).await, "limit");
            assert_invalid(acme.merchants().list(page()).await, "limit");
            assert_invalid(acme.blocked_attempts().list(page()).await, "limit");
            assert_invalid(acme.cards().list(page()).await, "limit");
            assert_invalid(acme.transactions().list(page()).await, "limit");
        }
        for limit in [1, 500] {
            let page = || PageRequest::new().limit(limit);
            acme.members().list(page()).await.unwrap();
            acme.roles().list(page()).await.unwrap();
            acme.agent_keys().list(bot, page()).await.unwrap();
            acme.merchants().list(page()).await.unwrap();
            acme.blocked_attempts().list(page()).await.unwrap();
            acme.cards().list(page()).await.unwrap();
            acme.transactions().list(page()).await.unwrap();
        }
        // Status filters are checked against each table's states.
        let bad = || PageRequest::new().status("nonsense");
        assert_invalid(acme.members().list(bad()).await, "status");
        assert_invalid(acme.cards().list(bad()).await, "status");
        assert_invalid(acme.transactions().list(bad()).await, "status");
        assert_invalid(acme.merchants().list(bad()).await, "status");
        assert_invalid(acme.blocked_attempts().list(bad()).await, "status");
        acme.cards()
            .list(PageRequest::new().status("frozen"))
            .await
            .unwrap();
        acme.transactions()
            .list(PageRequest::new().status("refunded"))
            .await
            .unwrap();
        acme.blocked_attempts()
            .list(PageRequest::new().status("MERCHANT_BLOCKED"))
            .await
            .unwrap();
        assert_invalid(
            acme.transactions().by_provider_charge_id("").await,
            "provider_charge_id",
        );
        assert_invalid(acme.merchants().is_known("   ").await, "merchant_name");
    }
}

#[tokio::test]
async fn listings_page_by_offset_until_the_last_row() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store, "acme").await;
        for i in 0..5 {
            member(&store, &acme, &format!("user{i}@acme.example")).await;
        }
        let mut seen = Vec::new();
        let mut offset = Some(0);
        while let Some(o) = offset {
            let page = acme
                .members()
                .list(PageRequest::new().limit(2).offset(o))
                .await
                .unwrap();
            assert!(page.items.len() <= 2);
            seen.extend(page.items.into_iter().map(|m| m.user_id));
            offset = page.next_offset;
        }
        assert_eq!(seen.len(), 5, "{backend:?}");
        let distinct: std::collections::BTreeSet<_> = seen.iter().collect();
        assert_eq!(distinct.len(), 5, "{backend:?}: no row twice");
    }
}

#[tokio::test]
async fn a_keys_use_is_written_at_most_once_a_minute() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_at(backend, clock.clone()).await;
        let acme = tenant(&store, "acme").await;
        let bot = common::agent(&acme, "bot", None).await;
        let keys = acme.agent_keys();
        let (key, _) = keys.issue(bot, None, None).await.unwrap();
        let used = || async { keys.get(key.id).await.unwrap().last_used_at };

        store.authenticate_agent(&key.secret).await.unwrap();
        assert_eq!(used().await, Some(noon()), "{backend:?}: the first use");
        // Within a minute of the recorded use, verifying writes nothing.
        clock.advance(Duration::seconds(59));
        store.authenticate_agent(&key.secret).await.unwrap();
        keys.verify(&key.secret).await.unwrap();
        assert_eq!(used().await, Some(noon()), "{backend:?}");
        // A minute after it, the use is recorded again.
        clock.advance(Duration::seconds(1));
        keys.verify(&key.secret).await.unwrap();
        assert_eq!(
            used().await,
            Some(noon() + bursar::store::LAST_USED_PRECISION),
            "{backend:?}"
        );
    }
}
