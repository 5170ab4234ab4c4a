//! Every statement bursar issues on the authorize → reserve → capture path
//! is served by an index on its full key once the tables are big
//! (PostgreSQL; skipped without `BURSAR_TEST_POSTGRES_URL`).
//!
//! The test makes one tenant through the API, copies its rows in SQL into
//! twenty other tenants and a thousand other agents (over 100,000 purchase
//! intents, 100,000 reservations, 100,000 audit entries and 100,000 events,
//! about 38,000 budget windows, past windows of the tenant's own budget and
//! older requests of its own agent), runs `ANALYZE`, and records through
//! `StoreBuilder::on_statement` what an approved authorize, its idempotent
//! replay, a capture, an approval-pending authorize and a metered call send.
//! Each recorded `SELECT`, `UPDATE` and `DELETE` that reads a tenant-owned
//! table is then run under `EXPLAIN (ANALYZE, FORMAT JSON)` in a transaction
//! that is rolled back, with the values it was sent with: every scan of a
//! tenant-owned table must be an `Index Scan` or `Index Only Scan` on the
//! index [`INTENDED`] names for it, entered by `tenant_id` (or by the unique
//! `id` of the primary key); a statement whose `WHERE` is an `OR` of index
//! conditions may read through a bitmap whose every arm enters that index by
//! the tenant. A sequential scan of a big table fails it. Tables that hold a
//! few rows in this fill (policies, merchants, prices, roles) are read whole
//! by any plan and are listed, not checked.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bursar::Store;
use bursar::money::{Currency, Money};
use bursar::policy::{Condition, Effect, Policy, Request, SpendingControls};
use bursar::store::{
    AgentRepository, BudgetRepository, MeterRequest, NewAgent, NewPrice, NewTenant,
    PolicyRepository, ReservationRepository, TenantRepository, Usage,
};
use chrono::{Duration, Utc};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait, Value};

/// The index that serves each hot statement, by the table it reads and the
/// columns its `WHERE` names (sorted). A hot statement that is not listed
/// fails the test, so a new one needs its index named here.
const INTENDED: &[(&str, &[&str], &str)] = &[
    (
        "agent_api_keys",
        &["id", "tenant_id"],
        "agent_api_keys_pkey",
    ),
    (
        "agent_runs",
        &["id", "tenant_id"],
        "ux_agent_runs_tenant_id_id",
    ),
    ("agents", &["id", "tenant_id"], "ux_agents_tenant_id_id"),
    (
        "approval_requests",
        &["id", "tenant_id"],
        "ux_approval_requests_tenant_id_id",
    ),
    ("audit_logs", &["tenant_id"], "ux_audit_logs_tenant_id_seq"),
    // The chain's head: `seq = (SELECT MAX(seq) … WHERE tenant_id = ?)`.
    (
        "audit_logs",
        &["seq", "tenant_id"],
        "ux_audit_logs_tenant_id_seq",
    ),
    (
        "budget_windows",
        &["budget_id", "period_start", "tenant_id"],
        "ux_budget_windows_tenant_id_budget_id_period_start",
    ),
    (
        "budget_windows",
        &["id", "tenant_id"],
        "budget_windows_pkey|ux_budget_windows_tenant_id_id",
    ),
    // The guarded updates of a locked window.
    (
        "budget_windows",
        &["id", "reserved", "spent", "tenant_id"],
        "budget_windows_pkey|ux_budget_windows_tenant_id_id",
    ),
    (
        "budget_windows",
        &["id", "limit_amount", "reserved", "spent", "tenant_id"],
        "budget_windows_pkey|ux_budget_windows_tenant_id_id",
    ),
    (
        "budgets",
        &["is_active", "scope_id", "scope_kind", "tenant_id"],
        "ix_budgets_tenant_id_scope_kind_scope_id",
    ),
    ("events", &["tenant_id"], "ux_events_tenant_id_seq"),
    (
        "events",
        &["dedup_key", "tenant_id"],
        "ux_events_tenant_id_dedup_key",
    ),
    (
        "merchants",
        &["normalized_name", "tenant_id"],
        "ux_merchants_tenant_id_normalized_name",
    ),
    (
        "model_prices",
        &["effective_from", "model", "provider", "tenant_id"],
        "ux_model_prices_tenant_id_provider_model_effective_from",
    ),
    (
        "policies",
        &["tenant_id"],
        "ix_policies_tenant_id_enabled_priority",
    ),
    (
        "purchase_intents",
        &["idempotency_key", "tenant_id"],
        "ux_purchase_intents_tenant_id_idempotency_key",
    ),
    (
        "purchase_intents",
        &["id", "tenant_id"],
        "purchase_intents_pkey|ux_purchase_intents_tenant_id_id",
    ),
    (
        "purchase_intents",
        &["agent_id", "created_at", "tenant_id"],
        "ix_purchase_intents_tenant_id_agent_id_created_at",
    ),
    (
        "reservation_lines",
        &["reservation_id", "tenant_id"],
        "ux_reservation_lines_tenant_id_reservation_id_window_id",
    ),
    (
        "reservations",
        &["idempotency_key", "tenant_id"],
        "ux_reservations_tenant_id_idempotency_key",
    ),
    (
        "reservations",
        &["id", "tenant_id"],
        "reservations_pkey|ux_reservations_tenant_id_id",
    ),
    (
        "reservations",
        &["purchase_intent_id", "tenant_id"],
        "ix_reservations_tenant_id_purchase_intent_id",
    ),
    (
        "usage_records",
        &["purchase_intent_id", "tenant_id"],
        "ux_usage_records_tenant_id_purchase_intent_id",
    ),
];

/// The rows copied into other tenants and agents.
const OTHER_TENANTS: i64 = 20;
const AGENTS_PER_TENANT: i64 = 50;
const INTENTS_PER_AGENT: i64 = 96;
const CHAIN_ROWS_PER_TENANT: i64 = 5_000;
const PAST_WINDOWS: i64 = 36;

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").expect("money")
}

fn buy(agent: bursar::id::AgentId, amount: &str, key: &str) -> Request {
    Request::purchase(agent, common::dec(amount), Currency::USD, "GitHub").idempotency_key(key)
}

/// Copies the first row of `table` that `template` selects (as `x`) once
/// per row of `source`, with the columns `overrides` (a `jsonb` expression
/// over `tpl.j` and `source`'s aliases) replaced. The record is built once
/// per row (`OFFSET 0` keeps the subquery from being flattened, which would
/// build it again for every column).
fn copy_rows(table: &str, template: &str, source: &str, overrides: &str) -> String {
    format!(
        "INSERT INTO \"{table}\" SELECT (s.r).* FROM ( \
         SELECT jsonb_populate_record(NULL::\"{table}\", tpl.j || {overrides}) AS r \
         FROM (SELECT to_jsonb(x) AS j FROM \"{table}\" x WHERE {template} LIMIT 1) tpl, {source} \
         OFFSET 0) s"
    )
}

/// Fills the other tenants' and agents' rows, copied from `acme`'s.
async fn fill(db: &impl ConnectionTrait, acme: &str, bot: &str, budget: &str) {
    let statements = [
        // Twenty more tenants.
        copy_rows(
            "tenants",
            &format!("x.id = '{acme}'"),
            &format!("generate_series(1, {OTHER_TENANTS}) g"),
            "jsonb_build_object('id', gen_random_uuid(), 'slug', 'other-' || g, 'name', 'Other ' || g)",
        ),
        // Fifty agents in every tenant, acme included.
        copy_rows(
            "agents",
            &format!("x.id = '{bot}'"),
            &format!("tenants t, generate_series(1, {AGENTS_PER_TENANT}) g"),
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', t.id, \
             'name', 'agent ' || g, 'slug', 'agent-' || g)",
        ),
        // A monthly budget for each of them.
        copy_rows(
            "budgets",
            &format!("x.id = '{budget}'"),
            &format!("agents a WHERE a.id <> '{bot}'"),
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', a.tenant_id, 'scope_id', a.id)",
        ),
        // Thirty-six past months of every agent budget, acme's own included.
        copy_rows(
            "budget_windows",
            &format!("x.budget_id = '{budget}'"),
            &format!(
                "budgets b, generate_series(1, {PAST_WINDOWS}) k WHERE b.scope_kind = 'agent'"
            ),
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', b.tenant_id, 'budget_id', b.id, \
             'period_start', (tpl.j->>'period_start')::timestamptz - make_interval(months => k::int), \
             'period_end', (tpl.j->>'period_start')::timestamptz - make_interval(months => k::int - 1), \
             'reserved', '00000000000000000000.000000')",
        ),
        // A hundred thousand requests: 96 of every agent (acme's bot among
        // them), eleven minutes apart.
        copy_rows(
            "purchase_intents",
            &format!("x.tenant_id = '{acme}'"),
            &format!("agents a, generate_series(1, {INTENTS_PER_AGENT}) g"),
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', a.tenant_id, 'agent_id', a.id, \
             'idempotency_key', 'other-' || a.id || '-' || g, \
             'created_at', now() - make_interval(mins => 11 * g::int), \
             'reservation_id', NULL, 'approval_request_id', NULL, 'run_id', NULL, \
             'team_id', NULL, 'project_id', NULL)",
        ),
        // A settled reservation for each of those requests.
        copy_rows(
            "reservations",
            &format!("x.tenant_id = '{acme}'"),
            "purchase_intents p WHERE p.idempotency_key LIKE 'other-%'",
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', p.tenant_id, 'agent_id', p.agent_id, \
             'purchase_intent_id', p.id, 'idempotency_key', p.idempotency_key, 'run_id', NULL, \
             'status', 'captured', 'created_at', p.created_at, 'expires_at', p.created_at)",
        ),
        // Long audit chains and event streams in the other tenants.
        copy_rows(
            "audit_logs",
            &format!("x.tenant_id = '{acme}'"),
            &format!(
                "tenants t, generate_series(1, {CHAIN_ROWS_PER_TENANT}) g WHERE t.id <> '{acme}'"
            ),
            "jsonb_build_object('id', gen_random_uuid(), 'tenant_id', t.id, 'seq', g)",
        ),
        // No event template exists yet: the columns are written out. The
        // tenant under test gets a long stream too, after its own events.
        format!(
            "INSERT INTO \"events\" (id, tenant_id, seq, event_type, version, subject_type, \
             subject_id, dedup_key, payload, created_at) \
             SELECT gen_random_uuid(), t.id, 1000 + g, 'budget.threshold_crossed', 1, 'budget', NULL, NULL, \
             '{{}}'::jsonb, now() FROM tenants t, generate_series(1, {CHAIN_ROWS_PER_TENANT}) g"
        ),
    ];
    let started = std::time::Instant::now();
    for sql in statements {
        db.execute_unprepared(&sql)
            .await
            .unwrap_or_else(|e| panic!("{e}: {sql}"));
    }
    db.execute_unprepared("ANALYZE").await.expect("analyze");
    eprintln!("filled and analyzed in {:.1?}", started.elapsed());
}

/// One statement as the store sent it.
#[derive(Clone, Debug)]
struct Recorded {
    sql: String,
    values: Vec<Value>,
}

/// The scan nodes of a JSON plan: (node type, relation, index, index condition).
fn scans(plan: &serde_json::Value, out: &mut Vec<(String, String, String, String)>) {
    let text = |k: &str| {
        plan.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_owned()
    };
    let node = text("Node Type");
    if node.contains("Scan") {
        out.push((
            node,
            text("Relation Name"),
            text("Index Name"),
            text("Index Cond"),
        ));
    }
    if let Some(children) = plan.get("Plans").and_then(|p| p.as_array()) {
        for child in children {
            scans(child, out);
        }
    }
}

/// The tables a statement reads and, for each, the columns it is entered
/// by: the main table by its `WHERE`, a joined table by its `ON`, and each
/// scalar subquery (`(SELECT … FROM "t" WHERE …)`) as a read of its own.
fn shape(sql: &str) -> Option<Vec<(String, Vec<String>)>> {
    let mut subqueries = Vec::new();
    let outer = without_subqueries(sql, &mut subqueries);
    let mut shapes = Vec::new();
    for sub in &subqueries {
        shapes.extend(shape(sub).unwrap_or_default());
    }
    let table = ["FROM \"", "UPDATE \""]
        .iter()
        .find_map(|intro| outer.split_once(intro))
        .and_then(|(_, rest)| rest.split('"').next())?
        .to_owned();
    let (head, filter) = outer.split_once(" WHERE ")?;
    let filter = [" ORDER BY ", " LIMIT ", " FOR ", " RETURNING "]
        .iter()
        .fold(filter, |f, end| f.split(end).next().unwrap_or(f));
    shapes.push((table.clone(), columns_of(filter, &table)));
    for join in head.split(" JOIN \"").skip(1) {
        let Some((joined, on)) = join.split_once('"') else {
            continue;
        };
        if let Some((_, on)) = on.split_once(" ON ") {
            shapes.push((joined.to_owned(), columns_of(on, joined)));
        }
    }
    Some(shapes)
}

/// The columns of `table` that `condition` names.
fn columns_of(condition: &str, table: &str) -> Vec<String> {
    let mut columns = BTreeSet::new();
    for piece in condition.split(&format!("\"{table}\".\"")).skip(1) {
        if let Some(column) = piece.split('"').next() {
            columns.insert(column.to_owned());
        }
    }
    columns.into_iter().collect()
}

/// `sql` with each parenthesized `(SELECT …)` taken out into `subqueries`.
fn without_subqueries(sql: &str, subqueries: &mut Vec<String>) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("(SELECT ") {
        out.push_str(&rest[..at]);
        let mut depth = 0;
        let mut end = rest.len();
        for (i, c) in rest[at..].char_indices() {
            match c {
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        subqueries.push(rest[at + 1..end].to_owned());
        out.push_str("(?)");
        rest = rest.get(end + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn hot_statements_use_the_index_for_their_full_key_on_big_tables() {
    if common::postgres_url().is_none() {
        eprintln!("hot_queries_use_their_indexes: skipped, BURSAR_TEST_POSTGRES_URL is not set");
        return;
    }
    let url = common::fresh_postgres_schema().await;
    let log: Arc<Mutex<Option<Vec<Recorded>>>> = Arc::new(Mutex::new(None));
    let sink = Arc::clone(&log);
    let store = Store::builder(&url)
        .on_statement(move |info| {
            if let Some(recorded) = sink.lock().expect("log").as_mut() {
                recorded.push(Recorded {
                    sql: info.statement.sql.clone(),
                    values: info
                        .statement
                        .values
                        .as_ref()
                        .map(|v| v.0.clone())
                        .unwrap_or_default(),
                });
            }
        })
        .connect()
        .await
        .expect("store");

    // The tenant under test, made through the API.
    let tenant = store
        .tenants()
        .create(NewTenant::new("Acme", "acme").default_allow(true))
        .await
        .expect("tenant");
    let acme = store.tenant(tenant.id);
    let bot = acme
        .agents()
        .create(NewAgent::new("bot"))
        .await
        .expect("agent")
        .id;
    acme.apply_controls(
        &SpendingControls::new(Currency::USD)
            .agent(bot)
            .monthly_limit(common::dec("100000"))
            .approval_threshold(common::dec("500"))
            .build()
            .expect("controls"),
    )
    .await
    .expect("controls");
    acme.policies()
        .create(Policy::new(
            "a thousand an hour",
            Effect::Deny,
            "TOO_FAST",
            Condition::VelocityAbove {
                window_seconds: 3_600,
                max: 1_000,
            },
        ))
        .await
        .expect("velocity policy");
    acme.prices()
        .set(
            NewPrice::new(
                "acme-ai",
                "small",
                "USD",
                common::dec("2"),
                common::dec("10"),
            )
            .effective_from(Utc::now() - Duration::days(1)),
        )
        .await
        .expect("price");
    let first = acme
        .authorize(buy(bot, "5", "warm-up"))
        .await
        .expect("authorize");
    assert!(first.is_approved(), "{:?}", first.reasons);
    let budget = acme.budgets().list().await.expect("budgets")[0].id;

    let admin = Database::connect(url.as_str()).await.expect("connect");
    fill(
        &admin,
        &tenant.id.to_string(),
        &bot.to_string(),
        &budget.to_string(),
    )
    .await;
    let count = |table: &str| {
        let admin = &admin;
        let sql = format!("SELECT count(*) FROM \"{table}\"");
        async move {
            let row = admin
                .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
                .await
                .expect("count")
                .expect("a row");
            row.try_get_by_index::<i64>(0).expect("count")
        }
    };
    let mut sizes = BTreeMap::new();
    for table in [
        "purchase_intents",
        "reservations",
        "audit_logs",
        "events",
        "budget_windows",
        "budgets",
        "agents",
    ] {
        sizes.insert(table, count(table).await);
    }
    for table in ["purchase_intents", "reservations", "audit_logs", "events"] {
        assert!(sizes[table] >= 100_000, "{table}: {sizes:?}");
    }

    // The hot path, recorded.
    *log.lock().expect("log") = Some(Vec::new());
    let approved = acme
        .authorize(buy(bot, "30", "hot-1"))
        .await
        .expect("authorize");
    assert!(approved.is_approved(), "{:?}", approved.reasons);
    let replay = acme
        .authorize(buy(bot, "30", "hot-1"))
        .await
        .expect("replay");
    assert_eq!(replay.intent.id, approved.intent.id);
    acme.reservations()
        .capture(approved.reservation_id().expect("held"), usd("29.50"))
        .await
        .expect("capture");
    let pending = acme
        .authorize(buy(bot, "600", "hot-2"))
        .await
        .expect("authorize");
    assert!(pending.approval.is_some(), "{:?}", pending.reasons);
    let metered = acme
        .meter()
        .begin(MeterRequest::new(bot, "acme-ai", "small", 1_000).max_output_tokens(100))
        .await
        .expect("meter");
    assert!(metered.is_approved(), "{:?}", metered.reasons);
    acme.meter()
        .finish(
            metered.intent.id,
            Usage {
                input_tokens: 900,
                output_tokens: 50,
                ..Usage::default()
            },
        )
        .await
        .expect("finish");
    let recorded = log.lock().expect("log").take().expect("recorded");

    // Each read, planned and run on the big tables.
    let owned: BTreeSet<&str> = bursar_migration::tenant_owned_tables().collect();
    let intended: BTreeMap<(&str, Vec<String>), &str> = INTENDED
        .iter()
        .map(|(t, cols, ix)| ((*t, cols.iter().map(|c| (*c).to_owned()).collect()), *ix))
        .collect();
    let mut big = BTreeSet::new();
    for row in admin
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT relname::text FROM pg_class WHERE relkind = 'r' AND reltuples >= 1000 \
             AND relnamespace = current_schema()::regnamespace",
        ))
        .await
        .expect("table sizes")
    {
        big.insert(row.try_get_by_index::<String>(0).expect("name"));
    }
    let mut small = BTreeSet::new();
    let mut failures = Vec::new();
    let mut seen = BTreeSet::new();
    let mut explained = 0;
    for r in &recorded {
        let verb = r.sql.split_whitespace().next().unwrap_or("");
        if !matches!(verb, "SELECT" | "UPDATE" | "DELETE") {
            continue;
        }
        let Some(shapes) = shape(&r.sql) else {
            continue;
        };
        if !seen.insert(r.sql.clone()) {
            continue;
        }
        // A table of a few dozen rows is read whole whatever its indexes:
        // only the big tables are checked.
        let mut indexes: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for (table, columns) in &shapes {
            if !owned.contains(table.as_str()) {
                continue;
            }
            if !big.contains(table) {
                small.insert(table.clone());
                continue;
            }
            match intended.get(&(table.as_str(), columns.clone())) {
                Some(&index) => indexes.entry(table.clone()).or_default().push(index),
                None => failures.push(format!(
                    "no intended index for {table} by {columns:?}: {}",
                    r.sql
                )),
            }
        }
        if indexes.is_empty() {
            continue;
        }
        let txn = admin.begin().await.expect("begin");
        let plan = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("EXPLAIN (ANALYZE, FORMAT JSON) {}", r.sql),
                r.values.clone(),
            ))
            .await
            .unwrap_or_else(|e| panic!("{e}: {}", r.sql))
            .expect("a plan");
        txn.rollback().await.expect("rollback");
        let plan: serde_json::Value = plan.try_get_by_index(0).expect("json plan");
        let mut found = Vec::new();
        scans(&plan[0]["Plan"], &mut found);
        explained += 1;
        let mut served = BTreeSet::new();
        for (node, relation, used, cond) in &found {
            if !big.contains(relation) {
                continue;
            }
            let intended_of = |ix: &str| {
                indexes
                    .get(relation)
                    .is_some_and(|all| all.iter().any(|i| i.split('|').any(|i| i == ix)))
            };
            // The primary key on `id` reaches one row by a unique id; every
            // other index must be entered by the tenant.
            let intended_here =
                intended_of(used) && (used.ends_with("_pkey") || cond.contains("tenant_id"));
            // An OR of index conditions reads through a bitmap: accepted when
            // every arm enters the intended index by the tenant.
            let bitmap_of_intended = node == "Bitmap Heap Scan"
                && found
                    .iter()
                    .filter(|(n, ..)| n == "Bitmap Index Scan")
                    .all(|(_, _, ix, c)| intended_of(ix) && c.contains("tenant_id"));
            if (matches!(node.as_str(), "Index Scan" | "Index Only Scan") && intended_here)
                || bitmap_of_intended
            {
                served.insert(relation.clone());
            } else {
                failures.push(format!(
                    "{node} on {relation} using {used:?} ({cond}), intended {:?}: {}",
                    indexes.get(relation),
                    r.sql
                ));
            }
        }
        for table in indexes.keys() {
            if !served.contains(table) {
                failures.push(format!("no index scan on {table} in the plan of {}", r.sql));
            }
        }
    }
    eprintln!(
        "{} statements recorded, {explained} distinct reads of big tables explained \
         on {sizes:?}; reads of small tables not checked: {small:?}",
        recorded.len()
    );
    assert!(explained >= 10, "only {explained} reads explained");
    assert!(
        failures.is_empty(),
        "{} hot statements are not served by their index:\n{}",
        failures.len(),
        failures.join("\n")
    );
    admin.close().await.ok();
    store.close().await.expect("close");
}
