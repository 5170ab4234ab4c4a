//! The tamper-evident audit log.
//!
//! Every tenant has its own chain: entry `n` stores the SHA-256 `hash` of its
//! own canonical form together with `prev_hash`, the hash of entry `n - 1` (64
//! zeros for the first). Changing, inserting or deleting any entry changes a
//! hash that a later entry recorded, which [`AuditLogRepository::verify`] detects.
//!
//! Appends are serialized per tenant (a transaction-scoped advisory lock on
//! PostgreSQL, the write lock on SQLite), so `seq` has no gaps or duplicates
//! even with many writers.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseBackend, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Statement,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::entity::audit_log::{self, AuditActorType, AuditDetails, AuditLevel, AuditStatus};
use crate::id::{AuditLogId, TenantId};
use crate::page::list_page;
use crate::page::{Page, PageRequest};
use crate::store::repo::{Ctx, Deferred};
use crate::{Error, Result};

/// `prev_hash` of a tenant's first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest `action` / `resource_type`, in bytes.
pub const MAX_ACTION_LEN: usize = 100;

/// An entry to append.
///
/// ```
/// use bursar::audit::AuditEntry;
/// use bursar::entity::audit_log::AuditActorType;
/// let entry = AuditEntry::new("policy.created", "policy")
///     .actor(AuditActorType::User, None)
///     .resource_id("pol_123")
///     .message("created by the admin console");
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct AuditEntry {
    actor_type: AuditActorType,
    actor_id: Option<uuid::Uuid>,
    action: String,
    resource_type: String,
    resource_id: Option<String>,
    level: AuditLevel,
    status: AuditStatus,
    correlation_id: Option<String>,
    ip_address: Option<String>,
    user_agent: Option<String>,
    message: Option<String>,
    details: AuditDetails,
}

impl AuditEntry {
    /// `action` (e.g. `purchase.authorized`) on a `resource_type` (e.g.
    /// `purchase_intent`), by the system, at level info, successful.
    #[must_use]
    pub fn new(action: impl Into<String>, resource_type: impl Into<String>) -> Self {
        Self {
            actor_type: AuditActorType::System,
            actor_id: None,
            action: action.into(),
            resource_type: resource_type.into(),
            resource_id: None,
            level: AuditLevel::Info,
            status: AuditStatus::Success,
            correlation_id: None,
            ip_address: None,
            user_agent: None,
            message: None,
            details: AuditDetails::default(),
        }
    }

    /// Who acted.
    #[must_use]
    pub fn actor(mut self, kind: AuditActorType, id: Option<uuid::Uuid>) -> Self {
        self.actor_type = kind;
        self.actor_id = id;
        self
    }

    /// The affected resource's id.
    #[must_use]
    pub fn resource_id(mut self, id: impl ToString) -> Self {
        self.resource_id = Some(id.to_string());
        self
    }

    /// The outcome (default: success).
    #[must_use]
    pub fn status(mut self, status: AuditStatus) -> Self {
        self.status = status;
        self
    }

    /// The severity (default: info).
    #[must_use]
    pub fn level(mut self, level: AuditLevel) -> Self {
        self.level = level;
        self
    }

    /// Groups entries of one request.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }

    /// The client's address and user agent.
    #[must_use]
    pub fn client(mut self, ip: Option<String>, user_agent: Option<String>) -> Self {
        self.ip_address = ip;
        self.user_agent = user_agent;
        self
    }

    /// A human summary.
    #[must_use]
    pub fn message(mut self, message: impl Into<String>) -> Self {
        self.message = Some(message.into());
        self
    }

    /// Structured details.
    #[must_use]
    pub fn details(mut self, details: AuditDetails) -> Self {
        self.details = details;
        self
    }

    /// Reason codes of the decision audited.
    #[must_use]
    pub fn reason_codes(mut self, codes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.details.reason_codes = codes.into_iter().map(Into::into).collect();
        self
    }

    fn validate(&self) -> Result<()> {
        for (field, value) in [
            ("action", &self.action),
            ("resource_type", &self.resource_type),
        ] {
            if value.is_empty() || value.len() > MAX_ACTION_LEN {
                return Err(Error::invalid(
                    field,
                    format!("{value:?} must be 1 to {MAX_ACTION_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }
}

/// The hashed, canonical form of an entry: every stored field but the hash.
#[derive(Serialize)]
struct Canonical<'a> {
    tenant_id: TenantId,
    seq: i64,
    actor_type: AuditActorType,
    actor_id: Option<uuid::Uuid>,
    action: &'a str,
    resource_type: &'a str,
    resource_id: Option<&'a str>,
    level: AuditLevel,
    status: AuditStatus,
    correlation_id: Option<&'a str>,
    ip_address: Option<&'a str>,
    user_agent: Option<&'a str>,
    message: Option<&'a str>,
    details: &'a AuditDetails,
    created_at: String,
    prev_hash: &'a str,
}

fn hash_of(m: &audit_log::Model) -> Result<String> {
    let canonical = Canonical {
        tenant_id: m.tenant_id,
        seq: m.seq,
        actor_type: m.actor_type,
        actor_id: m.actor_id,
        action: &m.action,
        resource_type: &m.resource_type,
        resource_id: m.resource_id.as_deref(),
        level: m.level,
        status: m.status,
        correlation_id: m.correlation_id.as_deref(),
        ip_address: m.ip_address.as_deref(),
        user_agent: m.user_agent.as_deref(),
        message: m.message.as_deref(),
        details: &m.details,
        created_at: m
            .created_at
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        prev_hash: &m.prev_hash,
    };
    let bytes = serde_json::to_vec(&canonical)
        .map_err(|e| Error::invalid("details", format!("cannot be serialized: {e}")))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

/// The last entry this process appended to each tenant's chain, as a guess
/// at the chain's head: [`append`] then writes the next entry without first
/// reading the head. The guess is only a guess (the transaction that wrote
/// it may have rolled back, another process may have appended since): the
/// insert that uses it checks it in the same statement ([`append_after`]),
/// and a wrong guess costs the read it would have saved.
static HEADS: std::sync::LazyLock<std::sync::Mutex<HashMap<TenantId, Head>>> =
    std::sync::LazyLock::new(Default::default);

/// How many tenants' heads [`HEADS`] remembers; past that it starts over.
const MAX_REMEMBERED_HEADS: usize = 4096;

/// A chain's last entry: its sequence number and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Head {
    seq: i64,
    hash: String,
}

fn heads() -> std::sync::MutexGuard<'static, HashMap<TenantId, Head>> {
    // Nothing panics while holding the lock; a poisoned map is still a
    // map of guesses.
    HEADS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn remembered(tenant: TenantId) -> Option<Head> {
    heads().get(&tenant).cloned()
}

fn remember(tenant: TenantId, head: Head) {
    remember_in(&mut heads(), tenant, head);
}

fn remember_in(heads: &mut HashMap<TenantId, Head>, tenant: TenantId, head: Head) {
    if heads.len() >= MAX_REMEMBERED_HEADS && !heads.contains_key(&tenant) {
        heads.clear();
    }
    heads.insert(tenant, head);
}

/// Appends `entry` to the tenant's chain inside the caller's write transaction.
///
/// Appends are serialized per tenant (see the module documentation). The
/// entry follows the head this process last wrote for the tenant when that
/// is still the head ([`append_after`]: one statement); otherwise the head is
/// read and the entry inserted after it.
pub(crate) async fn append(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    entry: AuditEntry,
    now: DateTime<Utc>,
) -> Result<audit_log::Model> {
    append_with(conn, tenant, Deferred::default(), entry, now).await
}

/// Inserts `row`, then appends `entry` as [`append`] does, inside the
/// caller's write transaction: [`writes_then_append`] with the one row.
pub(crate) async fn write_then_append<M, A>(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    row: M,
    entry: AuditEntry,
    now: DateTime<Utc>,
) -> Result<audit_log::Model>
where
    M: sea_orm::IntoActiveModel<A>,
    A: sea_orm::ActiveModelTrait,
{
    let mut writes = Deferred::default();
    writes.insert(conn.get_database_backend(), row);
    writes_then_append(conn, tenant, writes, entry, now).await
}

/// Sends the `writes` held so far, then appends `entry` as [`append`] does,
/// inside the caller's write transaction. On SQLite, when this process knows
/// the chain's head, the writes and the entry go to the database in one call
/// (SQLite runs them one after the other, binding the values in order): a
/// recorded fact and its audit entry cost one round trip. The writes say how
/// many rows they change, which is what tells from the rows the call changed
/// whether the entry went in.
pub(crate) async fn writes_then_append(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    writes: Deferred,
    entry: AuditEntry,
    now: DateTime<Utc>,
) -> Result<audit_log::Model> {
    append_with(conn, tenant, writes, entry, now).await
}

async fn append_with(
    conn: &impl ConnectionTrait,
    tenant: TenantId,
    mut writes: Deferred,
    entry: AuditEntry,
    now: DateTime<Utc>,
) -> Result<audit_log::Model> {
    entry.validate()?;
    let backend = conn.get_database_backend();
    let guess = remembered(tenant);
    if backend == DatabaseBackend::Postgres {
        // The writes, then the chain's lock (last in the lock order), in one
        // statement; the entry follows in a statement of its own, whose
        // snapshot is taken once the lock is held.
        let lock = Statement::from_sql_and_values(
            DatabaseBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [format!("bursar.audit.{tenant}").into()],
        );
        writes.flush_then(conn, Some(lock)).await?;
    } else if backend != DatabaseBackend::Sqlite || guess.is_none() {
        // Only SQLite takes the writes and the entry in one call; elsewhere,
        // and when the head must be read first anyway, the writes go first.
        writes.flush(conn).await?;
    }
    let mut model = audit_log::Model {
        id: AuditLogId::new(),
        tenant_id: tenant,
        // Set by `chain_after`, with `prev_hash` and `hash`.
        seq: 0,
        actor_type: entry.actor_type,
        actor_id: entry.actor_id,
        action: entry.action,
        resource_type: entry.resource_type,
        resource_id: entry.resource_id,
        level: entry.level,
        status: entry.status,
        correlation_id: entry.correlation_id,
        ip_address: entry.ip_address,
        user_agent: entry.user_agent,
        message: entry.message,
        details: entry.details,
        prev_hash: String::new(),
        hash: String::new(),
        // Stored at microsecond precision on every backend, so hash what is stored.
        created_at: now.trunc_subsecs(6),
    };
    let appended = match guess {
        Some(guess) => {
            chain_after(&mut model, Some(&guess))?;
            append_after(conn, writes, &model, &guess).await?
        }
        None => false,
    };
    if !appended {
        let head = read_head(conn, tenant).await?;
        chain_after(&mut model, head.as_ref())?;
        model = crate::store::repo::insert_known(conn, model).await?;
    }
    remember(
        tenant,
        Head {
            seq: model.seq,
            hash: model.hash.clone(),
        },
    );
    Ok(model)
}

/// Makes `entry` the successor of `head` (the first entry without one): its
/// sequence number, `prev_hash` and its own hash.
fn chain_after(entry: &mut audit_log::Model, head: Option<&Head>) -> Result<()> {
    (entry.seq, entry.prev_hash) = match head {
        Some(head) => (head.seq + 1, head.hash.clone()),
        None => (1, GENESIS_HASH.to_owned()),
    };
    entry.hash = hash_of(entry)?;
    Ok(())
}

/// The head of `tenant`'s chain, by the highest sequence number (not `ORDER
/// BY seq DESC LIMIT ?`, which SQLite compiles again on every call:
/// `crate::store::repo::first`).
async fn read_head(conn: &impl ConnectionTrait, tenant: TenantId) -> Result<Option<Head>> {
    use sea_orm::sea_query::ExprTrait as _;
    let newest = Query::select()
        .expr(audit_log::Column::Seq.max())
        .from(audit_log::Entity)
        .and_where(audit_log::Column::TenantId.eq(tenant))
        .to_owned();
    let head: Vec<(i64, String)> = audit_log::Entity::find()
        .select_only()
        .column(audit_log::Column::Seq)
        .column(audit_log::Column::Hash)
        .filter(audit_log::Column::TenantId.eq(tenant))
        .filter(Expr::col(audit_log::Column::Seq).eq(Expr::SubQuery(None, Box::new(newest.into()))))
        .into_tuple()
        .all(conn)
        .await?;
    Ok(head
        .into_iter()
        .next()
        .map(|(seq, hash)| Head { seq, hash }))
}

/// Inserts `entry` (already chained to `head`) if `head` is the head of its
/// tenant's chain, in one statement: `INSERT INTO audit_logs (…) SELECT …
/// WHERE EXISTS (entry head.seq with head.hash) AND NOT EXISTS (entry
/// head.seq + 1)`. Sequence numbers have no gaps, so an entry with no
/// successor is the head. The `writes` held (SQLite), if any, run first in
/// the same call; they are written whether or not the entry is.
/// Returns whether the entry was inserted.
async fn append_after(
    conn: &impl ConnectionTrait,
    mut writes: Deferred,
    entry: &audit_log::Model,
    head: &Head,
) -> Result<bool> {
    use sea_orm::sea_query::ExprTrait as _;
    use sea_orm::{ActiveModelTrait, IntoActiveModel, Iterable};
    let row = entry.clone().into_active_model();
    let (columns, values): (Vec<_>, Vec<_>) = audit_log::Column::iter()
        .filter_map(|column| row.get(column).into_value().map(|v| (column, Expr::val(v))))
        .unzip();
    let entry_at = |seq: i64| {
        Query::select()
            .expr(Expr::val(1))
            .from(audit_log::Entity)
            .and_where(audit_log::Column::TenantId.eq(entry.tenant_id))
            .and_where(audit_log::Column::Seq.eq(seq))
            .to_owned()
    };
    let guarded = Query::select()
        .exprs(values)
        .and_where(Expr::exists(
            entry_at(head.seq)
                .and_where(audit_log::Column::Hash.eq(head.hash.as_str()))
                .to_owned(),
        ))
        .and_where(Expr::exists(entry_at(head.seq + 1)).not())
        .to_owned();
    let insert = Query::insert()
        .into_table(audit_log::Entity)
        .columns(columns)
        .select_from(guarded)
        .map_err(|e| Error::Database(sea_orm::DbErr::Custom(e.to_string())))?
        .to_owned();
    let insert = conn.get_database_backend().build(&insert);
    let (call, written) = writes.then(insert);
    // SQLite reports the rows every statement changed: the writes' own, and
    // the entry's when the guess held.
    match conn.execute_raw(call).await?.rows_affected() {
        n if n == written + 1 => Ok(true),
        n if n == written => Ok(false),
        n => Err(Error::Database(sea_orm::DbErr::Custom(format!(
            "writes of {written} rows and an audit entry changed {n} rows"
        )))),
    }
}

/// What [`AuditLogRepository::search`] selects; every filter left unset matches all.
///
/// ```
/// use bursar::audit::AuditFilter;
/// use bursar::entity::audit_log::AuditLevel;
/// let f = AuditFilter::new().action("policy.updated").resource("policy", None).level(AuditLevel::Info);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditFilter {
    level: Option<AuditLevel>,
    actor: Option<(AuditActorType, Option<uuid::Uuid>)>,
    action: Option<String>,
    resource: Option<(String, Option<String>)>,
    correlation_id: Option<String>,
}

impl AuditFilter {
    /// Matches every entry.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Only entries at this level.
    #[must_use]
    pub fn level(mut self, level: AuditLevel) -> Self {
        self.level = Some(level);
        self
    }

    /// Only entries by this kind of actor (and this actor, when given).
    #[must_use]
    pub fn actor(mut self, kind: AuditActorType, id: Option<uuid::Uuid>) -> Self {
        self.actor = Some((kind, id));
        self
    }

    /// Only entries of this action (e.g. `policy.updated`).
    #[must_use]
    pub fn action(mut self, action: impl Into<String>) -> Self {
        self.action = Some(action.into());
        self
    }

    /// Only entries about this resource type (and this resource, when given).
    #[must_use]
    pub fn resource(mut self, resource_type: impl Into<String>, id: Option<String>) -> Self {
        self.resource = Some((resource_type.into(), id));
        self
    }

    /// Only entries of this correlation id.
    #[must_use]
    pub fn correlation_id(mut self, id: impl Into<String>) -> Self {
        self.correlation_id = Some(id.into());
        self
    }
}

/// The result of [`AuditLogRepository::verify`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Entries checked.
    pub entries: u64,
    /// The first entry whose hash, sequence or link does not hold, if any.
    pub first_broken_seq: Option<i64>,
}

impl ChainReport {
    /// Whether the whole chain holds.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.first_broken_seq.is_none()
    }
}

/// The audit log of one tenant (read side). Get it from
/// [`TenantScope::audit_log`](crate::store::TenantScope::audit_log).
#[derive(Debug)]
pub struct AuditLog<'a> {
    ctx: Ctx<'a>,
}

impl<'a> AuditLog<'a> {
    pub(crate) fn new(ctx: Ctx<'a>) -> Self {
        Self { ctx }
    }
}

/// The audit log of one tenant: its hash chain, searched, verified,
/// checkpointed and exported.
#[async_trait]
pub trait AuditLogRepository {
    /// Appends an entry of the host's own (a login, a setting change, …).
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty or over-long action or resource type;
    /// [`Error::Database`].
    async fn record(&self, entry: AuditEntry) -> Result<audit_log::Model>;
    /// Entries in chain order (oldest first), filtered by status (`success`,
    /// `error`, `denied`) and creation time.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad page size or status; [`Error::Database`].
    async fn list(&self, page: PageRequest) -> Result<Page<audit_log::Model>>;
    /// [`AuditLogRepository::list`], also filtered by level, actor, action, resource
    /// and correlation id.
    ///
    /// # Errors
    /// As [`AuditLogRepository::list`].
    async fn search(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<audit_log::Model>>;
    /// Recomputes every hash of the tenant's chain and checks each link.
    ///
    /// # Errors
    /// [`Error::Database`].
    async fn verify(&self) -> Result<ChainReport>;
    /// The tenant's chain head, signed with the provider's current key.
    ///
    /// ```
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// use bursar::audit::{AuditEntry, AuditLogRepository};
    /// use bursar::keys::StaticKeyring;
    /// use bursar::store::{NewTenant, TenantRepository};
    /// let store = bursar::Store::connect("sqlite::memory:").await?;
    /// let acme = store.tenant(store.tenants().create(NewTenant::new("Acme", "acme")).await?.id);
    /// let keys = StaticKeyring::new(1, [42; 32]);
    /// acme.audit_log().record(AuditEntry::new("login", "user")).await?;
    /// let checkpoint = acme.audit_log().checkpoint(&keys).await?;
    /// assert_eq!(checkpoint.seq, 1);
    /// assert!(acme.audit_log().verify_against(&checkpoint, &keys).await?.holds());
    /// # Ok::<(), bursar::Error>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    /// [`Error::Crypto`] when the provider lacks its current key;
    /// [`Error::Database`].
    async fn checkpoint(&self, keys: &dyn crate::keys::KeyProvider) -> Result<Checkpoint>;
    /// Checks the chain ([`AuditLogRepository::verify`]) and that it still holds the
    /// checkpoint's head with the same hash: dropped newest entries are
    /// [`CheckpointVerdict::Truncated`], a chain recomputed after an edit is
    /// [`CheckpointVerdict::Rewritten`].
    ///
    /// # Errors
    /// [`Error::Crypto`] when the checkpoint's signature does not verify
    /// with the provider's key (or the key is missing);
    /// [`Error::Invalid`] (field `checkpoint`) for another tenant's checkpoint;
    /// [`Error::Database`].
    async fn verify_against(
        &self,
        checkpoint: &Checkpoint,
        keys: &dyn crate::keys::KeyProvider,
    ) -> Result<CheckpointVerdict>;
    /// Writes the entries with `seq` in `from_seq..=to_seq` (to the head when
    /// `to_seq` is `None`) to `out` as JSON Lines, one stored entry per line
    /// in chain order, for offline verification with [`verify_export`] (or
    /// `bursar-audit verify FILE`). Returns the number of lines written.
    ///
    /// # Errors
    /// [`Error::Invalid`] (field `export`) when writing to `out` fails;
    /// [`Error::Database`].
    async fn export(
        &self,
        from_seq: i64,
        to_seq: Option<i64>,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64>;
}

#[async_trait]
impl AuditLogRepository for AuditLog<'_> {
    #[tracing::instrument(level = "debug", name = "bursar.audit_log.record", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn record(&self, entry: AuditEntry) -> Result<audit_log::Model> {
        let txn = self.ctx.begin_write().await?;
        let result = append(&txn, self.ctx.tenant, entry, self.ctx.now()).await;
        crate::store::repo::finish(txn, result).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.list", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn list(&self, page: PageRequest) -> Result<Page<audit_log::Model>> {
        self.search(&AuditFilter::new(), page).await
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.search", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn search(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<audit_log::Model>> {
        let mut query =
            audit_log::Entity::find().filter(audit_log::Column::TenantId.eq(self.ctx.tenant));
        if let Some(level) = filter.level {
            query = query.filter(audit_log::Column::Level.eq(level));
        }
        if let Some((kind, id)) = filter.actor {
            query = query.filter(audit_log::Column::ActorType.eq(kind));
            if let Some(id) = id {
                query = query.filter(audit_log::Column::ActorId.eq(id));
            }
        }
        if let Some(action) = &filter.action {
            query = query.filter(audit_log::Column::Action.eq(action.as_str()));
        }
        if let Some((kind, id)) = &filter.resource {
            query = query.filter(audit_log::Column::ResourceType.eq(kind.as_str()));
            if let Some(id) = id {
                query = query.filter(audit_log::Column::ResourceId.eq(id.as_str()));
            }
        }
        if let Some(id) = &filter.correlation_id {
            query = query.filter(audit_log::Column::CorrelationId.eq(id.as_str()));
        }
        if let Some(status) = page.status_filter() {
            let status = match status {
                "success" => AuditStatus::Success,
                "error" => AuditStatus::Error,
                "denied" => AuditStatus::Denied,
                other => {
                    return Err(Error::invalid(
                        "status",
                        format!("{other:?} is not one of success, error, denied"),
                    ));
                }
            };
            query = query.filter(audit_log::Column::Status.eq(status));
        }
        list_page(
            &self.ctx.db,
            query,
            audit_log::Column::CreatedAt,
            audit_log::Column::Seq,
            &page,
        )
        .await
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.verify", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn verify(&self) -> Result<ChainReport> {
        const BATCH: u64 = 1_000;
        let mut expected_prev = GENESIS_HASH.to_owned();
        let mut expected_seq = 1;
        let mut entries = 0;
        loop {
            let batch = audit_log::Entity::find()
                .filter(audit_log::Column::TenantId.eq(self.ctx.tenant))
                .filter(audit_log::Column::Seq.gte(expected_seq))
                .order_by_asc(audit_log::Column::Seq)
                .limit(BATCH)
                .all(&self.ctx.db)
                .await?;
            let done = (batch.len() as u64) < BATCH;
            for entry in batch {
                entries += 1;
                if entry.seq != expected_seq
                    || entry.prev_hash != expected_prev
                    || hash_of(&entry)? != entry.hash
                {
                    return Ok(ChainReport {
                        entries,
                        first_broken_seq: Some(expected_seq),
                    });
                }
                expected_prev = entry.hash;
                expected_seq += 1;
            }
            if done {
                return Ok(ChainReport {
                    entries,
                    first_broken_seq: None,
                });
            }
        }
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.checkpoint", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn checkpoint(&self, keys: &dyn crate::keys::KeyProvider) -> Result<Checkpoint> {
        let head = audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(self.ctx.tenant))
            .order_by_desc(audit_log::Column::Seq)
            .limit(1)
            .one(&self.ctx.db)
            .await?;
        let (seq, hash) = head.map_or((0, GENESIS_HASH.to_owned()), |h| (h.seq, h.hash));
        let version = keys.current_version();
        let key = crate::keys::derive(keys, version, CHECKPOINT_PURPOSE)?;
        let signature = hex::encode(&crate::keys::sign(
            &key,
            &Checkpoint::message(self.ctx.tenant, seq, &hash, version),
        )?);
        Ok(Checkpoint {
            tenant_id: self.ctx.tenant,
            seq,
            hash,
            key_version: version,
            signature,
        })
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.verify_against", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn verify_against(
        &self,
        checkpoint: &Checkpoint,
        keys: &dyn crate::keys::KeyProvider,
    ) -> Result<CheckpointVerdict> {
        if checkpoint.tenant_id != self.ctx.tenant {
            return Err(Error::invalid(
                "checkpoint",
                format!(
                    "belongs to tenant {}, not {}",
                    checkpoint.tenant_id, self.ctx.tenant
                ),
            ));
        }
        if !checkpoint.is_signed_by(keys)? {
            return Err(Error::Crypto {
                reason: "the checkpoint's signature does not match".into(),
            });
        }
        let report = self.verify().await?;
        if let Some(seq) = report.first_broken_seq {
            return Ok(CheckpointVerdict::Broken { seq });
        }
        if checkpoint.seq == 0 {
            return Ok(CheckpointVerdict::Holds {
                entries: report.entries,
            });
        }
        let at = audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(self.ctx.tenant))
            .filter(audit_log::Column::Seq.eq(checkpoint.seq))
            .one(&self.ctx.db)
            .await?;
        Ok(match at {
            None => CheckpointVerdict::Truncated {
                expected_seq: checkpoint.seq,
                found_seq: i64::try_from(report.entries).unwrap_or(i64::MAX),
            },
            Some(entry) if entry.hash != checkpoint.hash => CheckpointVerdict::Rewritten {
                seq: checkpoint.seq,
            },
            Some(_) => CheckpointVerdict::Holds {
                entries: report.entries,
            },
        })
    }

    #[tracing::instrument(level = "debug", name = "bursar.audit_log.export", skip_all, fields(tenant = %self.ctx.tenant))]
    async fn export(
        &self,
        from_seq: i64,
        to_seq: Option<i64>,
        out: &mut (dyn std::io::Write + Send),
    ) -> Result<u64> {
        const BATCH: u64 = 1_000;
        let mut next = from_seq.max(1);
        let mut written = 0;
        loop {
            let mut query = audit_log::Entity::find()
                .filter(audit_log::Column::TenantId.eq(self.ctx.tenant))
                .filter(audit_log::Column::Seq.gte(next));
            if let Some(to) = to_seq {
                query = query.filter(audit_log::Column::Seq.lte(to));
            }
            let batch = query
                .order_by_asc(audit_log::Column::Seq)
                .limit(BATCH)
                .all(&self.ctx.db)
                .await?;
            let done = (batch.len() as u64) < BATCH;
            for entry in batch {
                next = entry.seq + 1;
                let line = serde_json::to_string(&entry)
                    .map_err(|e| Error::invalid("export", format!("cannot serialize: {e}")))?;
                writeln!(out, "{line}")
                    .map_err(|e| Error::invalid("export", format!("cannot write: {e}")))?;
                written += 1;
            }
            if done {
                out.flush()
                    .map_err(|e| Error::invalid("export", format!("cannot write: {e}")))?;
                return Ok(written);
            }
        }
    }
}

/// Purpose of the key derived for checkpoint signatures.
const CHECKPOINT_PURPOSE: &str = "bursar/audit-checkpoint/v1";

/// A tenant's chain head, `(seq, hash)`, signed with a key from the host's
/// [`KeyProvider`](crate::keys::KeyProvider). Keep checkpoints away from the
/// database (a host's object store, a ticket, a log shipper): a later
/// [`AuditLogRepository::verify_against`] then detects both dropped newest entries and
/// a chain recomputed from an edited row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The tenant whose chain this is.
    pub tenant_id: TenantId,
    /// The head's sequence number (0 for an empty chain).
    pub seq: i64,
    /// The head's hash ([`GENESIS_HASH`] for an empty chain).
    pub hash: String,
    /// The key version the signature was made with.
    pub key_version: u32,
    /// HMAC-SHA-256 over the fields above, hex.
    pub signature: String,
}

impl Checkpoint {
    fn message(tenant: TenantId, seq: i64, hash: &str, key_version: u32) -> Vec<u8> {
        format!("bursar-audit-checkpoint\n{tenant}\n{seq}\n{hash}\n{key_version}").into_bytes()
    }

    /// Whether the signature was made by the provider's key of
    /// `key_version` over these fields.
    ///
    /// # Errors
    /// [`Error::Crypto`] when the provider does not hold that key version.
    pub fn is_signed_by(&self, keys: &dyn crate::keys::KeyProvider) -> Result<bool> {
        let key = crate::keys::derive(keys, self.key_version, CHECKPOINT_PURPOSE)?;
        let Some(tag) = hex::decode(&self.signature).ok() else {
            return Ok(false);
        };
        let message = Self::message(self.tenant_id, self.seq, &self.hash, self.key_version);
        Ok(crate::keys::verify(&key, &message, &tag))
    }
}

/// What [`AuditLogRepository::verify_against`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum CheckpointVerdict {
    /// The chain holds and still contains the checkpoint's head unchanged.
    Holds {
        /// Entries checked.
        entries: u64,
    },
    /// The chain itself is broken at this entry (see [`AuditLogRepository::verify`]).
    Broken {
        /// The first entry that does not hold.
        seq: i64,
    },
    /// The chain holds but ends before the checkpoint's head: its newest
    /// entries were dropped.
    Truncated {
        /// The checkpoint's head.
        expected_seq: i64,
        /// The chain's head now (0 when it is empty).
        found_seq: i64,
    },
    /// The chain holds but its entry at the checkpoint's head has another
    /// hash: the chain was recomputed after an edit at or before `seq`.
    Rewritten {
        /// The checkpoint's head.
        seq: i64,
    },
}

impl CheckpointVerdict {
    /// Whether the log is as the checkpoint says (and perhaps longer).
    #[must_use]
    pub fn holds(&self) -> bool {
        matches!(self, Self::Holds { .. })
    }
}

/// Runs `$body` (a block that may use `?` and `.await`, with `$ctx` a
/// [`Ctx`] on a write transaction) and appends the entry `$entry` makes from
/// its result, in that one transaction: the change and its audit entry
/// commit together or not at all.
macro_rules! audited_write {
    ($outer:expr, |$ctx:ident| $body:block, |$out:ident| $entry:expr) => {{
        let outer: &$crate::store::repo::Ctx<'_> = $outer;
        let txn = outer.begin_write().await?;
        let result = async {
            let $ctx = $crate::store::repo::Ctx::new(&txn, outer.tenant, outer.clock);
            let value = $body;
            {
                let $out = &value;
                $crate::audit::append(&txn, outer.tenant, $entry, outer.now()).await?;
            }
            Ok(value)
        }
        .await;
        $crate::store::repo::finish(txn, result).await
    }};
}
pub(crate) use audited_write;

/// What [`verify_export`] found in an exported file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    /// Lines read.
    pub entries: u64,
    /// The first and last `seq` read.
    pub seq_range: Option<(i64, i64)>,
    /// The first entry (by the `seq` it should have had) whose line does not
    /// parse, or whose hash, sequence or link does not hold.
    pub first_broken_seq: Option<i64>,
    /// The checkpoint's verdict, when one was given and the chain holds.
    pub checkpoint: Option<CheckpointVerdict>,
}

impl ExportReport {
    /// Whether the file holds, and agrees with the checkpoint if one was given.
    #[must_use]
    pub fn is_intact(&self) -> bool {
        self.first_broken_seq.is_none()
            && self
                .checkpoint
                .as_ref()
                .is_none_or(CheckpointVerdict::holds)
    }
}

/// Verifies an export of [`AuditLogRepository::export`] without a database: every
/// line's hash, the sequence and the links between lines (an export that
/// starts at `seq` 1 must start from [`GENESIS_HASH`]), and, with a
/// checkpoint, that the file reaches the checkpoint's head with its hash.
///
/// # Errors
/// [`Error::Crypto`] when the checkpoint's signature does not verify with
/// `keys`; [`Error::Invalid`] (field `export`) when the input cannot be read.
pub fn verify_export(
    input: impl std::io::BufRead,
    checkpoint: Option<(&Checkpoint, &dyn crate::keys::KeyProvider)>,
) -> Result<ExportReport> {
    if let Some((c, keys)) = checkpoint
        && !c.is_signed_by(keys)?
    {
        return Err(Error::Crypto {
            reason: "the checkpoint's signature does not match".into(),
        });
    }
    let mut report = ExportReport {
        entries: 0,
        seq_range: None,
        first_broken_seq: None,
        checkpoint: None,
    };
    let mut expected: Option<(i64, String)> = None;
    let mut last: Option<audit_log::Model> = None;
    let mut at_checkpoint: Option<String> = None;
    for line in input.lines() {
        let line = line.map_err(|e| Error::invalid("export", format!("cannot read: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        report.entries += 1;
        let next_seq = expected.as_ref().map_or(1, |(s, _)| *s);
        let Ok(entry) = serde_json::from_str::<audit_log::Model>(&line) else {
            report.first_broken_seq = Some(next_seq);
            return Ok(report);
        };
        let holds = match &expected {
            Some((seq, prev)) => entry.seq == *seq && entry.prev_hash == *prev,
            None => entry.seq >= 1 && (entry.seq > 1 || entry.prev_hash == GENESIS_HASH),
        } && hash_of(&entry)? == entry.hash
            && last.as_ref().is_none_or(|l| l.tenant_id == entry.tenant_id);
        if !holds {
            report.first_broken_seq = Some(expected.map_or(entry.seq, |(s, _)| s));
            return Ok(report);
        }
        let first = report.seq_range.map_or(entry.seq, |(f, _)| f);
        report.seq_range = Some((first, entry.seq));
        expected = Some((entry.seq + 1, entry.hash.clone()));
        if checkpoint.is_some_and(|(c, _)| c.seq == entry.seq) {
            at_checkpoint = Some(entry.hash.clone());
        }
        last = Some(entry);
    }
    if let Some((c, _)) = checkpoint {
        let head = last.as_ref().map_or(0, |l| l.seq);
        let first = report.seq_range.map_or(1, |(f, _)| f);
        if c.seq > 0 && first > c.seq {
            return Err(Error::invalid(
                "export",
                format!(
                    "starts at seq {first}, after the checkpoint's head {}",
                    c.seq
                ),
            ));
        }
        report.checkpoint = Some(
            if last.as_ref().is_some_and(|l| l.tenant_id != c.tenant_id) {
                CheckpointVerdict::Rewritten { seq: c.seq }
            } else if head < c.seq {
                CheckpointVerdict::Truncated {
                    expected_seq: c.seq,
                    found_seq: head,
                }
            } else if c.seq == 0 || at_checkpoint.as_deref() == Some(c.hash.as_str()) {
                CheckpointVerdict::Holds {
                    entries: report.entries,
                }
            } else {
                CheckpointVerdict::Rewritten { seq: c.seq }
            },
        );
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewTenant, TenantRepository};

    async fn tenant() -> (crate::Store, crate::TenantScope) {
        let store = crate::Store::connect("sqlite::memory:")
            .await
            .expect("store");
        let id = store
            .tenants()
            .create(NewTenant::new("Acme", "acme"))
            .await
            .expect("tenant")
            .id;
        let scope = store.tenant(id);
        (store, scope)
    }

    async fn record(store: &crate::Store, tenant: TenantId, n: usize) -> audit_log::Model {
        let mut last = None;
        for _ in 0..n {
            last = Some(
                append(
                    store.connection(),
                    tenant,
                    AuditEntry::new("test.entry", "test"),
                    Utc::now(),
                )
                .await
                .expect("append"),
            );
        }
        last.expect("at least one entry")
    }

    async fn assert_chain(scope: &crate::TenantScope, entries: u64) {
        let report = scope.audit_log().verify().await.expect("verify");
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.entries, entries);
    }

    #[tokio::test]
    async fn an_entry_follows_the_remembered_head_when_it_is_the_head() {
        let (store, scope) = tenant().await;
        let tenant = scope.tenant_id();
        let first = record(&store, tenant, 1).await;
        assert_eq!((first.seq, first.prev_hash.as_str()), (1, GENESIS_HASH));
        let guess = remembered(tenant).expect("remembered");
        assert_eq!(
            guess,
            Head {
                seq: 1,
                hash: first.hash.clone()
            }
        );
        let second = record(&store, tenant, 1).await;
        assert_eq!((second.seq, &second.prev_hash), (2, &first.hash));
        assert_eq!(remembered(tenant).map(|h| h.seq), Some(2));
        assert_chain(&scope, 2).await;
    }

    #[tokio::test]
    async fn a_wrong_guess_at_the_head_is_found_out_and_the_entry_chained_to_the_real_one() {
        let (store, scope) = tenant().await;
        let tenant = scope.tenant_id();
        let third = record(&store, tenant, 3).await;
        let first = audit_log::Entity::find()
            .filter(audit_log::Column::TenantId.eq(tenant))
            .filter(audit_log::Column::Seq.eq(1))
            .one(store.connection())
            .await
            .expect("read")
            .expect("first entry");
        let mut head = third;
        let mut entries = 3;
        // An older entry (another process appended since), one that was
        // never committed (a rolled-back transaction), the head's sequence
        // number with another hash (written to another database), nothing.
        for wrong in [
            Some(Head {
                seq: 1,
                hash: first.hash.clone(),
            }),
            Some(Head {
                seq: head.seq + 5,
                hash: "f".repeat(64),
            }),
            Some(Head {
                seq: head.seq,
                hash: "0".repeat(64),
            }),
            None,
        ] {
            match wrong.clone() {
                Some(guess) => remember(tenant, guess),
                None => {
                    heads().remove(&tenant);
                }
            }
            let next = record(&store, tenant, 1).await;
            entries += 1;
            assert_eq!(
                (next.seq, &next.prev_hash),
                (head.seq + 1, &head.hash),
                "after the guess {wrong:?}"
            );
            head = next;
            assert_chain(&scope, entries).await;
        }
    }

    /// A team row to write before an entry: any row.
    fn team(tenant: TenantId, n: usize) -> crate::entity::team::Model {
        let now = Utc::now();
        crate::entity::team::Model {
            id: crate::id::TeamId::new(),
            tenant_id: tenant,
            name: format!("team {n}"),
            slug: format!("team-{n}"),
            description: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[tokio::test]
    async fn a_write_and_the_entry_after_it_are_both_recorded_once_whether_the_guess_holds_or_not()
    {
        use crate::entity::team;
        let (store, scope) = tenant().await;
        let tenant = scope.tenant_id();
        let mut head = record(&store, tenant, 2).await;
        // The remembered head (one call), an older entry, an entry never
        // written, no guess (the write goes alone, then the head is read).
        let wrongs = [
            None,
            Some(Head {
                seq: 1,
                hash: head.prev_hash.clone(),
            }),
            Some(Head {
                seq: 40,
                hash: "f".repeat(64),
            }),
        ];
        for (n, wrong) in wrongs.into_iter().map(Some).chain([None]).enumerate() {
            match wrong.clone() {
                Some(Some(guess)) => remember(tenant, guess),
                Some(None) => {}
                None => {
                    heads().remove(&tenant);
                }
            }
            let next = write_then_append(
                store.connection(),
                tenant,
                team(tenant, n),
                AuditEntry::new("team.created", "team"),
                Utc::now(),
            )
            .await
            .expect("write and append");
            assert_eq!(
                (next.seq, &next.prev_hash),
                (head.seq + 1, &head.hash),
                "after the guess {wrong:?}"
            );
            head = next;
            let teams = team::Entity::find()
                .filter(team::Column::TenantId.eq(tenant))
                .all(store.connection())
                .await
                .expect("teams");
            assert_eq!(
                teams.len(),
                n + 1,
                "each write once, after the guess {wrong:?}"
            );
            assert_chain(&scope, 3 + u64::try_from(n).expect("small")).await;
        }
    }

    #[test]
    fn the_remembered_heads_start_over_when_full() {
        let tenants: Vec<TenantId> = (0..=MAX_REMEMBERED_HEADS)
            .map(|_| TenantId::new())
            .collect();
        let mut heads = HashMap::new();
        for (i, t) in tenants.iter().enumerate() {
            remember_in(
                &mut heads,
                *t,
                Head {
                    seq: i64::try_from(i).expect("small"),
                    hash: String::new(),
                },
            );
        }
        assert_eq!(heads.len(), 1, "started over once full");
        let last = tenants.last().expect("a tenant");
        assert!(heads.contains_key(last), "the newest one is kept");
        // A tenant already remembered is updated in place, full or not.
        for t in &tenants[..MAX_REMEMBERED_HEADS - 1] {
            remember_in(
                &mut heads,
                *t,
                Head {
                    seq: 0,
                    hash: String::new(),
                },
            );
        }
        assert_eq!(heads.len(), MAX_REMEMBERED_HEADS);
        remember_in(
            &mut heads,
            *last,
            Head {
                seq: 7,
                hash: String::new(),
            },
        );
        assert_eq!(heads.len(), MAX_REMEMBERED_HEADS);
        assert_eq!(heads.get(last).map(|h| h.seq), Some(7));
    }
}
