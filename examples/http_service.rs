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
//! * `WEBHOOK_SECRET` — the demo tenant's secret the card provider signs its
//!   webhooks with (default `demo-webhook-secret`, for trying the service out
//!   only);
//! * `EVENTS_URL` and `EVENTS_SECRET` — when both are set, the demo tenant's
//!   events (`docs/events.md`) are POSTed to `EVENTS_URL`, a plain
//!   `http://host:port/path` URL, each signed with `EVENTS_SECRET` (see
//!   "Event delivery" below).
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
//! BODY='{"provider_charge_id":"ch_1","status":"captured",
//!        "amount":{"amount":"29.50","currency":"USD"},"purchase_intent_id":"0197…"}'
//! T=$(date +%s)
//! V1=$(printf '%s.%s' "$T" "$BODY" | openssl dgst -sha256 -hmac demo-webhook-secret -r | cut -d' ' -f1)
//! curl -s "localhost:8080/v1/webhooks/transactions?tenant=$TENANT" \
//!   -H "Bursar-Signature: t=$T,v1=$V1" -H 'Content-Type: application/json' -d "$BODY"
//! {"transaction_id":"0197…","status":"captured","replayed":false}
//! ```
//!
//! The tenant is part of the URL registered with the provider for that
//! tenant's account, and each tenant has its own secret ([`WebhookSecrets`]).
//! The provider signs the raw body Stripe-style
//! ([`bursar::events::signature`]): `Bursar-Signature: t=<unix seconds>,v1=<hex
//! HMAC-SHA256(secret, "<t>.<body>")>`. The service recomputes the MAC under
//! the tenant's secret and compares it in constant time, and refuses a
//! timestamp more than [`WEBHOOK_TOLERANCE`] (5 minutes) from its clock, so a
//! captured request replayed later is refused. Every refusal is the same 401
//! `unauthenticated`: a missing or malformed header, a wrong secret (or
//! another tenant's), a changed body, a stale timestamp.
//!
//! # Event delivery
//!
//! With `EVENTS_URL` and `EVENTS_SECRET` set, [`EventDelivery`] runs beside
//! the routes: it polls the demo tenant's events as consumer `webhooks`,
//! POSTs each one as JSON (`id`, `tenant_id`, `seq`, `event_type`, `version`,
//! `subject_type`, `subject_id`, `payload`, `created_at`) with a
//! `Bursar-Signature` header made with `EVENTS_SECRET`, and acknowledges it
//! when the receiver answers 2xx. A failed event stays first in line and is
//! sent again after 0.5 s, doubling up to 30 s; events go out in `seq`
//! order, at least once (a receiver deduplicates on `id` or `seq`). The
//! receiver checks the signature with
//! [`verify`](bursar::events::signature::verify). The example's client is a
//! minimal HTTP/1.1 one: `http://` only (put a TLS proxy in front of an
//! `https://` receiver).
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
use bursar::events::signature::{SIGNATURE_HEADER, sign, verify};
use bursar::id::{
    AgentId, ApprovalRequestId, ProjectId, PurchaseIntentId, ReservationId, RunId, TeamId,
    TenantId, TransactionId,
};
use bursar::money::Currency;
use bursar::policy::{Merchant, Outcome, Reason, Request as PurchaseRequest};
use bursar::store::{PaymentRepository, TenantRepository, TransactionEvent};
use bursar::{Error, Store};
use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest `Authorization` or signature header looked at, in bytes.
const MAX_CREDENTIAL_LEN: usize = 512;
/// How far a webhook's signed timestamp may be from the wall clock, either
/// way: an older signature is a replay and refused.
pub const WEBHOOK_TOLERANCE: Duration = Duration::minutes(5);

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

/// Each tenant's secret for signing the card provider's webhooks: the
/// provider signs every body with [`sign`](bursar::events::signature::sign)
/// under the secret of the tenant it reports for. Never printed.
#[derive(Clone, Default)]
pub struct WebhookSecrets(BTreeMap<TenantId, Arc<[u8]>>);

impl WebhookSecrets {
    /// No secrets: every webhook is refused.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `tenant`'s secret. An empty secret is ignored: the
    /// tenant's webhooks stay refused.
    #[must_use]
    pub fn tenant(mut self, tenant: TenantId, secret: &str) -> Self {
        if !secret.is_empty() {
            self.0.insert(tenant, Arc::from(secret.as_bytes()));
        }
        self
    }

    /// Whether `header` signs `body` under `tenant`'s secret with a timestamp
    /// within [`WEBHOOK_TOLERANCE`] of `now`. [`verify`] compares the MAC in
    /// constant time; a tenant without a secret is refused the same way.
    fn verify(&self, tenant: TenantId, header: &str, body: &[u8], now: DateTime<Utc>) -> bool {
        self.0
            .get(&tenant)
            .is_some_and(|secret| verify(secret, header, body, now, WEBHOOK_TOLERANCE).is_ok())
    }
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("tenants", &self.0.len())
            .finish_non_exhaustive()
    }
}

/// What every handler shares: the store, the key check and the tenants'
/// webhook secrets.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    authenticator: Arc<dyn Authenticator>,
    webhook_secrets: Arc<WebhookSecrets>,
}

impl AppState {
    /// A state serving `store`, checking agent keys against the store's and
    /// provider webhooks against `webhook_secrets`.
    #[must_use]
    pub fn new(store: Store, webhook_secrets: WebhookSecrets) -> Self {
        Self {
            authenticator: Arc::new(store.clone()),
            store,
            webhook_secrets: Arc::new(webhook_secrets),
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
            .map_err(body_rejection)?;
        parse_json(&bytes).map(Self)
    }
}

/// A body that could not be read (too large, cut off): 4xx `invalid`.
fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
    ApiError {
        status: rejection.status(),
        code: "invalid",
        message: format!(
            "invalid body: {} (at most {MAX_BODY_BYTES} bytes)",
            rejection.body_text()
        ),
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

/// A webhook call for the tenant named by the `tenant` query parameter, its
/// raw body signed under that tenant's secret in the [`SIGNATURE_HEADER`]
/// header, with a timestamp within [`WEBHOOK_TOLERANCE`] of the wall clock.
/// A missing, malformed or wrong signature, another tenant's secret, a
/// tampered body and a replay outside the tolerance are all the same 401
/// `unauthenticated`.
#[derive(Clone, Debug)]
pub struct SignedWebhook {
    /// The tenant the event is about.
    pub tenant_id: TenantId,
    /// The raw body, as signed.
    pub body: Bytes,
}

impl FromRequest<AppState> for SignedWebhook {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let tenant = req
            .uri()
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("tenant="))
            .ok_or_else(|| {
                ApiError::invalid("tenant", "the query parameter `tenant` is required")
            })?;
        let tenant_id: TenantId = tenant
            .parse()
            .map_err(|_| ApiError::invalid("tenant", format!("{tenant:?} is not a tenant id")))?;
        let signature = req
            .headers()
            .get(SIGNATURE_HEADER)
            .filter(|v| v.len() <= MAX_CREDENTIAL_LEN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if !state
            .webhook_secrets
            .verify(tenant_id, &signature, &body, Utc::now())
        {
            return Err(Error::Unauthenticated.into());
        }
        Ok(Self { tenant_id, body })
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
    webhook: SignedWebhook,
) -> Result<Json<TransactionAnswer>, ApiError> {
    let event: TransactionEvent = parse_json(&webhook.body)?;
    let recorded = state
        .store
        .tenant(webhook.tenant_id)
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
// Event delivery

/// The consumer name the delivery loop polls events under.
pub const EVENTS_CONSUMER: &str = "webhooks";
/// The most events one poll of the delivery loop takes.
pub const EVENTS_BATCH: u64 = 100;
/// The first wait after a failed delivery; it doubles on each further
/// failure, up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: std::time::Duration = std::time::Duration::from_millis(500);
/// The longest wait between two attempts at one delivery.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);
/// How long one POST may take, connecting to reading the status line.
pub const DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Longest status line read from the receiver, in bytes.
const MAX_STATUS_LINE: usize = 1024;

/// [`Error::Invalid`] on `field`.
fn invalid_field(field: &str, reason: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// Where events are POSTed: a plain `http://host:port/path` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryTarget {
    host: String,
    port: u16,
    path: String,
}

impl DeliveryTarget {
    /// Parses `url`, `http://host[:port][/path]` (port 80 and path `/` by
    /// default).
    ///
    /// # Errors
    /// [`Error::Invalid`] on `url` for another scheme (this minimal client
    /// speaks no TLS: put a TLS-terminating proxy in front for `https://`),
    /// a missing host or a bad port.
    pub fn parse(url: &str) -> bursar::Result<Self> {
        let Some(rest) = url.strip_prefix("http://") else {
            let reason = if url.starts_with("https://") {
                format!(
                    "{url:?}: https is not supported by this example's client, use http:// (behind a TLS proxy)"
                )
            } else {
                format!("{url:?} is not an http:// URL")
            };
            return Err(invalid_field("url", reason));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse()
                    .map_err(|_| invalid_field("url", format!("{url:?}: bad port {port:?}")))?;
                (host, port)
            }
            None => (authority, 80),
        };
        if host.is_empty() || host.contains(['@', ' ']) || path.contains([' ', '\r', '\n']) {
            return Err(invalid_field("url", format!("{url:?}: bad host or path")));
        }
        Ok(Self {
            host: host.to_owned(),
            port,
            path: path.to_owned(),
        })
    }

    /// POSTs `body` as JSON with `headers`, and returns the answer's status
    /// code. Reads no more than the status line.
    async fn post(&self, headers: &[(&str, &str)], body: &[u8]) -> Result<u16, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let exchange = async {
            let mut stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| format!("connect to {}:{}: {e}", self.host, self.port))?;
            let mut request = format!(
                "POST {} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n",
                self.path,
                self.host,
                self.port,
                body.len()
            );
            for (name, value) in headers {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            let mut bytes = request.into_bytes();
            bytes.extend_from_slice(body);
            stream
                .write_all(&bytes)
                .await
                .map_err(|e| format!("send: {e}"))?;
            let mut answer = Vec::new();
            let mut chunk = [0u8; 256];
            while !answer.windows(2).any(|w| w == b"\r\n") && answer.len() < MAX_STATUS_LINE {
                let n = stream
                    .read(&mut chunk)
                    .await
                    .map_err(|e| format!("read: {e}"))?;
                if n == 0 {
                    break;
                }
                answer.extend_from_slice(&chunk[..n]);
            }
            // "HTTP/1.1 204 No Content"
            let line = String::from_utf8_lossy(&answer);
            let mut words = line.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|c| c.parse::<u16>().ok()),
            ) {
                (Some(version), Some(code)) if version.starts_with("HTTP/1.") => Ok(code),
                _ => Err(format!(
                    "not an HTTP answer: {:?}",
                    line.lines().next().unwrap_or_default()
                )),
            }
        };
        tokio::time::timeout(DELIVERY_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("no answer within {DELIVERY_TIMEOUT:?}"))?
    }
}

/// The JSON body of one delivered event.
#[derive(Debug, Serialize)]
struct EventBody<'a> {
    id: bursar::id::EventId,
    tenant_id: TenantId,
    seq: i64,
    event_type: &'a str,
    version: i32,
    subject_type: &'a str,
    subject_id: Option<uuid::Uuid>,
    payload: &'a serde_json::Value,
    created_at: DateTime<Utc>,
}

/// What one [`EventDelivery::deliver_once`] step did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeliveryStep {
    /// No event was waiting.
    Idle,
    /// This many events were delivered and acknowledged.
    Delivered(usize),
    /// The receiver did not take the event `seq` (after `delivered` others
    /// in this step): it stays first in line and is sent again after
    /// `retry_in`.
    Failed {
        /// The event that was not taken.
        seq: i64,
        /// Events delivered in this step before it.
        delivered: usize,
        /// Why: the status code or the network error.
        error: String,
        /// The wait before the next attempt.
        retry_in: std::time::Duration,
    },
}

/// Delivers one tenant's events to a webhook, in order and at least once:
/// polls them as consumer [`EVENTS_CONSUMER`], POSTs each as JSON signed
/// with the tenant's secret in [`SIGNATURE_HEADER`], and acknowledges it on
/// a 2xx answer. A failed event is kept and sent again (before any later
/// one) after an exponential back-off, [`MIN_BACKOFF`] doubling up to
/// [`MAX_BACKOFF`]. Events polled but never acknowledged (the process
/// stopped) are handed out again once their lease ends.
pub struct EventDelivery {
    scope: bursar::TenantScope,
    target: DeliveryTarget,
    secret: Vec<u8>,
    pending: std::collections::VecDeque<bursar::entity::event::Model>,
    backoff: Option<std::time::Duration>,
}

impl std::fmt::Debug for EventDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventDelivery")
            .field("tenant", &self.scope.tenant_id())
            .field("target", &self.target)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl EventDelivery {
    /// Delivers `scope`'s events to `url`, signed with `secret`.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a URL [`DeliveryTarget::parse`] refuses, or an
    /// empty secret.
    pub fn new(scope: bursar::TenantScope, url: &str, secret: &str) -> bursar::Result<Self> {
        if secret.is_empty() {
            return Err(invalid_field("secret", "must not be empty"));
        }
        Ok(Self {
            scope,
            target: DeliveryTarget::parse(url)?,
            secret: secret.as_bytes().to_vec(),
            pending: std::collections::VecDeque::new(),
            backoff: None,
        })
    }

    /// One step: takes the next batch when nothing is pending, then POSTs
    /// the pending events in order, acknowledging each one taken, and stops
    /// at the first the receiver does not take.
    ///
    /// # Errors
    /// What [`poll`](bursar::events::EventRepository::poll) and
    /// [`ack`](bursar::events::EventRepository::ack) return.
    pub async fn deliver_once(&mut self) -> bursar::Result<DeliveryStep> {
        use bursar::events::EventRepository;
        if self.pending.is_empty() {
            self.pending = self
                .scope
                .events()
                .poll(EVENTS_CONSUMER, EVENTS_BATCH)
                .await?
                .into();
        }
        if self.pending.is_empty() {
            return Ok(DeliveryStep::Idle);
        }
        let mut delivered = 0;
        while let Some(event) = self.pending.front() {
            let seq = event.seq;
            let body = serde_json::to_vec(&EventBody {
                id: event.id,
                tenant_id: event.tenant_id,
                seq,
                event_type: &event.event_type,
                version: event.version,
                subject_type: &event.subject_type,
                subject_id: event.subject_id,
                payload: &event.payload,
                created_at: event.created_at,
            })
            .map_err(|e| invalid_field("payload", e.to_string()))?;
            let signature = sign(&self.secret, Utc::now(), &body);
            let outcome = self
                .target
                .post(&[(SIGNATURE_HEADER, &signature)], &body)
                .await
                .and_then(|code| {
                    if (200..300).contains(&code) {
                        Ok(())
                    } else {
                        Err(format!("the receiver answered {code}"))
                    }
                });
            if let Err(error) = outcome {
                let retry_in = self
                    .backoff
                    .map_or(MIN_BACKOFF, |b| (b * 2).min(MAX_BACKOFF));
                self.backoff = Some(retry_in);
                return Ok(DeliveryStep::Failed {
                    seq,
                    delivered,
                    error,
                    retry_in,
                });
            }
            self.scope.events().ack(EVENTS_CONSUMER, seq).await?;
            self.pending.pop_front();
            self.backoff = None;
            delivered += 1;
        }
        Ok(DeliveryStep::Delivered(delivered))
    }

    /// Delivers for ever: steps again at once after a delivery, after the
    /// back-off after a failure, and a second after finding nothing (or a
    /// database error, which is logged).
    pub async fn run(mut self) {
        let idle = std::time::Duration::from_secs(1);
        loop {
            let wait = match self.deliver_once().await {
                Ok(DeliveryStep::Delivered(_)) => continue,
                Ok(DeliveryStep::Idle) => idle,
                Ok(DeliveryStep::Failed {
                    seq,
                    error,
                    retry_in,
                    ..
                }) => {
                    eprintln!(
                        "http_service: event {seq} not delivered ({error}), retry in {retry_in:?}"
                    );
                    retry_in
                }
                Err(err) => {
                    eprintln!("http_service: event delivery: {err}");
                    idle
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
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
    let secrets = WebhookSecrets::new().tenant(tenant, &webhook_secret);
    match (std::env::var("EVENTS_URL"), std::env::var("EVENTS_SECRET")) {
        (Ok(url), Ok(secret)) => {
            let delivery = EventDelivery::new(store.tenant(tenant), &url, &secret)?;
            println!("delivering the demo tenant's events to {url}");
            tokio::spawn(delivery.run());
        }
        _ => println!("EVENTS_URL and EVENTS_SECRET are not both set: events are not delivered"),
    }
    let app = router(AppState::new(store, secrets));
    let listener = tokio::net::TcpListener::bind(&bind).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
