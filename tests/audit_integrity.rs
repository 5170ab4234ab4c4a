//! The audit log proves itself: its rows and the ledger's cannot be changed
//! or deleted, an edit is found and named, dropped newest entries are caught
//! by a signed checkpoint, and concurrent writers keep one chain.

mod common;

use bursar::audit::{AuditEntry, AuditLogRepository, CheckpointVerdict};
use bursar::entity::audit_log;
use bursar::keys::StaticKeyring;
use bursar::store::{NewTenant, ReservationRepository, TenantRepository};
use bursar::{Error, Store, TenantScope};
use bursar_migration::m20250101_000003_append_only::{APPEND_ONLY_TABLES, drop_sql};
use common::{Backend, backends, fresh_postgres_schema, sqlite_file_url};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter};

async fn tenant(store: &Store) -> TenantScope {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    store.tenant(t.id)
}

async fn record(acme: &TenantScope, n: usize, prefix: &str) {
    for i in 0..n {
        acme.audit_log()
            .record(AuditEntry::new(format!("{prefix}.{i}"), "test").message(format!("entry {i}")))
            .await
            .unwrap();
    }
}

/// Drops the append-only triggers, as only the tables' owner could.
async fn drop_triggers(store: &Store) {
    let db = store.connection();
    for table in APPEND_ONLY_TABLES {
        for sql in drop_sql(db.get_database_backend(), table) {
            db.execute_unprepared(&sql).await.unwrap();
        }
    }
}

fn keys() -> StaticKeyring {
    StaticKeyring::new(1, [11; 32])
}

#[tokio::test]
async fn direct_updates_and_deletes_of_audit_rows_are_refused() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        record(&acme, 2, "seed").await;
        let db = store.connection();
        let t = acme.tenant_id();
        let truncate = db.get_database_backend() == DatabaseBackend::Postgres;
        let edited = audit_log::Entity::update_many()
            .col_expr(audit_log::Column::Message, Expr::value("edited"))
            .filter(audit_log::Column::TenantId.eq(t))
            .exec(db)
            .await;
        assert!(edited.is_err(), "{backend:?}: update allowed");
        let deleted = audit_log::Entity::delete_many()
            .filter(audit_log::Column::TenantId.eq(t))
            .exec(db)
            .await;
        assert!(deleted.is_err(), "{backend:?}: delete allowed");
        if truncate {
            assert!(db.execute_unprepared("TRUNCATE audit_logs").await.is_err());
        }
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
        assert_eq!(acme.audit_log().verify().await.unwrap().entries, 2);
    }
}

#[tokio::test]
async fn a_ledger_row_cannot_be_changed_or_deleted() {
    use bursar::money::Currency;
    use bursar::policy::{Request, SpendingControls};
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let agent = common::agent(&acme, "bot", None).await;
        acme.apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(agent)
                .monthly_limit(common::dec("100"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
        let ok = acme
            .authorize(Request::purchase(
                agent,
                common::dec("5"),
                Currency::USD,
                "GitHub",
            ))
            .await
            .unwrap();
        assert!(ok.reservation.is_some());
        let db = store.connection();
        for sql in [
            "UPDATE ledger_entries SET amount = amount",
            "DELETE FROM ledger_entries",
        ] {
            assert!(
                db.execute_unprepared(sql).await.is_err(),
                "{backend:?}: {sql}"
            );
        }
        assert!(
            acme.reservations()
                .reconcile()
                .await
                .unwrap()
                .discrepancies
                .is_empty()
        );
    }
}

#[tokio::test]
async fn with_the_trigger_dropped_verify_names_the_exact_edited_entry() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let other = tenant(&store).await;
        record(&acme, 6, "a").await;
        record(&other, 3, "b").await;
        drop_triggers(&store).await;
        audit_log::Entity::update_many()
            .col_expr(audit_log::Column::Message, Expr::value("nothing happened"))
            .filter(audit_log::Column::TenantId.eq(acme.tenant_id()))
            .filter(audit_log::Column::Seq.eq(4))
            .exec(store.connection())
            .await
            .unwrap();
        let report = acme.audit_log().verify().await.unwrap();
        assert_eq!(report.first_broken_seq, Some(4), "{backend:?}");
        // The other tenant's chain is untouched.
        assert!(other.audit_log().verify().await.unwrap().is_intact());
    }
}

#[tokio::test]
async fn dropping_the_newest_entries_or_regrowing_the_chain_is_caught_by_a_checkpoint() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        record(&acme, 6, "a").await;
        let keys = keys();
        let checkpoint = acme.audit_log().checkpoint(&keys).await.unwrap();
        assert_eq!(checkpoint.seq, 6);
        assert!(
            acme.audit_log()
                .verify_against(&checkpoint, &keys)
                .await
                .unwrap()
                .holds()
        );
        // Later entries do not disturb an older checkpoint.
        record(&acme, 1, "later").await;
        assert!(
            acme.audit_log()
                .verify_against(&checkpoint, &keys)
                .await
                .unwrap()
                .holds()
        );
        drop_triggers(&store).await;
        // Drop the last 3 entries of the checkpointed chain (and the later one).
        audit_log::Entity::delete_many()
            .filter(audit_log::Column::TenantId.eq(acme.tenant_id()))
            .filter(audit_log::Column::Seq.gt(3))
            .exec(store.connection())
            .await
            .unwrap();
        // What is left is a perfectly linked chain...
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
        // ...that the checkpoint shows to be short.
        assert_eq!(
            acme.audit_log()
                .verify_against(&checkpoint, &keys)
                .await
                .unwrap(),
            CheckpointVerdict::Truncated {
                expected_seq: 6,
                found_seq: 3
            },
            "{backend:?}"
        );
        // Growing the chain back with other entries is a rewrite.
        record(&acme, 3, "forged").await;
        assert!(acme.audit_log().verify().await.unwrap().is_intact());
        assert_eq!(
            acme.audit_log()
                .verify_against(&checkpoint, &keys)
                .await
                .unwrap(),
            CheckpointVerdict::Rewritten { seq: 6 }
        );
    }
}

#[tokio::test]
async fn a_forged_or_foreign_checkpoint_is_refused() {
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        let other = tenant(&store).await;
        record(&acme, 2, "a").await;
        let keys = keys();
        let checkpoint = acme.audit_log().checkpoint(&keys).await.unwrap();
        let mut forged = checkpoint.clone();
        forged.seq = 1;
        assert!(matches!(
            acme.audit_log().verify_against(&forged, &keys).await,
            Err(Error::Crypto { .. })
        ));
        let wrong = StaticKeyring::new(1, [12; 32]);
        assert!(matches!(
            acme.audit_log().verify_against(&checkpoint, &wrong).await,
            Err(Error::Crypto { .. })
        ));
        let missing = StaticKeyring::new(2, [11; 32]);
        let err = acme
            .audit_log()
            .verify_against(&checkpoint, &missing)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "crypto");
        assert!(matches!(
            other.audit_log().verify_against(&checkpoint, &keys).await,
            Err(Error::Invalid { ref field, .. }) if field == "checkpoint"
        ));
        // An empty chain checkpoints at 0 and holds.
        let empty = other.audit_log().checkpoint(&keys).await.unwrap();
        assert_eq!(empty.seq, 0);
        assert!(
            other
                .audit_log()
                .verify_against(&empty, &keys)
                .await
                .unwrap()
                .holds()
        );
    }
}

#[tokio::test]
async fn concurrent_writers_keep_one_chain() {
    let mut urls = Vec::new();
    let (_dir, file) = sqlite_file_url();
    urls.push((Backend::SqliteMemory, file));
    if common::postgres_url().is_some() {
        urls.push((Backend::Postgres, fresh_postgres_schema().await));
    }
    for (backend, url) in urls {
        let store = Store::connect(&url).await.unwrap();
        let acme = tenant(&store).await;
        let mut tasks = Vec::new();
        for w in 0..6 {
            let scope = acme.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..5 {
                    scope
                        .audit_log()
                        .record(AuditEntry::new(format!("w{w}.{i}"), "test"))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = acme.audit_log().verify().await.unwrap();
        assert!(report.is_intact(), "{backend:?}: {report:?}");
        assert_eq!(report.entries, 30);
    }
}

#[tokio::test]
async fn an_export_verifies_offline_against_its_checkpoint_on_every_backend() {
    use bursar::audit::verify_export;
    for backend in backends() {
        let store = common::fresh(backend).await;
        let acme = tenant(&store).await;
        record(&acme, 7, "a").await;
        let keys = keys();
        let checkpoint = acme.audit_log().checkpoint(&keys).await.unwrap();
        let mut out = Vec::new();
        assert_eq!(acme.audit_log().export(1, None, &mut out).await.unwrap(), 7);
        let report = verify_export(out.as_slice(), Some((&checkpoint, &keys))).unwrap();
        assert!(report.is_intact(), "{backend:?}: {report:?}");
        assert_eq!(report.seq_range, Some((1, 7)));
        // A middle range verifies on its own links.
        let mut part = Vec::new();
        assert_eq!(
            acme.audit_log()
                .export(3, Some(5), &mut part)
                .await
                .unwrap(),
            3
        );
        assert!(verify_export(part.as_slice(), None).unwrap().is_intact());
        // Without the newest 3 lines the checkpoint catches it.
        let text = String::from_utf8(out).unwrap();
        let short = text.lines().take(4).collect::<Vec<_>>().join("\n");
        let report = verify_export(short.as_bytes(), Some((&checkpoint, &keys))).unwrap();
        assert_eq!(
            report.checkpoint,
            Some(CheckpointVerdict::Truncated {
                expected_seq: 7,
                found_seq: 4
            })
        );
        assert!(!report.is_intact());
        // A line edited in place is named.
        let edited = text.replacen("a.5", "a.X", 1);
        let report = verify_export(edited.as_bytes(), None).unwrap();
        assert_eq!(report.first_broken_seq, Some(6));
    }
}

#[tokio::test]
async fn an_entry_rolled_back_with_its_transaction_is_not_what_the_next_one_follows() {
    use bursar::policy::{ActionKind, Request};
    use common::{FailingHook, tenant_under_controls};
    for backend in backends() {
        let store = common::fresh(backend).await;
        let (acme, bot) = tenant_under_controls(&store, |c| c).await;
        record(&acme, 2, "before").await;
        let before = acme.audit_log().verify().await.unwrap().entries;
        // The hook fails after the decision's audit entry was written: the
        // transaction, entry and all, is rolled back.
        let call = || Request::new(bot, ActionKind::ToolCall).tool("search");
        let err = acme.authorize_with(call(), &FailingHook).await.unwrap_err();
        assert!(err.to_string().contains("card provider is down"), "{err}");
        record(&acme, 1, "after").await;
        // Decided (whatever the outcome) and audited.
        acme.authorize(call()).await.unwrap();
        record(&acme, 1, "last").await;
        let report = acme.audit_log().verify().await.unwrap();
        assert!(report.is_intact(), "{backend:?}: {report:?}");
        assert_eq!(
            report.entries,
            before + 3,
            "{backend:?}: one entry, the decision's, one more"
        );
    }
}
