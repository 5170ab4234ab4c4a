//! What every repository shares: the executor it runs on, the tenant it is
//! confined to, the clock, and how a write transaction ends or is retried.
//! Paging lives in `crate::page`.
//!
//! On PostgreSQL with [`RowLevelSecurity::Enforced`](crate::store::RowLevelSecurity::Enforced)
//! the executor is where the tenant reaches the database: every transaction
//! a [`Ctx`] on the pool begins names its tenant in the transaction-local
//! setting `bursar.tenant_id`, and a statement it runs on the pool outside any
//! transaction runs in a short transaction of its own that does the same. No
//! repository method deals with the setting itself.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseExecutor, DatabaseTransaction, DbBackend, DbErr, EntityName, EntityTrait, ExecResult,
    IntoActiveModel, QueryFilter, QueryResult, SqliteTransactionMode, Statement,
    TransactionOptions, TransactionTrait,
};

use crate::clock::Clock;
use crate::id::TenantId;
use crate::{Error, Result};

/// The first of the rows a lookup found: hot lookups by a unique key (or of
/// one aggregate row) run `.all(conn).await.map(first)` instead of SeaORM's
/// `.one(conn)`.
///
/// `.one()` adds `LIMIT ?` and binds the limit as a parameter. SQLite lets
/// the value bound to a `LIMIT` shape the plan, so it compiles such a
/// statement again every time the parameter is bound: every `.one()` was
/// prepared anew on each call instead of running from the connection's
/// statement cache. A lookup by a unique key returns at most one row anyway.
pub(crate) fn first<T>(rows: Vec<T>) -> Option<T> {
    rows.into_iter().next()
}

/// `select` with the table of `E` joined `on` a condition, and every column
/// of `E` selected as `{prefix}{column}`: the columns a
/// `#[sea_orm(nested(prefix = "…"))]` field of a `FromQueryResult` reads,
/// an `Option<E::Model>` for a left join (`None` when nothing joined), an
/// `E::Model` for an inner one.
pub(crate) fn join_prefixed<S, E>(
    mut select: sea_orm::Select<S>,
    join: sea_orm::JoinType,
    on: sea_orm::Condition,
    prefix: &str,
) -> sea_orm::Select<S>
where
    S: EntityTrait,
    E: EntityTrait,
{
    use sea_orm::{IdenStatic as _, Iterable as _, QuerySelect as _};
    sea_orm::QueryTrait::query(&mut select).join(join, E::default(), on);
    for column in E::Column::iter() {
        select = select.column_as(
            column.select_as(column.into_expr()),
            format!("{prefix}{}", column.as_str()),
        );
    }
    select
}

/// Inserts a row whose every value is known and returns it, reading nothing
/// back (SeaORM's `insert` reads the whole row back with `RETURNING`).
pub(crate) async fn insert_known<M, A>(
    conn: &impl ConnectionTrait,
    model: M,
) -> std::result::Result<M, DbErr>
where
    M: IntoActiveModel<A> + Clone,
    A: ActiveModelTrait + Send,
{
    conn.execute_raw(insert_statement(conn.get_database_backend(), model.clone()))
        .await?;
    Ok(model)
}

/// The statement [`insert_known`] sends for `model`, for a caller that sends
/// it together with another (`crate::audit::write_then_append`).
pub(crate) fn insert_statement<M, A>(backend: DbBackend, model: M) -> Statement
where
    M: IntoActiveModel<A>,
    A: ActiveModelTrait,
{
    use sea_orm::QueryTrait as _;
    // `reset_all` marks every field as set, so the insert writes them all.
    let row = model.into_active_model().reset_all();
    <A::Entity as EntityTrait>::insert(row).build(backend)
}

/// Writes nothing reads before the transaction's next write that must be
/// checked, held and sent together: on SQLite, which runs several statements
/// in one call, in one call ([`Deferred::flush`], or with that write:
/// [`Deferred::then`]); on PostgreSQL as one statement, each write a
/// data-modifying `WITH` of it. Each write says how many rows it changes, so
/// what is sent together is checked as a whole.
///
/// What is held is sent in the order it was added (on PostgreSQL each part
/// runs when the final `SELECT` counts its rows, left to right), so rows
/// that refer to each other go in the order their foreign keys need
/// (PostgreSQL checks them when the whole statement has run) and locks are
/// taken in the lock order (`crate::store::reservations`). On PostgreSQL
/// every part sees the rows as they were before the statement: no held
/// write may need to read what an earlier one wrote. A failure of any of
/// them fails the call, and the caller's transaction is rolled back.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    held: Vec<Statement>,
    rows: u64,
}

impl Deferred {
    /// Holds `statement` (an `INSERT`, with or without `ON CONFLICT … DO
    /// UPDATE`), which changes `rows` rows.
    pub(crate) fn add(&mut self, statement: Statement, rows: u64) {
        self.held.push(statement);
        self.rows += rows;
    }

    /// [`add`](Self::add)s the insert of `model`, whose every value is known.
    pub(crate) fn insert<M, A>(&mut self, backend: DbBackend, model: M)
    where
        M: IntoActiveModel<A>,
        A: ActiveModelTrait,
    {
        self.add(insert_statement(backend, model), 1);
    }

    /// Sends what is held: on SQLite in one call, on PostgreSQL in one
    /// statement.
    ///
    /// # Errors
    /// The database's error, or [`Error::Database`] when the writes changed
    /// another number of rows than they said.
    pub(crate) async fn flush(&mut self, conn: &impl ConnectionTrait) -> Result<()> {
        self.flush_then(conn, None).await
    }

    /// [`flush`](Self::flush), then `select` (a `SELECT` whose value is not
    /// read, such as taking a lock): on PostgreSQL in the same statement, as
    /// a scalar subquery the final `SELECT` evaluates after counting the
    /// held writes' rows; on SQLite in a call of its own.
    ///
    /// # Errors
    /// As [`flush`](Self::flush).
    pub(crate) async fn flush_then(
        &mut self,
        conn: &impl ConnectionTrait,
        select: Option<Statement>,
    ) -> Result<()> {
        let rows = self.rows;
        let backend = conn.get_database_backend();
        // A store is SQLite or PostgreSQL (`Store::connect` refuses any
        // other URL).
        let together = !self.held.is_empty() && (self.held.len() > 1 || select.is_some());
        let changed = if backend == DbBackend::Postgres && together {
            let statement = self.with_clauses(select);
            let counted = conn
                .query_one_raw(statement)
                .await?
                .map(|row| row.try_get_by_index::<i64>(0))
                .transpose()?;
            counted.map_or(0, |n| u64::try_from(n).unwrap_or(0))
        } else {
            let changed = match self.take() {
                Some((statement, _)) => conn.execute_raw(statement).await?.rows_affected(),
                None => 0,
            };
            if let Some(select) = select {
                conn.execute_raw(select).await?;
            }
            changed
        };
        if changed != rows {
            return Err(Error::Database(DbErr::Custom(format!(
                "held writes changed {changed} rows where they should have changed {rows}"
            ))));
        }
        Ok(())
    }

    /// PostgreSQL: what is held as one statement, `WITH w0 AS (… RETURNING
    /// 1), w1 AS (…) SELECT (SELECT count(*) FROM w0) + …`, whose first
    /// value is the rows they changed, then `(select)` when given; each
    /// statement's `$n` renumbered after the values of the ones before it.
    /// Nothing is held afterwards.
    fn with_clauses(&mut self, select: Option<Statement>) -> Statement {
        self.rows = 0;
        let mut sql = String::from("WITH ");
        let mut values = Vec::new();
        let mut counts = Vec::new();
        for (n, statement) in std::mem::take(&mut self.held).into_iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            let body = renumbered(&statement.sql, values.len());
            let returning = if body.contains(" RETURNING ") {
                ""
            } else {
                " RETURNING 1"
            };
            sql.push_str(&format!("w{n} AS ({body}{returning})"));
            counts.push(format!("(SELECT count(*) FROM w{n})"));
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        sql.push_str(" SELECT ");
        sql.push_str(&counts.join(" + "));
        if let Some(select) = select {
            sql.push_str(&format!(", ({})", renumbered(&select.sql, values.len())));
            values.extend(select.values.map(|v| v.0).unwrap_or_default());
        }
        Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
    }

    /// What is held and then `last`, as one statement (their SQL one after
    /// the other, their values in the same order: SQLite binds each
    /// statement's `?` from where the previous one stopped), and the rows
    /// the held ones change. Nothing is held afterwards.
    pub(crate) fn then(&mut self, last: Statement) -> (Statement, u64) {
        let rows = std::mem::take(&mut self.rows);
        let held = std::mem::take(&mut self.held);
        if held.is_empty() {
            return (last, rows);
        }
        let backend = last.db_backend;
        let mut sql = String::new();
        let mut values = Vec::new();
        for statement in held.into_iter().chain([last]) {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(&statement.sql);
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        (Statement::from_sql_and_values(backend, sql, values), rows)
    }

    /// What is held, as one statement, and the rows it changes; `None` when
    /// nothing is held. Nothing is held afterwards.
    pub(crate) fn take(&mut self) -> Option<(Statement, u64)> {
        let rows = self.rows;
        let last = self.held.pop()?;
        let (statement, _) = self.then(last);
        Some((statement, rows))
    }
}

/// `sql` with every PostgreSQL parameter `$n` outside quotes made `$(n +
/// offset)`.
fn renumbered(sql: &str, offset: usize) -> String {
    if offset == 0 {
        return sql.to_owned();
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '"') => quote = Some(c),
            (None, '$') => {
                let mut digits = String::new();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    digits.push(d);
                }
                out.push('$');
                match digits
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_add(offset))
                {
                    Some(n) => out.push_str(&n.to_string()),
                    None => out.push_str(&digits),
                }
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

/// The write transactions of one SQLite store, in line.
///
/// SQLite admits one writer at a time. Without a line, concurrent writers
/// find the database locked and sleep in SQLite's busy handler, which wakes
/// them in no order and with growing sleeps: under load a few wait far longer
/// than the rest. With it, each write transaction the store begins on its
/// pool first takes its turn here (first come, first served), so it finds
/// the lock free; another process's writers are still waited for by the busy
/// handler. A turn is given up when its transaction commits, rolls back or
/// is dropped. Not used on PostgreSQL, where row locks order writers.
#[derive(Debug)]
pub(crate) struct Writers {
    line: std::sync::Arc<tokio::sync::Semaphore>,
    /// How long a writer waits for its turn: the store's busy timeout.
    patience: std::time::Duration,
}

impl Writers {
    pub(crate) fn new(patience: std::time::Duration) -> Self {
        Self {
            line: std::sync::Arc::new(tokio::sync::Semaphore::new(1)),
            patience,
        }
    }

    /// Waits for this writer's turn; [`Error::Contention`] after the busy
    /// timeout, as a busy database would give.
    async fn turn(&self) -> Result<tokio::sync::OwnedSemaphorePermit> {
        let waiting = std::sync::Arc::clone(&self.line).acquire_owned();
        match tokio::time::timeout(self.patience, waiting).await {
            Ok(Ok(turn)) => Ok(turn),
            // The line is never closed while the store lives.
            Ok(Err(_)) | Err(_) => Err(Error::Contention {
                reason: format!(
                    "waited {} ms for the database's write lock",
                    self.patience.as_millis()
                ),
            }),
        }
    }
}

/// A write transaction, holding its writer's turn (SQLite) until it ends.
///
/// It reads as the [`DatabaseTransaction`] it wraps; end it with [`finish`],
/// [`discard`] or [`Write::commit`].
#[derive(Debug)]
pub(crate) struct Write {
    txn: DatabaseTransaction,
    /// Dropped after the transaction has ended (fields drop in order).
    _turn: Option<tokio::sync::OwnedSemaphorePermit>,
}

impl Write {
    /// Commits; the turn is given up once the commit has returned.
    pub(crate) async fn commit(self) -> std::result::Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back; the turn is given up once the rollback has returned.
    pub(crate) async fn rollback(self) -> std::result::Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl From<DatabaseTransaction> for Write {
    fn from(txn: DatabaseTransaction) -> Self {
        Self { txn, _turn: None }
    }
}

impl<'a> From<&'a Write> for DatabaseExecutor<'a> {
    fn from(write: &'a Write) -> Self {
        DatabaseExecutor::Transaction(&write.txn)
    }
}

impl std::ops::Deref for Write {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Write {
    fn get_database_backend(&self) -> DbBackend {
        self.txn.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        self.txn.execute_raw(stmt).await
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        self.txn.execute_unprepared(sql).await
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        self.txn.query_one_raw(stmt).await
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        self.txn.query_all_raw(stmt).await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

/// The setting the row-level-security policies compare `tenant_id` with.
pub(crate) const TENANT_SETTING: &str = "bursar.tenant_id";
/// The setting that admits the `agent_api_keys` row with this `key_hash`.
pub(crate) const KEY_HASH_SETTING: &str = "bursar.key_hash";
/// The setting that admits this user's `tenant_members` rows in every tenant.
pub(crate) const USER_SETTING: &str = "bursar.user_id";

/// Sets a PostgreSQL setting for the rest of the current transaction
/// (`set_config(name, value, true)`); it ends with the transaction.
pub(crate) async fn set_local(
    db: &impl ConnectionTrait,
    name: &str,
    value: &str,
) -> std::result::Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT set_config($1, $2, true)",
        [name.into(), value.into()],
    ))
    .await?;
    Ok(())
}

/// Names `tenant` in `bursar.tenant_id` for the rest of the current transaction.
pub(crate) async fn name_tenant(
    db: &impl ConnectionTrait,
    tenant: TenantId,
) -> std::result::Result<(), DbErr> {
    set_local(db, TENANT_SETTING, &tenant.to_string()).await
}

/// Writes the changed columns of a tenant-owned row, found by its primary
/// key **and** its `tenant_id`: `UPDATE "t" SET … WHERE "t"."id" = $1 AND
/// "t"."tenant_id" = $2`. SeaORM's `ActiveModel::update` filters by the
/// primary key alone; naming the tenant as well keeps the statement on the
/// tenant's shard when the database is distributed by `tenant_id`
/// (`docs/scaling.md`). The tenant is the row's own `tenant_id`, which a
/// row read through a scope always carries.
///
/// # Errors
/// [`DbErr::Custom`] when the entity has no `tenant_id` column or the model
/// does not carry one; [`DbErr::RecordNotUpdated`] when no row matched; the
/// database's error.
pub(crate) async fn update_owned<A, C>(
    db: &C,
    model: A,
) -> std::result::Result<<A::Entity as EntityTrait>::Model, DbErr>
where
    A: ActiveModelTrait + Send,
    C: ConnectionTrait,
    <A::Entity as EntityTrait>::Model: IntoActiveModel<A>,
{
    use std::str::FromStr;
    let table = A::Entity::default().table_name();
    let column = <A::Entity as EntityTrait>::Column::from_str("tenant_id")
        .map_err(|_| DbErr::Custom(format!("{table} has no tenant_id column")))?;
    let tenant = match model.get(column) {
        ActiveValue::Set(value) | ActiveValue::Unchanged(value) => value,
        ActiveValue::NotSet => {
            return Err(DbErr::Custom(format!(
                "an update of {table} that does not carry its tenant_id"
            )));
        }
    };
    A::Entity::update(model)
        .validate()?
        .filter(column.eq(tenant))
        .exec(db)
        .await
}

/// Begins a write transaction on `store`'s pool for `tenant` (see
/// [`Ctx::begin_write`]).
pub(crate) async fn begin_for(store: &crate::Store, tenant: TenantId) -> Result<Write> {
    Ctx::scoped(store, tenant).begin_write().await
}

/// Begins a write transaction on `store`'s pool that names no tenant (for
/// work on global rows, such as users), in the writers' line on SQLite.
pub(crate) async fn begin_unscoped(store: &crate::Store) -> Result<Write> {
    begin_in_line(store.connection(), store.writers()).await
}

/// `BEGIN IMMEDIATE` on `exec` (a plain `BEGIN` on PostgreSQL, a savepoint
/// inside a transaction), once it is this writer's turn in `writers`' line.
async fn begin_in_line<C>(exec: &C, writers: Option<&Writers>) -> Result<Write>
where
    C: TransactionTrait<Transaction = DatabaseTransaction>,
{
    let turn = match writers {
        Some(writers) => Some(writers.turn().await?),
        None => None,
    };
    let txn = exec
        .begin_with_options(TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..TransactionOptions::default()
        })
        .await?;
    Ok(Write { txn, _turn: turn })
}

/// The executor of a [`Ctx`]: the pool or a transaction, and whether
/// statements on the pool must name the tenant first.
///
/// It implements [`ConnectionTrait`], so repositories pass `&ctx.db` to SeaORM
/// as they would a connection. Inside a transaction it only forwards: the
/// transaction was begun by [`Ctx::begin_write`] (or [`begin_for`]) and already
/// names its tenant.
#[derive(Debug)]
pub(crate) struct Db<'a> {
    exec: DatabaseExecutor<'a>,
    tenant: TenantId,
    /// PostgreSQL with row-level security enforced.
    confine: bool,
    /// On a SQLite store's pool: the line write transactions wait in.
    writers: Option<&'a Writers>,
}

impl Db<'_> {
    /// The pool, when a statement on it must run in a transaction that names
    /// the tenant.
    fn confined_pool(&self) -> Option<&DatabaseConnection> {
        match &self.exec {
            DatabaseExecutor::Connection(conn) if self.confine => Some(conn),
            _ => None,
        }
    }

    fn reborrow(&self) -> Db<'_> {
        let exec = match &self.exec {
            DatabaseExecutor::Connection(c) => DatabaseExecutor::Connection(c),
            DatabaseExecutor::Transaction(t) => DatabaseExecutor::Transaction(t),
            DatabaseExecutor::OwnedTransaction(t) => DatabaseExecutor::Transaction(t),
        };
        Db {
            exec,
            tenant: self.tenant,
            confine: self.confine,
            writers: self.writers,
        }
    }

    /// A short transaction on the pool that names the tenant.
    async fn begin_named(
        &self,
        conn: &DatabaseConnection,
    ) -> std::result::Result<DatabaseTransaction, DbErr> {
        let txn = conn.begin().await?;
        if let Err(err) = name_tenant(&txn, self.tenant).await {
            discard(txn).await;
            return Err(err);
        }
        Ok(txn)
    }
}

/// Commits a short single-statement transaction on `Ok`, rolls it back on `Err`.
async fn close<T>(
    txn: DatabaseTransaction,
    result: std::result::Result<T, DbErr>,
) -> std::result::Result<T, DbErr> {
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            discard(txn).await;
            Err(err)
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Db<'_> {
    fn get_database_backend(&self) -> DbBackend {
        self.exec.get_database_backend()
    }

    async fn execute_raw(&self, stmt: Statement) -> std::result::Result<ExecResult, DbErr> {
        match self.confined_pool() {
            Some(conn) => {
                let txn = self.begin_named(conn).await?;
                let result = txn.execute_raw(stmt).await;
                close(txn, result).await
            }
            None => self.exec.execute_raw(stmt).await,
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> std::result::Result<ExecResult, DbErr> {
        match self.confined_pool() {
            Some(conn) => {
                let txn = self.begin_named(conn).await?;
                let result = txn.execute_unprepared(sql).await;
                close(txn, result).await
            }
            None => self.exec.execute_unprepared(sql).await,
        }
    }

    async fn query_one_raw(
        &self,
        stmt: Statement,
    ) -> std::result::Result<Option<QueryResult>, DbErr> {
        match self.confined_pool() {
            Some(conn) => {
                let txn = self.begin_named(conn).await?;
                let result = txn.query_one_raw(stmt).await;
                close(txn, result).await
            }
            None => self.exec.query_one_raw(stmt).await,
        }
    }

    async fn query_all_raw(&self, stmt: Statement) -> std::result::Result<Vec<QueryResult>, DbErr> {
        match self.confined_pool() {
            Some(conn) => {
                let txn = self.begin_named(conn).await?;
                let result = txn.query_all_raw(stmt).await;
                close(txn, result).await
            }
            None => self.exec.query_all_raw(stmt).await,
        }
    }

    fn support_returning(&self) -> bool {
        self.exec.support_returning()
    }
}

/// The connection (or transaction), tenant and clock a repository works with.
///
/// Repositories are built on a [`Db`], so the same code runs on the pool
/// (through [`TenantScope`](crate::store::TenantScope)) or inside a
/// transaction someone else opened (as `authorize` does).
#[derive(Debug)]
pub(crate) struct Ctx<'a> {
    pub(crate) db: Db<'a>,
    pub(crate) tenant: TenantId,
    pub(crate) clock: &'a dyn Clock,
    /// The store, for a context on its pool (writes there may join a
    /// group-commit batch); `None` inside a transaction.
    pub(crate) store: Option<&'a crate::Store>,
}

impl std::fmt::Debug for dyn Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

impl<'a> Ctx<'a> {
    /// A context on a transaction (or on the pool, for work that needs no
    /// tenant setting).
    pub(crate) fn new(
        db: impl Into<DatabaseExecutor<'a>>,
        tenant: TenantId,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            db: Db {
                exec: db.into(),
                tenant,
                confine: false,
                writers: None,
            },
            tenant,
            clock,
            store: None,
        }
    }

    /// A context on `store`'s pool for `tenant`, naming the tenant in every
    /// transaction when the store enforces row-level security.
    pub(crate) fn scoped(store: &'a crate::Store, tenant: TenantId) -> Self {
        Self {
            db: Db {
                exec: store.connection().into(),
                tenant,
                confine: store.confines(),
                writers: store.writers(),
            },
            tenant,
            clock: store.clock(),
            store: Some(store),
        }
    }

    /// The same executor, tenant and clock, borrowed: for calling another
    /// repository from inside one.
    pub(crate) fn reborrow(&self) -> Ctx<'_> {
        Ctx {
            db: self.db.reborrow(),
            tenant: self.tenant,
            clock: self.clock,
            store: self.store,
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// A write transaction: on the pool, `BEGIN IMMEDIATE` on SQLite once it
    /// is this writer's turn in the store's line ([`Writers`]; the write lock
    /// is taken at once, so a writer of another process is waited for on the
    /// busy timeout instead of failing on a lock upgrade), followed on
    /// PostgreSQL with row-level security enforced by the statement that
    /// names the tenant; inside a transaction, a savepoint (the transaction
    /// names the tenant already).
    pub(crate) async fn begin_write(&self) -> Result<Write> {
        let txn = begin_in_line(&self.db.exec, self.db.writers).await?;
        if self.db.confined_pool().is_some()
            && let Err(err) = name_tenant(&txn, self.tenant).await
        {
            discard(txn).await;
            return Err(err.into());
        }
        Ok(txn)
    }
}

/// Commits on `Ok`, rolls back on `Err`.
///
/// An `Ok` value is returned only once the commit succeeded: a failed commit
/// returns the commit's error, whatever `result` said. A failed rollback is
/// logged and `result`'s own error returned, since it says what went wrong.
/// Either way the connection's state is uncertain, and the pool's release
/// check closes it instead of handing it out again (see `Store`'s connect).
pub(crate) async fn finish<T>(txn: impl Into<Write>, result: Result<T>) -> Result<T> {
    let txn = txn.into();
    match result {
        Ok(value) => {
            txn.commit().await?;
            Ok(value)
        }
        Err(err) => {
            if let Err(rollback) = txn.rollback().await {
                tracing::warn!(
                    target: "bursar::store",
                    error = %rollback,
                    "rollback after a failed transaction failed"
                );
            }
            Err(err)
        }
    }
}

/// In-memory SQLite, and a fresh schema of `BURSAR_TEST_POSTGRES_URL` when
/// set: the stores a unit test runs on.
#[cfg(test)]
pub(crate) async fn test_stores() -> Vec<crate::store::Store> {
    let mut all = vec![
        crate::store::Store::connect("sqlite::memory:")
            .await
            .expect("an in-memory store"),
    ];
    if let Some(base) = std::env::var("BURSAR_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        let admin = sea_orm::Database::connect(base.as_str())
            .await
            .expect("PostgreSQL");
        let schema = format!("t_{}", uuid::Uuid::now_v7().simple());
        admin
            .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
            .await
            .expect("a schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");
        all.push(
            crate::store::Store::connect(&url)
                .await
                .expect("a PostgreSQL store"),
        );
    }
    all
}

/// Rolls back a transaction whose result is already decided; a failing
/// rollback is logged, never allowed to replace that result (the connection
/// is checked before it is reused).
pub(crate) async fn discard(txn: impl Into<Write>) {
    if let Err(rollback) = txn.into().rollback().await {
        tracing::warn!(
            target: "bursar::store",
            error = %rollback,
            "rollback of a finished transaction failed"
        );
    }
}

/// How many times bursar runs a write transaction that failed on contention
/// (a serialization failure, a deadlock, a busy SQLite database) before it
/// returns [`Error::Contention`] to the caller.
pub const MAX_CONTENTION_ATTEMPTS: u32 = 5;

/// Runs `attempt` (one whole write transaction, begun and finished inside it)
/// again while it fails with [`Error::Contention`], up to
/// [`MAX_CONTENTION_ATTEMPTS`] times, with a short growing pause between
/// tries. A contention failure has rolled the transaction back, so running it
/// again from the start is safe; any other result is returned as it is.
pub(crate) async fn retry_contention<T, F, Fut>(mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut tries = 1;
    loop {
        match attempt().await {
            Err(Error::Contention { .. }) if tries < MAX_CONTENTION_ATTEMPTS => {
                tracing::warn!(target: "bursar::store", tries, "contention; running the transaction again");
                tokio::time::sleep(std::time::Duration::from_millis(u64::from(tries) * 5)).await;
                tries += 1;
            }
            other => return other,
        }
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn store(busy: Duration) -> crate::Store {
        crate::Store::builder("sqlite::memory:")
            .busy_timeout(busy)
            .connect()
            .await
            .expect("store")
    }

    #[test]
    fn postgres_parameters_are_renumbered_outside_quotes() {
        assert_eq!(
            renumbered(
                r#"SELECT $1, '$2 ''$3''', 'a $2', "$4", "x$4", $10, $ 5, $$"#,
                5
            ),
            r#"SELECT $6, '$2 ''$3''', 'a $2', "$4", "x$4", $15, $ 5, $$"#
        );
        assert_eq!(renumbered("VALUES ($1, $2)", 0), "VALUES ($1, $2)");
        assert_eq!(
            renumbered("$99999999999999999999999", 1),
            "$99999999999999999999999"
        );
    }

    /// The rows of the scratch table `held`, in id order.
    async fn held_rows(conn: &DatabaseConnection) -> Vec<(i64, String)> {
        conn.query_all_raw(Statement::from_string(
            conn.get_database_backend(),
            "SELECT id, v FROM held ORDER BY id",
        ))
        .await
        .expect("rows")
        .iter()
        .map(|row| {
            (
                row.try_get_by_index(0).expect("id"),
                row.try_get_by_index(1).expect("v"),
            )
        })
        .collect()
    }

    /// `sql` with SQLite's `?` placeholders, written as `backend` writes them.
    fn placeholders(backend: DbBackend, sql: &str, values: Vec<sea_orm::Value>) -> Statement {
        let sql = match backend {
            DbBackend::Postgres => {
                let mut parts = sql.split('?');
                let mut out = parts.next().unwrap_or_default().to_owned();
                for (n, part) in parts.enumerate() {
                    out.push_str(&format!("${}{part}", n + 1));
                }
                out
            }
            _ => sql.to_owned(),
        };
        Statement::from_sql_and_values(backend, sql, values)
    }

    /// On PostgreSQL the held writes are parts of one statement, which the
    /// docs (and the lock order of `crate::store::reservations`) say run in
    /// the order they were held: a sequence each takes shows it.
    #[tokio::test]
    async fn held_writes_run_in_the_order_they_were_held() {
        for store in test_stores().await {
            let conn = store.connection();
            let backend = conn.get_database_backend();
            let table = match backend {
                DbBackend::Postgres => {
                    "CREATE TABLE held_order (seq BIGSERIAL PRIMARY KEY, v TEXT NOT NULL)"
                }
                _ => {
                    "CREATE TABLE held_order (seq INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT NOT NULL)"
                }
            };
            conn.execute_unprepared(table).await.expect("table");
            let mut writes = Deferred::default();
            for v in ["first", "second", "third"] {
                writes.add(
                    placeholders(
                        backend,
                        "INSERT INTO held_order (v) VALUES (?)",
                        vec![v.into()],
                    ),
                    1,
                );
            }
            writes.flush(conn).await.expect("sent together");
            let order: Vec<String> = conn
                .query_all_raw(Statement::from_string(
                    backend,
                    "SELECT v FROM held_order ORDER BY seq",
                ))
                .await
                .expect("rows")
                .iter()
                .map(|row| row.try_get_by_index(0).expect("v"))
                .collect();
            assert_eq!(order, ["first", "second", "third"], "{backend:?}");
        }
    }

    #[tokio::test]
    async fn held_writes_are_sent_together_in_order_and_checked() {
        for store in test_stores().await {
            let conn = store.connection();
            let backend = conn.get_database_backend();
            for table in [
                "CREATE TABLE held (id BIGINT PRIMARY KEY, v TEXT NOT NULL)",
                "CREATE TABLE held_child (id BIGINT PRIMARY KEY, \
                 parent BIGINT NOT NULL REFERENCES held (id))",
            ] {
                conn.execute_unprepared(table).await.expect("table");
            }
            let sql = |sql: &str, values: Vec<sea_orm::Value>| placeholders(backend, sql, values);
            let mut writes = Deferred::default();
            assert!(writes.take().is_none(), "nothing held");
            writes.flush(conn).await.expect("nothing to send");
            // Nothing held: the SELECT alone.
            let alone = sql("SELECT count(*) FROM held WHERE id > ?", vec![0i64.into()]);
            writes
                .flush_then(conn, Some(alone))
                .await
                .expect("the select alone");
            writes.add(
                sql(
                    "INSERT INTO held (id, v) VALUES (?, ?)",
                    vec![1i64.into(), "a".into()],
                ),
                1,
            );
            // The child refers to the row held before it.
            writes.add(
                sql(
                    "INSERT INTO held_child (id, parent) VALUES (?, ?)",
                    vec![10i64.into(), 1i64.into()],
                ),
                1,
            );
            writes.add(
                sql(
                    "INSERT INTO held (id, v) VALUES (?, ?), (?, ?) \
                     ON CONFLICT (id) DO UPDATE SET v = excluded.v",
                    vec![2i64.into(), "b".into(), 3i64.into(), "c".into()],
                ),
                2,
            );
            assert!(held_rows(conn).await.is_empty(), "held, not sent");
            // A one-value SELECT after them (on PostgreSQL in the same
            // statement) does not count as a row written.
            let after = sql("SELECT count(*) FROM held WHERE id > ?", vec![0i64.into()]);
            writes
                .flush_then(conn, Some(after))
                .await
                .expect("sent together");
            assert_eq!(
                held_rows(conn).await,
                [
                    (1, "a".to_owned()),
                    (2, "b".to_owned()),
                    (3, "c".to_owned())
                ],
                "{backend:?}"
            );
            assert!(writes.take().is_none(), "nothing held after a flush");

            // A model held whole is inserted with every value it has.
            let tenant = {
                use crate::store::{NewTenant, TenantRepository as _};
                let slug = format!("t{}", uuid::Uuid::now_v7().simple());
                store
                    .tenants()
                    .create(NewTenant::new("Acme", slug))
                    .await
                    .expect("tenant")
            };
            let now = Utc::now();
            let team = crate::entity::team::Model {
                id: crate::id::TeamId::new(),
                tenant_id: tenant.id,
                name: "Platform".to_owned(),
                slug: "platform".to_owned(),
                description: Some("held".to_owned()),
                created_at: now,
                updated_at: now,
            };
            writes.insert(backend, team.clone());
            writes.flush(conn).await.expect("the team");
            let found = crate::entity::team::Entity::find()
                .filter(crate::entity::team::Column::TenantId.eq(tenant.id))
                .all(conn)
                .await
                .expect("teams");
            assert_eq!(
                found
                    .iter()
                    .map(|t| (t.id, t.name.as_str(), t.description.as_deref()))
                    .collect::<Vec<_>>(),
                [(team.id, "Platform", Some("held"))],
                "{backend:?}"
            );

            // Writes that change another number of rows than they said are
            // refused, and nothing of them stays.
            writes.add(
                sql(
                    "INSERT INTO held (id, v) VALUES (?, ?)",
                    vec![4i64.into(), "d".into()],
                ),
                1,
            );
            writes.add(
                sql(
                    "INSERT INTO held (id, v) SELECT id + 10, v FROM held WHERE id > ?",
                    vec![1i64.into()],
                ),
                1,
            );
            let txn = conn.begin().await.expect("transaction");
            let err = writes.flush(&txn).await.expect_err("more rows than said");
            let said = match backend {
                // Every part of one PostgreSQL statement sees the rows as
                // they were before the statement.
                DbBackend::Postgres => "changed 3 rows where they should have changed 2",
                _ => "changed 4 rows where they should have changed 2",
            };
            assert!(format!("{err:?}").contains(said), "{backend:?}: {err:?}");
            txn.rollback().await.expect("rollback");
            assert_eq!(held_rows(conn).await.len(), 3, "{backend:?}");
        }
    }

    #[tokio::test]
    async fn sqlite_takes_what_is_held_and_one_more_in_one_call() {
        let store = store(Duration::from_secs(5)).await;
        let conn = store.connection();
        conn.execute_unprepared("CREATE TABLE held (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .await
            .expect("table");
        let insert = |id: i64| {
            Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "INSERT INTO held (id, v) VALUES (?, ?)",
                [id.into(), "x".into()],
            )
        };
        let mut writes = Deferred::default();
        // `then` puts its statement last, and counts only what was held.
        let (alone, rows) = writes.then(insert(1));
        assert_eq!((alone.sql.as_str(), rows), (insert(1).sql.as_str(), 0));
        writes.add(insert(2), 1);
        writes.add(insert(3), 1);
        let (call, rows) = writes.then(insert(4));
        assert_eq!(rows, 2);
        assert_eq!(
            conn.execute_raw(call).await.expect("call").rows_affected(),
            3
        );
        assert_eq!(
            held_rows(conn)
                .await
                .iter()
                .map(|(id, _)| *id)
                .collect::<Vec<_>>(),
            [2, 3, 4]
        );
        assert!(writes.take().is_none());
    }

    #[tokio::test]
    async fn sqlite_writers_take_turns_in_the_order_they_came() {
        let store = store(Duration::from_secs(5)).await;
        let tenant = TenantId::new();
        let first = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("first");
        let order = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut waiting = Vec::new();
        for n in 0..4 {
            let (store, order) = (store.clone(), order.clone());
            waiting.push(tokio::spawn(async move {
                let txn = Ctx::scoped(&store, tenant)
                    .begin_write()
                    .await
                    .expect("turn");
                order.lock().expect("order").push(n);
                txn.commit().await.expect("commit");
            }));
            // Each is in line before the next one comes.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            order.lock().expect("order").is_empty(),
            "nobody writes before the first ends"
        );
        first.commit().await.expect("commit");
        for w in waiting {
            w.await.expect("writer");
        }
        assert_eq!(*order.lock().expect("order"), vec![0, 1, 2, 3]);
    }

    #[tokio::test]
    async fn a_dropped_write_gives_up_its_turn_and_a_long_wait_is_contention() {
        let store = store(Duration::from_millis(100)).await;
        let tenant = TenantId::new();
        let held = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("held");
        let waited = Ctx::scoped(&store, tenant).begin_write().await;
        assert!(
            matches!(waited, Err(Error::Contention { .. })),
            "a writer that waits past the busy timeout is told so: {waited:?}"
        );
        // A caller that goes away mid-transaction (a dropped future) rolls
        // back and gives up its turn.
        drop(held);
        let next = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("next");
        next.commit().await.expect("commit");
    }

    #[tokio::test]
    async fn transactions_inside_a_transaction_are_savepoints_without_a_turn() {
        let store = store(Duration::from_millis(100)).await;
        let tenant = TenantId::new();
        let outer = Ctx::scoped(&store, tenant)
            .begin_write()
            .await
            .expect("outer");
        let inner = Ctx::new(&outer, tenant, store.clock()).begin_write().await;
        assert!(inner.is_ok(), "a savepoint waits for no turn: {inner:?}");
        inner.expect("inner").commit().await.expect("release");
        outer.commit().await.expect("commit");
    }
}
