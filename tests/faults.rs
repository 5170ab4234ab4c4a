//! Database faults: each surfaces as its own stable class (contention,
//! unavailable, storage full), transient ones say so, nothing bursar reported
//! as committed is lost, and the same `Store` works again once the fault is
//! gone.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bursar::audit::AuditLogRepository;
use bursar::clock::ManualClock;
use bursar::id::{AgentId, TenantId};
use bursar::money::Currency;
use bursar::policy::{Request, SpendingControls};
use bursar::store::{
    AgentRepository, NewAgent, NewTenant, ReservationRepository, TenantRepository,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, TimeZone, Utc};
use common::{dec, sqlite_file_url};
use sqlx::{Connection, Executor};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(noon()))
}

/// A tenant whose one agent may spend up to 200 a purchase and a million a
/// month.
async fn tenant_with_agent(store: &Store) -> (TenantId, AgentId) {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(agent)
            .per_transaction_limit(dec("200"))
            .monthly_limit(dec("1000000"))
            .build()
            .unwrap(),
    )
    .await
    .unwrap();
    (t.id, agent)
}

fn buy(agent: AgentId, key: &str) -> Request {
    Request::purchase(agent, dec("1"), Currency::USD, "GitHub").idempotency_key(key)
}

/// A connection of its own to the SQLite file behind `url`, outside any store.
async fn raw_sqlite(url: &str) -> sqlx::SqliteConnection {
    use std::str::FromStr;
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
        .unwrap()
        .busy_timeout(Duration::from_secs(10));
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap()
}

async fn page_count(conn: &mut sqlx::SqliteConnection) -> i64 {
    sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(conn)
        .await
        .unwrap()
}

async fn authorize_many(
    scope: &TenantScope,
    agent: AgentId,
    prefix: &str,
    n: usize,
) -> Vec<(String, bursar::Result<bursar::authorize::Authorization>)> {
    let mut tasks = Vec::new();
    for task in 0..4 {
        let scope = scope.clone();
        let prefix = prefix.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..n {
                let key = format!("{prefix}-{task}-{i}");
                let result = scope.authorize(buy(agent, &key)).await;
                results.push((key, result));
            }
            results
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// How a test fills the disk under a store, and frees it again.
enum Disk {
    /// A 6 MiB tmpfs mounted for the test (needs root; skipped otherwise),
    /// filled by a balloon file: commits fail when the WAL cannot grow.
    Tmpfs,
    /// SQLite's `max_page_count` on every connection of the store, set to the
    /// file's size after a filler table took most of it: statements fail when
    /// they need a new page.
    PageCap,
}

/// A tmpfs mounted on a temporary directory, unmounted on drop.
struct Mount(tempfile::TempDir);

impl Mount {
    fn tmpfs(size: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then_some(Self(dir))
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// Fills a filesystem with a balloon file until it is full, then gives back
/// `room` bytes.
fn inflate(balloon: &std::path::Path, room: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(balloon).unwrap();
    let chunk = vec![0xA5u8; 4096];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_data())
        .is_ok()
    {}
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(room)).unwrap();
}

async fn full_disk_scenario(disk: Disk) {
    let (_dir, file_url) = sqlite_file_url();
    let mount = match disk {
        Disk::Tmpfs => match Mount::tmpfs("6m") {
            Some(mount) => Some(mount),
            None => {
                eprintln!("skipped: cannot mount a tmpfs here (not root)");
                return;
            }
        },
        Disk::PageCap => None,
    };
    let url = match &mount {
        Some(m) => format!(
            "sqlite://{}?mode=rwc",
            m.0.path().join("bursar.db").display()
        ),
        None => file_url,
    };
    // Schema and tenant, with room to spare.
    let setup = Store::builder(&url).clock(clock()).connect().await.unwrap();
    let (tenant, agent) = tenant_with_agent(&setup).await;
    // A connection that stays open keeps the WAL and its index in place.
    let mut raw = raw_sqlite(&url).await;
    setup.close().await.unwrap();
    let mut builder = Store::builder(&url)
        .clock(clock())
        .max_connections(4)
        .busy_timeout(Duration::from_secs(2));
    let balloon = mount.as_ref().map(|m| m.0.path().join("balloon"));
    match &balloon {
        Some(_) => {}
        None => {
            raw.execute(
                "CREATE TABLE filler (b BLOB); \
                 WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 300) \
                 INSERT INTO filler SELECT randomblob(3000) FROM n",
            )
            .await
            .unwrap();
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                .await
                .unwrap();
            let cap = page_count(&mut raw).await;
            builder = builder.sqlite_pragma("max_page_count", cap.to_string());
        }
    }
    let store = builder.connect().await.unwrap();
    let scope = store.tenant(tenant);
    if let Some(balloon) = &balloon {
        // Open every pooled connection while there is room, then fill up.
        for (key, result) in authorize_many(&scope, agent, "warm", 3).await {
            result.unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        inflate(balloon, 512 * 1024);
    }

    let during = authorize_many(&scope, agent, "full", 40).await;
    // Free room.
    match &balloon {
        Some(balloon) => std::fs::remove_file(balloon).unwrap(),
        None => {
            raw.execute("DELETE FROM filler").await.unwrap();
        }
    }

    // Every outcome reported as committed is in the database, seen from a
    // fresh store.
    let fresh = Store::builder(&url).clock(clock()).connect().await.unwrap();
    let fresh_scope = fresh.tenant(tenant);
    let mut acknowledged = 0;
    for (key, result) in &during {
        if let Ok(auth) = result {
            acknowledged += 1;
            let id = auth.reservation_id().unwrap();
            fresh_scope
                .reservations()
                .get(id)
                .await
                .unwrap_or_else(|e| panic!("{key} was acknowledged but is gone: {e}"));
        }
    }
    eprintln!("{acknowledged} acknowledged during the fault");
    assert!(
        fresh_scope
            .reservations()
            .reconcile()
            .await
            .unwrap()
            .is_clean()
    );
    let full = during
        .iter()
        .filter(|(_, r)| matches!(r, Err(Error::StorageFull { .. })))
        .count();
    assert!(full > 0, "the disk never filled up");
    for (key, result) in &during {
        if let Err(err) = result {
            // Not contention: no connection was left holding the write lock.
            assert!(
                matches!(err, Error::StorageFull { .. } | Error::Unavailable { .. }),
                "{key}: {err}"
            );
        }
    }

    // The same store works again, on every pooled connection, and agrees.
    let after = authorize_many(&scope, agent, "after", 5).await;
    for (key, result) in &after {
        let auth = result.as_ref().unwrap_or_else(|e| panic!("{key}: {e}"));
        fresh_scope
            .reservations()
            .get(auth.reservation_id().unwrap())
            .await
            .unwrap();
    }
    assert!(scope.reservations().reconcile().await.unwrap().is_clean());
    store.close().await.unwrap();
    fresh.close().await.unwrap();
    raw.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_filesystem_loses_no_acknowledged_outcome_and_the_same_store_recovers() {
    full_disk_scenario(Disk::Tmpfs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_page_cap_reached_loses_no_acknowledged_outcome_and_the_same_store_recovers() {
    full_disk_scenario(Disk::PageCap).await;
}

#[tokio::test]
async fn a_transaction_sqlite_rolled_back_by_itself_does_not_come_back_from_the_pool() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let (_dir, url) = sqlite_file_url();
    let setup = Store::builder(&url).clock(clock()).connect().await.unwrap();
    let (tenant, agent) = tenant_with_agent(&setup).await;
    setup.close().await.unwrap();
    let mut raw = raw_sqlite(&url).await;
    raw.execute("CREATE TABLE filler (b BLOB)").await.unwrap();
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    let cap = page_count(&mut raw).await + 4;
    // One connection, so the next call gets the one that failed.
    let store = Store::builder(&url)
        .clock(clock())
        .max_connections(1)
        .busy_timeout(Duration::from_secs(1))
        .sqlite_pragma("max_page_count", cap.to_string())
        .connect()
        .await
        .unwrap();

    // A one-row insert that needs more pages than are left: SQLite answers
    // "database or disk is full" and rolls the whole transaction back itself,
    // so the driver's own ROLLBACK fails.
    let txn = store.connection().begin().await.unwrap();
    let err = Error::from(
        txn.execute_unprepared("INSERT INTO filler VALUES (randomblob(100000))")
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code(), "storage_full", "{err}");
    let _ = txn.rollback().await;

    // A transaction on the same connection that is rolled back: had the
    // connection come back believing it was still inside the first, this one
    // would be a savepoint, and rolling back to it would leave a transaction
    // open on the connection for good.
    let txn = store.connection().begin().await.unwrap();
    txn.execute_unprepared("SELECT 1").await.unwrap();
    txn.rollback().await.unwrap();

    // The next call commits for real.
    let scope = store.tenant(tenant);
    let auth = scope.authorize(buy(agent, "after")).await.unwrap();
    let fresh = Store::builder(&url).clock(clock()).connect().await.unwrap();
    fresh
        .tenant(tenant)
        .reservations()
        .get(auth.reservation_id().unwrap())
        .await
        .unwrap();
    assert!(scope.reservations().reconcile().await.unwrap().is_clean());
    raw.close().await.unwrap();
}

#[tokio::test]
async fn an_exhausted_pool_is_unavailable_and_transient() {
    use sea_orm::TransactionTrait;
    let store = Store::builder("sqlite::memory:")
        .clock(clock())
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let (tenant, agent) = tenant_with_agent(&store).await;
    let scope = store.tenant(tenant);
    // Someone holds the only connection.
    let held = store.connection().begin().await.unwrap();
    let err = scope.authorize(buy(agent, "k1")).await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert_eq!(err.code(), "unavailable");
    assert!(err.is_transient());
    assert!(
        err.to_string()
            .contains("transient: retry with the same idempotency key"),
        "{err}"
    );
    held.rollback().await.unwrap();
    // The same request again succeeds once a connection is free.
    scope.authorize(buy(agent, "k1")).await.unwrap();
}

#[tokio::test]
async fn a_locked_sqlite_file_is_contention_and_transient() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::builder(&url)
        .clock(clock())
        .busy_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let (tenant, agent) = tenant_with_agent(&store).await;
    let scope = store.tenant(tenant);
    // Another process holds the write lock.
    let mut other = raw_sqlite(&url).await;
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let err = scope.authorize(buy(agent, "k1")).await.unwrap_err();
    assert!(matches!(err, Error::Contention { .. }), "{err}");
    assert_eq!(err.code(), "contention");
    assert!(err.is_transient());
    other.execute("ROLLBACK").await.unwrap();
    let first = scope.authorize(buy(agent, "k1")).await.unwrap();
    assert!(!first.replayed);
}

/// What a purchase leaves, read from another connection: how many
/// reservations, lines, ledger entries, intents and audit entries there are
/// and how many purchases the merchants counted; and every window's
/// `reserved`.
async fn purchase_rows(conn: &mut sqlx::SqliteConnection) -> ([i64; 6], String) {
    let row: (i64, i64, i64, i64, i64, i64, String) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM reservations), \
         (SELECT COUNT(*) FROM reservation_lines), \
         (SELECT COUNT(*) FROM ledger_entries), \
         (SELECT COUNT(*) FROM purchase_intents), \
         (SELECT COUNT(*) FROM audit_logs), \
         (SELECT SUM(purchase_count) FROM merchants), \
         (SELECT group_concat(reserved) FROM budget_windows)",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    ([row.0, row.1, row.2, row.3, row.4, row.5], row.6)
}

/// On SQLite every write of an approved purchase after the guarded update of
/// its windows (the reservation, its lines and ledger entries, the
/// merchant, the intent, the audit entry) goes to the database in one call.
/// A statement failing in the middle of that call fails the authorization
/// and leaves nothing of it: not the statements before it in the call, not
/// the update of the windows.
#[tokio::test]
async fn a_write_failing_inside_the_one_call_leaves_nothing_of_the_purchase() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::builder(&url).clock(clock()).connect().await.unwrap();
    let (tenant, agent) = tenant_with_agent(&store).await;
    let scope = store.tenant(tenant);
    // The window exists and the chain's head is known before the failure.
    assert!(
        scope
            .authorize(buy(agent, "k0"))
            .await
            .unwrap()
            .is_approved()
    );
    let mut other = raw_sqlite(&url).await;
    let before = purchase_rows(&mut other).await;
    other
        .execute(
            "CREATE TRIGGER refuse_intents BEFORE INSERT ON purchase_intents \
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        )
        .await
        .unwrap();
    let err = scope.authorize(buy(agent, "k1")).await.unwrap_err();
    assert_eq!(err.code(), "database");
    assert!(
        format!("{err:?}").contains("refused by the test"),
        "{err:?}"
    );
    let after = purchase_rows(&mut other).await;
    assert_eq!(after, before, "nothing of the failed purchase is left");
    other.execute("DROP TRIGGER refuse_intents").await.unwrap();
    // The same store goes on: the purchase goes through, its audit entry
    // follows the last one written.
    assert!(
        scope
            .authorize(buy(agent, "k1"))
            .await
            .unwrap()
            .is_approved()
    );
    let last = purchase_rows(&mut other).await;
    assert_eq!(last.0, before.0.map(|n| n + 1));
    assert!(scope.audit_log().verify().await.unwrap().is_intact());
}

/// A database of its own in the configured PostgreSQL, as a SeaORM
/// connection, or `None` when PostgreSQL is not configured.
async fn postgres_scratch() -> Option<sea_orm::DatabaseConnection> {
    use sea_orm::ConnectionTrait;
    common::postgres_url()?;
    let url = common::fresh_postgres_schema().await;
    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
    db.execute_unprepared(
        "CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL); INSERT INTO t VALUES (1, 0), (2, 0)",
    )
    .await
    .unwrap();
    Some(db)
}

#[tokio::test]
async fn a_postgres_serialization_failure_is_contention() {
    use sea_orm::{ConnectionTrait, IsolationLevel, TransactionTrait};
    let Some(db) = postgres_scratch().await else {
        return;
    };
    let serializable = || db.begin_with_config(Some(IsolationLevel::Serializable), None);
    let (a, b) = (serializable().await.unwrap(), serializable().await.unwrap());
    // Write skew: each reads what the other writes.
    a.execute_unprepared("SELECT sum(v) FROM t").await.unwrap();
    b.execute_unprepared("SELECT sum(v) FROM t").await.unwrap();
    a.execute_unprepared("INSERT INTO t VALUES (3, 1)")
        .await
        .unwrap();
    let failure = match b.execute_unprepared("INSERT INTO t VALUES (4, 1)").await {
        Err(e) => e,
        Ok(_) => {
            a.commit().await.unwrap();
            b.commit().await.unwrap_err()
        }
    };
    let err = Error::from(failure);
    assert!(matches!(err, Error::Contention { .. }), "{err}");
    assert!(err.is_transient());
    assert!(!err.to_string().contains("t\""), "{err}");
}

#[tokio::test]
async fn a_postgres_deadlock_is_contention() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    let Some(db) = postgres_scratch().await else {
        return;
    };
    let (a, b) = (db.begin().await.unwrap(), db.begin().await.unwrap());
    a.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    b.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 2")
        .await
        .unwrap();
    // Each now waits for the other's row: PostgreSQL breaks the cycle.
    let (ra, rb) = tokio::join!(
        a.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 2"),
        b.execute_unprepared("UPDATE t SET v = v + 1 WHERE id = 1"),
    );
    let failure = ra
        .err()
        .or(rb.err())
        .expect("one side is the deadlock victim");
    let err = Error::from(failure);
    assert!(matches!(err, Error::Contention { .. }), "{err}");
    assert!(err.to_string().contains("deadlock"), "{err}");
    assert!(err.is_transient());
}

/// Holds `authorize`'s transaction open until told to let it commit.
struct Pause {
    inside: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl bursar::authorize::AuthorizeHook for Pause {
    async fn before_commit(
        &self,
        _: &bursar::authorize::Authorization,
        _: &sea_orm::DatabaseTransaction,
    ) -> bursar::Result<()> {
        self.inside.notify_one();
        self.go.notified().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_connections_killed_under_load_are_unavailable_and_the_pool_recovers() {
    use sea_orm::ConnectionTrait;
    if common::postgres_url().is_none() {
        return;
    }
    // A name for this store's connections, so only they are terminated.
    let name = format!("bursar_faults_{}", uuid::Uuid::now_v7().simple());
    let url = format!(
        "{}&application_name={name}",
        common::fresh_postgres_schema().await
    );
    let store = Store::builder(&url)
        .clock(clock())
        .max_connections(4)
        .connect()
        .await
        .unwrap();
    let (tenant, agent) = tenant_with_agent(&store).await;
    let scope = store.tenant(tenant);

    // Load: four callers authorizing while the connections are killed.
    let load = {
        let scope = scope.clone();
        tokio::spawn(async move { authorize_many(&scope, agent, "load", 25).await })
    };
    // And one caller caught mid-transaction.
    let pause = Pause {
        inside: Arc::new(tokio::sync::Notify::new()),
        go: Arc::new(tokio::sync::Notify::new()),
    };
    let (inside, go) = (pause.inside.clone(), pause.go.clone());
    let caught = {
        let scope = scope.clone();
        tokio::spawn(async move { scope.authorize_with(buy(agent, "caught"), &pause).await })
    };
    inside.notified().await;
    let admin = sea_orm::Database::connect(common::postgres_url().unwrap().as_str())
        .await
        .unwrap();
    let kill = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = '{name}'"
    );
    admin.execute_unprepared(&kill).await.unwrap();
    go.notify_one();
    tokio::time::sleep(Duration::from_millis(50)).await;
    admin.execute_unprepared(&kill).await.unwrap();
    admin.close().await.unwrap();

    let err = caught.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.is_transient());
    for (key, result) in load.await.unwrap() {
        if let Err(err) = result {
            assert!(err.is_transient(), "{key}: {err}");
        }
    }

    // The pool recovers by itself; the caught request, retried with its key,
    // is held once.
    let retried = scope.authorize(buy(agent, "caught")).await.unwrap();
    let again = scope.authorize(buy(agent, "caught")).await.unwrap();
    assert_eq!(
        retried.reservation_id().unwrap(),
        again.reservation_id().unwrap()
    );
    for (key, result) in authorize_many(&scope, agent, "after", 3).await {
        result.unwrap_or_else(|e| panic!("{key}: {e}"));
    }
    assert!(scope.reservations().reconcile().await.unwrap().is_clean());
}
