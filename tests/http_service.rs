//! The HTTP service of `examples/http_service.rs`, driven in process: every
//! request goes through the router with `oneshot`, no socket is opened.

mod common;
#[allow(dead_code)]
#[path = "../examples/http_service.rs"]
mod http_service;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::agent::AgentStatus;
use bursar::entity::reservation::ReservationStatus;
use bursar::entity::{purchase_intent, transaction};
use bursar::events::EventRepository;
use bursar::events::signature::{SIGNATURE_HEADER, sign, verify};
use bursar::id::{AgentId, PurchaseIntentId, ReservationId, TenantId};
use bursar::money::Currency;
use bursar::policy::SpendingControls;
use bursar::store::{
    AgentKeyRepository, AgentRepository, FakeCardIssuer, NewAgent, NewTenant, PaymentRepository,
    ReservationRepository, TenantRepository,
};
use bursar::{Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};
use http_service::{AppState, DeliveryStep, EventDelivery, WebhookSecrets, router};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};
use tower::ServiceExt;

const WEBHOOK_SECRET: &str = "test-webhook-secret";

/// The router over a fresh store, and one tenant with one agent and its key.
struct Service {
    app: Router,
    store: Store,
    acme: TenantScope,
    agent: AgentId,
    key: String,
}

async fn store_for(backend: Backend) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    let noon = Utc.with_ymd_and_hms(2026, 6, 15, 16, 0, 0).unwrap();
    Store::builder(&url)
        .clock(Arc::new(ManualClock::new(noon)))
        .connect()
        .await
        .unwrap()
}

/// A tenant with one agent under controls: per transaction 200, monthly 500,
/// approval above 100, blocked "facebook ads"; and the agent's key.
async fn new_tenant(store: &Store) -> (TenantScope, AgentId, String) {
    let slug = format!("t{}", uuid::Uuid::now_v7().simple());
    let t = store
        .tenants()
        .create(NewTenant::new("Acme", slug))
        .await
        .unwrap();
    let scope = store.tenant(t.id);
    let agent = scope
        .agents()
        .create(NewAgent::new("bot"))
        .await
        .unwrap()
        .id;
    scope
        .apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(agent)
                .per_transaction_limit(dec("200"))
                .monthly_limit(dec("500"))
                .approval_threshold(dec("100"))
                .blocked_merchants(["facebook ads"])
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    let key = issue_key(&scope, agent).await;
    (scope, agent, key)
}

async fn issue_key(scope: &TenantScope, agent: AgentId) -> String {
    let (key, _) = scope
        .agent_keys()
        .issue(agent, Some("test"), None)
        .await
        .unwrap();
    key.secret
}

async fn service(backend: Backend) -> Service {
    let store = store_for(backend).await;
    let (acme, agent, key) = new_tenant(&store).await;
    let app = router(AppState::new(
        store.clone(),
        WebhookSecrets::new().tenant(acme.tenant_id(), WEBHOOK_SECRET),
    ));
    Service {
        app,
        store,
        acme,
        agent,
        key,
    }
}

/// An HTTP answer: status, headers and the JSON body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn error_code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or_default()
    }

    fn error_message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or_default()
    }

    fn codes(&self) -> Vec<&str> {
        self.body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["code"].as_str().unwrap())
            .collect()
    }

    fn id(&self, field: &str) -> String {
        self.body[field].as_str().unwrap().to_owned()
    }
}

async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("{status}: not JSON ({e}): {bytes:?}"));
    Answer {
        status,
        headers,
        body,
    }
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json")
}

/// `POST /v1/purchase_intents` with `key` (if any) and a raw body.
async fn purchase_raw(app: &Router, key: Option<&str>, body: &str) -> Answer {
    let mut request = post("/v1/purchase_intents");
    if let Some(key) = key {
        request = request.header(header::AUTHORIZATION, format!("Bearer {key}"));
    }
    send(app, request.body(Body::from(body.to_owned())).unwrap()).await
}

async fn purchase(app: &Router, key: &str, body: Value) -> Answer {
    purchase_raw(app, Some(key), &body.to_string()).await
}

fn buy(amount: &str, merchant: &str) -> Value {
    json!({ "amount": amount, "currency": "USD", "merchant": { "name": merchant } })
}

/// A provider webhook for `tenant`, its body signed now with `secret`.
async fn webhook(app: &Router, tenant: TenantId, secret: &str, event: &Value) -> Answer {
    let body = event.to_string();
    signed_webhook(
        app,
        tenant,
        &sign(secret.as_bytes(), Utc::now(), body.as_bytes()),
        body,
    )
    .await
}

/// A provider webhook for `tenant` with the signature header `signature`.
async fn signed_webhook(app: &Router, tenant: TenantId, signature: &str, body: String) -> Answer {
    let request = post(&format!("/v1/webhooks/transactions?tenant={tenant}"))
        .header(SIGNATURE_HEADER, signature)
        .body(Body::from(body))
        .unwrap();
    send(app, request).await
}

async fn intents(store: &Store, tenant: TenantId) -> u64 {
    purchase_intent::Entity::find()
        .filter(purchase_intent::Column::TenantId.eq(tenant))
        .count(store.connection())
        .await
        .unwrap()
}

#[tokio::test]
async fn purchase_intents_answer_approved_pending_or_rejected_with_reason_codes() {
    for backend in backends() {
        let s = service(backend).await;
        let mut github = buy("30.00", "GitHub");
        github["merchant"]["domain"] = json!("github.com");
        github["merchant"]["mcc"] = json!(5734);
        github["metadata"] = json!({ "ticket": "OPS-12" });
        let approved = purchase(&s.app, &s.key, github).await;
        assert_eq!(
            approved.status,
            StatusCode::CREATED,
            "{backend:?}: {}",
            approved.body
        );
        assert_eq!(approved.body["outcome"], "approved");
        assert_eq!(approved.body["reasons"], json!([]));
        assert_eq!(approved.body["replayed"], false);
        assert!(approved.body.get("approval_request_id").is_none());
        let reservation: ReservationId = approved.id("reservation_id").parse().unwrap();
        let (held, _) = s.acme.reservations().get(reservation).await.unwrap();
        assert_eq!(held.status, ReservationStatus::Held);
        assert_eq!(held.amount.get(), dec("30"));

        let pending = purchase(&s.app, &s.key, buy("150.00", "Lambda Labs")).await;
        assert_eq!(pending.status, StatusCode::CREATED);
        assert_eq!(pending.body["outcome"], "pending_approval");
        assert_eq!(pending.codes(), [codes::OVER_THRESHOLD]);
        assert!(pending.body["approval_request_id"].is_string());
        assert!(pending.body["reservation_id"].is_string(), "the hold");

        let blocked = purchase(&s.app, &s.key, buy("40.00", " Facebook ADS ")).await;
        assert_eq!(blocked.status, StatusCode::CREATED);
        assert_eq!(blocked.body["outcome"], "rejected");
        assert_eq!(blocked.codes(), [codes::MERCHANT_BLOCKED]);
        assert!(blocked.body["reasons"][0]["message"].is_string());
        assert!(blocked.body.get("reservation_id").is_none());

        // 180 held so far: 330 more does not fit the monthly 500, and the
        // reason says which budget and what was left.
        let over = purchase(&s.app, &s.key, buy("199.00", "GitHub")).await;
        assert_eq!(over.body["outcome"], "pending_approval");
        let over = purchase(&s.app, &s.key, buy("190.00", "GitHub")).await;
        assert_eq!(over.body["outcome"], "rejected");
        assert_eq!(over.codes(), [codes::MONTHLY_LIMIT_EXCEEDED]);
        let budget = &over.body["reasons"][0]["budget"];
        let decimal = |v: &Value| dec(v.as_str().unwrap());
        assert_eq!(decimal(&budget["remaining"]), dec("121"), "{}", over.body);
        assert_eq!(decimal(&budget["limit"]), dec("500"));
        assert!(s.acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn a_missing_malformed_or_wrong_key_is_401_with_one_body() {
    for backend in backends() {
        let s = service(backend).await;
        let body = buy("30.00", "GitHub").to_string();
        let wrong_key = format!("bsk_{}_{}", "0".repeat(12), "0".repeat(64));
        assert_eq!(wrong_key.len(), s.key.len(), "the right shape");
        let mut answers = Vec::new();
        // No header at all.
        answers.push(purchase_raw(&s.app, None, &body).await);
        // A key of the right shape that is not one.
        answers.push(purchase_raw(&s.app, Some(&wrong_key), &body).await);
        // Malformed keys.
        answers.push(purchase_raw(&s.app, Some("not-a-key"), &body).await);
        answers.push(purchase_raw(&s.app, Some(""), &body).await);
        answers.push(purchase_raw(&s.app, Some(&s.key[..s.key.len() - 1]), &body).await);
        // Another scheme.
        let basic = post("/v1/purchase_intents")
            .header(header::AUTHORIZATION, format!("Basic {}", s.key))
            .body(Body::from(body.clone()))
            .unwrap();
        answers.push(send(&s.app, basic).await);
        // The key check comes before the body's.
        answers.push(purchase_raw(&s.app, Some(&wrong_key), "{not json").await);
        // A revoked key, and the key of a paused agent.
        let other = s
            .acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap();
        let revoked = s
            .acme
            .agent_keys()
            .issue(other.id, None, None)
            .await
            .unwrap();
        s.acme.agent_keys().revoke(revoked.0.id).await.unwrap();
        answers.push(purchase_raw(&s.app, Some(&revoked.0.secret), &body).await);
        s.acme
            .agents()
            .set_status(s.agent, AgentStatus::Paused)
            .await
            .unwrap();
        answers.push(purchase_raw(&s.app, Some(&s.key), &body).await);
        for answer in &answers {
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{backend:?}");
            assert_eq!(answer.body, answers[0].body);
            assert_eq!(answer.headers[header::WWW_AUTHENTICATE], "Bearer");
        }
        assert_eq!(answers[0].error_code(), "unauthenticated");
        assert_eq!(intents(&s.store, s.acme.tenant_id()).await, 0);
    }
}

#[tokio::test]
async fn invalid_bodies_are_400_naming_the_field() {
    for backend in backends() {
        let s = service(backend).await;
        let cases: [(&str, String); 8] = [
            ("amount", buy("-5.00", "GitHub").to_string()),
            ("amount", buy("0", "GitHub").to_string()),
            ("amount", buy("1.0000001", "GitHub").to_string()),
            (
                "amount",
                json!({ "amount": 30, "currency": "USD", "merchant": { "name": "GitHub" } })
                    .to_string(),
            ),
            (
                "currency",
                json!({ "amount": "30", "currency": "XYZ", "merchant": { "name": "GitHub" } })
                    .to_string(),
            ),
            (
                "merchant",
                json!({ "amount": "30", "currency": "USD" }).to_string(),
            ),
            ("agent_id", {
                let mut b = buy("30", "GitHub");
                b["agent_id"] = json!(AgentId::new());
                b.to_string()
            }),
            ("merchant.mcc", {
                let mut b = buy("30", "GitHub");
                b["merchant"]["mcc"] = json!(99_999);
                b.to_string()
            }),
        ];
        for (field, body) in &cases {
            let answer = purchase_raw(&s.app, Some(&s.key), body).await;
            assert_eq!(
                answer.status,
                StatusCode::BAD_REQUEST,
                "{backend:?} {body}: {}",
                answer.body
            );
            assert_eq!(answer.error_code(), "invalid");
            assert!(
                answer
                    .error_message()
                    .starts_with(&format!("invalid {field}: ")),
                "{body}: {}",
                answer.error_message()
            );
        }
        for malformed in ["{not json", "", "[]", r#"{"amount":"1"} trailing"#] {
            let answer = purchase_raw(&s.app, Some(&s.key), malformed).await;
            assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{malformed}");
            assert_eq!(answer.error_code(), "invalid");
        }
        let too_big = "x".repeat(http_service::MAX_BODY_BYTES + 1);
        let answer = purchase_raw(&s.app, Some(&s.key), &too_big).await;
        assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(answer.error_code(), "invalid");
        assert_eq!(
            intents(&s.store, s.acme.tenant_id()).await,
            0,
            "nothing recorded"
        );
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_returns_the_first_intent_marked_replayed() {
    for backend in backends() {
        let s = service(backend).await;
        let mut body = buy("30.00", "GitHub");
        body["idempotency_key"] = json!("req-1");
        let first = purchase(&s.app, &s.key, body.clone()).await;
        assert_eq!(first.status, StatusCode::CREATED);
        assert_eq!(first.body["replayed"], false);
        let again = purchase(&s.app, &s.key, body.clone()).await;
        assert_eq!(again.status, StatusCode::OK, "{backend:?}");
        assert_eq!(again.body["replayed"], true);
        assert_eq!(
            again.id("purchase_intent_id"),
            first.id("purchase_intent_id")
        );
        assert_eq!(again.id("reservation_id"), first.id("reservation_id"));

        // The Idempotency-Key header is the same key.
        let by_header = |key: &str, body: &Value| {
            post("/v1/purchase_intents")
                .header(header::AUTHORIZATION, format!("Bearer {}", s.key))
                .header("idempotency-key", key)
                .body(Body::from(body.to_string()))
                .unwrap()
        };
        let header_replay = send(&s.app, by_header("req-1", &buy("30.00", "GitHub"))).await;
        assert_eq!(header_replay.body["replayed"], true);
        assert_eq!(
            header_replay.id("purchase_intent_id"),
            first.id("purchase_intent_id")
        );
        // Header and body disagreeing is a client bug.
        let clash = send(&s.app, by_header("req-2", &body)).await;
        assert_eq!(clash.status, StatusCode::BAD_REQUEST);
        assert!(clash.error_message().starts_with("invalid idempotency_key"));
        // The same key for another amount conflicts.
        let mut other = buy("31.00", "GitHub");
        other["idempotency_key"] = json!("req-1");
        let conflict = purchase(&s.app, &s.key, other).await;
        assert_eq!(conflict.status, StatusCode::CONFLICT);
        assert_eq!(conflict.error_code(), "conflict");
        // Another agent of the tenant cannot replay this agent's intent.
        let second = s
            .acme
            .agents()
            .create(NewAgent::new("other-bot"))
            .await
            .unwrap();
        let second_key = issue_key(&s.acme, second.id).await;
        let stolen = purchase(&s.app, &second_key, body).await;
        assert_eq!(stolen.status, StatusCode::CONFLICT);
        assert_eq!(intents(&s.store, s.acme.tenant_id()).await, 1);
    }
}

#[tokio::test]
async fn a_captured_webhook_delivered_five_times_captures_once() {
    for backend in backends() {
        let s = service(backend).await;
        let approved = purchase(&s.app, &s.key, buy("30.00", "GitHub")).await;
        let intent: PurchaseIntentId = approved.id("purchase_intent_id").parse().unwrap();
        let card = s
            .acme
            .payments()
            .issue_card_with(intent, &FakeCardIssuer::new())
            .await
            .unwrap();
        let event = json!({
            "provider_charge_id": "ch_1",
            "status": "captured",
            "amount": { "amount": "29.50", "currency": "USD" },
            "provider_card_id": card.provider_card_id,
        });
        let mut answers = Vec::new();
        for _ in 0..5 {
            answers.push(webhook(&s.app, s.acme.tenant_id(), WEBHOOK_SECRET, &event).await);
        }
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(
                answer.status,
                StatusCode::OK,
                "{backend:?}: {}",
                answer.body
            );
            assert_eq!(answer.body["status"], "captured");
            assert_eq!(answer.body["replayed"], i > 0);
            assert_eq!(
                answer.body["transaction_id"],
                answers[0].body["transaction_id"]
            );
        }
        let reservation: ReservationId = approved.id("reservation_id").parse().unwrap();
        let (captured, _) = s.acme.reservations().get(reservation).await.unwrap();
        assert_eq!(captured.status, ReservationStatus::Captured);
        assert_eq!(captured.captured_amount.get(), dec("29.5"));
        let transactions = transaction::Entity::find()
            .filter(transaction::Column::TenantId.eq(s.acme.tenant_id()))
            .count(s.store.connection())
            .await
            .unwrap();
        assert_eq!(transactions, 1);
        assert!(s.acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn webhooks_refuse_a_wrong_secret_and_never_reach_another_tenant() {
    for backend in backends() {
        let s = service(backend).await;
        let approved = purchase(&s.app, &s.key, buy("30.00", "GitHub")).await;
        let intent = approved.id("purchase_intent_id");
        let captured = |charge: &str| {
            json!({
                "provider_charge_id": charge,
                "status": "captured",
                "amount": { "amount": "30.00", "currency": "USD" },
                "purchase_intent_id": intent,
            })
        };
        let tenant = s.acme.tenant_id();

        for secret in ["wrong", "", "test-webhook-secret "] {
            let answer = webhook(&s.app, tenant, secret, &captured("ch_1")).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{secret:?}");
            assert_eq!(answer.error_code(), "unauthenticated");
        }
        let no_secret = post(&format!("/v1/webhooks/transactions?tenant={tenant}"))
            .body(Body::from(captured("ch_1").to_string()))
            .unwrap();
        assert_eq!(
            send(&s.app, no_secret).await.status,
            StatusCode::UNAUTHORIZED
        );

        let unknown_card = json!({
            "provider_charge_id": "ch_2",
            "status": "captured",
            "amount": { "amount": "30.00", "currency": "USD" },
            "provider_card_id": "card_nobody_issued",
        });
        let answer = webhook(&s.app, tenant, WEBHOOK_SECRET, &unknown_card).await;
        assert_eq!(
            answer.status,
            StatusCode::NOT_FOUND,
            "{backend:?}: {}",
            answer.body
        );
        assert_eq!(answer.error_code(), "not_found");

        // Another tenant, with its own secret: this tenant's intent reported
        // there is not found, and its secret does not sign for this tenant.
        let (other, _, _) = new_tenant(&s.store).await;
        let app = router(AppState::new(
            s.store.clone(),
            WebhookSecrets::new()
                .tenant(tenant, WEBHOOK_SECRET)
                .tenant(other.tenant_id(), "other-secret"),
        ));
        let answer = webhook(&app, other.tenant_id(), "other-secret", &captured("ch_3")).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.body);
        assert_eq!(answer.error_code(), "not_found");
        let answer = webhook(&app, tenant, "other-secret", &captured("ch_3")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        // A tenant without a secret takes no webhooks.
        let (third, _, _) = new_tenant(&s.store).await;
        let answer = webhook(&app, third.tenant_id(), WEBHOOK_SECRET, &captured("ch_3")).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);

        let body = captured("ch_4").to_string();
        let no_tenant = post("/v1/webhooks/transactions")
            .header(
                SIGNATURE_HEADER,
                sign(WEBHOOK_SECRET.as_bytes(), Utc::now(), body.as_bytes()),
            )
            .body(Body::from(body))
            .unwrap();
        let answer = send(&s.app, no_tenant).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(answer.error_message().starts_with("invalid tenant"));

        let answer = webhook(
            &s.app,
            tenant,
            WEBHOOK_SECRET,
            &json!({ "status": "captured" }),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert!(
            answer
                .error_message()
                .starts_with("invalid provider_charge_id"),
            "{}",
            answer.error_message()
        );

        // Nothing of the above moved the money; the right call still does.
        let answer = webhook(&s.app, tenant, WEBHOOK_SECRET, &captured("ch_1")).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body["replayed"], false);
        assert!(s.acme.reservations().reconcile().await.unwrap().is_clean());
    }
}

#[tokio::test]
async fn a_signed_webhook_is_accepted_and_a_wrong_secret_tampered_body_or_stale_timestamp_refused()
{
    for backend in backends() {
        let s = service(backend).await;
        let tenant = s.acme.tenant_id();
        let approved = purchase(&s.app, &s.key, buy("30.00", "GitHub")).await;
        let body = json!({
            "provider_charge_id": "ch_1",
            "status": "captured",
            "amount": { "amount": "30.00", "currency": "USD" },
            "purchase_intent_id": approved.id("purchase_intent_id"),
        })
        .to_string();
        let now = Utc::now();
        let signed = |secret: &str, at: DateTime<Utc>, body: &str| {
            sign(secret.as_bytes(), at, body.as_bytes())
        };
        let tampered = body.replace("30.00", "3.00");
        assert_ne!(tampered, body);
        let refusals = [
            (
                "wrong secret",
                signed("not-the-secret", now, &body),
                body.clone(),
            ),
            (
                "tampered body",
                signed(WEBHOOK_SECRET, now, &body),
                tampered.clone(),
            ),
            (
                "older than the tolerance",
                signed(WEBHOOK_SECRET, now - Duration::minutes(6), &body),
                body.clone(),
            ),
            (
                "too far ahead",
                signed(WEBHOOK_SECRET, now + Duration::minutes(6), &body),
                body.clone(),
            ),
            ("malformed", "t=abc,v1=00".to_owned(), body.clone()),
        ];
        for (case, signature, sent) in refusals {
            let answer = signed_webhook(&s.app, tenant, &signature, sent).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{backend:?} {case}"
            );
            assert_eq!(answer.error_code(), "unauthenticated", "{case}");
        }
        let reservation: ReservationId = approved.id("reservation_id").parse().unwrap();
        let (held, _) = s.acme.reservations().get(reservation).await.unwrap();
        assert_eq!(held.status, ReservationStatus::Held, "nothing was recorded");

        // Signed four minutes ago: within the tolerance.
        let answer = signed_webhook(
            &s.app,
            tenant,
            &signed(WEBHOOK_SECRET, now - Duration::minutes(4), &body),
            body.clone(),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{backend:?}: {}",
            answer.body
        );
        assert_eq!(answer.body["status"], "captured");
        let (captured, _) = s.acme.reservations().get(reservation).await.unwrap();
        assert_eq!(captured.status, ReservationStatus::Captured);
    }
}

/// A webhook receiver on 127.0.0.1: checks each signature with `verify`,
/// records the bodies it takes, and answers 500 while `failures` is above 0.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<std::sync::Mutex<Vec<Value>>>,
    failures: Arc<std::sync::atomic::AtomicUsize>,
}

const EVENTS_SECRET: &str = "events-secret";

impl Receiver {
    async fn start(&self) -> std::net::SocketAddr {
        use axum::extract::State;
        async fn take(
            State(receiver): State<Receiver>,
            headers: HeaderMap,
            body: axum::body::Bytes,
        ) -> StatusCode {
            use std::sync::atomic::Ordering;
            let signature = headers
                .get(SIGNATURE_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if verify(
                EVENTS_SECRET.as_bytes(),
                signature,
                &body,
                Utc::now(),
                Duration::minutes(5),
            )
            .is_err()
            {
                return StatusCode::UNAUTHORIZED;
            }
            let failing = receiver
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if failing {
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            let value = serde_json::from_slice(&body).unwrap();
            receiver.bodies.lock().unwrap().push(value);
            StatusCode::NO_CONTENT
        }
        let app = Router::new()
            .route("/events", axum::routing::post(take))
            .with_state(self.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    fn fail_next(&self, n: usize) {
        self.failures.store(n, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn the_delivery_loop_posts_signed_events_acks_them_and_retries_a_failure() {
    let receiver = Receiver::default();
    let addr = receiver.start().await;
    let url = format!("http://{addr}/events");
    for backend in backends() {
        let s = service(backend).await;
        let seen = receiver.bodies().len();
        let mut delivery = EventDelivery::new(s.acme.clone(), &url, EVENTS_SECRET).unwrap();
        assert_eq!(delivery.deliver_once().await.unwrap(), DeliveryStep::Idle);

        // Two rejected purchases: two purchase.rejected events.
        for merchant in ["Facebook Ads", "facebook ads"] {
            let answer = purchase(&s.app, &s.key, buy("40.00", merchant)).await;
            assert_eq!(answer.body["outcome"], "rejected");
        }
        assert_eq!(
            delivery.deliver_once().await.unwrap(),
            DeliveryStep::Delivered(2),
            "{backend:?}"
        );
        let bodies = receiver.bodies()[seen..].to_vec();
        assert_eq!(bodies.len(), 2);
        for body in &bodies {
            assert_eq!(body["event_type"], "purchase.rejected");
            assert_eq!(body["tenant_id"], json!(s.acme.tenant_id()));
            assert_eq!(body["version"], 1);
            assert_eq!(
                body["payload"]["reason_codes"],
                json!([codes::MERCHANT_BLOCKED])
            );
        }
        let first = bodies[0]["seq"].as_i64().unwrap();
        assert_eq!(bodies[1]["seq"].as_i64().unwrap(), first + 1, "in order");
        // Acknowledged: nothing left to poll, nothing to deliver.
        assert!(
            s.acme
                .events()
                .poll("webhooks", 10)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(delivery.deliver_once().await.unwrap(), DeliveryStep::Idle);

        // The receiver fails twice: the event waits 0.5 s, then 1 s, and the
        // next step delivers it.
        purchase(&s.app, &s.key, buy("40.00", "Facebook Ads")).await;
        receiver.fail_next(2);
        let expected_seq = first + 2;
        for retry_in in [500, 1000] {
            match delivery.deliver_once().await.unwrap() {
                DeliveryStep::Failed {
                    seq,
                    delivered,
                    retry_in: wait,
                    error,
                } => {
                    assert_eq!(seq, expected_seq);
                    assert_eq!(delivered, 0);
                    assert_eq!(wait, std::time::Duration::from_millis(retry_in));
                    assert!(error.contains("500"), "{error}");
                }
                other => panic!("{backend:?}: {other:?}"),
            }
        }
        assert_eq!(receiver.bodies().len(), seen + 2, "not taken yet");
        assert_eq!(
            delivery.deliver_once().await.unwrap(),
            DeliveryStep::Delivered(1)
        );
        let bodies = receiver.bodies();
        assert_eq!(bodies.len(), seen + 3);
        assert_eq!(bodies[seen + 2]["seq"].as_i64().unwrap(), expected_seq);
        assert!(
            s.acme
                .events()
                .poll("webhooks", 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

#[tokio::test]
async fn the_delivery_loop_backs_off_to_30_seconds_and_refuses_https() {
    let store = store_for(Backend::SqliteMemory).await;
    let (acme, _, _) = new_tenant(&store).await;
    let err =
        EventDelivery::new(acme.clone(), "https://example.com/hook", EVENTS_SECRET).unwrap_err();
    assert!(err.to_string().contains("https"), "{err}");
    assert!(EventDelivery::new(acme.clone(), "http://127.0.0.1:1/x", "").is_err());
    // Nobody listens on the port of a listener just closed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut delivery = EventDelivery::new(
        acme.clone(),
        &format!("http://{addr}/events"),
        EVENTS_SECRET,
    )
    .unwrap();
    let mut waits = Vec::new();
    // One event to deliver: a revoked key.
    let bot = acme.agents().create(NewAgent::new("other")).await.unwrap();
    let (key, _) = acme.agent_keys().issue(bot.id, None, None).await.unwrap();
    acme.agent_keys().revoke(key.id).await.unwrap();
    for _ in 0..9 {
        match delivery.deliver_once().await.unwrap() {
            DeliveryStep::Failed { retry_in, .. } => waits.push(retry_in.as_millis()),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        waits,
        [
            500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000
        ]
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let s = service(Backend::SqliteMemory).await;
    let missing = send(
        &s.app,
        Request::get("/v1/nothing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.error_code(), "not_found");
    let wrong_method = send(
        &s.app,
        Request::get("/v1/purchase_intents")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.error_code(), "method_not_allowed");
}

#[tokio::test]
async fn a_database_failure_is_500_and_keeps_its_details_to_itself() {
    use axum::response::IntoResponse;
    let err = bursar::Error::Database(sea_orm::DbErr::Custom("password=hunter2".into()));
    let response = http_service::ApiError::from(err).into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        body,
        json!({ "error": { "code": "database", "message": "internal error" } })
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_locked_database_is_503_with_retry_after_and_the_same_request_then_succeeds() {
    use sqlx::{Connection, Executor};
    use std::str::FromStr;
    let (_dir, url) = common::sqlite_file_url();
    let store = Store::builder(&url)
        .busy_timeout(std::time::Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let (scope, _, key) = new_tenant(&store).await;
    let app = router(AppState::new(
        store,
        WebhookSecrets::new().tenant(scope.tenant_id(), WEBHOOK_SECRET),
    ));
    // Another process holds the write lock.
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url).unwrap();
    let mut other = sqlx::SqliteConnection::connect_with(&options)
        .await
        .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let mut body = buy("30.00", "GitHub");
    body["idempotency_key"] = json!("req-1");
    let busy = purchase(&app, &key, body.clone()).await;
    assert_eq!(
        busy.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        busy.body
    );
    assert_eq!(busy.error_code(), "contention");
    assert_eq!(busy.headers[header::RETRY_AFTER], "1");
    let message = busy.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("retry with the same idempotency key"),
        "{message}"
    );
    assert!(!message.to_lowercase().contains("sqlite"), "{message}");
    other.execute("ROLLBACK").await.unwrap();
    let done = purchase(&app, &key, body).await;
    assert_eq!(done.status, StatusCode::CREATED, "{}", done.body);
}

#[tokio::test]
async fn fault_classes_map_to_their_status() {
    use axum::response::IntoResponse;
    for (err, status, retry_after) in [
        (
            bursar::Error::Unavailable {
                reason: "the connection to the database failed".into(),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            true,
        ),
        (
            bursar::Error::StorageFull {
                reason: "the database or disk is full".into(),
            },
            StatusCode::SERVICE_UNAVAILABLE,
            false,
        ),
    ] {
        let code = err.code();
        let response = http_service::ApiError::from(err).into_response();
        assert_eq!(response.status(), status, "{code}");
        assert_eq!(
            response.headers().get(header::RETRY_AFTER).is_some(),
            retry_after,
            "{code}"
        );
    }
}
