//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod scenario;

use bursar::Store;
use bursar::store::UserRepository;

/// The backends a test body runs on: in-memory SQLite always, PostgreSQL when
/// `BURSAR_TEST_POSTGRES_URL` is set (CI sets it).
pub fn backends() -> Vec<Backend> {
    let mut all = vec![Backend::SqliteMemory];
    if postgres_url().is_some() {
        all.push(Backend::Postgres);
    }
    all
}

/// A database to run a test body against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    SqliteMemory,
    Postgres,
}

pub fn postgres_url() -> Option<String> {
    std::env::var("BURSAR_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// A fresh, empty, migrated database of the given kind. On PostgreSQL each call
/// gets its own schema inside the configured database, so tests can run in
/// parallel and never see each other's rows; CI drops the whole database.
pub async fn fresh(backend: Backend) -> Store {
    match backend {
        Backend::SqliteMemory => Store::connect("sqlite::memory:")
            .await
            .expect("sqlite store"),
        Backend::Postgres => Store::connect(&fresh_postgres_schema().await)
            .await
            .expect("postgres store"),
    }
}

/// Creates an empty schema in `BURSAR_TEST_POSTGRES_URL`'s database and returns
/// a URL whose connections use it as their `search_path`.
pub async fn fresh_postgres_schema() -> String {
    use sea_orm::{ConnectionTrait, Database};
    let base = postgres_url().expect("BURSAR_TEST_POSTGRES_URL");
    let admin = Database::connect(base.as_str())
        .await
        .expect("connect to postgres");
    let name = format!("t_{}", uuid::Uuid::now_v7().simple());
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {name}"))
        .await
        .expect("create test schema");
    admin.close().await.ok();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{name}")
}

/// A temporary SQLite file URL (WAL), and the directory that holds it (keep it
/// alive for the test's duration).
pub fn sqlite_file_url() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bursar.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    (dir, url)
}

/// Parses a decimal literal.
/// An in-memory SQLite store on a clock stopped at `now`, and the number of
/// statements it has sent to the database (`BEGIN` and `COMMIT` aside),
/// which the caller may reset.
pub async fn counting_store(
    now: chrono::DateTime<chrono::Utc>,
) -> (Store, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    counting_store_at("sqlite::memory:", now).await
}

/// [`counting_store`] on the database at `url`.
pub async fn counting_store_at(
    url: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> (Store, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&sent);
    let store = Store::builder(url)
        .clock(Arc::new(bursar::clock::ManualClock::new(now)))
        .on_statement(move |_| {
            counter.fetch_add(1, Ordering::Relaxed);
        })
        .connect()
        .await
        .expect("a counting store");
    (store, sent)
}

pub fn dec(s: &str) -> rust_decimal::Decimal {
    s.parse().expect("decimal literal")
}

/// Creates a team in the scope's tenant.
pub async fn team(scope: &bursar::TenantScope, slug: &str) -> bursar::id::TeamId {
    use bursar::store::{NewGroup, TeamRepository};
    scope
        .teams()
        .create(NewGroup::new(slug, slug))
        .await
        .expect("team")
        .id
}

/// Creates an active agent in the scope's tenant.
pub async fn agent(
    scope: &bursar::TenantScope,
    name: &str,
    team: Option<bursar::id::TeamId>,
) -> bursar::id::AgentId {
    use bursar::store::{AgentRepository, NewAgent};
    let mut new = NewAgent::new(name);
    if let Some(team) = team {
        new = new.team(team);
    }
    scope.agents().create(new).await.expect("agent").id
}

/// Creates a user, makes them an active member of the scope's tenant and gives
/// them the built-in role `role` (e.g. `bursar::store::builtin::FINANCE`).
pub async fn member(
    store: &bursar::Store,
    scope: &bursar::TenantScope,
    role: &str,
) -> bursar::id::UserId {
    use bursar::store::{MemberRepository, NewUser, RoleRepository};
    let email = format!("m{}@example.com", uuid::Uuid::now_v7().simple());
    let user = store
        .users()
        .create(NewUser::new(email, "Member"))
        .await
        .expect("user");
    scope
        .members()
        .add(user.id, bursar::entity::tenant_member::SeatType::Pro)
        .await
        .expect("member");
    let role = scope.roles().by_name(role).await.expect("role").id;
    scope
        .roles()
        .assign(user.id, role)
        .await
        .expect("role assigned");
    user.id
}

/// A hook that fails, as a card provider that is down would.
pub struct FailingHook;

#[async_trait::async_trait]
impl bursar::authorize::AuthorizeHook for FailingHook {
    async fn before_commit(
        &self,
        _: &bursar::authorize::Authorization,
        _: &sea_orm::DatabaseTransaction,
    ) -> bursar::Result<()> {
        Err(bursar::Error::Invalid {
            field: "card".into(),
            reason: "the card provider is down".into(),
        })
    }
}

/// A new tenant (a slug of its own, New York time) with one agent, "bot",
/// under the USD controls that `limits` adds for that agent.
pub async fn tenant_under_controls(
    store: &Store,
    limits: impl FnOnce(bursar::policy::SpendingControls) -> bursar::policy::SpendingControls,
) -> (bursar::TenantScope, bursar::id::AgentId) {
    use bursar::store::{AgentRepository, NewAgent, NewTenant, TenantRepository};
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug).timezone("America/New_York"))
        .await
        .expect("tenant");
    let scope = store.tenant(t.id);
    let agent = scope
        .agents()
        .create(NewAgent::new("bot"))
        .await
        .expect("agent")
        .id;
    let controls =
        limits(bursar::policy::SpendingControls::new(bursar::money::Currency::USD).agent(agent))
            .build()
            .expect("controls");
    scope.apply_controls(&controls).await.expect("controls");
    (scope, agent)
}
