//! An HTTP service embedding bursar: agents ask before they spend, and the card
//! provider reports what was charged.
//!
//! ```text
//! cargo run --example http_service
//! ```
//!
//! Configuration, from the environment:
//!
//! * `DATABASE_URL` — `sqlite://path.db?mode=rwc` or `postgres://user:pass@host/db`
//!   (default `sqlite://bursar-http.db?mode=rwc`, a file in the working directory);
//! * `BIND` — the address to listen on (default `127.0.0.1:8080`);
//! * `WEBHOOK_SECRET` — the secret the card provider sends in `X-Webhook-Secret`
//!   (default `demo-webhook-secret`, for trying the service out only).
//!
//! On start, when the database has no tenant with the slug `demo`, the service
//! creates one: a tenant "Demo", an agent `demo-bot` under spending controls
//! (at most 200.00 USD per purchase and 500.00 USD a month, purchases above
//! 100.00 USD need a human's approval, "Facebook Ads" is blocked), and an API
//! key for the agent. It prints the tenant's id (`TENANT` below) on every start
//! and the key (`KEY` below) once, when it issues it: bursar keeps only the
//! key's hash. Delete `bursar-http.db*` to start over.
//!
//! # Routes
//!
//! `POST /v1/purchase_intents` — an agent asks to buy something. The agent is
//! the holder of the Bearer key; the body never names it. Amounts are decimal
//! strings. An `Idempotency-Key` header may stand in for `idempotency_key`.
//!
//! ```text
//! curl -s localhost:8080/v1/purchase_intents \
//!   -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
//!   -d '{"amount":"30.00","currency":"USD","idempotency_key":"req-1",
//!        "merchant":{"name":"GitHub","domain":"github.com","mcc":5734}}'
//! {"outcome":"approved","purchase_intent_id":"0197…","reservation_id":"0197…",
//!  "reasons":[],"replayed":false}
//! ```
//!
//! The answer is `201 Created` for a new intent (approved, pending approval or
//! rejected: the decision is in `outcome`, the why in `reasons`) and `200 OK`
//! when the idempotency key was seen before (`"replayed": true`, the first
//! answer again). Optional body fields: `run_id`, `metadata` (string pairs),
//! and `team_id`/`project_id`, which bursar ignores in favour of the team and
//! project recorded on the agent.
//!
//! `POST /v1/webhooks/transactions?tenant=<tenant id>` — the card provider
//! reports a charge (a [`TransactionEvent`]). Recorded idempotently on the
//! provider's charge id: a captured event delivered five times captures once.
//!
//! ```text
//! curl -s "localhost:8080/v1/webhooks/transactions?tenant=$TENANT" \
//!   -H 'X-Webhook-Secret: demo-webhook-secret' -H 'Content-Type: application/json' \
//!   -d '{"provider_charge_id":"ch_1","status":"captured",
//!        "amount":{"amount":"29.50","currency":"USD"},"purchase_intent_id":"0197…"}'
//! {"transaction_id":"0197…","status":"captured","replayed":false}
//! ```
//!
//! The tenant is part of the URL registered with the provider for that
//! tenant's account. A real deployment verifies the provider's own signature
//! over the raw body (Stripe's `Stripe-Signature`, for instance); this example
//! stands that in with a shared secret, compared in constant time.
//!
//! # Errors
//!
//! Every error is JSON, `{"error":{"code":"…","message":"…"}}`, with the
//! stable code of [`bursar::Error::code`] and the status that goes with it:
//! `invalid` and `invalid_policy` 400 (the message names the field, also for
//! a body that is not JSON or does not fit the schema), `unauthenticated` 401
//! (the same answer for a missing, malformed, unknown or revoked key),
//! `not_found` 404, `conflict` 409 (also for an idempotency key first used
//! for another amount, or by another agent), `contention` and `unavailable`
//! 503 with `Retry-After: 1` (transient: send the same request with the same
//! `Idempotency-Key` again), `storage_full` 503 without `Retry-After` (it
//! waits for an operator), and `database` 500, whose details go to the log:
//! the caller reads only `internal error`. A body over
//! [`MAX_BODY_BYTES`] is 413 `invalid`, an unknown route 404 `not_found`, a
//! wrong method 405 `method_not_allowed`.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bursar::entity::transaction::TransactionStatus;
use bursar::id::{
    AgentId, ApprovalRequestId, ProjectId, PurchaseIntentId, ReservationId, RunId, TeamId,
    TenantId, TransactionId,
};
use bursar::money::Currency;
use bursar::policy::{Merchant, Outcome, Reason, Request as PurchaseRequest};
use bursar::store::TransactionEvent;
use bursar::{Error, Store};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `Authorization` header or webhook secret looked at, in bytes.
const MAX_CREDENTIAL_LEN: usize = 512;

// ---------------------------------------------------------------------------
// State and authentication

/// The agent behind a valid API key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The agent's tenant: every query of the request is confined to it.
    pub tenant_id: TenantId,
    /// The agent.
    pub agent_id: AgentId,
}

/// Turns a presented API key into the agent that holds it.
#[async_trait]
pub trait Authenticator: Send + Sync {
    /// The agent holding `secret`.
    ///
    /// # Errors
    /// [`Error::Unauthenticated`] for a malformed, unknown, revoked or expired
    /// key, without saying which; [`Error::Database`] when the lookup fails.
    async fn authenticate(&self, secret: &str) -> bursar::Result<Caller>;
}

/// The store's agent keys: bursar keeps the SHA-256 of each key and refuses
/// a malformed, unknown, revoked or expired key, or one whose agent is paused
/// or suspended.
#[async_trait]
impl Authenticator for Store {
    async fn authenticate(&self, secret: &str) -> bursar::Result<Caller> {
        let key = self.authenticate_agent(secret).await?;
        Ok(Caller {
            tenant_id: key.tenant_id,
            agent_id: key.agent_id,
        })
    }
}

/// The provider's webhook secret. Compared in constant time; never printed.
#[derive(Clone)]
pub struct WebhookSecret(Arc<[u8; 32]>);

impl WebhookSecret {
    /// The secret `secret`.
    #[must_use]
    pub fn new(secret: &str) -> Self {
        Self(Arc::new(Sha256::digest(secret.as_bytes()).into()))
    }

    /// Whether `presented` is the secret (an empty one never is). Compares
    /// the SHA-256 of both in constant time, so neither the content nor the
    /// length leaks through timing.
    #[must_use]
    pub fn matches(&self, presented: &[u8]) -> bool {
        let presented_hash: [u8; 32] = Sha256::digest(presented).into();
        let differences = self
            .0
            .iter()
            .zip(presented_hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        differences == 0 && !presented.is_empty()
    }
}

impl std::fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// What every handler shares: the store, the key check and the webhook secret.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    authenticator: Arc<dyn Authenticator>,
    webhook_secret: WebhookSecret,
}

impl AppState {
    /// A state serving `store`, checking agent keys against the store's and
    /// provider webhooks against `webhook_secret`.
    #[must_use]
    pub fn new(store: Store, webhook_secret: WebhookSecret) -> Self {
        Self {
            authenticator: Arc::new(store.clone()),
            store,
            webhook_secret,
        }
    }

    /// Checks agent keys with `authenticator` instead (a cache in front of
    /// the store, or the host's own identity provider).
    #[must_use]
    pub fn authenticator(mut self, authenticator: Arc<dyn Authenticator>) -> Self {
        self.authenticator = authenticator;
        self
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

/// The service's routes over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/purchase_intents", post(create_purchase_intent))
        .route("/v1/webhooks/transactions", post(record_transaction))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

// ---------------------------------------------------------------------------
// Errors

/// An error answer: the status, a stable code and a message, sent as
/// `{"error":{"code":…,"message":…}}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
        .into()
    }
}

impl From<Error> for ApiError {
    fn from(err: Error) -> Self {
        let status = match &err {
            Error::Invalid { .. } | Error::InvalidPolicy { .. } => StatusCode::BAD_REQUEST,
            Error::Unauthenticated => StatusCode::UNAUTHORIZED,
            Error::Forbidden { .. } => StatusCode::FORBIDDEN,
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            // Transient (contention, unavailable): the same request with the
            // same idempotency key may be sent again; see `into_response` for
            // `Retry-After`. A full disk waits for an operator. The messages
            // are neutral, so they go to the caller as they are.
            Error::Contention { .. } | Error::Unavailable { .. } | Error::StorageFull { .. } => {
                eprintln!("http_service: service unavailable: {err}");
                StatusCode::SERVICE_UNAVAILABLE
            }
            _ => {
                // The details are for the operator, not the caller.
                eprintln!("http_service: internal error: {err:?}");
                return Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: err.code(),
                    message: "internal error".to_owned(),
                };
            }
        };
        Self {
            status,
            code: err.code(),
            message: err.to_string(),
        }
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if is_transient_code(self.code) {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Whether an error with this code is transient ([`Error::is_transient`]).
fn is_transient_code(code: &str) -> bool {
    matches!(code, "contention" | "unavailable")
}

async fn no_route() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: "not_found",
        message: "no such route".to_owned(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: "method_not_allowed",
        message: "method not allowed on this route".to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Extractors

/// A JSON body, refused with a 400 `invalid` error that names the field (the
/// JSON path) when it is not JSON or does not fit `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|rejection| ApiError {
                status: rejection.status(),
                code: "invalid",
                message: format!(
                    "invalid body: {} (at most {MAX_BODY_BYTES} bytes)",
                    rejection.body_text()
                ),
            })?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses `bytes` as a `T`, naming the offending field in the error.
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        // A missing field is reported at its parent: name it.
        let named = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let field = match (path.as_str(), named) {
            (".", Some(name)) => name.to_owned(),
            (parent, Some(name)) => format!("{parent}.{name}"),
            (".", None) => "body".to_owned(),
            (path, None) => path.to_owned(),
        };
        ApiError::invalid(field, message)
    })?;
    de.end()
        .map_err(|err| ApiError::invalid("body", err.to_string()))?;
    Ok(value)
}

/// The agent presenting a valid `Authorization: Bearer <key>`.
#[derive(Clone, Copy, Debug)]
pub struct Agent(pub Caller);

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // Every way of failing gives the same answer.
        let secret = parts
            .headers
            .get(header::AUTHORIZATION)
            .filter(|v| v.len() <= MAX_CREDENTIAL_LEN)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, secret)| secret.trim())
            .ok_or(Error::Unauthenticated)?;
        let caller = state.authenticator.authenticate(secret).await?;
        Ok(Self(caller))
    }
}

/// A webhook call carrying the right `X-Webhook-Secret`, for the tenant named
/// by the `tenant` query parameter.
#[derive(Clone, Copy, Debug)]
pub struct Provider {
    /// The tenant the event is about.
    pub tenant_id: TenantId,
}

impl FromRequestParts<AppState> for Provider {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get("x-webhook-secret")
            .filter(|v| v.len() <= MAX_CREDENTIAL_LEN)
            .map(HeaderValue::as_bytes)
            .unwrap_or_default();
        if !state.webhook_secret.matches(presented) {
            return Err(Error::Unauthenticated.into());
        }
        let tenant = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("tenant="))
            .ok_or_else(|| {
                ApiError::invalid("tenant", "the query parameter `tenant` is required")
            })?;
        let tenant_id = tenant
            .parse()
            .map_err(|_| ApiError::invalid("tenant", format!("{tenant:?} is not a tenant id")))?;
        Ok(Self { tenant_id })
    }
}

// ---------------------------------------------------------------------------
// Purchase intents

/// The body of `POST /v1/purchase_intents`. The agent is the key's holder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurchaseBody {
    /// The amount, a plain decimal string such as `"30.00"` (no exponent,
    /// sign or spaces).
    #[serde(with = "bursar::money::decimal_text")]
    pub amount: Decimal,
    /// The ISO 4217 currency code.
    pub currency: Currency,
    /// The merchant: name, and optionally domain and MCC.
    pub merchant: Merchant,
    /// Makes a retry return the first answer (or the `Idempotency-Key` header).
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// Accepted for compatibility; bursar uses the agent's recorded team.
    #[serde(default)]
    pub team_id: Option<TeamId>,
    /// Accepted for compatibility; bursar uses the agent's recorded project.
    #[serde(default)]
    pub project_id: Option<ProjectId>,
    /// The agent run the purchase belongs to.
    #[serde(default)]
    pub run_id: Option<RunId>,
    /// Free key/value pairs recorded with the intent.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The answer to `POST /v1/purchase_intents`.
#[derive(Debug, Serialize)]
pub struct PurchaseAnswer {
    /// `approved`, `pending_approval` or `rejected`.
    pub outcome: Outcome,
    /// The intent recorded for the request.
    pub purchase_intent_id: PurchaseIntentId,
    /// The hold on the budgets (approved, or pending approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reservation_id: Option<ReservationId>,
    /// The approval request a human must decide (pending approval).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_request_id: Option<ApprovalRequestId>,
    /// Why: the reason codes and messages.
    pub reasons: Vec<Reason>,
    /// Whether this is the first answer for the idempotency key, again.
    pub replayed: bool,
}

fn idempotency_key(headers: &HeaderMap, body: Option<String>) -> Result<Option<String>, ApiError> {
    let header = headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::invalid("Idempotency-Key", "must be visible ASCII"))
        })
        .transpose()?;
    let key = match (header, body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ApiError::invalid(
                "idempotency_key",
                format!("the body says {b:?} and the Idempotency-Key header {h:?}"),
            ));
        }
        (h, b) => h.or(b),
    };
    if key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        return Err(ApiError::invalid("idempotency_key", "must not be empty"));
    }
    Ok(key)
}

async fn create_purchase_intent(
    State(state): State<AppState>,
    Agent(caller): Agent,
    headers: HeaderMap,
    JsonBody(body): JsonBody<PurchaseBody>,
) -> Result<(StatusCode, Json<PurchaseAnswer>), ApiError> {
    let key = idempotency_key(&headers, body.idempotency_key)?;
    let mut request = PurchaseRequest::purchase(
        caller.agent_id,
        body.amount,
        body.currency,
        body.merchant.name.clone(),
    );
    request.merchant = Some(body.merchant);
    request.metadata = body.metadata;
    request.idempotency_key = key;
    if let Some(run) = body.run_id {
        request = request.run(run);
    }
    let scope = state.store.tenant(caller.tenant_id);
    let authorization = scope.authorize(request).await?;
    // Idempotency keys are the tenant's; another agent's key is not a replay.
    if authorization.replayed && authorization.intent.agent_id != Some(caller.agent_id) {
        return Err(Error::Conflict {
            entity: "purchase_intent",
            reason: "the idempotency key was used by another agent".to_owned(),
        }
        .into());
    }
    let status = if authorization.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(PurchaseAnswer {
            outcome: authorization.outcome,
            purchase_intent_id: authorization.intent.id,
            reservation_id: authorization.reservation.as_ref().map(|r| r.id),
            approval_request_id: authorization.approval.as_ref().map(|a| a.id),
            reasons: authorization.reasons,
            replayed: authorization.replayed,
        }),
    ))
}

// ---------------------------------------------------------------------------
// Webhooks

/// The answer to `POST /v1/webhooks/transactions`.
#[derive(Debug, Serialize)]
pub struct TransactionAnswer {
    /// bursar's transaction.
    pub transaction_id: TransactionId,
    /// Its state after the event.
    pub status: TransactionStatus,
    /// Whether the event changed nothing (a redelivery, or an older event).
    pub replayed: bool,
}

async fn record_transaction(
    State(state): State<AppState>,
    provider: Provider,
    JsonBody(event): JsonBody<TransactionEvent>,
) -> Result<Json<TransactionAnswer>, ApiError> {
    let recorded = state
        .store
        .tenant(provider.tenant_id)
        .payments()
        .record_transaction(event)
        .await?;
    Ok(Json(TransactionAnswer {
        transaction_id: recorded.transaction.id,
        status: recorded.transaction.status,
        replayed: recorded.replayed,
    }))
}

// ---------------------------------------------------------------------------
// main

/// Creates the demo tenant, its agent `demo-bot` under spending controls,
/// and a key for the agent, when the database has no `demo` tenant. Returns
/// the tenant, and the key when it was just issued.
async fn bootstrap(store: &Store) -> bursar::Result<(TenantId, Option<String>)> {
    use bursar::policy::SpendingControls;
    use bursar::store::{AgentKeyRepository, AgentRepository, NewAgent, NewTenant};

    match store.tenants().by_slug("demo").await {
        Ok(tenant) => Ok((tenant.id, None)),
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
            let (key, _) = scope
                .agent_keys()
                .issue(agent.id, Some("demo"), None)
                .await?;
            Ok((tenant.id, Some(key.secret)))
        }
        Err(err) => Err(err),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "sqlite://bursar-http.db?mode=rwc".to_owned());
    let bind = std::env::var("BIND").unwrap_or_else(|_| "127.0.0.1:8080".to_owned());
    let webhook_secret = match std::env::var("WEBHOOK_SECRET") {
        Ok(secret) if !secret.is_empty() => secret,
        _ => {
            eprintln!("WEBHOOK_SECRET is not set: using the demo secret `demo-webhook-secret`");
            "demo-webhook-secret".to_owned()
        }
    };
    let store = Store::connect(&url).await?;
    let (tenant, key) = bootstrap(&store).await?;
    println!("demo tenant: {tenant}");
    match key {
        Some(key) => println!("demo agent key (shown once, keep it): {key}"),
        None => println!("demo agent key: printed when the demo tenant was created"),
    }
    let app = router(AppState::new(store, WebhookSecret::new(&webhook_secret)));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
