//! The same-statements baseline for `authorize`: the statements bursar's
//! `TenantScope::authorize` issues for an approved purchase whose windows
//! exist and whose policies are cached, in the same order and with the same
//! rows, hand-written with `sqlx::query` on the store's own pool (the sequence
//! was read from PostgreSQL's log with `log_statement = all`):
//!
//! ```text
//! BEGIN (IMMEDIATE on SQLite)
//! SELECT tenants row; SELECT agents row
//! INSERT purchase_intents … RETURNING (pending)
//! SELECT policies' count, version sum and newest change (the cache stamp)
//! SELECT applicable budgets
//! SELECT current windows … ORDER BY id FOR NO KEY UPDATE (no lock clause on SQLite)
//! SELECT merchants (new vendor?)
//! INSERT reservations … RETURNING
//! UPDATE budget_windows (guarded), once per window
//! INSERT reservation_lines (one row per window); INSERT ledger_entries (idem)
//! INSERT merchants … ON CONFLICT DO UPDATE; SELECT merchants
//! UPDATE purchase_intents … RETURNING (approved)
//! SELECT pg_advisory_xact_lock (PostgreSQL only)
//! SELECT the audit chain's head; INSERT audit_logs … RETURNING
//! COMMIT
//! ```
//!
//! That is 21 statements on PostgreSQL and 20 on SQLite with three windows.
//! It shares nothing with bursar but the schema, the money text encoding and
//! the audit entry's canonical form (from [`crate::minimal::Call`]).
#![allow(dead_code)]

use bursar::money::Amount;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use sqlx::Row;
use sqlx::types::Json;
use uuid::Uuid;

use crate::minimal::{Call, Error, MAX_WINDOWS, Target, next_in_chain};
use crate::periods::period;
use crate::sql_text::leak;

fn values(width: usize, rows: usize) -> String {
    crate::sql_text::values('$', width, rows)
}

const TENANT_COLUMNS: &str = "id, name, slug, plan, plan_expires_at, is_active, timezone, \
    default_currency, default_effect, settings, created_at, updated_at";
const AGENT_COLUMNS: &str = "id, tenant_id, team_id, project_id, name, slug, description, \
    status, created_by, metadata, created_at, updated_at";
const INTENT_COLUMNS: &str = "id, tenant_id, agent_id, team_id, project_id, run_id, \
    idempotency_key, amount, currency, merchant_name, action_kind, merchant_domain, \
    merchant_url, mcc, description, metadata, status, rejection_code, rejection_reason, \
    reasons, reservation_id, approval_request_id, created_at, updated_at";
const BUDGET_COLUMNS: &str = "id, tenant_id, name, scope_kind, scope_id, currency, period, \
    limit_amount, is_active, alert_thresholds, created_at, updated_at";
const WINDOW_COLUMNS: &str = "id, tenant_id, budget_id, period_start, period_end, \
    limit_amount, spent, reserved, created_at, updated_at";
const MERCHANT_COLUMNS: &str = "id, tenant_id, name, normalized_name, domain, first_seen_at, \
    last_seen_at, purchase_count, created_at, updated_at";
const RESERVATION_COLUMNS: &str = "id, tenant_id, agent_id, run_id, purchase_intent_id, \
    idempotency_key, currency, amount, captured_amount, refunded_amount, status, expires_at, \
    captured_at, released_at, created_at, updated_at";
const LINE_COLUMNS: &str = "id, tenant_id, reservation_id, budget_id, window_id, amount, \
    captured_amount, refunded_amount, created_at";
const LEDGER_COLUMNS: &str = "id, tenant_id, budget_id, window_id, reservation_id, \
    entry_type, bucket, direction, amount, currency, reference, occurred_at, created_at";
const AUDIT_COLUMNS: &str = "id, tenant_id, seq, actor_type, actor_id, action, resource_type, \
    resource_id, level, status, correlation_id, ip_address, user_agent, message, details, \
    prev_hash, hash, created_at";

/// Every statement, with `$n` placeholders (SQLite reads `$n` as the n-th
/// parameter too).
pub struct Sql {
    postgres: bool,
    tenant: &'static str,
    agent: &'static str,
    insert_intent: &'static str,
    policy_stamp: &'static str,
    budgets: &'static str,
    lock_windows: Vec<&'static str>,
    merchant: &'static str,
    insert_reservation: &'static str,
    guarded_update: &'static str,
    insert_lines: Vec<&'static str>,
    insert_ledger: Vec<&'static str>,
    upsert_merchant: &'static str,
    approve_intent: &'static str,
    audit_head: &'static str,
    insert_audit: &'static str,
}

impl Sql {
    /// The statements for PostgreSQL (`postgres`) or SQLite.
    pub fn new(postgres: bool) -> Self {
        let lock = if postgres { " FOR NO KEY UPDATE" } else { "" };
        let by_budget = |n: usize| {
            let groups: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "(budget_id = ${} AND period_start = ${})",
                        2 + 2 * i,
                        3 + 2 * i
                    )
                })
                .collect();
            leak(format!(
                "SELECT {WINDOW_COLUMNS} FROM budget_windows WHERE tenant_id = $1 AND ({}) \
                 ORDER BY id ASC{lock}",
                groups.join(" OR ")
            ))
        };
        let counts = 1..=MAX_WINDOWS;
        Self {
            postgres,
            tenant: leak(format!(
                "SELECT {TENANT_COLUMNS} FROM tenants WHERE id = $1 LIMIT $2"
            )),
            agent: leak(format!(
                "SELECT {AGENT_COLUMNS} FROM agents WHERE tenant_id = $1 AND id = $2 LIMIT $3"
            )),
            insert_intent: leak(format!(
                "INSERT INTO purchase_intents ({INTENT_COLUMNS}) VALUES {} \
                 RETURNING {INTENT_COLUMNS}",
                values(24, 1)
            )),
            policy_stamp: "SELECT COUNT(id) AS n, CAST(SUM(version) AS bigint) AS versions, \
                MAX(updated_at) AS newest FROM policies WHERE tenant_id = $1 LIMIT $2",
            budgets: leak(format!(
                "SELECT {BUDGET_COLUMNS} FROM budgets WHERE tenant_id = $1 AND is_active = $2 \
                 AND (scope_kind = $3 OR (scope_kind = $4 AND scope_id = $5) \
                 OR (scope_kind = $6 AND scope_id = $7)) ORDER BY id ASC"
            )),
            lock_windows: counts.clone().map(by_budget).collect(),
            merchant: leak(format!(
                "SELECT {MERCHANT_COLUMNS} FROM merchants WHERE tenant_id = $1 \
                 AND normalized_name = $2 LIMIT $3"
            )),
            insert_reservation: leak(format!(
                "INSERT INTO reservations ({RESERVATION_COLUMNS}) VALUES {} \
                 RETURNING {RESERVATION_COLUMNS}",
                values(16, 1)
            )),
            guarded_update: "UPDATE budget_windows SET spent = $1, reserved = $2, \
                updated_at = $3 WHERE tenant_id = $4 AND id = $5 AND spent = $6 \
                AND reserved = $7 AND limit_amount >= $8",
            insert_lines: counts
                .clone()
                .map(|n| {
                    leak(format!(
                        "INSERT INTO reservation_lines ({LINE_COLUMNS}) VALUES {}",
                        values(9, n)
                    ))
                })
                .collect(),
            insert_ledger: counts
                .map(|n| {
                    leak(format!(
                        "INSERT INTO ledger_entries ({LEDGER_COLUMNS}) VALUES {}",
                        values(13, n)
                    ))
                })
                .collect(),
            upsert_merchant: leak(format!(
                "INSERT INTO merchants ({MERCHANT_COLUMNS}) VALUES {} \
                 ON CONFLICT (tenant_id, normalized_name) DO UPDATE SET \
                 last_seen_at = excluded.last_seen_at, updated_at = excluded.updated_at, \
                 purchase_count = merchants.purchase_count + $11, \
                 domain = COALESCE(excluded.domain, merchants.domain)",
                values(10, 1)
            )),
            approve_intent: leak(format!(
                "UPDATE purchase_intents SET status = $1, reservation_id = $2, \
                 updated_at = $3 WHERE id = $4 RETURNING {INTENT_COLUMNS}"
            )),
            audit_head: leak(format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_logs WHERE tenant_id = $1 \
                 ORDER BY seq DESC LIMIT $2"
            )),
            insert_audit: leak(format!(
                "INSERT INTO audit_logs ({AUDIT_COLUMNS}) VALUES {} RETURNING {AUDIT_COLUMNS}",
                values(18, 1)
            )),
        }
    }
}

/// A window as read under its lock.
struct Window {
    id: Uuid,
    budget_id: Uuid,
    limit: Amount,
    spent: Amount,
    reserved: Amount,
}

fn amount(s: &str) -> Result<Amount, Error> {
    Ok(Amount::from_db_str(s)?)
}

/// The merchant's normalized name, as bursar stores it.
fn normalized(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

macro_rules! driver {
    ($module:ident, $db:ty) => {
        /// The baseline on this driver.
        pub mod $module {
            use super::*;

            type Tx = sqlx::Transaction<'static, $db>;

            fn window(row: &<$db as sqlx::Database>::Row) -> Result<Window, Error> {
                Ok(Window {
                    id: row.try_get(0)?,
                    budget_id: row.try_get(2)?,
                    limit: amount(row.try_get(5)?)?,
                    spent: amount(row.try_get(6)?)?,
                    reserved: amount(row.try_get(7)?)?,
                })
            }

            async fn merchant(tx: &mut Tx, sql: &Sql, t: &Target) -> Result<bool, Error> {
                let row = sqlx::query(sql.merchant)
                    .bind(t.tenant)
                    .bind(normalized(&t.merchant))
                    .bind(1_i64)
                    .fetch_optional(&mut **tx)
                    .await?;
                Ok(row.is_some())
            }

            /// The current windows of `budgets` (id, period, limit), locked.
            async fn lock_windows(
                tx: &mut Tx,
                sql: &Sql,
                t: &Target,
                tz: Tz,
                budgets: &[(Uuid, String)],
            ) -> Result<Vec<Window>, Error> {
                let statement = *sql
                    .lock_windows
                    .get(budgets.len().wrapping_sub(1))
                    .ok_or("no applicable budget, or too many")?;
                let mut q = sqlx::query(statement).bind(t.tenant);
                for (budget, every) in budgets {
                    let (start, _) = period(every, tz, t.now)?;
                    q = q.bind(*budget).bind(start);
                }
                let windows = q
                    .fetch_all(&mut **tx)
                    .await?
                    .iter()
                    .map(window)
                    .collect::<Result<Vec<_>, Error>>()?;
                if windows.len() != budgets.len() {
                    return Err("a window is missing (the baseline does not create them)".into());
                }
                Ok(windows)
            }

            async fn hold(
                tx: &mut Tx,
                sql: &Sql,
                t: &Target,
                c: &Call,
                windows: &[Window],
            ) -> Result<(), Error> {
                let zero = c.zero.clone();
                let row = sqlx::query(sql.insert_reservation)
                    .bind(c.reservation)
                    .bind(t.tenant)
                    .bind(Some(t.agent))
                    .bind(None::<Uuid>)
                    .bind(Some(c.intent))
                    .bind(None::<String>)
                    .bind("USD")
                    .bind(&c.amount)
                    .bind(&zero)
                    .bind(&zero)
                    .bind("held")
                    .bind(c.expires_at)
                    .bind(None::<DateTime<Utc>>)
                    .bind(None::<DateTime<Utc>>)
                    .bind(t.now)
                    .bind(t.now)
                    .fetch_one(&mut **tx)
                    .await?;
                let status: String = row.try_get(10)?;
                if status != "held" {
                    return Err("the reservation did not read back".into());
                }
                for w in windows {
                    let reserved = w.reserved.checked_add(t.amount)?;
                    let total = w.spent.checked_add(reserved)?;
                    let done = sqlx::query(sql.guarded_update)
                        .bind(w.spent.to_db_string())
                        .bind(reserved.to_db_string())
                        .bind(t.now)
                        .bind(t.tenant)
                        .bind(w.id)
                        .bind(w.spent.to_db_string())
                        .bind(w.reserved.to_db_string())
                        .bind(total.to_db_string())
                        .execute(&mut **tx)
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err("a budget ran out or moved under its lock".into());
                    }
                }
                let n = windows.len();
                let mut q = sqlx::query(sql.insert_lines[n - 1]);
                for w in windows {
                    q = q
                        .bind(Uuid::now_v7())
                        .bind(t.tenant)
                        .bind(c.reservation)
                        .bind(w.budget_id)
                        .bind(w.id)
                        .bind(&c.amount)
                        .bind(&zero)
                        .bind(&zero)
                        .bind(t.now);
                }
                q.execute(&mut **tx).await?;
                let mut q = sqlx::query(sql.insert_ledger[n - 1]);
                for w in windows {
                    q = q
                        .bind(Uuid::now_v7())
                        .bind(t.tenant)
                        .bind(w.budget_id)
                        .bind(w.id)
                        .bind(Some(c.reservation))
                        .bind("reserve")
                        .bind("reserved")
                        .bind("debit")
                        .bind(&c.amount)
                        .bind("USD")
                        .bind(None::<String>)
                        .bind(t.now)
                        .bind(t.now);
                }
                q.execute(&mut **tx).await?;
                Ok(())
            }

            async fn audit(tx: &mut Tx, sql: &Sql, t: &Target, c: &Call) -> Result<(), Error> {
                if sql.postgres {
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
                        .bind(format!("bursar.audit.{}", t.tenant))
                        .execute(&mut **tx)
                        .await?;
                }
                let head = sqlx::query(sql.audit_head)
                    .bind(t.tenant)
                    .bind(1_i64)
                    .fetch_optional(&mut **tx)
                    .await?
                    .map(|row| -> Result<(i64, String), Error> {
                        Ok((row.try_get(2)?, row.try_get(16)?))
                    })
                    .transpose()?;
                let (seq, prev) = next_in_chain(head);
                let hash = c.hash(seq, &prev);
                let details: serde_json::Value = serde_json::from_str(&c.details)?;
                let row = sqlx::query(sql.insert_audit)
                    .bind(c.audit)
                    .bind(t.tenant)
                    .bind(seq)
                    .bind("agent")
                    .bind(Some(t.agent))
                    .bind(crate::minimal::ACTION)
                    .bind("purchase_intent")
                    .bind(Some(c.resource_id()))
                    .bind("info")
                    .bind("success")
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(Some(&c.message))
                    .bind(Json(details))
                    .bind(&prev)
                    .bind(&hash)
                    .bind(c.audited_at)
                    .fetch_one(&mut **tx)
                    .await?;
                let stored: i64 = row.try_get(2)?;
                if stored != seq {
                    return Err("the audit entry did not read back".into());
                }
                Ok(())
            }

            /// One approved purchase; returns the windows held on.
            pub async fn authorize(
                pool: &sqlx::Pool<$db>,
                sql: &Sql,
                t: &Target,
            ) -> Result<usize, Error> {
                let c = Call::new(t)?;
                let begin = if sql.postgres {
                    "BEGIN"
                } else {
                    "BEGIN IMMEDIATE"
                };
                let mut tx: Tx = pool.begin_with(begin).await?;
                let row = sqlx::query(sql.tenant)
                    .bind(t.tenant)
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                let active: bool = row.try_get(5)?;
                let zone: String = row.try_get(6)?;
                let tz: Tz = zone.parse()?;
                let row = sqlx::query(sql.agent)
                    .bind(t.tenant)
                    .bind(t.agent)
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                let status: String = row.try_get(7)?;
                if !active || status != "active" {
                    return Err("the tenant or the agent may not act".into());
                }
                let empty = Json(serde_json::json!({}));
                let none = Json(serde_json::json!([]));
                sqlx::query(sql.insert_intent)
                    .bind(c.intent)
                    .bind(t.tenant)
                    .bind(Some(t.agent))
                    .bind(Some(t.team))
                    .bind(None::<Uuid>)
                    .bind(None::<Uuid>)
                    .bind(None::<String>)
                    .bind(&c.amount)
                    .bind("USD")
                    .bind(&t.merchant)
                    .bind("purchase")
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(None::<i32>)
                    .bind(None::<String>)
                    .bind(&empty)
                    .bind("pending")
                    .bind(None::<String>)
                    .bind(None::<String>)
                    .bind(&none)
                    .bind(None::<Uuid>)
                    .bind(None::<Uuid>)
                    .bind(t.now)
                    .bind(t.now)
                    .fetch_one(&mut *tx)
                    .await?;
                // The policies are cached: their stamp is read, not the rows.
                let row = sqlx::query(sql.policy_stamp)
                    .bind(t.tenant)
                    .bind(1_i64)
                    .fetch_one(&mut *tx)
                    .await?;
                let policies: i64 = row.try_get(0)?;
                if policies == 0 {
                    return Err("the tenant has no policies".into());
                }
                let budgets = sqlx::query(sql.budgets)
                    .bind(t.tenant)
                    .bind(true)
                    .bind("tenant")
                    .bind("agent")
                    .bind(Some(t.agent))
                    .bind("team")
                    .bind(Some(t.team))
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|b| -> Result<Option<(Uuid, String)>, Error> {
                        let currency: String = b.try_get(5)?;
                        Ok((currency == "USD").then_some((b.try_get(0)?, b.try_get(6)?)))
                    })
                    .filter_map(Result::transpose)
                    .collect::<Result<Vec<_>, Error>>()?;
                let windows = lock_windows(&mut tx, sql, t, tz, &budgets).await?;
                // Whether the vendor is new (the policies here do not ask).
                merchant(&mut tx, sql, t).await?;
                for w in &windows {
                    if w.spent.checked_add(w.reserved)?.checked_add(t.amount)? > w.limit {
                        return Err("a budget ran out".into());
                    }
                }
                hold(&mut tx, sql, t, &c, &windows).await?;
                sqlx::query(sql.upsert_merchant)
                    .bind(Uuid::now_v7())
                    .bind(t.tenant)
                    .bind(&t.merchant)
                    .bind(normalized(&t.merchant))
                    .bind(None::<String>)
                    .bind(t.now)
                    .bind(t.now)
                    .bind(1_i64)
                    .bind(t.now)
                    .bind(t.now)
                    .bind(1_i64)
                    .execute(&mut *tx)
                    .await?;
                if !merchant(&mut tx, sql, t).await? {
                    return Err("the merchant did not read back".into());
                }
                sqlx::query(sql.approve_intent)
                    .bind("approved")
                    .bind(Some(c.reservation))
                    .bind(t.now)
                    .bind(c.intent)
                    .fetch_one(&mut *tx)
                    .await?;
                audit(&mut tx, sql, t, &c).await?;
                tx.commit().await?;
                Ok(windows.len())
            }
        }
    };
}

driver!(sqlite, sqlx::Sqlite);
driver!(postgres, sqlx::Postgres);
