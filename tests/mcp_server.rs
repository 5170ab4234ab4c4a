//! The MCP server of `examples/mcp_server.rs`, driven by an MCP client
//! (`rmcp`'s client side): in process over a duplex pipe on every backend,
//! and as the compiled example, a child process speaking over stdio.

mod common;
#[allow(dead_code)]
#[path = "../examples/mcp_server.rs"]
mod mcp_server;

use bursar::store::BudgetRepository as _;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bursar::codes;
use bursar::entity::approval_request::ApprovalStatus;
use bursar::id::{AgentId, ApprovalRequestId, BudgetId};
use bursar::store::{
    AgentKeyRepository, AgentRepository, ApprovalRepository, NewAgent, PageRequest, UsageFilter,
};
use bursar::{Store, TenantScope};
use common::{Backend, backends, dec, fresh_postgres_schema, sqlite_file_url};
use mcp_server::{BursarMcp, seed};
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

type Client = RunningService<RoleClient, ()>;

const TOOLS: [&str; 11] = [
    "begin_llm_call",
    "check_budget",
    "complete_run",
    "finish_llm_call",
    "finish_tool_call",
    "get_policy_info",
    "get_run",
    "list_transactions",
    "request_purchase",
    "request_tool_call",
    "start_run",
];

async fn store_for(backend: Backend) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    Store::connect(&url).await.unwrap()
}

/// A client talking to the server in process, over a duplex pipe.
async fn in_process(store: &Store, key: &str) -> Client {
    let (server_io, client_io) = tokio::io::duplex(64 * 1024);
    let server = BursarMcp::new(store.clone(), key);
    tokio::spawn(async move {
        if let Ok(running) = server.serve(server_io).await {
            let _ = running.waiting().await;
        }
    });
    ().serve(client_io).await.unwrap()
}

/// Calls `tool` with `args`: whether it was an error, and its JSON. The text
/// content carries the same JSON as the structured content.
async fn call(client: &Client, tool: &'static str, args: Value) -> (bool, Value) {
    let Value::Object(args) = args else {
        panic!("arguments must be an object")
    };
    let result = client
        .call_tool(CallToolRequestParams::new(tool).with_arguments(args))
        .await
        .unwrap();
    let structured = result
        .structured_content
        .clone()
        .expect("structured content");
    let text = result
        .content
        .first()
        .and_then(|c| c.as_text())
        .map(|t| t.text.clone())
        .expect("text content");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), structured);
    (result.is_error == Some(true), structured)
}

/// Calls `tool`, which must succeed.
async fn ok(client: &Client, tool: &'static str, args: Value) -> Value {
    let (is_error, value) = call(client, tool, args).await;
    assert!(!is_error, "{tool} failed: {value}");
    value
}

/// Calls `tool`, which must fail: the error's `kind` and `field`.
async fn err(client: &Client, tool: &'static str, args: Value) -> (String, Option<String>) {
    let (is_error, value) = call(client, tool, args).await;
    assert!(is_error, "{tool} should have failed: {value}");
    let e = &value["error"];
    assert!(
        e["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{value}"
    );
    (
        e["kind"].as_str().unwrap().to_owned(),
        e["field"].as_str().map(str::to_owned),
    )
}

fn codes_of(answer: &Value) -> Vec<String> {
    answer["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["code"].as_str().unwrap().to_owned())
        .collect()
}

fn text<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

/// The agent's monthly budget as `check_budget` reports it.
async fn monthly(client: &Client) -> Value {
    let answer = ok(client, "check_budget", json!({ "period": "monthly" })).await;
    let budgets = answer["budgets"].as_array().unwrap();
    assert_eq!(budgets.len(), 1, "{answer}");
    budgets[0].clone()
}

/// The same budget's held amount, read through the library.
async fn held(scope: &TenantScope, budget: &Value) -> rust_decimal::Decimal {
    let id: BudgetId = text(budget, "budget_id").parse().unwrap();
    scope.budgets().status(id).await.unwrap().balance.reserved
}

/// Lists the tools, then an approved, a pending and a rejected purchase, and
/// checks the budget, the approval and the list after each.
async fn purchases(client: &Client, scope: &TenantScope) {
    let tools = client.list_all_tools().await.unwrap();
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOLS.into_iter().collect());
    let purchase = tools.iter().find(|t| t.name == "request_purchase").unwrap();
    let description = purchase.description.as_deref().unwrap();
    for outcome in ["\"approved\"", "\"pending_approval\"", "\"rejected\""] {
        assert!(description.contains(outcome), "{description}");
    }
    let schema = Value::Object((*purchase.input_schema).clone());
    assert_eq!(schema["properties"]["amount"]["type"], "string", "{schema}");
    let required: BTreeSet<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        required,
        BTreeSet::from(["amount", "currency", "description", "merchant_name"])
    );

    let before = monthly(client).await;
    assert_eq!(
        (
            text(&before, "limit"),
            text(&before, "spent"),
            text(&before, "held"),
            text(&before, "remaining"),
            text(&before, "scope"),
        ),
        ("500.00", "0.00", "0.00", "500.00", "agent")
    );

    // Approved: the amount is held.
    let approved = ok(
        client,
        "request_purchase",
        json!({
            "amount": "30.00", "currency": "USD", "description": "Copilot seat",
            "merchant_name": "GitHub", "merchant_url": "https://github.com/pricing",
            "project": "research", "idempotency_key": "req-1",
        }),
    )
    .await;
    assert_eq!(text(&approved, "outcome"), "approved", "{approved}");
    assert_eq!(text(&approved, "amount"), "30.00");
    assert_eq!(text(&approved, "currency"), "USD");
    assert!(approved["reservation_id"].is_string());
    assert_eq!(approved["replayed"], false);
    let after = monthly(client).await;
    assert_eq!(
        (text(&after, "held"), text(&after, "remaining")),
        ("30.00", "470.00")
    );
    assert_eq!(held(scope, &after).await, dec("30"));

    // The same idempotency key: the first answer again, nothing held twice.
    let again = ok(
        client,
        "request_purchase",
        json!({
            "amount": "30.00", "currency": "USD", "description": "Copilot seat",
            "merchant_name": "GitHub", "merchant_url": "https://github.com/pricing",
            "idempotency_key": "req-1",
        }),
    )
    .await;
    assert_eq!(again["replayed"], true);
    assert_eq!(again["purchase_intent_id"], approved["purchase_intent_id"]);
    assert_eq!(held(scope, &after).await, dec("30"));

    // Pending approval: an approval request is opened and the amount held.
    let pending = ok(
        client,
        "request_purchase",
        json!({
            "amount": "150.00", "currency": "USD", "description": "GPU hours",
            "merchant_name": "Lambda Labs",
        }),
    )
    .await;
    assert_eq!(text(&pending, "outcome"), "pending_approval", "{pending}");
    assert_eq!(codes_of(&pending), [codes::OVER_THRESHOLD]);
    let approval: ApprovalRequestId = text(&pending, "approval_request_id").parse().unwrap();
    let request = scope.approvals().get(approval).await.unwrap().request;
    assert_eq!(request.status, ApprovalStatus::Pending);
    assert_eq!(
        request.subject_id.to_string(),
        text(&pending, "purchase_intent_id")
    );
    assert_eq!(held(scope, &after).await, dec("180"));
    assert_eq!(text(&monthly(client).await, "held"), "180.00");

    // Rejected: the reason is named and nothing more is held.
    let rejected = ok(
        client,
        "request_purchase",
        json!({
            "amount": "40.00", "currency": "USD", "description": "ads",
            "merchant_name": " Facebook ADS ",
        }),
    )
    .await;
    assert_eq!(text(&rejected, "outcome"), "rejected", "{rejected}");
    assert_eq!(codes_of(&rejected), [codes::MERCHANT_BLOCKED]);
    assert!(rejected.get("reservation_id").is_none());
    assert_eq!(held(scope, &after).await, dec("180"));
    let over = ok(
        client,
        "request_purchase",
        json!({
            "amount": "250.00", "currency": "USD", "description": "a dataset",
            "merchant_name": "Scale AI",
        }),
    )
    .await;
    assert_eq!(codes_of(&over), [codes::OVER_TRANSACTION_LIMIT]);
    assert_eq!(text(&monthly(client).await, "held"), "180.00");

    // The list: newest first, with the decisions.
    let list = ok(client, "list_transactions", json!({})).await;
    let items = list["transactions"].as_array().unwrap();
    let statuses: Vec<&str> = items.iter().map(|i| text(i, "status")).collect();
    assert_eq!(
        statuses,
        ["rejected", "rejected", "pending_approval", "approved"]
    );
    assert_eq!(items[3]["id"], approved["purchase_intent_id"]);
    assert_eq!(text(&items[3], "amount"), "30.00");
    assert_eq!(text(&items[3], "description"), "Copilot seat");
    assert_eq!(
        text(&items[3], "merchant_url"),
        "https://github.com/pricing"
    );
    assert_eq!(
        items[2]["approval_request_id"],
        pending["approval_request_id"]
    );
    assert_eq!(items[1]["reasons"][0]["code"], codes::MERCHANT_BLOCKED);
    let only = ok(
        client,
        "list_transactions",
        json!({ "status": "pending_approval", "limit": 5 }),
    )
    .await;
    let only = only["transactions"].as_array().unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["id"], pending["purchase_intent_id"]);
    let one = ok(client, "list_transactions", json!({ "limit": 1 })).await;
    assert_eq!(one["transactions"].as_array().unwrap().len(), 1);
}

/// The demo tenant's scope and agent.
async fn demo(store: &Store) -> (TenantScope, AgentId, String) {
    let seeded = seed(store).await.unwrap();
    (store.tenant(seeded.tenant_id), seeded.agent_id, seeded.key)
}

#[tokio::test]
async fn an_mcp_client_requests_purchases_and_reads_its_budget() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (scope, _, key) = demo(&store).await;
        let client = in_process(&store, &key).await;
        purchases(&client, &scope).await;
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn bad_arguments_are_typed_errors_naming_the_field() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (_, _, key) = demo(&store).await;
        let client = in_process(&store, &key).await;
        let purchase = |amount: Value| {
            json!({
                "amount": amount, "currency": "USD", "description": "x",
                "merchant_name": "GitHub",
            })
        };
        // Amounts are decimal strings, never numbers.
        for amount in [json!(12.5), json!("1e3"), json!(" 5"), json!("-5")] {
            let (kind, field) = err(&client, "request_purchase", purchase(amount)).await;
            assert_eq!(
                (kind.as_str(), field.as_deref()),
                ("invalid", Some("amount"))
            );
        }
        let mut no_merchant = purchase(json!("5.00"));
        no_merchant.as_object_mut().unwrap().remove("merchant_name");
        let (kind, field) = err(&client, "request_purchase", no_merchant).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("merchant_name"))
        );
        let mut typo = purchase(json!("5.00"));
        typo.as_object_mut()
            .unwrap()
            .insert("ammount".into(), json!("5"));
        let (kind, _) = err(&client, "request_purchase", typo).await;
        assert_eq!(kind, "invalid");
        let mut currency = purchase(json!("5.00"));
        currency["currency"] = json!("usd dollars");
        let (kind, field) = err(&client, "request_purchase", currency).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("currency"))
        );

        let (kind, field) = err(&client, "check_budget", json!({ "period": "hourly" })).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("period"))
        );
        let (kind, field) = err(&client, "list_transactions", json!({ "limit": 0 })).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("limit"))
        );
        let (kind, field) = err(&client, "list_transactions", json!({ "status": "paid" })).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("status"))
        );
        let (kind, field) = err(&client, "get_run", json!({ "run_id": "nope" })).await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("run_id"))
        );
        let (kind, field) = err(
            &client,
            "request_tool_call",
            json!({ "tool": "search", "estimated_cost": "0.10" }),
        )
        .await;
        assert_eq!(
            (kind.as_str(), field.as_deref()),
            ("invalid", Some("currency"))
        );
        // Nothing was recorded.
        let list = ok(&client, "list_transactions", json!({})).await;
        assert_eq!(list["transactions"], json!([]));
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn a_refused_key_is_unauthenticated_on_every_tool() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (scope, agent, key) = demo(&store).await;
        let client = in_process(&store, "bsk_not-a-key").await;
        for (tool, args) in [
            ("check_budget", json!({})),
            ("get_policy_info", json!({})),
            ("list_transactions", json!({})),
        ] {
            let (kind, _) = err(&client, tool, args).await;
            assert_eq!(kind, "unauthenticated");
        }
        client.cancel().await.unwrap();

        // A key revoked while the server runs is refused from the next call on.
        let client = in_process(&store, &key).await;
        ok(&client, "check_budget", json!({})).await;
        let keys = scope
            .agent_keys()
            .list(agent, PageRequest::new())
            .await
            .unwrap();
        for k in keys.items {
            scope.agent_keys().revoke(k.id).await.unwrap();
        }
        let (kind, _) = err(&client, "check_budget", json!({})).await;
        assert_eq!(kind, "unauthenticated");
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn policy_info_shows_the_rules_that_apply_to_the_agent() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (scope, _, key) = demo(&store).await;
        // Another agent's controls are not this agent's rules.
        let other = scope.agents().create(NewAgent::new("other")).await.unwrap();
        scope
            .apply_controls(
                &bursar::policy::SpendingControls::new(bursar::money::Currency::USD)
                    .agent(other.id)
                    .daily_limit(dec("5"))
                    .build()
                    .unwrap(),
            )
            .await
            .unwrap();
        let client = in_process(&store, &key).await;
        let info = ok(&client, "get_policy_info", json!({})).await;
        assert_eq!(info["agent"]["name"], "demo-bot");
        assert_eq!(info["default_effect"], "deny");
        let codes: BTreeSet<&str> = info["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| text(p, "reason_code"))
            .collect();
        for code in [
            codes::OVER_TRANSACTION_LIMIT,
            codes::MONTHLY_LIMIT_EXCEEDED,
            codes::MERCHANT_BLOCKED,
            codes::OVER_THRESHOLD,
            "TOOLS_ALLOWED",
        ] {
            assert!(codes.contains(code), "{code} missing from {info}");
        }
        assert!(!codes.contains(codes::DAILY_LIMIT_EXCEEDED), "{info}");
        let budgets = info["budgets"].as_array().unwrap();
        assert_eq!(budgets.len(), 1, "{info}");
        assert_eq!(
            (text(&budgets[0], "period"), text(&budgets[0], "limit")),
            ("monthly", "500.00")
        );
        client.cancel().await.unwrap();
    }
}

#[tokio::test]
async fn tool_calls_and_llm_calls_are_governed_and_metered_in_a_run() {
    for backend in backends() {
        let store = store_for(backend).await;
        let (scope, agent, key) = demo(&store).await;
        let client = in_process(&store, &key).await;
        let run = ok(
            &client,
            "start_run",
            json!({
                "description": "research", "max_cost": "1.00", "currency": "USD",
                "max_rounds": 3, "allowed_tools": ["web_search"],
            }),
        )
        .await;
        let run_id = text(&run, "run_id").to_owned();
        assert_eq!(
            (text(&run, "status"), text(&run["caps"], "max_cost")),
            ("active", "1.00")
        );

        // A priced tool call: held, then settled for less.
        let search = ok(
            &client,
            "request_tool_call",
            json!({
                "tool": "web_search", "estimated_cost": "0.10", "currency": "USD",
                "run_id": run_id, "purpose": "find prices",
            }),
        )
        .await;
        assert_eq!(text(&search, "outcome"), "approved", "{search}");
        assert_eq!(text(&search, "kind"), "tool_call");
        let state = ok(&client, "get_run", json!({ "run_id": run_id })).await;
        assert_eq!(text(&state, "cost_held"), "0.10");
        let settled = ok(
            &client,
            "finish_tool_call",
            json!({ "call_id": search["call_id"], "actual_cost": "0.04" }),
        )
        .await;
        assert_eq!(text(&settled, "cost"), "0.04");

        // A tool the run does not allow.
        let shell = ok(
            &client,
            "request_tool_call",
            json!({ "tool": "shell", "run_id": run_id }),
        )
        .await;
        assert_eq!(text(&shell, "outcome"), "rejected");
        assert_eq!(codes_of(&shell), [codes::RUN_LIMIT_EXCEEDED]);
        let (kind, _) = err(
            &client,
            "finish_tool_call",
            json!({ "call_id": shell["call_id"], "actual_cost": "0" }),
        )
        .await;
        assert_eq!(kind, "conflict");

        // A metered LLM call: 10,000 × 3 / 1M + 2,000 × 15 / 1M held,
        // 10,000 × 3 / 1M + 500 × 15 / 1M spent.
        let begun = ok(
            &client,
            "begin_llm_call",
            json!({
                "provider": "anthropic", "model": "claude-sonnet", "input_tokens": 10000,
                "max_output_tokens": 2000, "run_id": run_id,
            }),
        )
        .await;
        assert_eq!(text(&begun, "outcome"), "approved", "{begun}");
        assert_eq!(text(&begun, "amount"), "0.06");
        let finished = ok(
            &client,
            "finish_llm_call",
            json!({ "call_id": begun["call_id"], "input_tokens": 10000, "output_tokens": 500 }),
        )
        .await;
        assert_eq!(text(&finished, "cost"), "0.0375");
        // A tool call's handle is not an LLM call's.
        let (kind, _) = err(
            &client,
            "finish_llm_call",
            json!({ "call_id": search["call_id"], "input_tokens": 1, "output_tokens": 1 }),
        )
        .await;
        assert_eq!(kind, "not_found");

        let unknown = ok(
            &client,
            "begin_llm_call",
            json!({
                "provider": "anthropic", "model": "opus", "input_tokens": 10,
                "max_output_tokens": 10, "run_id": run_id,
            }),
        )
        .await;
        assert_eq!(codes_of(&unknown), [codes::PRICE_UNKNOWN]);

        // Two admitted actions, 0.04 + 0.0375 spent, 10,500 tokens.
        let state = ok(&client, "get_run", json!({ "run_id": run_id })).await;
        assert_eq!(state["rounds"], 2, "{state}");
        assert_eq!(state["total_tokens"], 10500);
        assert_eq!(
            (text(&state, "cost_spent"), text(&state, "cost_held")),
            ("0.0775", "0.00")
        );
        let totals = scope
            .meter()
            .totals(UsageFilter {
                agent: Some(agent),
                ..UsageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(totals.calls, 1);

        let done = ok(&client, "complete_run", json!({ "run_id": run_id })).await;
        assert_eq!(text(&done, "status"), "completed");
        let late = ok(
            &client,
            "request_tool_call",
            json!({ "tool": "web_search", "run_id": run_id }),
        )
        .await;
        assert_eq!(codes_of(&late), [codes::RUN_EXPIRED]);

        // Another agent's run is not found, like a missing one.
        let other = scope.agents().create(NewAgent::new("other")).await.unwrap();
        let (other_key, _) = scope
            .agent_keys()
            .issue(other.id, None, None)
            .await
            .unwrap();
        let intruder = in_process(&store, &other_key.secret).await;
        let (kind, _) = err(&intruder, "get_run", json!({ "run_id": run_id })).await;
        assert_eq!(kind, "not_found");
        let (kind, _) = err(
            &intruder,
            "finish_llm_call",
            json!({ "call_id": begun["call_id"], "input_tokens": 1, "output_tokens": 1 }),
        )
        .await;
        assert_eq!(kind, "not_found");
        let theirs = ok(&intruder, "list_transactions", json!({})).await;
        assert_eq!(theirs["transactions"], json!([]));
        intruder.cancel().await.unwrap();
        client.cancel().await.unwrap();
    }
}

// ---------------------------------------------------------------------------
// The compiled example, spawned

/// The compiled example, `target/<profile>/examples/mcp_server` next to this
/// test's `deps/` directory. `cargo test` and `cargo nextest run` without a
/// target filter build it with the tests; when it is missing or older than
/// the sources (a run filtered to this test), it is built here, once.
fn example_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lives in target/<profile>/deps");
        let path = profile_dir
            .join("examples")
            .join(format!("mcp_server{}", std::env::consts::EXE_SUFFIX));
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let built = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        let sources = [root.join("examples/mcp_server.rs"), root.join("src")]
            .iter()
            .filter_map(|p| newest(p))
            .max();
        if built.is_none() || sources > built {
            let target_dir = profile_dir.parent().expect("target directory");
            let mut cargo = std::process::Command::new(env!("CARGO"));
            cargo
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "mcp_server",
                    "--manifest-path",
                ])
                .arg(root.join("Cargo.toml"))
                .arg("--target-dir")
                .arg(target_dir);
            match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => {}
                Some("release") => {
                    cargo.arg("--release");
                }
                Some(profile) => {
                    cargo.args(["--profile", profile]);
                }
                None => panic!("no profile directory in {}", exe.display()),
            }
            let status = cargo.status().expect("run cargo");
            assert!(
                status.success(),
                "cargo build --example mcp_server: {status}"
            );
        }
        assert!(path.is_file(), "{} is missing", path.display());
        path
    })
}

/// The newest modification time of `path` and, for a directory, of what it
/// holds.
fn newest(path: &Path) -> Option<std::time::SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let own = meta.modified().ok();
    if !meta.is_dir() {
        return own;
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| newest(&entry.path()))
        .chain(own)
        .max()
}

fn command(url: &str, key: &str) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(example_binary());
    cmd.env("BURSAR_DATABASE_URL", url)
        .env("BURSAR_AGENT_KEY", key)
        .kill_on_drop(true);
    cmd
}

#[tokio::test]
async fn the_example_serves_a_client_over_stdio() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::connect(&url).await.unwrap();
    let (scope, _, key) = demo(&store).await;
    let transport = TokioChildProcess::new(command(&url, &key)).unwrap();
    let client = ().serve(transport).await.unwrap();
    let info = client.peer_info().expect("server info");
    assert_eq!(
        info.server_info.as_ref().map(|s| s.name.as_str()),
        Some("bursar")
    );
    purchases(&client, &scope).await;
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn the_example_writes_only_protocol_to_stdout_and_exits_with_its_input() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::connect(&url).await.unwrap();
    let (_, _, key) = demo(&store).await;
    let mut child = command(&url, &key)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "check_budget", "arguments": {"period": "all"}}}),
    ];
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut answers = Vec::new();
    for message in messages {
        let expects_answer = message.get("id").is_some();
        stdin
            .write_all(format!("{message}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        if expects_answer {
            let line = tokio::time::timeout(std::time::Duration::from_secs(30), stdout.next_line())
                .await
                .expect("an answer in time")
                .unwrap()
                .expect("a line");
            answers.push(serde_json::from_str::<Value>(&line).expect("JSON-RPC on stdout"));
        }
    }
    drop(stdin);
    // Nothing else comes out, and the server ends with its input.
    let rest = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let mut rest = Vec::new();
        while let Some(line) = stdout.next_line().await.unwrap() {
            rest.push(line);
        }
        rest
    })
    .await
    .expect("stdout closes");
    assert!(rest.iter().all(|l| l.trim().is_empty()), "{rest:?}");
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits")
        .unwrap();
    assert!(status.success(), "{status}");

    assert_eq!(answers[0]["id"], 1);
    assert_eq!(answers[0]["result"]["serverInfo"]["name"], "bursar");
    assert!(answers[0]["result"]["capabilities"]["tools"].is_object());
    assert_eq!(answers[1]["id"], 2);
    let result = &answers[1]["result"];
    assert_eq!(result["isError"], false, "{result}");
    let budget = &result["structuredContent"]["budgets"][0];
    assert_eq!(
        (budget["limit"].as_str(), budget["held"].as_str()),
        (Some("500.00"), Some("0.00"))
    );
}

#[tokio::test]
async fn the_example_refuses_to_start_without_a_working_key() {
    let (_dir, url) = sqlite_file_url();
    let store = Store::connect(&url).await.unwrap();
    demo(&store).await;
    for key in ["", "bsk_not-a-key"] {
        let output = command(&url, key)
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{key:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("BURSAR_AGENT_KEY"), "{stderr}");
    }
}
