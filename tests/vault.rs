//! The credential vault: secrets round-trip only through a closure, every
//! tampering fails with a typed error, rotation survives an interruption, and
//! no secret byte ever shows in `Debug`, errors or the audit log.

mod common;

use bursar::audit::AuditLogRepository;
use bursar::entity::connection::{self, AuthType, ConnectionStatus};
use bursar::keys::StaticKeyring;
use bursar::store::{NewTenant, PageRequest, TenantRepository};
use bursar::vault::{NewConnection, Secret};
use bursar::{Error, Store, TenantScope};
use common::backends;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

const SECRET: &str = "sk-live-Zq81vT0pS3cr3tV4lu3";

async fn tenant(store: &Store) -> TenantScope {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    store.tenant(t.id)
}

fn keys() -> StaticKeyring {
    StaticKeyring::new(1, [3; 32])
}

fn new_conn(label: &str) -> NewConnection {
    NewConnection::new("openai", label, AuthType::ApiKey)
}

fn assert_crypto<T: std::fmt::Debug>(result: bursar::Result<T>, what: &str) {
    match result {
        Err(err @ Error::Crypto { .. }) => {
            assert_eq!(err.code(), "crypto");
            assert!(!err.to_string().contains(SECRET), "{what}");
        }
        other => panic!("{what}: expected a crypto error, got {other:?}"),
    }
}

async fn set_sealed(store: &Store, id: bursar::id::ConnectionId, bytes: Vec<u8>) {
    connection::Entity::update_many()
        .col_expr(connection::Column::EncryptedCredentials, Expr::value(bytes))
        .filter(connection::Column::Id.eq(id))
        .exec(store.connection())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_secret_round_trips_through_a_closure_and_is_unique_per_provider_and_label() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let keys = keys();
        let vault = acme.vault(&keys);
        let conn = vault
            .create(new_conn("prod"), Secret::new(SECRET))
            .await
            .unwrap();
        assert_eq!(conn.key_version, 1);
        assert_eq!(conn.status, ConnectionStatus::Active);
        assert!(
            !conn
                .encrypted_credentials
                .windows(SECRET.len())
                .any(|w| w == SECRET.as_bytes()),
            "stored in clear"
        );
        let seen = vault
            .with_secret(conn.id, |s| s == SECRET.as_bytes())
            .await
            .unwrap();
        assert!(seen, "{backend:?}");
        // Unique per tenant, provider and label.
        let dup = vault.create(new_conn("prod"), Secret::new("x")).await;
        assert!(matches!(dup, Err(Error::Conflict { .. })), "{dup:?}");
        vault
            .create(
                NewConnection::new("stripe", "prod", AuthType::ApiKey),
                Secret::new("y"),
            )
            .await
            .unwrap();
        // Another tenant may use the same label, and cannot see this one.
        let other = tenant(&store).await;
        other
            .vault(&keys)
            .create(new_conn("prod"), Secret::new("z"))
            .await
            .unwrap();
        assert!(matches!(
            other.vault(&keys).with_secret(conn.id, |_| ()).await,
            Err(Error::NotFound { .. })
        ));
        // Replace, disable, delete.
        vault
            .replace_secret(conn.id, Secret::new("sk-new"))
            .await
            .unwrap();
        assert!(
            vault
                .with_secret(conn.id, |s| s == b"sk-new")
                .await
                .unwrap()
        );
        vault.disable(conn.id).await.unwrap();
        assert!(matches!(
            vault.with_secret(conn.id, |_| ()).await,
            Err(Error::Conflict { .. })
        ));
        vault.delete(conn.id).await.unwrap();
        assert!(matches!(
            vault.get(conn.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            vault.delete(conn.id).await,
            Err(Error::NotFound { .. })
        ));
        assert!(matches!(
            vault.create(new_conn("empty"), Secret::new("")).await,
            Err(Error::Invalid { ref field, .. }) if field == "secret"
        ));
        // Every change is audited, and no entry carries the secret.
        let log = acme
            .audit_log()
            .list(PageRequest::new().limit(500))
            .await
            .unwrap()
            .items;
        let actions: Vec<&str> = log.iter().map(|e| e.action.as_str()).collect();
        for action in [
            "connection.created",
            "connection.secret_replaced",
            "connection.status_changed",
            "connection.deleted",
        ] {
            assert!(actions.contains(&action), "{action} missing in {actions:?}");
        }
        let dump = format!("{log:?}");
        assert!(!dump.contains(SECRET) && !dump.contains("sk-new"));
    }
}

#[tokio::test]
async fn a_wrong_key_a_swapped_row_another_tenant_or_a_damaged_ciphertext_fail_typed() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let other = tenant(&store).await;
        let keys = keys();
        let vault = acme.vault(&keys);
        let a = vault
            .create(new_conn("a"), Secret::new(SECRET))
            .await
            .unwrap();
        let b = vault
            .create(new_conn("b"), Secret::new("other"))
            .await
            .unwrap();
        let foreign = other
            .vault(&keys)
            .create(new_conn("a"), Secret::new("foreign"))
            .await
            .unwrap();

        // Wrong key of the right version; a keyring without the version.
        let wrong = StaticKeyring::new(1, [4; 32]);
        assert_crypto(
            acme.vault(&wrong).with_secret(a.id, |_| ()).await,
            "wrong key",
        );
        let missing = StaticKeyring::new(2, [3; 32]);
        assert_crypto(
            acme.vault(&missing).with_secret(a.id, |_| ()).await,
            "missing version",
        );

        // Row b's ciphertext copied into row a.
        set_sealed(&store, a.id, b.encrypted_credentials.clone()).await;
        assert_crypto(vault.with_secret(a.id, |_| ()).await, "swapped row");
        // Another tenant's ciphertext copied into row a.
        set_sealed(&store, a.id, foreign.encrypted_credentials.clone()).await;
        assert_crypto(vault.with_secret(a.id, |_| ()).await, "other tenant");
        // Truncated.
        let mut cut = a.encrypted_credentials.clone();
        cut.truncate(cut.len() - 1);
        set_sealed(&store, a.id, cut).await;
        assert_crypto(vault.with_secret(a.id, |_| ()).await, "truncated");
        set_sealed(&store, a.id, a.encrypted_credentials[..10].to_vec()).await;
        assert_crypto(vault.with_secret(a.id, |_| ()).await, "truncated to a stub");
        // One flipped bit anywhere.
        for at in [0, 5, 40, 80, a.encrypted_credentials.len() - 1] {
            let mut flipped = a.encrypted_credentials.clone();
            flipped[at] ^= 0x01;
            set_sealed(&store, a.id, flipped).await;
            assert_crypto(
                vault.with_secret(a.id, |_| ()).await,
                &format!("flip at {at}"),
            );
        }
        // A relabelled key version does not open either.
        set_sealed(&store, a.id, a.encrypted_credentials.clone()).await;
        let two = StaticKeyring::new(1, [3; 32]).with_key(2, [3; 32]);
        connection::Entity::update_many()
            .col_expr(connection::Column::KeyVersion, Expr::value(2))
            .filter(connection::Column::Id.eq(a.id))
            .exec(store.connection())
            .await
            .unwrap();
        assert_crypto(
            acme.vault(&two).with_secret(a.id, |_| ()).await,
            "relabelled",
        );
        connection::Entity::update_many()
            .col_expr(connection::Column::KeyVersion, Expr::value(1))
            .filter(connection::Column::Id.eq(a.id))
            .exec(store.connection())
            .await
            .unwrap();
        // Restored, it opens again.
        assert!(
            vault
                .with_secret(a.id, |s| s == SECRET.as_bytes())
                .await
                .unwrap()
        );
    }
}

#[tokio::test]
async fn rotation_interrupted_halfway_resumes_and_both_versions_open_meanwhile() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let v1 = keys();
        let mut ids = Vec::new();
        for i in 0..5 {
            let c = acme
                .vault(&v1)
                .create(
                    new_conn(&format!("c{i}")),
                    Secret::new(format!("secret-{i}")),
                )
                .await
                .unwrap();
            ids.push(c.id);
        }
        let both = StaticKeyring::new(1, [3; 32])
            .with_key(2, [5; 32])
            .current(2);
        let vault = acme.vault(&both);
        // One batch, then the process "crashes".
        let progress = vault.rotate_batch(2, 2).await.unwrap();
        assert_eq!(
            (progress.rotated, progress.remaining),
            (2, 3),
            "{backend:?}"
        );
        let versions: Vec<i32> = vault
            .list()
            .await
            .unwrap()
            .iter()
            .map(|c| c.key_version)
            .collect();
        assert_eq!(versions.iter().filter(|v| **v == 2).count(), 2);
        // Meanwhile every record opens.
        for (i, id) in ids.iter().enumerate() {
            let want = format!("secret-{i}");
            assert!(
                vault
                    .with_secret(*id, |s| s == want.as_bytes())
                    .await
                    .unwrap()
            );
        }
        // Resumed: the rest moves, nothing twice.
        assert_eq!(vault.rotate_to(2, 2).await.unwrap(), 3);
        assert_eq!(vault.rotate_to(2, 2).await.unwrap(), 0);
        // Version 1 can now be retired.
        let only_two = StaticKeyring::new(2, [5; 32]);
        for (i, id) in ids.iter().enumerate() {
            let want = format!("secret-{i}");
            assert!(
                acme.vault(&only_two)
                    .with_secret(*id, |s| s == want.as_bytes())
                    .await
                    .unwrap()
            );
        }
        assert!(matches!(
            vault.rotate_batch(2, 0).await,
            Err(Error::Invalid { ref field, .. }) if field == "batch"
        ));
    }
}

#[tokio::test]
async fn no_secret_byte_shows_in_debug_or_errors() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let keys = keys();
        let vault = acme.vault(&keys);
        let secret = Secret::new(SECRET);
        assert!(!format!("{secret:?}").contains(SECRET));
        let conn = vault.create(new_conn("prod"), secret).await.unwrap();
        let key_hex = "03".repeat(32);
        for text in [
            format!("{conn:?}"),
            format!("{vault:?}"),
            format!("{keys:?}"),
            format!(
                "{:?}",
                vault.create(new_conn("prod"), Secret::new(SECRET)).await
            ),
            format!(
                "{:?}",
                acme.vault(&StaticKeyring::new(1, [9; 32]))
                    .with_secret(conn.id, |_| ())
                    .await
            ),
            format!(
                "{:?}",
                StaticKeyring::parse("keys", &format!("1:{}zz", &key_hex[..62]))
            ),
        ] {
            assert!(!text.contains(SECRET), "{text}");
            assert!(!text.contains(&key_hex[..16]), "{text}");
            assert!(!text.contains("[3, 3, 3"), "{text}");
        }
    }
}
