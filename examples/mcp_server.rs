//! An MCP server giving an AI agent bursar: it asks before it spends, reads
//! its budgets and its history, asks before calling a tool, and meters its
//! LLM calls, all as the agent of one bursar API key.
//!
//! The server speaks the Model Context Protocol over stdio with the official
//! Rust SDK (`rmcp`): an MCP client (a desktop assistant, an agent framework)
//! starts it as a child process. Nothing but protocol goes to stdout; logs go
//! to stderr.
//!
//! ```text
//! cargo run --example mcp_server -- --seed     # once: a demo tenant, prints a key
//! BURSAR_AGENT_KEY=bsk_… cargo run --example mcp_server
//! ```
//!
//! Configuration, from the environment:
//!
//! * `BURSAR_DATABASE_URL` — `sqlite://path.db?mode=rwc` or
//!   `postgres://user:pass@host/db` (default `sqlite://bursar-mcp.db?mode=rwc`,
//!   a file in the working directory: give an absolute path when an MCP
//!   client starts the server);
//! * `BURSAR_AGENT_KEY` — the agent's bursar API key. Every tool call acts as
//!   that key's agent, in that key's tenant, and checks the key again: a key
//!   revoked (or an agent paused) while the server runs is refused from the
//!   next call on.
//!
//! `--seed` prepares a demo instead of serving: when the database has no
//! tenant with the slug `demo`, it creates one ("Demo") with an agent
//! `demo-bot` under spending controls (at most 200.00 USD a purchase and
//! 500.00 USD a month, purchases above 100.00 USD need a human's approval,
//! "Facebook Ads" is blocked), a policy letting the agent call tools and use
//! LLMs, and a price for the model `claude-sonnet` of provider `anthropic`
//! (3 USD per million input tokens, 15 per million output tokens). Then it
//! issues a new key for `demo-bot` and prints it to stdout, once: bursar keeps
//! only its hash.
//!
//! # Tools
//!
//! | tool | what it does |
//! |---|---|
//! | `request_purchase` | asks to buy: `approved`, `pending_approval` or `rejected`, with the reasons |
//! | `check_budget` | the agent's budgets (daily, weekly, monthly or all): limit, spent, held, remaining |
//! | `list_transactions` | the agent's requests, newest first, by status |
//! | `get_policy_info` | the policies and budgets that govern the agent |
//! | `request_tool_call` / `finish_tool_call` | asks before calling a tool (optionally with a cost held), then settles the cost |
//! | `begin_llm_call` / `finish_llm_call` | meters an LLM call: estimate and hold, then record the usage and settle |
//! | `start_run` / `get_run` / `complete_run` | a run with caps (cost, rounds, tokens, time, tools, models) |
//!
//! Amounts are decimal strings (`"12.50"`), never numbers, in both
//! directions. A result is a JSON object (the tool result's structured
//! content, and the same JSON as its text). An error is a tool result with
//! `isError: true` and the JSON
//! `{"error":{"kind":"invalid","field":"amount","message":"…","retryable":false}}`:
//! `kind` is [`bursar::Error::code`] (`invalid`, `unauthenticated`,
//! `not_found`, `conflict`, `contention`, `unavailable`, `storage_full`,
//! `database`, …), `field` names the argument for `invalid`, and `retryable`
//! says whether the same call (with the same idempotency key) may succeed
//! later ([`bursar::Error::is_transient`]). Arguments that do not fit a tool's
//! schema (a missing or unknown field, a wrong type) are `invalid` the same
//! way. A `database` error's details go to the log; the agent reads `internal
//! error`.

use bursar::store::{BudgetRepository as _, ReservationRepository as _, TenantRepository as _};
use std::sync::Arc;

use bursar::budget::{Period, Scope};
use bursar::entity::purchase_intent::{self, PurchaseIntentStatus};
use bursar::entity::{agent, budget};
use bursar::id::{AgentId, PurchaseIntentId, RunId, TenantId};
use bursar::money::{Currency, Money, parse_decimal};
use bursar::policy::{
    ActionKind, Condition, Effect, Policy, PolicyScope, Reason, Request, SpendingControls,
};
use bursar::store::{
    AgentKeyRepository, AgentRepository, MAX_PAGE_SIZE, MeterRequest, NewAgent, NewPrice, NewRun,
    NewTenant, PageRequest, PolicyRepository, PurchaseIntentRepository, Usage,
};
use bursar::{Error, Store, TenantScope};
use rmcp::handler::server::common::{schema_for_input, schema_for_type};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::schemars::JsonSchema;
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use rust_decimal::Decimal;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// The database used when `BURSAR_DATABASE_URL` is not set.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://bursar-mcp.db?mode=rwc";
/// Most requests `list_transactions` returns at once.
pub const MAX_LIST: u64 = 100;
/// Requests `list_transactions` returns when the call does not say.
pub const DEFAULT_LIST: u64 = 20;

// ---------------------------------------------------------------------------
// Tool arguments: their JSON schemas are what the agent sees.

/// Arguments of `request_purchase`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct PurchaseArgs {
    /// The amount, a decimal string in the currency's units such as "12.50"
    /// (not a JSON number; no sign, exponent or spaces).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub amount: String,
    /// The ISO 4217 currency code, e.g. "USD".
    pub currency: String,
    /// What is being bought and why, for the humans who review it.
    pub description: String,
    /// The merchant's name, e.g. "GitHub".
    pub merchant_name: String,
    /// The merchant's URL or domain, e.g. "https://github.com/pricing".
    #[serde(default)]
    pub merchant_url: Option<String>,
    /// The project the purchase is for, as a label recorded with the request
    /// (metadata `project`). Budgets charge the project the agent is assigned to.
    #[serde(default)]
    pub project: Option<String>,
    /// Any text unique to this purchase: asking again with the same key
    /// returns the first answer instead of asking twice (use it when retrying).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The run the purchase belongs to (from `start_run`).
    #[serde(default)]
    pub run_id: Option<String>,
}

/// A budget period, or all of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(crate = "rmcp::schemars")]
pub enum PeriodFilter {
    /// Budgets resetting every day.
    Daily,
    /// Budgets resetting every Monday.
    Weekly,
    /// Budgets resetting every calendar month.
    Monthly,
    /// Every budget, including yearly and lifetime ones.
    #[default]
    All,
}

impl PeriodFilter {
    fn admits(self, period: Period) -> bool {
        match self {
            Self::Daily => period == Period::Daily,
            Self::Weekly => period == Period::Weekly,
            Self::Monthly => period == Period::Monthly,
            Self::All => true,
        }
    }
}

/// Arguments of `check_budget`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct BudgetArgs {
    /// Which budgets: "daily", "weekly", "monthly" or "all" (the default).
    #[serde(default)]
    pub period: PeriodFilter,
}

/// A request's decision state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
#[schemars(crate = "rmcp::schemars")]
pub enum StatusFilter {
    /// Approved: go ahead (a purchase's amount is held until it is charged).
    Approved,
    /// Waiting for a human's decision.
    PendingApproval,
    /// Refused.
    Rejected,
    /// The approval was not given in time.
    Expired,
    /// Withdrawn.
    Cancelled,
    /// Not decided yet.
    Pending,
}

impl StatusFilter {
    fn status(self) -> PurchaseIntentStatus {
        match self {
            Self::Approved => PurchaseIntentStatus::Approved,
            Self::PendingApproval => PurchaseIntentStatus::PendingApproval,
            Self::Rejected => PurchaseIntentStatus::Rejected,
            Self::Expired => PurchaseIntentStatus::Expired,
            Self::Cancelled => PurchaseIntentStatus::Cancelled,
            Self::Pending => PurchaseIntentStatus::Pending,
        }
    }
}

/// Arguments of `list_transactions`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct ListArgs {
    /// How many, newest first: 1 to 100 (default 20).
    #[serde(default)]
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u64>,
    /// Only requests in this state.
    #[serde(default)]
    pub status: Option<StatusFilter>,
}

/// Arguments of `get_policy_info`: none.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct NoArgs {}

/// Arguments of `request_tool_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct ToolCallArgs {
    /// The tool about to be called, e.g. "web_search".
    pub tool: String,
    /// What the call will cost at most, a decimal string such as "0.25"; held
    /// on the budgets until `finish_tool_call`. Leave out for a free call.
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub estimated_cost: Option<String>,
    /// The ISO 4217 currency of `estimated_cost` (required with it).
    #[serde(default)]
    pub currency: Option<String>,
    /// What the call is for, recorded with the request (metadata `purpose`).
    #[serde(default)]
    pub purpose: Option<String>,
    /// The run the call belongs to (from `start_run`).
    #[serde(default)]
    pub run_id: Option<String>,
    /// Any text unique to this call: asking again with the same key returns
    /// the first answer.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Arguments of `finish_tool_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct FinishToolCallArgs {
    /// The `call_id` that `request_tool_call` returned.
    pub call_id: String,
    /// What the call actually cost, a decimal string in the estimate's
    /// currency ("0" for nothing; the rest of the hold returns to the budgets).
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub actual_cost: String,
}

/// Arguments of `begin_llm_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct BeginLlmArgs {
    /// The provider, e.g. "anthropic".
    pub provider: String,
    /// The model, e.g. "claude-sonnet".
    pub model: String,
    /// Tokens of the prompt.
    pub input_tokens: u64,
    /// The most tokens the call may produce (the provider's max_tokens).
    pub max_output_tokens: u64,
    /// The run the call belongs to (from `start_run`).
    #[serde(default)]
    pub run_id: Option<String>,
    /// Made with the tenant's own provider key.
    #[serde(default)]
    pub byok: bool,
    /// Any text unique to this call: asking again with the same key returns
    /// the first answer.
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

/// Arguments of `finish_llm_call`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct FinishLlmArgs {
    /// The `call_id` that `begin_llm_call` returned.
    pub call_id: String,
    /// Input tokens used, including those served from cache.
    pub input_tokens: u64,
    /// Output tokens produced.
    pub output_tokens: u64,
    /// Input tokens served from the provider's cache.
    #[serde(default)]
    pub cached_input_tokens: u64,
    /// Reasoning tokens, when the provider counts them apart.
    #[serde(default)]
    pub reasoning_tokens: u64,
    /// How long the call took, in milliseconds.
    #[serde(default)]
    pub latency_ms: Option<u64>,
    /// The call failed or was cancelled: only its input is charged.
    #[serde(default)]
    pub failed: bool,
}

/// Arguments of `start_run`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct StartRunArgs {
    /// What the run is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The most the whole run may spend, a decimal string such as "5.00".
    #[serde(default)]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub max_cost: Option<String>,
    /// The ISO 4217 currency of `max_cost` (required with it).
    #[serde(default)]
    pub currency: Option<String>,
    /// The most actions (purchases, tool calls, LLM calls) the run may take.
    #[serde(default)]
    pub max_rounds: Option<u32>,
    /// The most LLM tokens (input plus output) the run may use.
    #[serde(default)]
    pub max_tokens: Option<u64>,
    /// How long the run may last, in seconds from now.
    #[serde(default)]
    pub max_duration_secs: Option<u64>,
    /// The only tools the run may call.
    #[serde(default)]
    pub allowed_tools: Option<Vec<String>>,
    /// The only models the run may use.
    #[serde(default)]
    pub allowed_models: Option<Vec<String>>,
}

/// Arguments of `get_run` and `complete_run`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(crate = "rmcp::schemars")]
pub struct RunArgs {
    /// The `run_id` that `start_run` returned.
    pub run_id: String,
}

/// The input schema of a tool taking `T`.
fn schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    schema_for_input::<T>().unwrap_or_else(|_| schema_for_type::<T>())
}

// ---------------------------------------------------------------------------
// Errors and results

/// The JSON of an error: `{"error":{"kind","field"?,"message","retryable"}}`.
/// A `database` error's details are logged, not shown.
pub fn error_json(err: &Error) -> Value {
    let (field, message) = match err {
        Error::Invalid { field, reason } => (Some(field.as_str()), reason.clone()),
        Error::InvalidPolicy { path, reason } => (Some(path.as_str()), reason.clone()),
        Error::Database(_) => {
            eprintln!("mcp_server: internal error: {err:?}");
            (None, "internal error".to_owned())
        }
        other => {
            if other.is_transient() {
                eprintln!("mcp_server: transient error: {other}");
            }
            (None, other.to_string())
        }
    };
    let mut detail = Map::new();
    detail.insert("kind".into(), json!(err.code()));
    if let Some(field) = field {
        detail.insert("field".into(), json!(field));
    }
    detail.insert("message".into(), json!(message));
    detail.insert("retryable".into(), json!(err.is_transient()));
    json!({ "error": detail })
}

/// A tool's answer: the JSON as structured content, or the error JSON with
/// `isError`.
fn reply(result: bursar::Result<Value>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::structured(value),
        Err(err) => CallToolResult::structured_error(error_json(&err)),
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Reads a tool's arguments as `T`, naming the offending field.
fn parse_args<T: DeserializeOwned>(args: JsonObject) -> bursar::Result<T> {
    serde_path_to_error::deserialize(Value::Object(args)).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        // A missing field is reported at its parent: name it.
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (parent, Some(name)) => format!("{parent}.{name}"),
            (".", None) => "arguments".to_owned(),
            (path, None) => path.to_owned(),
        };
        invalid(&field, message)
    })
}

fn parse_amount(field: &str, text: &str) -> bursar::Result<Decimal> {
    parse_decimal(text).map_err(|e| invalid(field, e.to_string()))
}

fn parse_currency(field: &str, code: &str) -> bursar::Result<Currency> {
    Currency::from_code(code).map_err(|e| invalid(field, e.to_string()))
}

/// An amount and its currency given as two optional arguments: both or none.
fn parse_cost(
    amount_field: &str,
    amount: Option<&str>,
    currency: Option<&str>,
) -> bursar::Result<Option<(Decimal, Currency)>> {
    match (amount, currency) {
        (None, None) => Ok(None),
        (Some(amount), Some(currency)) => Ok(Some((
            parse_amount(amount_field, amount)?,
            parse_currency("currency", currency)?,
        ))),
        (Some(_), None) => Err(invalid("currency", format!("required with {amount_field}"))),
        (None, Some(_)) => Err(invalid(
            amount_field,
            "required with currency (or leave both out)",
        )),
    }
}

fn parse_id<T: std::str::FromStr>(field: &str, text: &str) -> bursar::Result<T> {
    text.trim()
        .parse()
        .map_err(|_| invalid(field, format!("{text:?} is not an id")))
}

/// `amount` shown with at least the currency's minor units: `"30.00"`.
fn money_text(amount: Decimal, currency: Currency) -> String {
    let mut shown = amount;
    if shown.scale() < currency.minor_units() {
        shown.rescale(currency.minor_units());
    }
    shown.to_string()
}

fn reasons_json(reasons: &[Reason]) -> Value {
    Value::Array(
        reasons
            .iter()
            .map(|r| json!({ "code": r.code(), "message": r.message() }))
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// The server

/// The agent a valid key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The agent's tenant: every call is confined to it.
    pub tenant_id: TenantId,
    /// The agent.
    pub agent_id: AgentId,
}

/// bursar as MCP tools, for the agent holding one API key.
#[derive(Clone)]
pub struct BursarMcp {
    store: Store,
    key: Arc<str>,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for BursarMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BursarMcp")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

#[tool_router]
impl BursarMcp {
    /// Serves the agent holding `key` from `store`. The key is checked on
    /// every call (see [`BursarMcp::caller`]).
    pub fn new(store: Store, key: &str) -> Self {
        Self {
            store,
            key: Arc::from(key),
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Ask permission before buying anything. Amounts are decimal strings (\"12.50\"). \
The answer's `outcome` says what to do: \
\"approved\" — go ahead and pay; the amount is held on your budgets (`reservation_id`) until \
`hold_expires_at`, and the charge settles it. \
\"pending_approval\" — do NOT pay yet: a human must decide approval request `approval_request_id`; \
the amount is held meanwhile; check later with list_transactions (the status becomes approved, \
rejected or expired). \
\"rejected\" — do NOT pay; `reasons` (code and message) say why, e.g. OVER_TRANSACTION_LIMIT, \
MONTHLY_LIMIT_EXCEEDED, MERCHANT_BLOCKED, MERCHANT_NOT_ALLOWED, NO_MATCHING_POLICY, RUN_LIMIT_EXCEEDED; \
asking again unchanged is rejected again. \
`replayed: true` means this idempotency_key was used before and this is the first answer again.",
        input_schema = schema::<PurchaseArgs>()
    )]
    async fn request_purchase(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.purchase(args).await)
    }

    #[tool(
        description = "Your budgets and what is left of them in the current period. For each budget \
that applies to you (yours, your team's, your project's, the whole organisation's): `limit`, \
`spent` (charged), `held` (reserved by approved or pending requests not charged yet) and \
`remaining` = limit - spent - held, as decimal strings. \
A purchase must fit the remaining amount of every budget in its currency. \
`period`: \"daily\", \"weekly\", \"monthly\" or \"all\" (default).",
        input_schema = schema::<BudgetArgs>()
    )]
    async fn check_budget(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.budgets(args).await)
    }

    #[tool(
        description = "Your requests (purchases, tool calls, LLM calls), newest first: `status` \
(approved, pending_approval, rejected, expired, cancelled), `kind`, amount and currency, merchant, \
reasons, and the hold or approval request. Use it to follow up a pending approval: its status \
turns approved (go ahead), rejected or expired (do not pay). `limit` 1 to 100 (default 20); \
`status` filters.",
        input_schema = schema::<ListArgs>()
    )]
    async fn list_transactions(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.transactions(args).await)
    }

    #[tool(
        description = "The rules you act under: the enabled policies that apply to you (name, effect \
allow / deny / require_approval, priority, the reason code a match reports, and the condition), \
what happens when no policy matches (`default_effect`), and your budgets' limits. Read it to know \
in advance what will be approved, sent to a human, or rejected.",
        input_schema = schema::<NoArgs>()
    )]
    async fn get_policy_info(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.policy_info(args).await)
    }

    #[tool(
        description = "Ask permission before calling a tool. With `estimated_cost` (a decimal string) \
and `currency`, the cost is held on your budgets like a purchase; settle it with finish_tool_call \
after the call. `outcome`: \"approved\" — call the tool (keep `call_id` to finish it); \
\"pending_approval\" — do not call it yet, a human decides `approval_request_id`; \
\"rejected\" — do not call it; `reasons` say why (e.g. RUN_LIMIT_EXCEEDED for a tool the run \
does not allow or a run out of rounds, RUN_KILLED, NO_MATCHING_POLICY).",
        input_schema = schema::<ToolCallArgs>()
    )]
    async fn request_tool_call(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.tool_call(args).await)
    }

    #[tool(
        description = "After an approved tool call with a cost: report what it actually cost (a decimal \
string in the estimate's currency, \"0\" if nothing). That amount becomes spent and the rest of the \
hold returns to your budgets. Reporting the same amount again changes nothing.",
        input_schema = schema::<FinishToolCallArgs>()
    )]
    async fn finish_tool_call(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.finish_tool(args).await)
    }

    #[tool(
        description = "Before an LLM call: estimate its cost (input tokens plus the max_output_tokens \
bound, at the tenant's price for the model) and hold it on your budgets and run. `outcome`: \
\"approved\" — make the call, then report its usage with finish_llm_call and `call_id`; \
\"pending_approval\" — wait for a human; \"rejected\" — do not make the call: PRICE_UNKNOWN (no \
price for the model), RUN_LIMIT_EXCEEDED (a run cap: tokens, rounds, cost, models), a budget code, \
or a policy's code.",
        input_schema = schema::<BeginLlmArgs>()
    )]
    async fn begin_llm_call(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.begin_llm(args).await)
    }

    #[tool(
        description = "After an LLM call begun with begin_llm_call: report the tokens it used. Its \
actual cost (a decimal string) becomes spent, the rest of the estimate returns to your budgets, \
and the tokens count on the run. A failed call (`failed: true`) is charged its input only. \
Reporting the same call again returns the first record.",
        input_schema = schema::<FinishLlmArgs>()
    )]
    async fn finish_llm_call(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.finish_llm(args).await)
    }

    #[tool(
        description = "Start a run: a unit of work with caps you choose (all optional): `max_cost` \
with `currency` (a decimal string; a budget of the run), `max_rounds` (actions), `max_tokens`, \
`max_duration_secs`, `allowed_tools`, `allowed_models`. Pass its `run_id` to the other tools; an \
action past a cap is rejected with RUN_LIMIT_EXCEEDED or RUN_EXPIRED, and every action of a run a \
human killed with RUN_KILLED.",
        input_schema = schema::<StartRunArgs>()
    )]
    async fn start_run(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.start(args).await)
    }

    #[tool(
        description = "One of your runs: its status (active, completed, killed, …), rounds and tokens \
used, cost spent and held (decimal strings) and its caps.",
        input_schema = schema::<RunArgs>()
    )]
    async fn get_run(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.run_state(args).await)
    }

    #[tool(
        description = "End one of your runs normally: later actions naming it are rejected with \
RUN_EXPIRED. Completing a completed run changes nothing.",
        input_schema = schema::<RunArgs>()
    )]
    async fn complete_run(&self, Parameters(args): Parameters<JsonObject>) -> CallToolResult {
        reply(self.complete(args).await)
    }
}

#[tool_handler(
    router = self.tool_router,
    name = "bursar",
    instructions = "bursar governs what you may spend and do. Ask request_purchase before any \
purchase and request_tool_call before a governed tool; pay or call only when the outcome is \
\"approved\". Amounts are decimal strings such as \"12.50\". check_budget shows what is left, \
get_policy_info the rules, list_transactions your requests and their decisions."
)]
impl ServerHandler for BursarMcp {}

impl BursarMcp {
    /// The agent of the server's key, checked now.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a malformed, unknown, revoked or expired
    /// key, or an agent that is not active; [`Error::Database`].
    pub async fn caller(&self) -> bursar::Result<Caller> {
        let key = self.store.authenticate_agent(&self.key).await?;
        Ok(Caller {
            tenant_id: key.tenant_id,
            agent_id: key.agent_id,
        })
    }

    async fn scope(&self) -> bursar::Result<(Caller, TenantScope)> {
        let caller = self.caller().await?;
        Ok((caller, self.store.tenant(caller.tenant_id)))
    }

    /// A run of the caller's; another agent's run is not found, like a
    /// missing one.
    async fn own_run(
        &self,
        scope: &TenantScope,
        caller: Caller,
        text: &str,
    ) -> bursar::Result<RunId> {
        let id: RunId = parse_id("run_id", text)?;
        let state = scope.runs().get(id).await?;
        if state.run.agent_id != Some(caller.agent_id) {
            return Err(Error::NotFound {
                entity: "agent_run",
                id: id.to_string(),
            });
        }
        Ok(id)
    }

    /// A request of the caller's of the given kind.
    async fn own_intent(
        &self,
        scope: &TenantScope,
        caller: Caller,
        text: &str,
        kind: &str,
    ) -> bursar::Result<purchase_intent::Model> {
        let id: PurchaseIntentId = parse_id("call_id", text)?;
        let intent = scope.purchase_intents().get(id).await?;
        if intent.agent_id != Some(caller.agent_id) || intent.action_kind != kind {
            return Err(Error::NotFound {
                entity: "purchase_intent",
                id: id.to_string(),
            });
        }
        Ok(intent)
    }

    async fn purchase(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: PurchaseArgs = parse_args(args)?;
        let amount = parse_amount("amount", &args.amount)?;
        let currency = parse_currency("currency", &args.currency)?;
        let (caller, scope) = self.scope().await?;
        let mut request = Request::purchase(caller.agent_id, amount, currency, args.merchant_name)
            .metadata("description", args.description);
        if let Some(url) = args.merchant_url {
            request = request.merchant_domain(url);
        }
        if let Some(project) = args.project {
            request = request.metadata("project", project);
        }
        if let Some(key) = args.idempotency_key {
            request = request.idempotency_key(key);
        }
        if let Some(run) = &args.run_id {
            request = request.run(parse_id("run_id", run)?);
        }
        let authorization = scope.authorize(request).await?;
        decision_json(caller, &authorization, "purchase_intent_id")
    }

    async fn tool_call(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: ToolCallArgs = parse_args(args)?;
        let cost = parse_cost(
            "estimated_cost",
            args.estimated_cost.as_deref(),
            args.currency.as_deref(),
        )?;
        let (caller, scope) = self.scope().await?;
        let mut request = Request::tool_call(caller.agent_id, args.tool);
        if let Some((amount, currency)) = cost {
            request = request.cost(amount, currency);
        }
        if let Some(purpose) = args.purpose {
            request = request.metadata("purpose", purpose);
        }
        if let Some(key) = args.idempotency_key {
            request = request.idempotency_key(key);
        }
        if let Some(run) = &args.run_id {
            request = request.run(parse_id("run_id", run)?);
        }
        let authorization = scope.authorize(request).await?;
        decision_json(caller, &authorization, "call_id")
    }

    async fn finish_tool(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: FinishToolCallArgs = parse_args(args)?;
        let cost = parse_amount("actual_cost", &args.actual_cost)?;
        let (caller, scope) = self.scope().await?;
        let intent = self
            .own_intent(&scope, caller, &args.call_id, "tool_call")
            .await?;
        let reservation = intent.reservation_id.ok_or_else(|| Error::Conflict {
            entity: "purchase_intent",
            reason: format!(
                "tool call {} holds no cost to settle: it was asked without an estimated cost, or rejected",
                intent.id
            ),
        })?;
        let money =
            Money::new(cost, intent.currency).map_err(|e| invalid("actual_cost", e.to_string()))?;
        let settled = scope.reservations().capture(reservation, money).await?;
        let captured = settled.captured_amount.get();
        Ok(json!({
            "call_id": intent.id,
            "tool": intent.merchant_name,
            "cost": money_text(captured, settled.currency),
            "estimated_cost": money_text(settled.amount.get(), settled.currency),
            "currency": settled.currency,
        }))
    }

    async fn begin_llm(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: BeginLlmArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let mut call = MeterRequest::new(
            caller.agent_id,
            args.provider,
            args.model,
            args.input_tokens,
        )
        .max_output_tokens(args.max_output_tokens)
        .byok(args.byok);
        if let Some(run) = &args.run_id {
            call = call.run(parse_id("run_id", run)?);
        }
        if let Some(key) = args.idempotency_key {
            call = call.idempotency_key(key);
        }
        let authorization = scope.meter().begin(call).await?;
        decision_json(caller, &authorization, "call_id")
    }

    async fn finish_llm(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: FinishLlmArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let intent = self
            .own_intent(&scope, caller, &args.call_id, "llm_usage")
            .await?;
        let usage = Usage {
            input_tokens: args.input_tokens,
            cached_input_tokens: args.cached_input_tokens,
            output_tokens: args.output_tokens,
            reasoning_tokens: args.reasoning_tokens,
            latency_ms: args.latency_ms,
            failed: args.failed,
        };
        let record = scope.meter().finish(intent.id, usage).await?;
        Ok(json!({
            "call_id": intent.id,
            "provider": record.provider,
            "model": record.model,
            "input_tokens": record.input_tokens,
            "cached_input_tokens": record.cached_input_tokens,
            "output_tokens": record.output_tokens,
            "reasoning_tokens": record.reasoning_tokens,
            "cost": money_text(record.cost.get(), record.currency),
            "estimated_cost": money_text(intent.amount.get(), intent.currency),
            "currency": record.currency,
            "run_id": record.run_id,
        }))
    }

    async fn budgets(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: BudgetArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let agent = scope.agents().get(caller.agent_id).await?;
        let mut out = Vec::new();
        for b in applicable_budgets(&scope, &agent).await? {
            if !args.period.admits(b.period) {
                continue;
            }
            let status = scope.budgets().status(b.id).await?;
            let balance = &status.balance;
            let c = balance.currency;
            out.push(json!({
                "budget_id": b.id,
                "name": b.name,
                "scope": balance.scope.kind(),
                "period": b.period,
                "currency": c,
                "limit": money_text(balance.limit, c),
                "spent": money_text(balance.spent, c),
                "held": money_text(balance.reserved, c),
                "remaining": money_text(balance.remaining(), c),
            }));
        }
        Ok(json!({ "agent_id": caller.agent_id, "budgets": out }))
    }

    async fn transactions(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: ListArgs = parse_args(args)?;
        let limit = args.limit.unwrap_or(DEFAULT_LIST);
        if !(1..=MAX_LIST).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("{limit} is not between 1 and {MAX_LIST}"),
            ));
        }
        let caller = self.caller().await?;
        // The agent's own requests: the tenant and the agent both filter.
        let mut query = purchase_intent::Entity::find()
            .filter(purchase_intent::Column::TenantId.eq(caller.tenant_id))
            .filter(purchase_intent::Column::AgentId.eq(caller.agent_id));
        if let Some(status) = args.status {
            query = query.filter(purchase_intent::Column::Status.eq(status.status()));
        }
        let rows = query
            .order_by_desc(purchase_intent::Column::CreatedAt)
            .order_by_desc(purchase_intent::Column::Id)
            .limit(limit)
            .all(self.store.connection())
            .await?;
        let items: Vec<Value> = rows.iter().map(intent_json).collect();
        Ok(json!({ "agent_id": caller.agent_id, "transactions": items }))
    }

    async fn policy_info(&self, args: JsonObject) -> bursar::Result<Value> {
        let _: NoArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let tenant = self.store.tenants().get(caller.tenant_id).await?;
        let agent = scope.agents().get(caller.agent_id).await?;
        let mut policies = Vec::new();
        let mut page = PageRequest::new().limit(MAX_PAGE_SIZE);
        loop {
            let found = scope.policies().list(page.clone()).await?;
            for p in found.items {
                if p.enabled && covers(&p.scope, &agent) {
                    policies.push(policy_json(&p));
                }
            }
            match found.next_offset {
                Some(next) => page = page.offset(next),
                None => break,
            }
        }
        let mut budgets = Vec::new();
        for b in applicable_budgets(&scope, &agent).await? {
            let c = b.currency;
            budgets.push(json!({
                "budget_id": b.id,
                "name": b.name,
                "scope": b.scope()?.kind(),
                "period": b.period,
                "currency": c,
                "limit": money_text(b.limit_amount.get(), c),
            }));
        }
        Ok(json!({
            "agent": {
                "agent_id": agent.id,
                "name": agent.name,
                "team_id": agent.team_id,
                "project_id": agent.project_id,
                "status": agent.status,
            },
            "tenant": {
                "name": tenant.name,
                "timezone": tenant.timezone,
                "default_currency": tenant.default_currency,
            },
            "default_effect": tenant.default_effect,
            "policies": policies,
            "budgets": budgets,
        }))
    }

    async fn start(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: StartRunArgs = parse_args(args)?;
        let cost = parse_cost(
            "max_cost",
            args.max_cost.as_deref(),
            args.currency.as_deref(),
        )?;
        let (caller, scope) = self.scope().await?;
        let mut new = NewRun::new(caller.agent_id);
        if let Some(description) = args.description {
            new = new.description(description);
        }
        if let Some((amount, currency)) = cost {
            new = new.max_cost(
                Money::new(amount, currency).map_err(|e| invalid("max_cost", e.to_string()))?,
            );
        }
        if let Some(rounds) = args.max_rounds {
            new = new.max_rounds(rounds);
        }
        if let Some(tokens) = args.max_tokens {
            new = new.max_tokens(tokens);
        }
        if let Some(secs) = args.max_duration_secs {
            new = new.max_duration(std::time::Duration::from_secs(secs));
        }
        if let Some(tools) = args.allowed_tools {
            new = new.allowed_tools(tools);
        }
        if let Some(models) = args.allowed_models {
            new = new.allowed_models(models);
        }
        let run = scope.runs().start(new).await?;
        self.run_json(&scope, run.id).await
    }

    async fn run_state(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: RunArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let id = self.own_run(&scope, caller, &args.run_id).await?;
        self.run_json(&scope, id).await
    }

    async fn complete(&self, args: JsonObject) -> bursar::Result<Value> {
        let args: RunArgs = parse_args(args)?;
        let (caller, scope) = self.scope().await?;
        let id = self.own_run(&scope, caller, &args.run_id).await?;
        scope.runs().complete(id).await?;
        self.run_json(&scope, id).await
    }

    async fn run_json(&self, scope: &TenantScope, id: RunId) -> bursar::Result<Value> {
        let state = scope.runs().get(id).await?;
        let run = &state.run;
        let c = run.currency;
        Ok(json!({
            "run_id": run.id,
            "status": run.status,
            "description": run.description,
            "rounds": run.rounds,
            "total_tokens": run.total_tokens,
            "currency": c,
            "cost_spent": money_text(state.cost_spent, c),
            "cost_held": money_text(state.cost_held, c),
            "caps": {
                "max_cost": run.max_cost.map(|m| money_text(m.get(), c)),
                "max_rounds": run.max_rounds,
                "max_tokens": run.caps.max_tokens,
                "max_duration_secs": run.caps.max_duration_secs,
                "deadline": run.caps.deadline,
                "allowed_tools": run.caps.allowed_tools,
                "allowed_models": run.caps.allowed_models,
            },
            "started_at": run.started_at,
        }))
    }
}

/// The decision on a request as the agent reads it. `id_field` names the
/// intent's id (`purchase_intent_id`, or `call_id` for a call to finish).
fn decision_json(
    caller: Caller,
    authorization: &bursar::authorize::Authorization,
    id_field: &str,
) -> bursar::Result<Value> {
    let intent = &authorization.intent;
    // Idempotency keys are the tenant's: another agent's key is no replay.
    if authorization.replayed && intent.agent_id != Some(caller.agent_id) {
        return Err(Error::Conflict {
            entity: "purchase_intent",
            reason: "the idempotency key was used by another agent".to_owned(),
        });
    }
    let c = intent.currency;
    let mut out = Map::new();
    out.insert("outcome".into(), json!(authorization.outcome));
    out.insert(id_field.into(), json!(intent.id));
    out.insert("kind".into(), json!(intent.action_kind));
    out.insert("amount".into(), json!(money_text(intent.amount.get(), c)));
    out.insert("currency".into(), json!(c));
    out.insert("reasons".into(), reasons_json(&authorization.reasons));
    if let Some(r) = &authorization.reservation {
        out.insert("reservation_id".into(), json!(r.id));
        out.insert("hold_expires_at".into(), json!(r.expires_at));
    }
    if let Some(a) = &authorization.approval {
        out.insert("approval_request_id".into(), json!(a.id));
        out.insert("approval_expires_at".into(), json!(a.expires_at));
    }
    out.insert("replayed".into(), json!(authorization.replayed));
    Ok(Value::Object(out))
}

fn intent_json(intent: &purchase_intent::Model) -> Value {
    let c = intent.currency;
    json!({
        "id": intent.id,
        "kind": intent.action_kind,
        "status": intent.status,
        "amount": money_text(intent.amount.get(), c),
        "currency": c,
        "merchant": intent.merchant_name,
        "merchant_url": intent.merchant_domain,
        "description": intent.metadata.0.get("description"),
        "reasons": reasons_json(&intent.reasons.0),
        "reservation_id": intent.reservation_id,
        "approval_request_id": intent.approval_request_id,
        "run_id": intent.run_id,
        "created_at": intent.created_at,
    })
}

fn policy_json(p: &Policy) -> Value {
    json!({
        "policy_id": p.id,
        "name": p.name,
        "effect": p.effect,
        "priority": p.priority,
        "reason_code": p.reason_code,
        "message": p.message,
        "condition": p.condition,
    })
}

/// Whether a policy of `scope` applies to `agent`'s requests.
fn covers(scope: &PolicyScope, agent: &agent::Model) -> bool {
    match scope {
        PolicyScope::Tenant => true,
        PolicyScope::Principals {
            teams,
            projects,
            agents,
        } => {
            agents.contains(&agent.id)
                || agent.team_id.is_some_and(|t| teams.contains(&t))
                || agent.project_id.is_some_and(|p| projects.contains(&p))
        }
        // A kind of scope this example does not know: not claimed.
        _ => false,
    }
}

/// The active budgets that apply to `agent`'s requests: the tenant's, its
/// team's, its project's and its own (a run's budget is its run's cap, see
/// `get_run`).
async fn applicable_budgets(
    scope: &TenantScope,
    agent: &agent::Model,
) -> bursar::Result<Vec<budget::Model>> {
    let mut out = Vec::new();
    for b in scope.budgets().list().await? {
        if !b.is_active {
            continue;
        }
        let applies = match b.scope()? {
            Scope::Tenant => true,
            Scope::Team(t) => agent.team_id == Some(t),
            Scope::Project(p) => agent.project_id == Some(p),
            Scope::Agent(a) => a == agent.id,
            _ => false,
        };
        if applies {
            out.push(b);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// The demo and main

/// What [`seed`] made: the demo tenant, its agent and a new key for it.
#[derive(Clone, Debug)]
pub struct Seeded {
    /// The demo tenant.
    pub tenant_id: TenantId,
    /// `demo-bot`.
    pub agent_id: AgentId,
    /// A new key for `demo-bot` (bursar keeps only its hash).
    pub key: String,
}

/// Creates the demo tenant (see the module docs) when the database has no
/// tenant `demo`, and issues a new key for its agent `demo-bot`.
///
/// # Errors
/// What the store returns; [`Error::NotFound`] when a `demo` tenant exists
/// without an agent `demo-bot`.
pub async fn seed(store: &Store) -> bursar::Result<Seeded> {
    let (tenant_id, agent_id) = match store.tenants().by_slug("demo").await {
        Ok(tenant) => {
            let scope = store.tenant(tenant.id);
            let agents = scope
                .agents()
                .list(PageRequest::new().limit(MAX_PAGE_SIZE))
                .await?;
            let agent = agents
                .items
                .into_iter()
                .find(|a| a.name == "demo-bot")
                .ok_or_else(|| Error::NotFound {
                    entity: "agent",
                    id: "demo-bot".to_owned(),
                })?;
            (tenant.id, agent.id)
        }
        Err(Error::NotFound { .. }) => {
            let tenant = store
                .tenants()
                .create(NewTenant::new("Demo", "demo"))
                .await?;
            let scope = store.tenant(tenant.id);
            let agent = scope.agents().create(NewAgent::new("demo-bot")).await?;
            scope
                .apply_controls(
                    &SpendingControls::new(Currency::USD)
                        .agent(agent.id)
                        .per_transaction_limit(Decimal::from(200))
                        .monthly_limit(Decimal::from(500))
                        .approval_threshold(Decimal::from(100))
                        .blocked_merchants(["facebook ads"])
                        .build()?,
                )
                .await?;
            let mut tools = Policy::new(
                "demo-bot may call tools and use LLMs",
                Effect::Allow,
                "TOOLS_ALLOWED",
                Condition::ActionIn {
                    actions: vec![ActionKind::ToolCall, ActionKind::LlmUsage],
                },
            );
            tools.scope = PolicyScope::agent(agent.id);
            scope.policies().create(tools).await?;
            scope
                .prices()
                .set(NewPrice::new(
                    "anthropic",
                    "claude-sonnet",
                    "USD",
                    Decimal::from(3),
                    Decimal::from(15),
                ))
                .await?;
            (tenant.id, agent.id)
        }
        Err(err) => return Err(err),
    };
    let (key, _) = store
        .tenant(tenant_id)
        .agent_keys()
        .issue(agent_id, Some("mcp"), None)
        .await?;
    Ok(Seeded {
        tenant_id,
        agent_id,
        key: key.secret,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BURSAR_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
    let store = Store::connect(&url).await?;
    if std::env::args().skip(1).any(|a| a == "--seed") {
        let seeded = seed(&store).await?;
        // Not serving: stdout is the operator's.
        println!("demo tenant: {}", seeded.tenant_id);
        println!("demo-bot key (shown once, keep it): {}", seeded.key);
        return Ok(());
    }
    let Some(key) = std::env::var("BURSAR_AGENT_KEY")
        .ok()
        .filter(|k| !k.trim().is_empty())
    else {
        eprintln!("mcp_server: BURSAR_AGENT_KEY is not set (run with --seed for a demo key)");
        std::process::exit(2);
    };
    let server = BursarMcp::new(store, key.trim());
    // Refuse to start with a key that does not work.
    match server.caller().await {
        Ok(caller) => eprintln!(
            "mcp_server: serving agent {} of tenant {} over stdio",
            caller.agent_id, caller.tenant_id
        ),
        Err(err) => {
            eprintln!("mcp_server: BURSAR_AGENT_KEY refused: {}", err.code());
            std::process::exit(2);
        }
    }
    let service = server.serve(rmcp::transport::stdio()).await?;
    service.waiting().await?;
    Ok(())
}
