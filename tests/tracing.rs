//! A host sees bursar's work in its own traces: the authorize span carries
//! who asked, the outcome, the reason codes and the time spent in each step,
//! and never the request's metadata or idempotency key.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bursar::clock::ManualClock;
use bursar::money::{Currency, Money};
use bursar::policy::{Request, SpendingControls};
use bursar::store::{
    AgentRepository, NewAgent, NewTenant, ReservationRepository, TenantRepository,
};
use bursar::{Error, Store};
use chrono::{TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A span or an event as a subscriber saw it: its name and its fields.
#[derive(Clone, Debug, Default)]
struct Seen {
    name: String,
    /// For an event, the name of the span it was emitted in.
    parent: Option<String>,
    level: Option<tracing::Level>,
    fields: BTreeMap<String, String>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

/// Keeps every span (with the fields recorded on it so far) and every event.
/// Spans are kept from their creation: a span may outlive the call that made
/// it (a pooled connection released later holds its parent open).
#[derive(Clone, Default)]
struct Capture {
    spans: Arc<Mutex<Vec<Seen>>>,
    open: Arc<Mutex<BTreeMap<u64, usize>>>,
    events: Arc<Mutex<Vec<Seen>>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let mut spans = self.spans.lock().unwrap();
        self.open.lock().unwrap().insert(id.into_u64(), spans.len());
        spans.push(Seen {
            name: attrs.metadata().name().to_owned(),
            parent: None,
            level: Some(*attrs.metadata().level()),
            fields: fields.0,
        });
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, _ctx: Context<'_, S>) {
        let Some(&at) = self.open.lock().unwrap().get(&id.into_u64()) else {
            return;
        };
        let mut fields = Fields::default();
        values.record(&mut fields);
        self.spans.lock().unwrap()[at].fields.extend(fields.0);
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        self.events.lock().unwrap().push(Seen {
            name: event.metadata().name().to_owned(),
            parent: ctx.event_span(event).map(|s| s.name().to_owned()),
            level: Some(*event.metadata().level()),
            fields: fields.0,
        });
    }

    fn on_close(&self, id: Id, _ctx: Context<'_, S>) {
        self.open.lock().unwrap().remove(&id.into_u64());
    }
}

impl Capture {
    fn spans_named(&self, name: &str) -> Vec<Seen> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.name == name)
            .cloned()
            .collect()
    }

    /// Every field value of every span and event seen.
    fn all_values(&self) -> Vec<String> {
        let spans = self.spans.lock().unwrap();
        let events = self.events.lock().unwrap();
        spans
            .iter()
            .chain(events.iter())
            .flat_map(|s| s.fields.values().cloned())
            .collect()
    }
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

#[tokio::test]
async fn the_authorize_span_names_who_what_outcome_reasons_and_step_times_and_no_secrets() {
    for backend in backends() {
        let store = store_for(backend).await;
        let tenant = store
            .tenants()
            .create(NewTenant::new("Acme", "acme"))
            .await
            .unwrap();
        let acme = store.tenant(tenant.id);
        let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
        acme.apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(agent)
                .per_transaction_limit(dec("200"))
                .monthly_limit(dec("500"))
                .build()
                .unwrap(),
        )
        .await
        .unwrap();

        let capture = Capture::default();
        let subscriber = tracing_subscriber::registry().with(capture.clone());
        let guard = tracing::subscriber::set_default(subscriber);

        let secret_request = |amount: &str, key: &str| {
            Request::purchase(agent, dec(amount), Currency::USD, "Tools Inc")
                .metadata("ticket", "SECRET-TICKET-42")
                .idempotency_key(key)
        };
        let approved = acme
            .authorize(secret_request("20", "SECRET-KEY-1"))
            .await
            .unwrap();
        assert!(
            approved.is_approved(),
            "{backend:?}: {:?}",
            approved.reasons
        );
        let rejected = acme
            .authorize(secret_request("300", "SECRET-KEY-2"))
            .await
            .unwrap();
        assert!(!rejected.is_approved());
        // An invalid request still has its span, with the error's code.
        let err = acme
            .authorize(Request::new(agent, bursar::policy::ActionKind::Purchase))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }));
        // A reservation outside authorize has a span of its own.
        acme.reservations()
            .reserve(bursar::store::ReserveRequest::new(
                Money::parse("1", "USD").unwrap(),
                Utc.with_ymd_and_hms(2026, 6, 15, 17, 0, 0).unwrap(),
            ))
            .await
            .unwrap();
        drop(guard);

        let spans = capture.spans_named("bursar.authorize");
        assert_eq!(spans.len(), 3, "{backend:?}: one span per call: {spans:?}");
        let tenant_id = tenant.id.to_string();
        let agent_id = agent.to_string();
        for span in &spans {
            assert_eq!(span.level, Some(tracing::Level::INFO));
            assert_eq!(span.fields["tenant"], tenant_id, "{backend:?}");
            assert_eq!(span.fields["agent"], agent_id, "{backend:?}");
            assert_eq!(span.fields["action"], "purchase", "{backend:?}");
        }
        let first = &spans[0].fields;
        assert_eq!(first["outcome"], "approved", "{backend:?}: {first:?}");
        assert_eq!(first["reasons"], "", "{backend:?}");
        assert_eq!(first["replayed"], "false", "{backend:?}");
        assert_eq!(first["intent"], approved.intent.id.to_string());
        for step in ["load_us", "evaluate_us", "reserve_us", "record_us"] {
            let micros: u64 = first
                .get(step)
                .unwrap_or_else(|| panic!("{backend:?}: no {step} in {first:?}"))
                .parse()
                .unwrap();
            assert!(micros < 60_000_000, "{backend:?}: {step} = {micros}");
        }
        let second = &spans[1].fields;
        assert_eq!(second["outcome"], "rejected", "{backend:?}: {second:?}");
        let codes: Vec<_> = rejected.codes().collect();
        assert!(!codes.is_empty());
        assert_eq!(second["reasons"], codes.join(","), "{backend:?}");
        assert!(
            !second.contains_key("reserve_us"),
            "{backend:?}: a rejection holds nothing: {second:?}"
        );
        let third = &spans[2].fields;
        assert_eq!(third["error"], "invalid", "{backend:?}: {third:?}");
        assert!(!third.contains_key("outcome"));

        // A rejection is an `info` event inside the authorize span.
        let events = capture.events.lock().unwrap().clone();
        let rejections: Vec<_> = events
            .iter()
            .filter(|e| {
                e.fields
                    .get("message")
                    .is_some_and(|m| m == "request rejected")
            })
            .collect();
        assert_eq!(rejections.len(), 1, "{backend:?}: {events:?}");
        assert_eq!(rejections[0].level, Some(tracing::Level::INFO));
        assert_eq!(rejections[0].parent.as_deref(), Some("bursar.authorize"));

        let reserve = capture.spans_named("bursar.reservations.reserve");
        assert_eq!(reserve.len(), 1, "{backend:?}");
        assert_eq!(reserve[0].fields["tenant"], tenant_id);
        assert_eq!(reserve[0].level, Some(tracing::Level::INFO));

        // Nothing a request carries beyond who and what reaches a trace.
        for value in capture.all_values() {
            assert!(
                !value.contains("SECRET"),
                "{backend:?}: a trace field carries request data: {value}"
            );
        }
    }
}
