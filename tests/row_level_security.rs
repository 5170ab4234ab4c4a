//! Row-level security in force on PostgreSQL (skipped without
//! `BURSAR_TEST_POSTGRES_URL`).
//!
//! Each test makes two roles of its own, neither a superuser nor allowed to
//! bypass row-level security: an owner that owns a fresh schema and runs the
//! migrations in it, and an application role that is granted `SELECT, INSERT,
//! UPDATE, DELETE` on the tables and owns none of them. Through the
//! application role it shows that every repository works through a
//! [`TenantScope`] with [`RowLevelSecurity::Enforced`]; that raw SQL in a
//! transaction naming tenant A cannot read, change, move or insert tenant B's
//! rows on any tenant-owned table; that without the setting nothing is
//! visible; that the cross-tenant operations (sweeps, key authentication,
//! deactivating a user) still work; and that forcing row-level security
//! confines the owner too.

mod common;

use bursar::audit::AuditLogRepository as _;
use bursar::entity::tenant_member::SeatType;
use bursar::id::TenantId;
use bursar::money::Currency;
use bursar::policy::SpendingControls;
use bursar::store::{
    AgentKeyRepository, AgentRepository, MemberRepository, NewAgent, NewTenant, NewUser,
    PageRequest, ReserveRequest, RowLevelSecurity,
};
use bursar::store::{
    BudgetRepository as _, ReservationRepository as _, TenantRepository as _, UserRepository as _,
};
use bursar::{Error, Store, TenantScope};
use bursar_migration::tenant_owned_tables;
use chrono::{Duration, Utc};
use common::dec;
use common::scenario::{buy, populate, usd};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement, TransactionTrait};

/// The roles and schema of one test, and a connection as the server's
/// administrator to drop them with.
struct Roles {
    admin: DatabaseConnection,
    base: String,
    schema: String,
    owner: String,
    app: String,
}

impl Roles {
    /// Creates both roles and the owner's schema, and migrates it as the owner.
    async fn create() -> Option<Self> {
        let Some(base) = common::postgres_url() else {
            eprintln!("row_level_security: skipped, BURSAR_TEST_POSTGRES_URL is not set");
            return None;
        };
        let admin = Database::connect(base.as_str()).await.expect("admin");
        let id = uuid::Uuid::now_v7().simple().to_string();
        let roles = Self {
            admin,
            schema: format!("rls_{id}"),
            owner: format!("bursar_owner_{id}"),
            app: format!("bursar_app_{id}"),
            base,
        };
        let (schema, owner, app) = (&roles.schema, &roles.owner, &roles.app);
        roles
            .admin
            .execute_unprepared(&format!(
                "CREATE ROLE {owner} LOGIN NOSUPERUSER NOBYPASSRLS; \
                 CREATE ROLE {app} LOGIN NOSUPERUSER NOBYPASSRLS; \
                 CREATE SCHEMA {schema} AUTHORIZATION {owner}"
            ))
            .await
            .expect("roles and schema");
        let owner_store = roles.store(owner, RowLevelSecurity::Bypassed, true).await;
        owner_store
            .connection()
            .execute_unprepared(&format!(
                "GRANT USAGE ON SCHEMA {schema} TO {app}; \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app}"
            ))
            .await
            .expect("grants");
        owner_store.close().await.expect("close");
        Some(roles)
    }

    /// A URL of the test database as `role`, with the schema as search path.
    fn url(&self, role: &str) -> String {
        let (scheme, rest) = self.base.split_once("://").expect("a URL");
        let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
        let sep = if host.contains('?') { '&' } else { '?' };
        format!(
            "{scheme}://{role}@{host}{sep}options=-c%20search_path%3D{}",
            self.schema
        )
    }

    async fn store(&self, role: &str, mode: RowLevelSecurity, migrate: bool) -> Store {
        Store::builder(&self.url(role))
            .row_level_security(mode)
            .migrate(migrate)
            .connect()
            .await
            .expect("store")
    }

    /// The owner, who bypasses the policies unless they are forced.
    async fn owner(&self) -> Store {
        self.store(&self.owner, RowLevelSecurity::Bypassed, false)
            .await
    }

    /// The application role, naming each scope's tenant.
    async fn app(&self) -> Store {
        self.store(&self.app, RowLevelSecurity::Enforced, false)
            .await
    }

    async fn drop_all(self) {
        let (schema, owner, app) = (&self.schema, &self.owner, &self.app);
        self.admin
            .execute_unprepared(&format!(
                "DROP SCHEMA {schema} CASCADE; DROP OWNED BY {app}; DROP OWNED BY {owner}; \
                 DROP ROLE {app}; DROP ROLE {owner}"
            ))
            .await
            .expect("drop the schema and roles");
    }
}

/// Two tenants created and populated through `store`.
async fn two_tenants(store: &Store) -> (TenantScope, TenantScope) {
    let mut scopes = Vec::new();
    for slug in ["alpha", "beta"] {
        let t = store
            .tenants()
            .create(NewTenant::new(slug, slug).default_allow(true))
            .await
            .expect("tenant");
        assert_eq!(
            store.tenants().by_slug(slug).await.expect("by slug").id,
            t.id
        );
        let scope = store.tenant(t.id);
        populate(store, &scope).await;
        scopes.push(scope);
    }
    let b = scopes.pop().expect("beta");
    let a = scopes.pop().expect("alpha");
    (a, b)
}

async fn count(db: &impl ConnectionTrait, sql: &str, values: Vec<sea_orm::Value>) -> i64 {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .expect(sql)
        .expect("a row");
    row.try_get_by_index::<i64>(0).expect("a count")
}

/// The owner's count of `tenant`'s rows in `table`.
async fn rows_of(owner: &Store, table: &str, tenant: TenantId) -> i64 {
    count(
        owner.connection(),
        &format!("SELECT count(*) FROM \"{table}\" WHERE tenant_id = $1"),
        vec![tenant.as_uuid().into()],
    )
    .await
}

/// Runs `sql` in a transaction of `db` that names `tenant`, then rolls it back.
async fn as_tenant(
    db: &DatabaseConnection,
    tenant: TenantId,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<u64, sea_orm::DbErr> {
    let txn = db.begin().await.expect("begin");
    txn.execute_unprepared(&format!(
        "SELECT set_config('bursar.tenant_id', '{tenant}', true)"
    ))
    .await
    .expect("set the tenant");
    let result = txn
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            values,
        ))
        .await
        .map(|r| r.rows_affected());
    txn.rollback().await.expect("rollback");
    result
}

#[tokio::test]
async fn every_repository_works_through_the_scope_as_a_non_owner_role() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let app = roles.app().await;
    let (a, b) = two_tenants(&app).await;
    let owner = roles.owner().await;
    // What the scopes wrote is there, under the right tenant.
    for scope in [&a, &b] {
        assert!(rows_of(&owner, "agents", scope.tenant_id()).await > 0);
        assert_eq!(
            scope
                .agents()
                .list(PageRequest::new())
                .await
                .expect("agents")
                .items
                .len(),
            1
        );
    }
    // The same role without the setting is confined to nothing: the
    // policies, not the owner's bypass, are what the scopes went through.
    let unnamed = roles
        .store(&roles.app, RowLevelSecurity::Bypassed, false)
        .await;
    let blind = unnamed.tenant(a.tenant_id());
    assert!(
        blind
            .agents()
            .list(PageRequest::new())
            .await
            .expect("agents")
            .items
            .is_empty()
    );
    assert!(blind.budgets().list().await.expect("budgets").is_empty());
    for store in [app, owner, unnamed] {
        store.close().await.expect("close");
    }
    roles.drop_all().await;
}

#[tokio::test]
async fn raw_sql_naming_tenant_a_cannot_read_change_or_insert_rows_of_tenant_b() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let app = roles.app().await;
    let (a, b) = two_tenants(&app).await;
    let owner = roles.owner().await;
    let (ta, tb) = (a.tenant_id(), b.tenant_id());
    let db = app.connection();
    for table in tenant_owned_tables() {
        let theirs = rows_of(&owner, table, tb).await;
        let ours = rows_of(&owner, table, ta).await;
        assert!(
            theirs > 0 && ours > 0,
            "{table}: the seed reaches every table"
        );
        let b_id = || vec![tb.as_uuid().into()];

        // Read: none of B's rows, all of A's.
        let txn = db.begin().await.expect("begin");
        txn.execute_unprepared(&format!(
            "SELECT set_config('bursar.tenant_id', '{ta}', true)"
        ))
        .await
        .expect("set");
        let seen_b = count(
            &txn,
            &format!("SELECT count(*) FROM \"{table}\" WHERE tenant_id = $1"),
            b_id(),
        )
        .await;
        let seen_all = count(&txn, &format!("SELECT count(*) FROM \"{table}\""), vec![]).await;
        txn.rollback().await.expect("rollback");
        assert_eq!(seen_b, 0, "{table}: B's rows are invisible");
        assert_eq!(seen_all, ours, "{table}: exactly A's rows are visible");

        // Change and delete: no row of B is reached.
        let updated = as_tenant(
            db,
            ta,
            &format!("UPDATE \"{table}\" SET tenant_id = tenant_id WHERE tenant_id = $1"),
            b_id(),
        )
        .await
        .expect("update");
        assert_eq!(updated, 0, "{table}: UPDATE reaches none of B's rows");
        let deleted = as_tenant(
            db,
            ta,
            &format!("DELETE FROM \"{table}\" WHERE tenant_id = $1"),
            b_id(),
        )
        .await
        .expect("delete");
        assert_eq!(deleted, 0, "{table}: DELETE reaches none of B's rows");

        // Moving A's rows into B is refused.
        let moved = as_tenant(
            db,
            ta,
            &format!("UPDATE \"{table}\" SET tenant_id = $1"),
            b_id(),
        )
        .await;
        assert!(moved.is_err(), "{table}: moving A's rows to B is refused");

        // Inserting a row of B's (a copy of one, read by the owner) is
        // refused by the policy, before any key or constraint is checked.
        let row = owner
            .connection()
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                format!(
                    "SELECT row_to_json(t)::text FROM \"{table}\" t WHERE tenant_id = $1 LIMIT 1"
                ),
                b_id(),
            ))
            .await
            .expect("a row of B")
            .expect("a row of B");
        let json: String = row.try_get_by_index(0).expect("json");
        let inserted = as_tenant(
            db,
            ta,
            &format!(
                "INSERT INTO \"{table}\" SELECT * FROM json_populate_record(NULL::\"{table}\", $1::json)"
            ),
            vec![json.into()],
        )
        .await;
        let err = inserted.expect_err(table).to_string();
        assert!(
            err.contains("row-level security policy"),
            "{table}: inserting B's row is refused by the policy: {err}"
        );
        // Nothing of B's changed.
        assert_eq!(rows_of(&owner, table, tb).await, theirs, "{table}");
    }
    for store in [app, owner] {
        store.close().await.expect("close");
    }
    roles.drop_all().await;
}

#[tokio::test]
async fn without_the_setting_no_row_is_visible() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let app = roles.app().await;
    let (a, _b) = two_tenants(&app).await;
    let owner = roles.owner().await;
    let db = app.connection();
    for table in tenant_owned_tables() {
        assert!(rows_of(&owner, table, a.tenant_id()).await > 0, "{table}");
        // On the pool, outside any transaction: no setting at all.
        let bare = count(db, &format!("SELECT count(*) FROM \"{table}\""), vec![]).await;
        assert_eq!(bare, 0, "{table}: nothing without the setting");
        // Set to the empty string (as after a reset): still nothing.
        let txn = db.begin().await.expect("begin");
        txn.execute_unprepared("SELECT set_config('bursar.tenant_id', '', true)")
            .await
            .expect("set");
        let empty = count(&txn, &format!("SELECT count(*) FROM \"{table}\""), vec![]).await;
        txn.rollback().await.expect("rollback");
        assert_eq!(empty, 0, "{table}: nothing with an empty setting");
    }
    // And a scope's setting ends with its transaction: the pooled
    // connections the scopes used show nothing afterwards.
    for _ in 0..8 {
        assert_eq!(count(db, "SELECT count(*) FROM agents", vec![]).await, 0);
    }
    for store in [app, owner] {
        store.close().await.expect("close");
    }
    roles.drop_all().await;
}

#[tokio::test]
async fn cross_tenant_work_runs_tenant_by_tenant_as_a_non_owner_role() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let app = roles.app().await;
    let now = Utc::now();
    let mut scopes = Vec::new();
    let user = app
        .users()
        .create(NewUser::new("ada@example.com", "Ada"))
        .await
        .expect("user");
    for slug in ["alpha", "beta"] {
        let t = app
            .tenants()
            .create(NewTenant::new(slug, slug))
            .await
            .expect("tenant");
        let scope = app.tenant(t.id);
        let agent = common::agent(&scope, "bot", None).await;
        scope
            .apply_controls(
                &SpendingControls::new(Currency::USD)
                    .agent(agent)
                    .monthly_limit(dec("500"))
                    .approval_threshold(dec("100"))
                    .build()
                    .expect("controls"),
            )
            .await
            .expect("controls");
        // A hold that expires in a minute, and a pending approval.
        scope
            .reservations()
            .reserve(ReserveRequest::new(usd("4"), now + Duration::minutes(1)))
            .await
            .expect("reserve");
        let pending = scope
            .authorize(buy(agent, "150", "Vercel"))
            .await
            .expect("authorize");
        assert!(pending.approval.is_some());
        scope
            .members()
            .add(user.id, SeatType::Pro)
            .await
            .expect("member");
        scopes.push(scope);
    }

    // The sweeps list the tenants (a global table) and sweep each in its scope.
    let sweep = app
        .expire_due_all(now + Duration::hours(2))
        .await
        .expect("sweep");
    assert!(sweep.is_complete(), "{:?}", sweep.failures);
    assert_eq!((sweep.tenants, sweep.expired), (2, 2));
    let approvals = app
        .expire_and_escalate_due_all(now + Duration::days(3))
        .await
        .expect("approval sweep");
    assert!(approvals.failures.is_empty(), "{:?}", approvals.failures);
    assert_eq!(approvals.expired.len(), 2);

    // Deactivating a user audits it in each tenant they belong to.
    app.users().deactivate(user.id).await.expect("deactivate");
    for scope in &scopes {
        let entries = scope
            .audit_log()
            .list(PageRequest::new())
            .await
            .expect("audit");
        assert!(
            entries.items.iter().any(|e| e.action == "user.deactivated"),
            "{}",
            scope.tenant_id()
        );
    }

    // A key finds its tenant from the secret alone; an unknown one does not.
    let b = &scopes[1];
    let agent = common::agent(b, "keyed", None).await;
    let (key, _) = b.agent_keys().issue(agent, None, None).await.expect("key");
    let who = app
        .authenticate_agent(&key.secret)
        .await
        .expect("authenticate");
    assert_eq!((who.tenant_id, who.agent_id), (b.tenant_id(), agent));
    let forged = format!("{}0", &key.secret[..key.secret.len() - 1]);
    let forged = if forged == key.secret {
        format!("{}1", &key.secret[..key.secret.len() - 1])
    } else {
        forged
    };
    assert!(matches!(
        app.authenticate_agent(&forged).await,
        Err(Error::Unauthenticated)
    ));
    // The key-hash policy admits only reading: the setting does not let a
    // transaction change a key of another tenant.
    let hash: String = {
        let owner = roles.owner().await;
        let row = owner
            .connection()
            .query_one_raw(Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT key_hash FROM agent_api_keys WHERE id = $1",
                vec![key.id.as_uuid().into()],
            ))
            .await
            .expect("key row")
            .expect("key row");
        owner.close().await.expect("close");
        row.try_get_by_index(0).expect("hash")
    };
    let txn = app.connection().begin().await.expect("begin");
    txn.execute_raw(Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT set_config('bursar.key_hash', $1, true)",
        vec![hash.clone().into()],
    ))
    .await
    .expect("set");
    let visible = count(&txn, "SELECT count(*) FROM agent_api_keys", vec![]).await;
    let revoked = txn
        .execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "UPDATE agent_api_keys SET revoked_at = now() WHERE key_hash = $1",
            vec![hash.into()],
        ))
        .await
        .expect("update")
        .rows_affected();
    txn.rollback().await.expect("rollback");
    assert_eq!((visible, revoked), (1, 0));

    app.close().await.expect("close");
    roles.drop_all().await;
}

#[tokio::test]
async fn forced_row_level_security_confines_the_owner_too() {
    let Some(roles) = Roles::create().await else {
        return;
    };
    let owner = roles.owner().await;
    let t = owner
        .tenants()
        .create(NewTenant::new("alpha", "alpha"))
        .await
        .expect("tenant");
    let agent = common::agent(&owner.tenant(t.id), "bot", None).await;
    owner.force_row_level_security(true).await.expect("force");
    // The owner without the setting now sees nothing of the tenant ...
    let err = owner.tenant(t.id).agents().get(agent).await.unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    // ... and cannot write into it.
    assert!(
        owner
            .tenant(t.id)
            .agents()
            .create(NewAgent::new("b"))
            .await
            .is_err()
    );
    // Naming the tenant, it works.
    let named = roles
        .store(&roles.owner, RowLevelSecurity::Enforced, false)
        .await;
    assert_eq!(
        named
            .tenant(t.id)
            .agents()
            .get(agent)
            .await
            .expect("agent")
            .id,
        agent
    );
    common::agent(&named.tenant(t.id), "second", None).await;
    // Undone, the owner bypasses the policies again.
    owner
        .force_row_level_security(false)
        .await
        .expect("no force");
    assert_eq!(
        owner
            .tenant(t.id)
            .agents()
            .list(PageRequest::new())
            .await
            .expect("agents")
            .items
            .len(),
        2
    );
    for store in [owner, named] {
        store.close().await.expect("close");
    }
    roles.drop_all().await;
}
