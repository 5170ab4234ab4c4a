//! Every statement bursar issues names its tenant, so that a PostgreSQL
//! distributed by `tenant_id` (Citus) can route it to one shard
//! (`docs/scaling.md`).
//!
//! The PostgreSQL test (skipped without `BURSAR_TEST_POSTGRES_URL`) records,
//! through `StoreBuilder::on_statement`, every statement of a full scenario —
//! every repository, authorize (approved, pending, rejected), approval
//! decisions and cancellations, cards, charges and refunds, runs and
//! metering, the vault, events, the audit log, the sweeps, key
//! authentication and user deactivation — with the store in both row-level
//! security modes. Each statement that touches a tenant-owned table must
//!
//! * for `SELECT`, `UPDATE` and `DELETE`: have `"table"."tenant_id" = $n` as
//!   a top-level conjunct of its `WHERE` for every tenant-owned table it
//!   reads, or join that table on `tenant_id` to one that has it;
//! * for `INSERT`: list `tenant_id` among its columns, with a bound value in
//!   every row;
//! * bind the same tenant everywhere it names one, and never set `tenant_id`
//!   in an `UPDATE`;
//!
//! unless it carries the mark of one of the three cross-tenant lookups that
//! `bursar::store`'s `cross_tenant` module issues (listed in [`CROSSINGS`]).
//! A subquery is checked as a statement of its own. The checker itself is
//! tested on statements that must fail it.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use bursar::Store;
use bursar::store::{
    AgentKeyRepository, NewTenant, NewUser, RowLevelSecurity, TenantRepository, UserRepository,
};
use bursar_migration::tenant_owned_tables;
use chrono::{Duration, Utc};
use sea_orm::Value;
use uuid::Uuid;

/// The statements allowed to cross tenants: the mark's name, and the one
/// table each reads. Adding one here needs a reason in `docs/scaling.md`.
const CROSSINGS: [(&str, &str); 3] = [
    // The sweeps list the tenants, then sweep each in its own scope.
    ("tenant_ids", "tenants"),
    // Store::authenticate_agent: a key names no tenant until it is found.
    ("key_by_hash", "agent_api_keys"),
    // Users::deactivate / reactivate audit the change in each tenant of the user.
    ("user_memberships", "tenant_members"),
];

// ---------------------------------------------------------------------------
// The checker.

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    /// A quoted identifier, unquoted.
    Ident(String),
    /// `$n`, 1-based.
    Param(usize),
    /// A bare word, uppercased (keywords, function names, `TRUE`).
    Word(String),
    /// A string or number literal.
    Lit,
    /// Any other character.
    Punct(char),
    /// A subquery, lifted out and checked on its own.
    Sub,
}

/// Splits PostgreSQL text as SeaORM writes it into tokens; returns the
/// cross-tenant mark's name when the statement carries one.
fn tokenize(sql: &str) -> Result<(Option<String>, Vec<Tok>), String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut toks = Vec::new();
    let mut mark = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            let rest: String = chars[i + 2..].iter().collect();
            let end = rest.find("*/").ok_or("unterminated comment")?;
            let body = rest[..end].trim();
            if let Some(name) = body.strip_prefix("bursar:cross-tenant:") {
                mark = Some(name.to_owned());
            }
            i += 2 + rest[..end].chars().count() + 2;
        } else if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated identifier".into()),
                    Some('"') if chars.get(i + 1) == Some(&'"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            toks.push(Tok::Ident(s));
        } else if c == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => i += 2,
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            toks.push(Tok::Lit);
        } else if c == '$' && chars.get(i + 1).is_some_and(char::is_ascii_digit) {
            let start = i + 1;
            i = start;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            let n: String = chars[start..i].iter().collect();
            toks.push(Tok::Param(n.parse().map_err(|e| format!("{e}"))?));
        } else if c.is_ascii_digit() {
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_ascii_alphanumeric() || *ch == '.')
            {
                i += 1;
            }
            toks.push(Tok::Lit);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while chars
                .get(i)
                .is_some_and(|ch| ch.is_alphanumeric() || *ch == '_')
            {
                i += 1;
            }
            let w: String = chars[start..i].iter().collect();
            toks.push(Tok::Word(w.to_uppercase()));
        } else {
            toks.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok((mark, toks))
}

fn word(t: &Tok, w: &str) -> bool {
    matches!(t, Tok::Word(x) if x == w)
}

/// Lifts every `( SELECT … )`, and every `( INSERT … )`, `( UPDATE … )` or
/// `( DELETE … )` of a `WITH`, out of `toks` (replaced by [`Tok::Sub`]),
/// innermost first, into `subs`.
fn lift_subqueries(toks: Vec<Tok>, subs: &mut Vec<Vec<Tok>>) -> Result<Vec<Tok>, String> {
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        // A subquery, or the body of a data-modifying `WITH` (`w0 AS
        // (INSERT …)`), is checked as a statement of its own.
        let lifted = toks.get(i + 1).is_some_and(|t| {
            ["SELECT", "INSERT", "UPDATE", "DELETE"]
                .iter()
                .any(|kind| word(t, kind))
        });
        if toks[i] == Tok::Punct('(') && lifted {
            let mut depth = 0;
            let mut j = i;
            loop {
                match toks.get(j) {
                    None => return Err("unbalanced parentheses".into()),
                    Some(Tok::Punct('(')) => depth += 1,
                    Some(Tok::Punct(')')) => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
            let inner = lift_subqueries(toks[i + 1..j].to_vec(), subs)?;
            subs.push(inner);
            out.push(Tok::Sub);
            i = j + 1;
        } else {
            out.push(toks[i].clone());
            i += 1;
        }
    }
    Ok(out)
}

/// Splits `toks` on the depth-0 occurrences of the word `sep`.
fn split_top(toks: &[Tok], sep: &str) -> Vec<Vec<Tok>> {
    let mut parts = vec![Vec::new()];
    let mut depth = 0i32;
    for t in toks {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            _ => {}
        }
        if depth == 0 && word(t, sep) {
            parts.push(Vec::new());
        } else if let Some(last) = parts.last_mut() {
            last.push(t.clone());
        }
    }
    parts
}

/// `toks` without parentheses that enclose all of it.
fn unwrap_parens(mut toks: &[Tok]) -> &[Tok] {
    while toks.first() == Some(&Tok::Punct('(')) && toks.last() == Some(&Tok::Punct(')')) {
        let mut depth = 0;
        let encloses = toks.iter().enumerate().all(|(k, t)| {
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                _ => {}
            }
            depth > 0 || k == toks.len() - 1
        });
        if !encloses {
            break;
        }
        toks = &toks[1..toks.len() - 1];
    }
    toks
}

/// The tokens from `start` to the first depth-0 word of `stops` (or the end).
fn clause(toks: &[Tok], start: usize, stops: &[&str]) -> Vec<Tok> {
    let mut depth = 0i32;
    let mut out = Vec::new();
    for t in &toks[start..] {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            _ => {}
        }
        if depth == 0 && stops.iter().any(|s| word(t, s)) {
            break;
        }
        out.push(t.clone());
    }
    out
}

/// A table a statement names, and what its columns are qualified with.
#[derive(Debug)]
struct TableRef {
    table: String,
    alias: String,
}

/// The tables named after `FROM`, `JOIN`, `INTO` and `UPDATE`.
fn table_refs(toks: &[Tok]) -> Vec<TableRef> {
    let mut refs = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        let introduces = ["FROM", "JOIN", "INTO", "UPDATE"]
            .iter()
            .any(|w| word(t, w));
        if !introduces {
            continue;
        }
        let Some(Tok::Ident(table)) = toks.get(k + 1) else {
            continue;
        };
        let alias = match (toks.get(k + 2), toks.get(k + 3)) {
            (Some(Tok::Word(w)), Some(Tok::Ident(a))) if w == "AS" => a.clone(),
            (Some(Tok::Ident(a)), _) if !matches!(toks.get(k + 3), Some(Tok::Punct('.'))) => {
                a.clone()
            }
            _ => table.clone(),
        };
        refs.push(TableRef {
            table: table.clone(),
            alias,
        });
    }
    refs
}

/// What a statement is, once checked.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Touches tenant-owned tables, all confined to this tenant.
    Tenant(Uuid),
    /// Touches no tenant-owned table (the global tables, or none).
    Global,
    /// Carries a cross-tenant mark.
    Crossing(String),
}

/// The bound value of `$n`, as a UUID.
fn uuid_param(values: &[Value], n: usize) -> Result<Uuid, String> {
    match values.get(n.wrapping_sub(1)) {
        Some(Value::Uuid(Some(u))) => Ok(*u),
        other => Err(format!("${n} binds {other:?}, not a tenant id")),
    }
}

/// Checks one statement; `Err` says why it is not confined to one tenant.
fn check(sql: &str, values: &[Value], owned: &BTreeSet<String>) -> Result<Verdict, String> {
    let (mark, toks) = tokenize(sql)?;
    let mut subs = Vec::new();
    let top = lift_subqueries(toks, &mut subs)?;
    subs.push(top);
    if let Some(name) = mark {
        return Ok(Verdict::Crossing(name));
    }
    let mut tenants = BTreeSet::new();
    for stmt in &subs {
        tenants.extend(check_one(stmt, values, owned)?);
    }
    match tenants.len() {
        0 => Ok(Verdict::Global),
        1 => Ok(Verdict::Tenant(*tenants.first().expect("one"))),
        _ => Err(format!("binds several tenants: {tenants:?}")),
    }
}

/// The tenants one (subquery-free) statement is confined to; empty when it
/// touches no tenant-owned table.
fn check_one(
    toks: &[Tok],
    values: &[Value],
    owned: &BTreeSet<String>,
) -> Result<BTreeSet<Uuid>, String> {
    let refs = table_refs(toks);
    let owned_refs: Vec<&TableRef> = refs.iter().filter(|r| owned.contains(&r.table)).collect();
    if owned_refs.is_empty() {
        return Ok(BTreeSet::new());
    }
    let kind = match toks.first() {
        Some(Tok::Word(w)) => w.as_str(),
        other => return Err(format!("starts with {other:?}")),
    };
    // No statement may move a row to another tenant.
    if let Some(set) = toks.iter().position(|t| word(t, "SET")) {
        let assignments = clause(toks, set + 1, &["WHERE", "RETURNING", "FROM"]);
        for part in assignments.split(|t| *t == Tok::Punct(',')) {
            let target = match part {
                [Tok::Ident(c), Tok::Punct('='), ..] => c,
                [
                    Tok::Ident(_),
                    Tok::Punct('.'),
                    Tok::Ident(c),
                    Tok::Punct('='),
                    ..,
                ] => c,
                _ => continue,
            };
            if target == "tenant_id" {
                return Err("sets tenant_id".into());
            }
        }
    }
    match kind {
        "INSERT" => check_insert(toks, values).map(|t| BTreeSet::from([t])),
        "SELECT" | "UPDATE" | "DELETE" => check_filtered(toks, values, &refs, &owned_refs),
        other => Err(format!("a {other} statement on a tenant-owned table")),
    }
}

fn check_insert(toks: &[Tok], values: &[Value]) -> Result<Uuid, String> {
    // INSERT INTO "t" ( cols ) VALUES ( row ) [, ( row )]…
    let open = toks
        .iter()
        .position(|t| *t == Tok::Punct('('))
        .ok_or("an INSERT without a column list")?;
    let close = toks[open..]
        .iter()
        .position(|t| *t == Tok::Punct(')'))
        .ok_or("an unterminated column list")?
        + open;
    let columns: Vec<&Tok> = toks[open + 1..close]
        .iter()
        .filter(|t| **t != Tok::Punct(','))
        .collect();
    let at = columns
        .iter()
        .position(|t| matches!(t, Tok::Ident(c) if c == "tenant_id"))
        .ok_or("an INSERT without tenant_id")?;
    if toks.get(close + 1).is_some_and(|t| word(t, "SELECT")) {
        // INSERT INTO "t" ( cols ) SELECT v, … [WHERE …]: one row, whose
        // tenant_id must be a bound value (the subqueries of its WHERE were
        // lifted out and are checked on their own).
        let row = clause(toks, close + 2, &["FROM", "WHERE", "ON", "RETURNING"]);
        if toks.iter().skip(close + 2).any(|t| word(t, "FROM")) {
            return Err("an INSERT that copies rows".into());
        }
        let mut cells: Vec<Vec<Tok>> = vec![Vec::new()];
        let mut depth = 0i32;
        for t in row {
            match t {
                Tok::Punct('(') => depth += 1,
                Tok::Punct(')') => depth -= 1,
                Tok::Punct(',') if depth == 0 => {
                    cells.push(Vec::new());
                    continue;
                }
                _ => {}
            }
            if let Some(cell) = cells.last_mut() {
                cell.push(t);
            }
        }
        return match cells.get(at).map(Vec::as_slice) {
            Some([Tok::Param(n)]) => uuid_param(values, *n),
            other => Err(format!("tenant_id is {other:?}, not a bound value")),
        };
    }
    if !toks.get(close + 1).is_some_and(|t| word(t, "VALUES")) {
        return Err("an INSERT without VALUES".into());
    }
    let rows = clause(toks, close + 2, &["ON", "RETURNING"]);
    let mut tenants = BTreeSet::new();
    let mut depth = 0;
    let mut row: Vec<Vec<Tok>> = Vec::new();
    for t in rows {
        match (&t, depth) {
            (Tok::Punct('('), 0) => {
                depth = 1;
                row = vec![Vec::new()];
            }
            (Tok::Punct(')'), 1) => {
                depth = 0;
                match row.get(at).map(Vec::as_slice) {
                    Some([Tok::Param(n)]) => {
                        tenants.insert(uuid_param(values, *n)?);
                    }
                    other => return Err(format!("tenant_id is {other:?}, not a bound value")),
                }
            }
            (Tok::Punct(','), 1) => row.push(Vec::new()),
            (Tok::Punct(','), 0) => {}
            _ => {
                if t == Tok::Punct('(') {
                    depth += 1;
                } else if t == Tok::Punct(')') {
                    depth -= 1;
                }
                if let Some(cell) = row.last_mut() {
                    cell.push(t);
                }
            }
        }
    }
    match tenants.len() {
        1 => Ok(*tenants.first().expect("one")),
        0 => Err("an INSERT with no row".into()),
        _ => Err(format!("an INSERT into several tenants: {tenants:?}")),
    }
}

fn check_filtered(
    toks: &[Tok],
    values: &[Value],
    refs: &[TableRef],
    owned_refs: &[&TableRef],
) -> Result<BTreeSet<Uuid>, String> {
    const ENDS: [&str; 8] = [
        "ORDER",
        "GROUP",
        "LIMIT",
        "OFFSET",
        "RETURNING",
        "FOR",
        "HAVING",
        "UNION",
    ];
    // Which aliases carry `tenant_id = $n` at the top of the WHERE.
    let mut pinned: BTreeMap<String, Uuid> = BTreeMap::new();
    if let Some(at) = toks.iter().position(|t| word(t, "WHERE")) {
        let filter = clause(toks, at + 1, &ENDS);
        let disjunctive = split_top(&filter, "OR").len() > 1;
        if !disjunctive {
            for conjunct in split_top(&filter, "AND") {
                match unwrap_parens(&conjunct) {
                    [
                        Tok::Ident(alias),
                        Tok::Punct('.'),
                        Tok::Ident(c),
                        Tok::Punct('='),
                        Tok::Param(n),
                    ] if c == "tenant_id" => {
                        pinned.insert(alias.clone(), uuid_param(values, *n)?);
                    }
                    [Tok::Ident(c), Tok::Punct('='), Tok::Param(n)]
                        if c == "tenant_id" && refs.len() == 1 =>
                    {
                        pinned.insert(refs[0].alias.clone(), uuid_param(values, *n)?);
                    }
                    _ => {}
                }
            }
        }
    }
    // Join conditions `a.tenant_id = b.tenant_id` carry a pin across; a
    // join condition `a.tenant_id = $n` pins the joined table itself.
    let mut links = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        if !word(t, "ON") {
            continue;
        }
        let mut stops = vec!["JOIN", "LEFT", "RIGHT", "INNER", "FULL", "CROSS", "WHERE"];
        stops.extend(ENDS);
        for conjunct in split_top(&clause(toks, k + 1, &stops), "AND") {
            if let [
                Tok::Ident(a),
                Tok::Punct('.'),
                Tok::Ident(ca),
                Tok::Punct('='),
                Tok::Ident(b),
                Tok::Punct('.'),
                Tok::Ident(cb),
            ] = unwrap_parens(&conjunct)
                && ca == "tenant_id"
                && cb == "tenant_id"
            {
                links.push((a.clone(), b.clone()));
            } else if let [
                Tok::Ident(a),
                Tok::Punct('.'),
                Tok::Ident(c),
                Tok::Punct('='),
                Tok::Param(n),
            ] = unwrap_parens(&conjunct)
                && c == "tenant_id"
            {
                pinned.insert(a.clone(), uuid_param(values, *n)?);
            }
        }
    }
    let mut changed = true;
    while changed {
        changed = false;
        for (a, b) in &links {
            for (from, to) in [(a, b), (b, a)] {
                if let Some(&t) = pinned.get(from)
                    && !pinned.contains_key(to)
                {
                    pinned.insert(to.clone(), t);
                    changed = true;
                }
            }
        }
    }
    let mut tenants = BTreeSet::new();
    for r in owned_refs {
        let t = pinned
            .get(&r.alias)
            .ok_or_else(|| format!("reads {} without tenant_id = $n", r.table))?;
        tenants.insert(*t);
    }
    Ok(tenants)
}

fn owned() -> BTreeSet<String> {
    tenant_owned_tables().map(str::to_owned).collect()
}

#[test]
fn the_checker_refuses_what_a_router_could_not_route() {
    let owned = owned();
    let t = Uuid::now_v7();
    let u = Uuid::now_v7();
    let v = |xs: &[Uuid]| -> Vec<Value> { xs.iter().map(|x| Value::Uuid(Some(*x))).collect() };
    let refused = |sql: &str, values: Vec<Value>| {
        let got = check(sql, &values, &owned);
        assert!(got.is_err(), "{sql} passed as {got:?}");
    };
    // No tenant at all.
    refused(
        r#"SELECT "agents"."id" FROM "agents" WHERE "agents"."id" = $1"#,
        v(&[t]),
    );
    // The tenant only in one branch of an OR.
    refused(
        r#"SELECT "agents"."id" FROM "agents" WHERE "agents"."tenant_id" = $1 OR "agents"."id" = $2"#,
        v(&[t, u]),
    );
    // A comparison that is not equality.
    refused(
        r#"SELECT "agents"."id" FROM "agents" WHERE "agents"."tenant_id" <= $1"#,
        v(&[t]),
    );
    // A join that does not carry the tenant to the joined table.
    refused(
        r#"SELECT "purchase_intents"."id" FROM "purchase_intents" LEFT JOIN "usage_records" ON "purchase_intents"."id" = "usage_records"."purchase_intent_id" WHERE "purchase_intents"."tenant_id" = $1"#,
        v(&[t]),
    );
    // Two tenants in one statement.
    refused(
        r#"SELECT "a"."id" FROM "agents" AS "a" INNER JOIN "teams" AS "b" ON "a"."team_id" = "b"."id" WHERE "a"."tenant_id" = $1 AND "b"."tenant_id" = $2"#,
        v(&[t, u]),
    );
    // A subquery without its own tenant.
    refused(
        r#"DELETE FROM "member_roles" WHERE "member_roles"."tenant_id" = $1 AND "member_roles"."role_id" IN (SELECT "roles"."id" FROM "roles" WHERE "roles"."name" = $2)"#,
        vec![Value::Uuid(Some(t)), Value::String(Some("x".into()))],
    );
    // An insert without tenant_id, with it from a literal, or into two tenants.
    refused(
        r#"INSERT INTO "teams" ("id", "name") VALUES ($1, $2)"#,
        v(&[t, u]),
    );
    refused(
        r#"INSERT INTO "teams" ("id", "tenant_id") VALUES ($1, '0190')"#,
        v(&[t]),
    );
    refused(
        r#"INSERT INTO "teams" ("id", "tenant_id") VALUES ($1, $2), ($3, $4)"#,
        v(&[u, t, u, u]),
    );
    // An insert of a selected row whose tenant is not bound, or that copies
    // rows from a table.
    refused(
        r#"INSERT INTO "teams" ("id", "tenant_id") SELECT $1, '0190'"#,
        v(&[t]),
    );
    refused(
        r#"INSERT INTO "teams" ("id", "tenant_id") SELECT "teams"."id", "teams"."tenant_id" FROM "teams" WHERE "teams"."tenant_id" = $1"#,
        v(&[t]),
    );
    // A selected row whose guard reads another tenant's rows.
    refused(
        r#"INSERT INTO "audit_logs" ("id", "tenant_id") SELECT $1, $2 WHERE EXISTS(SELECT $3 FROM "audit_logs" WHERE "audit_logs"."tenant_id" = $4)"#,
        vec![
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::Int(Some(1)),
            Value::Uuid(Some(u)),
        ],
    );
    // Writes sent together as one statement, one of them into another
    // tenant, or one without its tenant.
    refused(
        r#"WITH w0 AS (INSERT INTO "teams" ("id", "tenant_id") VALUES ($1, $2) RETURNING 1), w1 AS (INSERT INTO "agents" ("id", "tenant_id") VALUES ($3, $4) RETURNING 1) SELECT (SELECT count(*) FROM w0) + (SELECT count(*) FROM w1)"#,
        v(&[u, t, u, u]),
    );
    refused(
        r#"WITH w0 AS (INSERT INTO "teams" ("id", "tenant_id") VALUES ($1, $2) RETURNING 1), w1 AS (INSERT INTO "agents" ("id", "name") VALUES ($3, $4) RETURNING 1) SELECT (SELECT count(*) FROM w0) + (SELECT count(*) FROM w1)"#,
        v(&[u, t, u, u]),
    );
    refused(
        r#"WITH w0 AS (INSERT INTO "teams" ("id", "tenant_id") VALUES ($1, $2) RETURNING 1) UPDATE "agents" SET "status" = $3"#,
        v(&[u, t, u]),
    );
    // Moving a row to another tenant.
    refused(
        r#"UPDATE "agents" SET "tenant_id" = $1 WHERE "agents"."tenant_id" = $2"#,
        v(&[u, t]),
    );

    // What bursar writes passes, and names the tenant it binds.
    let pass = |sql: &str, values: Vec<Value>| {
        let got = check(sql, &values, &owned);
        assert_eq!(got, Ok(Verdict::Tenant(t)), "{sql}");
    };
    pass(
        r#"SELECT "agents"."id" FROM "agents" WHERE "agents"."tenant_id" = $1 AND ("agents"."status" = $2 OR "agents"."status" IS NULL) ORDER BY "agents"."id" FOR UPDATE"#,
        vec![Value::Uuid(Some(t)), Value::String(Some("active".into()))],
    );
    pass(
        r#"SELECT "purchase_intents"."id" FROM "purchase_intents" LEFT JOIN "usage_records" ON "usage_records"."tenant_id" = "purchase_intents"."tenant_id" AND "usage_records"."purchase_intent_id" = "purchase_intents"."id" WHERE "purchase_intents"."tenant_id" = $1"#,
        v(&[t]),
    );
    pass(
        r#"INSERT INTO "teams" ("id", "tenant_id", "name") VALUES ($1, $2, $3), ($4, $5, $6) ON CONFLICT ("tenant_id", "slug") DO NOTHING RETURNING "id""#,
        vec![
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::String(Some("a".into())),
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::String(Some("b".into())),
        ],
    );
    // A joined table pinned in its join condition (the tenant row, its
    // policies' stamp and an agent of it).
    pass(
        r#"SELECT "tenants"."id", (SELECT COUNT("policies"."id") FROM "policies" WHERE "policies"."tenant_id" = $1) AS "policy_count", "agents"."id" AS "agent_id" FROM "tenants" LEFT JOIN "agents" ON "agents"."tenant_id" = $2 AND "agents"."id" = $3 WHERE "tenants"."id" = $4"#,
        v(&[t, t, u, t]),
    );
    refused(
        r#"SELECT "tenants"."id", "agents"."id" FROM "tenants" LEFT JOIN "agents" ON "agents"."id" = $1 WHERE "tenants"."id" = $2"#,
        v(&[u, t]),
    );
    // Writes sent together as one statement (`repo::Deferred` on
    // PostgreSQL).
    pass(
        r#"WITH w0 AS (INSERT INTO "reservations" ("id", "tenant_id") VALUES ($1, $2) RETURNING 1), w1 AS (INSERT INTO "merchants" ("id", "tenant_id", "purchase_count") VALUES ($3, $4, $5) ON CONFLICT ("tenant_id", "normalized_name") DO UPDATE SET "purchase_count" = "merchants"."purchase_count" + $6 RETURNING 1) SELECT (SELECT count(*) FROM w0) + (SELECT count(*) FROM w1)"#,
        vec![
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::Int(Some(1)),
            Value::Int(Some(1)),
        ],
    );
    // The audit chain's guarded append.
    pass(
        r#"INSERT INTO "audit_logs" ("id", "tenant_id", "seq") SELECT $1, $2, $3 WHERE EXISTS(SELECT $4 FROM "audit_logs" WHERE "audit_logs"."tenant_id" = $5 AND "audit_logs"."seq" = $6) AND (NOT EXISTS(SELECT $7 FROM "audit_logs" WHERE "audit_logs"."tenant_id" = $8 AND "audit_logs"."seq" = $9))"#,
        vec![
            Value::Uuid(Some(u)),
            Value::Uuid(Some(t)),
            Value::BigInt(Some(2)),
            Value::Int(Some(1)),
            Value::Uuid(Some(t)),
            Value::BigInt(Some(1)),
            Value::Int(Some(1)),
            Value::Uuid(Some(t)),
            Value::BigInt(Some(2)),
        ],
    );
    pass(
        r#"UPDATE "agents" SET "status" = $1 WHERE "agents"."tenant_id" = $2 AND "agents"."id" = $3"#,
        vec![
            Value::String(Some("paused".into())),
            Value::Uuid(Some(t)),
            Value::Uuid(Some(u)),
        ],
    );
    assert_eq!(
        check(
            r#"SELECT "tenants"."id" FROM "tenants" WHERE "tenants"."id" = $1"#,
            &v(&[u]),
            &owned
        ),
        Ok(Verdict::Global)
    );
    assert_eq!(
        check(
            r#"/* bursar:cross-tenant:tenant_ids */ SELECT "tenants"."id" FROM "tenants""#,
            &[],
            &owned
        ),
        Ok(Verdict::Crossing("tenant_ids".into()))
    );
}

// ---------------------------------------------------------------------------
// The recorded scenario.

/// One statement as the store sent it.
#[derive(Clone, Debug)]
struct Recorded {
    sql: String,
    values: Vec<Value>,
}

/// A store on a fresh schema that records every statement it sends.
async fn recording_store(mode: RowLevelSecurity) -> (Store, Arc<Mutex<Vec<Recorded>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&log);
    let store = Store::builder(&common::fresh_postgres_schema().await)
        .row_level_security(mode)
        .on_statement(move |info| {
            let values = info
                .statement
                .values
                .as_ref()
                .map(|v| v.0.clone())
                .unwrap_or_default();
            sink.lock().expect("log").push(Recorded {
                sql: info.statement.sql.clone(),
                values,
            });
        })
        .connect()
        .await
        .expect("store");
    (store, log)
}

/// Runs everything bursar does, for two tenants, through `store`; returns
/// the tenants' ids.
async fn full_scenario(store: &Store) -> Vec<Uuid> {
    let ada = store
        .users()
        .create(NewUser::new("ada@example.com", "Ada"))
        .await
        .expect("user");
    let mut tenants = Vec::new();
    for slug in ["alpha", "beta"] {
        let t = store
            .tenants()
            .create(NewTenant::new(slug, slug).default_allow(true))
            .await
            .expect("tenant");
        store.tenants().by_slug(slug).await.expect("by slug");
        store.tenants().get(t.id).await.expect("get");
        let scope = store.tenant(t.id);
        common::scenario::populate(store, &scope).await;
        common::scenario::exercise_the_rest(store, &scope).await;
        scope
            .members()
            .add(ada.id, bursar::entity::tenant_member::SeatType::Pro)
            .await
            .expect("member");
        tenants.push(t.id.as_uuid());
    }
    use bursar::store::MemberRepository as _;
    let now = Utc::now();
    let sweep = store
        .expire_due_all(now + Duration::hours(2))
        .await
        .expect("sweep");
    assert!(sweep.is_complete(), "{:?}", sweep.failures);
    let approvals = store
        .expire_and_escalate_due_all(now + Duration::days(3))
        .await
        .expect("approval sweep");
    assert!(approvals.failures.is_empty(), "{:?}", approvals.failures);
    store.users().deactivate(ada.id).await.expect("deactivate");
    store.users().reactivate(ada.id).await.expect("reactivate");
    store
        .users()
        .by_email("ada@example.com")
        .await
        .expect("by email");
    // A key found from its secret alone, in the second tenant.
    let beta = store.tenant(bursar::id::TenantId::from(tenants[1]));
    let bot = common::agent(&beta, "keyed", None).await;
    let (key, _) = beta.agent_keys().issue(bot, None, None).await.expect("key");
    let who = store
        .authenticate_agent(&key.secret)
        .await
        .expect("authenticate");
    assert_eq!(who.agent_id, bot);
    tenants
}

async fn audit(mode: RowLevelSecurity) {
    let (store, log) = recording_store(mode).await;
    let tenants = full_scenario(&store).await;
    store.close().await.expect("close");
    let recorded = log.lock().expect("log").clone();
    let owned = owned();

    let mut refused = Vec::new();
    let mut crossings_seen = BTreeSet::new();
    let mut per_tenant = 0usize;
    let mut global = 0usize;
    let mut touched = BTreeSet::new();
    for r in &recorded {
        let (_, toks) = tokenize(&r.sql).expect("tokenizes");
        let tables: BTreeSet<String> = table_refs(&toks).into_iter().map(|t| t.table).collect();
        touched.extend(tables.iter().filter(|t| owned.contains(*t)).cloned());
        match check(&r.sql, &r.values, &owned) {
            Ok(Verdict::Tenant(t)) => {
                assert!(
                    tenants.contains(&t),
                    "{} binds an unknown tenant {t}",
                    r.sql
                );
                per_tenant += 1;
            }
            Ok(Verdict::Global) => global += 1,
            Ok(Verdict::Crossing(name)) => {
                match CROSSINGS.iter().find(|(n, _)| *n == name) {
                    Some((_, table)) => assert_eq!(
                        tables,
                        BTreeSet::from([(*table).to_owned()]),
                        "the {name} crossing reads {tables:?}: {}",
                        r.sql
                    ),
                    None => refused.push(format!("unlisted crossing {name}: {}", r.sql)),
                }
                crossings_seen.insert(name);
            }
            Err(why) => refused.push(format!("{why}: {}", r.sql)),
        }
    }
    refused.sort();
    refused.dedup();
    assert!(
        refused.is_empty(),
        "{mode:?}: {} statements do not name their tenant:\n{}",
        refused.len(),
        refused.join("\n")
    );
    let listed: BTreeSet<String> = CROSSINGS.iter().map(|(n, _)| (*n).to_owned()).collect();
    assert_eq!(
        crossings_seen, listed,
        "{mode:?}: every listed crossing ran"
    );
    let untouched: Vec<&String> = owned.iter().filter(|t| !touched.contains(*t)).collect();
    assert!(
        untouched.is_empty(),
        "{mode:?}: the scenario never touched {untouched:?}"
    );
    let shapes: BTreeSet<&str> = recorded.iter().map(|r| r.sql.as_str()).collect();
    eprintln!(
        "{mode:?}: {} statements ({} distinct), {per_tenant} confined to one tenant, \
         {global} on global tables or none, {} cross-tenant lookups; {} tenant-owned tables touched",
        recorded.len(),
        shapes.len(),
        recorded.len() - per_tenant - global,
        touched.len(),
    );
}

#[tokio::test]
async fn every_statement_of_a_full_scenario_names_its_tenant() {
    if common::postgres_url().is_none() {
        eprintln!("statements_name_their_tenant: skipped, BURSAR_TEST_POSTGRES_URL is not set");
        return;
    }
    audit(RowLevelSecurity::Bypassed).await;
    audit(RowLevelSecurity::Enforced).await;
}
