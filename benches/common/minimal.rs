//! The minimal baseline for `authorize`: the fewest statements a hand-written
//! implementation needs for what an approved `authorize` guarantees on a
//! budget hierarchy — the current windows of every applicable budget locked
//! in ascending id order, all or nothing held with a guarded update
//! (`spent + reserved + amount <= limit` on every window), the reservation,
//! one line and one ledger entry per window, the approved purchase intent,
//! and an audit entry chained to the tenant's previous one by its hash (the
//! same canonical form `audit_log().verify()` checks). Shared by
//! `benches/authorize.rs` and `tests/authorize_baseline.rs`.
//!
//! * PostgreSQL: `BEGIN` together with the tenant's audit-chain advisory lock
//!   (one simple-query message), then one data-modifying CTE that does
//!   everything above, hashes included (`sha256` in SQL), then `COMMIT`:
//!   three round trips.
//! * SQLite: `BEGIN IMMEDIATE`, one `UPDATE … RETURNING` that moves every
//!   window (exact fixed-width decimal arithmetic in SQL) and returns the
//!   audit chain's head, then one `INSERT` per table (lines and ledger
//!   entries multi-row), then `COMMIT`: eight statements, through sqlx
//!   ([`sqlite`]) or through rusqlite on the same `libsqlite3-sys`
//!   ([`rusqlite_engine`]).
//!
//! What it leaves out, since the definition above does not need it: policy
//! evaluation, the tenant, agent and merchant reads and writes, events. It
//! expects the current windows to exist (a first bursar call creates them),
//! and reports a missing one as an error where bursar would create it.
#![allow(dead_code)]

use bursar::audit::GENESIS_HASH;
use bursar::entity::audit_log::{AuditActorType, AuditDetails, AuditLevel, AuditStatus};
use bursar::money::Amount;
use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Any failure of the baseline.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The most windows one request may hold on (agent, team, project, run,
/// tenant): the multi-row inserts are written for each count up to this.
pub const MAX_WINDOWS: usize = 5;

/// How long a hold lives (bursar's default reservation TTL).
pub fn hold_ttl() -> Duration {
    Duration::minutes(15)
}

/// Whom the baseline authorizes for, when, and how much.
#[derive(Clone, Debug)]
pub struct Target {
    /// The tenant.
    pub tenant: Uuid,
    /// The agent.
    pub agent: Uuid,
    /// The agent's team.
    pub team: Uuid,
    /// The instant of every call.
    pub now: DateTime<Utc>,
    /// The amount held, USD.
    pub amount: Amount,
    /// The merchant.
    pub merchant: String,
}

/// bursar's canonical form of an audit entry (`src/audit.rs`): every stored
/// field but the hash, in this order.
#[derive(Serialize)]
struct Canonical<'a> {
    tenant_id: Uuid,
    seq: i64,
    actor_type: AuditActorType,
    actor_id: Option<Uuid>,
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

/// One call's rows, computed before any statement runs.
#[derive(Clone, Debug)]
pub struct Call {
    /// The reservation's id.
    pub reservation: Uuid,
    /// The intent's id.
    pub intent: Uuid,
    /// The audit entry's id.
    pub audit: Uuid,
    /// The amount, as stored.
    pub amount: String,
    /// Zero, as stored.
    pub zero: String,
    /// When the hold expires.
    pub expires_at: DateTime<Utc>,
    /// The audit entry's message.
    pub message: String,
    /// The audit entry's details, as JSON.
    pub details: String,
    /// The canonical form up to the sequence number.
    pub head: String,
    /// The canonical form between the sequence number and the previous hash.
    pub middle: String,
    /// The audit entry's timestamp (microseconds, as hashed).
    pub audited_at: DateTime<Utc>,
}

/// The action of the audit entry.
pub const ACTION: &str = "purchase.approved";

impl Call {
    /// The rows of one approved purchase for `t`.
    pub fn new(t: &Target) -> Result<Self, Error> {
        let intent = Uuid::now_v7();
        let audited_at = t.now.trunc_subsecs(6);
        let resource_id = intent.to_string();
        let message = format!("{} USD at {:?}", t.amount, t.merchant);
        let details = AuditDetails::default();
        // Serialized with a sequence number of 0 and an empty previous hash,
        // then cut around both: the hash is taken over
        // head ‖ seq ‖ middle ‖ prev_hash ‖ `"}`.
        let text = serde_json::to_string(&Canonical {
            tenant_id: t.tenant,
            seq: 0,
            actor_type: AuditActorType::Agent,
            actor_id: Some(t.agent),
            action: ACTION,
            resource_type: "purchase_intent",
            resource_id: Some(&resource_id),
            level: AuditLevel::Info,
            status: AuditStatus::Success,
            correlation_id: None,
            ip_address: None,
            user_agent: None,
            message: Some(&message),
            details: &details,
            created_at: audited_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            prev_hash: "",
        })?;
        let seq_at = text
            .find("\"seq\":0,")
            .ok_or("no seq in the canonical form")?
            + 6;
        let tail = "\"prev_hash\":\"\"}";
        if !text.ends_with(tail) {
            return Err("the canonical form does not end with prev_hash".into());
        }
        Ok(Self {
            reservation: Uuid::now_v7(),
            intent,
            audit: Uuid::now_v7(),
            amount: t.amount.to_db_string(),
            zero: Amount::ZERO.to_db_string(),
            expires_at: t.now + hold_ttl(),
            message,
            details: serde_json::to_string(&details)?,
            head: text[..seq_at].to_owned(),
            middle: text[seq_at + 1..text.len() - 2].to_owned(),
            audited_at,
        })
    }

    /// The resource id of the audit entry: the intent's id.
    pub fn resource_id(&self) -> String {
        self.intent.to_string()
    }

    /// The hash of the audit entry at `seq` after `prev`.
    pub fn hash(&self, seq: i64, prev: &str) -> String {
        let canonical = format!("{}{seq}{}{prev}\"}}", self.head, self.middle);
        hex::encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// The chain position after the head `(seq, hash)`, if any.
pub fn next_in_chain(head: Option<(i64, String)>) -> (i64, String) {
    match head {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    }
}

/// The PostgreSQL baseline.
pub mod postgres {
    use super::*;

    /// `BEGIN` and the tenant's audit-chain lock (the key bursar takes), in
    /// one simple-query message.
    pub fn begin(tenant: Uuid) -> String {
        format!("BEGIN; SELECT pg_advisory_xact_lock(hashtextextended('bursar.audit.{tenant}', 0))")
    }

    /// The one statement. Parameters: $1 tenant, $2 agent, $3 team, $4 now,
    /// $5 amount, $6 zero, $7 reservation, $8 intent, $9 expiry, $10
    /// merchant, $11 audit id, $12 audit resource id, $13 message, $14
    /// details, $15 canonical head, $16 canonical middle, $17 audit time.
    /// Returns the applicable budgets, the windows moved and the audit
    /// entry's sequence number (none when nothing was held).
    pub const AUTHORIZE: &str = "\
WITH app AS (
    SELECT id FROM budgets
    WHERE tenant_id = $1 AND is_active AND currency = 'USD'
      AND (scope_kind = 'tenant' OR (scope_kind = 'agent' AND scope_id = $2)
           OR (scope_kind = 'team' AND scope_id = $3))
), locked AS (
    SELECT w.id, w.budget_id, w.spent, w.reserved, w.limit_amount
    FROM budget_windows w JOIN app ON w.budget_id = app.id
    WHERE w.tenant_id = $1 AND w.period_start <= $4
      AND (w.period_end IS NULL OR w.period_end > $4)
    ORDER BY w.id FOR UPDATE OF w
), upd AS (
    UPDATE budget_windows w
    SET reserved = to_char(w.reserved::numeric + $5::numeric, 'FM00000000000000000000.000000'),
        updated_at = $4
    FROM locked l
    WHERE w.id = l.id
      AND (SELECT count(*) FROM locked) = (SELECT count(*) FROM app)
      AND NOT EXISTS (SELECT 1 FROM locked x
          WHERE x.spent::numeric + x.reserved::numeric + $5::numeric > x.limit_amount::numeric)
    RETURNING w.id, w.budget_id
), res AS (
    INSERT INTO reservations (id, tenant_id, agent_id, purchase_intent_id, currency, amount,
        captured_amount, refunded_amount, status, expires_at, created_at, updated_at)
    SELECT $7, $1, $2, $8, 'USD', $5, $6, $6, 'held', $9, $4, $4
    WHERE EXISTS (SELECT 1 FROM upd)
), lines AS (
    INSERT INTO reservation_lines (id, tenant_id, reservation_id, budget_id, window_id,
        amount, captured_amount, refunded_amount, created_at)
    SELECT gen_random_uuid(), $1, $7, budget_id, id, $5, $6, $6, $4 FROM upd
), ledger AS (
    INSERT INTO ledger_entries (id, tenant_id, budget_id, window_id, reservation_id,
        entry_type, bucket, direction, amount, currency, occurred_at, created_at)
    SELECT gen_random_uuid(), $1, budget_id, id, $7, 'reserve', 'reserved', 'debit', $5,
        'USD', $4, $4 FROM upd
), intent AS (
    INSERT INTO purchase_intents (id, tenant_id, agent_id, team_id, amount, currency,
        merchant_name, action_kind, metadata, status, reasons, reservation_id, created_at,
        updated_at)
    SELECT $8, $1, $2, $3, $5, 'USD', $10, 'purchase', '{}'::jsonb, 'approved', '[]'::jsonb,
        $7, $4, $4
    WHERE EXISTS (SELECT 1 FROM upd)
), head AS (
    SELECT seq, hash FROM audit_logs WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1
), nxt AS (
    SELECT coalesce((SELECT seq FROM head), 0) + 1 AS seq,
        coalesce((SELECT hash FROM head),
            '0000000000000000000000000000000000000000000000000000000000000000') AS prev
), audit AS (
    INSERT INTO audit_logs (id, tenant_id, seq, actor_type, actor_id, action, resource_type,
        resource_id, level, status, message, details, prev_hash, hash, created_at)
    SELECT $11, $1, n.seq, 'agent', $2, 'purchase.approved', 'purchase_intent', $12, 'info',
        'success', $13, $14::jsonb, n.prev,
        encode(sha256(convert_to($15 || n.seq::text || $16 || n.prev || '\"}', 'UTF8')), 'hex'),
        $17
    FROM nxt n WHERE EXISTS (SELECT 1 FROM upd)
    RETURNING seq
)
SELECT (SELECT count(*) FROM app) AS budgets, (SELECT count(*) FROM upd) AS windows,
    (SELECT seq FROM audit) AS seq";

    /// One approved purchase; returns the windows held on.
    pub async fn authorize(pool: &sqlx::PgPool, begin: &str, t: &Target) -> Result<usize, Error> {
        use sqlx::Row;
        let c = Call::new(t)?;
        // The tenant id in it is a UUID: nothing to escape.
        let mut tx = pool
            .begin_with(sqlx::AssertSqlSafe(begin.to_owned()))
            .await?;
        let row = sqlx::query(AUTHORIZE)
            .bind(t.tenant)
            .bind(t.agent)
            .bind(t.team)
            .bind(t.now)
            .bind(&c.amount)
            .bind(&c.zero)
            .bind(c.reservation)
            .bind(c.intent)
            .bind(c.expires_at)
            .bind(&t.merchant)
            .bind(c.audit)
            .bind(c.resource_id())
            .bind(&c.message)
            .bind(&c.details)
            .bind(&c.head)
            .bind(&c.middle)
            .bind(c.audited_at)
            .fetch_one(&mut *tx)
            .await?;
        let budgets: i64 = row.try_get(0)?;
        let windows: i64 = row.try_get(1)?;
        let seq: Option<i64> = row.try_get(2)?;
        if windows == 0 || windows != budgets || seq.is_none() {
            tx.rollback().await?;
            return Err(format!(
                "nothing held: {budgets} budgets apply, {windows} windows moved \
                 (a window is missing or a budget ran out)"
            )
            .into());
        }
        tx.commit().await?;
        Ok(usize::try_from(windows)?)
    }
}

/// The SQLite statements, shared by the sqlx and rusqlite engines
/// (`?N` parameters, which both number the same way).
pub mod sqlite_sql {
    use super::MAX_WINDOWS;
    use crate::sql_text::{leak, values};

    /// `a + b` over two fixed-width amount texts, exactly (integer
    /// arithmetic on the whole and the micro parts), as fixed-width text.
    /// Exact while the sums stay below 9.2 × 10¹⁸ units.
    fn add(a: &str, b: &str) -> String {
        let whole = |x: &str| format!("CAST(substr({x}, 1, 20) AS INTEGER)");
        let micros = |x: &str| format!("CAST(substr({x}, 22, 6) AS INTEGER)");
        let frac = format!("({} + {})", micros(a), micros(b));
        format!(
            "printf('%020d.%06d', {} + {} + {frac} / 1000000, {frac} % 1000000)",
            whole(a),
            whole(b)
        )
    }

    /// The statements.
    pub struct Sql {
        /// Moves every current window of the applicable budgets by `?5`, all
        /// or none; returns each window's id and budget, and the audit
        /// chain's head. Parameters: ?1 tenant, ?2 agent, ?3 team, ?4 now,
        /// ?5 amount.
        pub hold: &'static str,
        /// The reservation.
        pub reservation: &'static str,
        /// The approved intent.
        pub intent: &'static str,
        /// One line per window, for 1 to [`MAX_WINDOWS`] windows.
        pub lines: Vec<&'static str>,
        /// One ledger entry per window, for 1 to [`MAX_WINDOWS`] windows.
        pub ledger: Vec<&'static str>,
        /// The audit entry.
        pub audit: &'static str,
    }

    impl Sql {
        /// Writes them.
        pub fn new() -> Self {
            let fits = format!("{} > limit_amount", add(&add("spent", "reserved"), "?5"));
            let hold = leak(format!(
                "WITH app AS (
    SELECT id FROM budgets
    WHERE tenant_id = ?1 AND is_active = 1 AND currency = 'USD'
      AND (scope_kind = 'tenant' OR (scope_kind = 'agent' AND scope_id = ?2)
           OR (scope_kind = 'team' AND scope_id = ?3))
), cur AS (
    SELECT w.id, w.spent, w.reserved, w.limit_amount
    FROM budget_windows w JOIN app ON w.budget_id = app.id
    WHERE w.tenant_id = ?1 AND w.period_start <= ?4
      AND (w.period_end IS NULL OR w.period_end > ?4)
)
UPDATE budget_windows SET reserved = {}, updated_at = ?4
WHERE tenant_id = ?1 AND id IN (SELECT id FROM cur)
  AND (SELECT count(*) FROM cur) = (SELECT count(*) FROM app)
  AND NOT EXISTS (SELECT 1 FROM cur WHERE {fits})
RETURNING id, budget_id,
    (SELECT seq FROM audit_logs WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT 1),
    (SELECT hash FROM audit_logs WHERE tenant_id = ?1 ORDER BY seq DESC LIMIT 1)",
                add("reserved", "?5")
            ));
            let counts = 1..=MAX_WINDOWS;
            Self {
                hold,
                reservation: "INSERT INTO reservations (id, tenant_id, agent_id, \
                    purchase_intent_id, currency, amount, captured_amount, refunded_amount, \
                    status, expires_at, created_at, updated_at) \
                    VALUES (?1, ?2, ?3, ?4, 'USD', ?5, ?6, ?6, 'held', ?7, ?8, ?8)",
                intent: "INSERT INTO purchase_intents (id, tenant_id, agent_id, team_id, amount, \
                    currency, merchant_name, action_kind, metadata, status, reasons, \
                    reservation_id, created_at, updated_at) \
                    VALUES (?1, ?2, ?3, ?4, ?5, 'USD', ?6, 'purchase', '{}', 'approved', '[]', \
                    ?7, ?8, ?8)",
                lines: counts
                    .clone()
                    .map(|n| {
                        leak(format!(
                            "INSERT INTO reservation_lines (id, tenant_id, reservation_id, \
                             budget_id, window_id, amount, captured_amount, refunded_amount, \
                             created_at) VALUES {}",
                            values('?', 9, n)
                        ))
                    })
                    .collect(),
                ledger: counts
                    .map(|n| {
                        leak(format!(
                            "INSERT INTO ledger_entries (id, tenant_id, budget_id, window_id, \
                             reservation_id, entry_type, bucket, direction, amount, currency, \
                             occurred_at, created_at) VALUES {}",
                            values('?', 12, n)
                        ))
                    })
                    .collect(),
                audit: "INSERT INTO audit_logs (id, tenant_id, seq, actor_type, actor_id, \
                    action, resource_type, resource_id, level, status, message, details, \
                    prev_hash, hash, created_at) VALUES (?1, ?2, ?3, 'agent', ?4, \
                    'purchase.approved', 'purchase_intent', ?5, 'info', 'success', ?6, ?7, ?8, \
                    ?9, ?10)",
            }
        }
    }
}

/// A parameter of the SQLite statements, bound by either engine.
#[derive(Clone, Debug)]
pub enum Param {
    /// A UUID (a 16-byte blob on SQLite).
    Id(Uuid),
    /// Text.
    Text(String),
    /// An integer.
    Int(i64),
    /// An instant (text on SQLite, as sqlx writes it).
    Time(DateTime<Utc>),
}

/// An instant as sqlx's SQLite driver stores it.
pub fn sqlite_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A window moved by the hold: its id and its budget's.
#[derive(Clone, Copy, Debug)]
pub struct Held {
    /// The window.
    pub window: Uuid,
    /// Its budget.
    pub budget: Uuid,
}

/// The parameters of the SQLite statements for one call: the hold's first,
/// the inserts' once the hold has returned the windows and the chain's head.
pub mod sqlite_params {
    use super::*;

    /// The hold's parameters.
    pub fn hold(t: &Target, c: &Call) -> Vec<Param> {
        vec![
            Param::Id(t.tenant),
            Param::Id(t.agent),
            Param::Id(t.team),
            Param::Time(t.now),
            Param::Text(c.amount.clone()),
        ]
    }

    /// The inserts after the hold, each with its parameters: reservation,
    /// intent, lines, ledger entries, audit entry.
    pub fn inserts(
        sql: &sqlite_sql::Sql,
        t: &Target,
        c: &Call,
        held: &[Held],
        head: Option<(i64, String)>,
    ) -> Result<Vec<(&'static str, Vec<Param>)>, Error> {
        let n = held.len();
        let lines_sql = *sql
            .lines
            .get(n.wrapping_sub(1))
            .ok_or("no window, or too many")?;
        let ledger_sql = *sql.ledger.get(n - 1).ok_or("too many windows")?;
        let mut lines = Vec::with_capacity(9 * n);
        let mut ledger = Vec::with_capacity(12 * n);
        for h in held {
            lines.extend([
                Param::Id(Uuid::now_v7()),
                Param::Id(t.tenant),
                Param::Id(c.reservation),
                Param::Id(h.budget),
                Param::Id(h.window),
                Param::Text(c.amount.clone()),
                Param::Text(c.zero.clone()),
                Param::Text(c.zero.clone()),
                Param::Time(t.now),
            ]);
            ledger.extend([
                Param::Id(Uuid::now_v7()),
                Param::Id(t.tenant),
                Param::Id(h.budget),
                Param::Id(h.window),
                Param::Id(c.reservation),
                Param::Text("reserve".into()),
                Param::Text("reserved".into()),
                Param::Text("debit".into()),
                Param::Text(c.amount.clone()),
                Param::Text("USD".into()),
                Param::Time(t.now),
                Param::Time(t.now),
            ]);
        }
        let (seq, prev) = next_in_chain(head);
        let hash = c.hash(seq, &prev);
        Ok(vec![
            (
                sql.reservation,
                vec![
                    Param::Id(c.reservation),
                    Param::Id(t.tenant),
                    Param::Id(t.agent),
                    Param::Id(c.intent),
                    Param::Text(c.amount.clone()),
                    Param::Text(c.zero.clone()),
                    Param::Time(c.expires_at),
                    Param::Time(t.now),
                ],
            ),
            (
                sql.intent,
                vec![
                    Param::Id(c.intent),
                    Param::Id(t.tenant),
                    Param::Id(t.agent),
                    Param::Id(t.team),
                    Param::Text(c.amount.clone()),
                    Param::Text(t.merchant.clone()),
                    Param::Id(c.reservation),
                    Param::Time(t.now),
                ],
            ),
            (lines_sql, lines),
            (ledger_sql, ledger),
            (
                sql.audit,
                vec![
                    Param::Id(c.audit),
                    Param::Id(t.tenant),
                    Param::Int(seq),
                    Param::Id(t.agent),
                    Param::Text(c.resource_id()),
                    Param::Text(c.message.clone()),
                    Param::Text(c.details.clone()),
                    Param::Text(prev),
                    Param::Text(hash),
                    Param::Time(c.audited_at),
                ],
            ),
        ])
    }
}

/// The SQLite baseline through sqlx, on the store's own pool.
pub mod sqlite {
    use super::*;
    use sqlx::Row;

    /// `sqlx::query(statement)` with `params` bound.
    macro_rules! query {
        ($statement:expr, $params:expr) => {{
            let mut q = sqlx::query($statement);
            for p in $params {
                q = match p {
                    Param::Id(v) => q.bind(v),
                    Param::Text(v) => q.bind(v),
                    Param::Int(v) => q.bind(v),
                    Param::Time(v) => q.bind(v),
                };
            }
            q
        }};
    }

    /// One approved purchase; returns the windows held on.
    pub async fn authorize(
        pool: &sqlx::SqlitePool,
        sql: &sqlite_sql::Sql,
        t: &Target,
    ) -> Result<usize, Error> {
        let c = Call::new(t)?;
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows = query!(sql.hold, sqlite_params::hold(t, &c))
            .fetch_all(&mut *tx)
            .await?;
        let mut held = Vec::with_capacity(rows.len());
        let mut head = None;
        for row in &rows {
            held.push(Held {
                window: row.try_get(0)?,
                budget: row.try_get(1)?,
            });
            let seq: Option<i64> = row.try_get(2)?;
            let hash: Option<String> = row.try_get(3)?;
            head = seq.zip(hash);
        }
        if held.is_empty() {
            tx.rollback().await?;
            return Err("nothing held (a window is missing or a budget ran out)".into());
        }
        for (statement, params) in sqlite_params::inserts(sql, t, &c, &held, head)? {
            query!(statement, params).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(held.len())
    }
}

/// The SQLite baseline through rusqlite: the same statements on the same
/// SQLite library (`libsqlite3-sys`), called directly from the caller's
/// thread with cached prepared statements.
pub mod rusqlite_engine {
    use super::*;
    use rusqlite::types::{ToSqlOutput, Value};

    fn value(p: &Param) -> ToSqlOutput<'_> {
        match p {
            Param::Id(v) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Blob(v.as_bytes())),
            Param::Text(v) => ToSqlOutput::Borrowed(rusqlite::types::ValueRef::Text(v.as_bytes())),
            Param::Int(v) => ToSqlOutput::Owned(Value::Integer(*v)),
            Param::Time(v) => ToSqlOutput::Owned(Value::Text(sqlite_time(*v))),
        }
    }

    fn bind_all(stmt: &mut rusqlite::CachedStatement<'_>, params: &[Param]) -> Result<(), Error> {
        for (i, p) in params.iter().enumerate() {
            stmt.raw_bind_parameter(i + 1, value(p))?;
        }
        Ok(())
    }

    /// Opens `path` as bursar opens a SQLite file (WAL, `synchronous =
    /// NORMAL`, foreign keys on, a busy timeout).
    pub fn open_file(path: &std::path::Path) -> Result<rusqlite::Connection, Error> {
        let conn = rusqlite::Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    }

    /// A private in-memory copy of the SQLite file at `path`.
    pub fn memory_copy(path: &std::path::Path) -> Result<rusqlite::Connection, Error> {
        let mut conn = rusqlite::Connection::open_in_memory()?;
        conn.restore(
            rusqlite::MAIN_DB,
            path,
            None::<fn(rusqlite::backup::Progress)>,
        )?;
        conn.pragma_update(None, "foreign_keys", true)?;
        Ok(conn)
    }

    /// One approved purchase; returns the windows held on.
    pub fn authorize(
        conn: &rusqlite::Connection,
        sql: &sqlite_sql::Sql,
        t: &Target,
    ) -> Result<usize, Error> {
        let c = Call::new(t)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let result = (|| -> Result<usize, Error> {
            let mut held = Vec::new();
            let mut head = None;
            {
                let mut stmt = conn.prepare_cached(sql.hold)?;
                bind_all(&mut stmt, &sqlite_params::hold(t, &c))?;
                let mut rows = stmt.raw_query();
                while let Some(row) = rows.next()? {
                    let window: [u8; 16] = row.get(0)?;
                    let budget: [u8; 16] = row.get(1)?;
                    held.push(Held {
                        window: Uuid::from_bytes(window),
                        budget: Uuid::from_bytes(budget),
                    });
                    let seq: Option<i64> = row.get(2)?;
                    let hash: Option<String> = row.get(3)?;
                    head = seq.zip(hash);
                }
            }
            if held.is_empty() {
                return Err("nothing held (a window is missing or a budget ran out)".into());
            }
            for (statement, params) in sqlite_params::inserts(sql, t, &c, &held, head)? {
                let mut stmt = conn.prepare_cached(statement)?;
                bind_all(&mut stmt, &params)?;
                stmt.raw_execute()?;
            }
            Ok(held.len())
        })();
        match result {
            Ok(n) => {
                conn.execute_batch("COMMIT")?;
                Ok(n)
            }
            Err(e) => {
                conn.execute_batch("ROLLBACK")?;
                Err(e)
            }
        }
    }
}
