//! What agents do: runs with caps and a kill switch, tool calls and other
//! actions through authorize, and LLM usage metered against the same budgets.

mod common;

use bursar::audit::AuditLogRepository;
use std::sync::Arc;

use bursar::clock::ManualClock;
use bursar::codes;
use bursar::entity::agent_run::RunStatus;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::entity::reservation::ReservationStatus;
use bursar::entity::tenant::TenantSettings;
use bursar::events::EventRepository as _;
use bursar::id::AgentId;
use bursar::money::{Currency, Money};
use bursar::policy::{ActionKind, Condition, Effect, Outcome, Policy, Request};
use bursar::store::{
    AgentRepository, ApprovalRepository, MeterRequest, NewAgent, NewPrice, NewRun, NewTenant,
    PolicyRepository, ReservationRepository, TenantRepository, Usage, UsageFilter, builtin,
};
use bursar::{Error, Store, TenantScope};
use chrono::{DateTime, Duration, TimeZone, Utc};
use common::{Backend, backends, dec, fresh_postgres_schema};

fn noon() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 15, 12, 0, 0).unwrap()
}

fn usd(s: &str) -> Money {
    Money::parse(s, "USD").unwrap()
}

async fn store_for(backend: Backend, clock: Arc<ManualClock>) -> Store {
    let url = match backend {
        Backend::SqliteMemory => "sqlite::memory:".to_owned(),
        Backend::Postgres => fresh_postgres_schema().await,
    };
    Store::builder(&url).clock(clock).connect().await.unwrap()
}

/// A tenant that approves what no policy refuses, with one agent.
async fn tenant(store: &Store, settings: TenantSettings) -> (TenantScope, AgentId) {
    let t = store
        .tenants()
        .create(
            NewTenant::new("Acme", format!("t{}", uuid::Uuid::now_v7().simple()))
                .default_allow(true)
                .settings(settings),
        )
        .await
        .unwrap();
    let acme = store.tenant(t.id);
    let agent = acme.agents().create(NewAgent::new("bot")).await.unwrap().id;
    (acme, agent)
}

fn tool(agent: AgentId, name: &str) -> Request {
    Request::tool_call(agent, name)
}

#[tokio::test]
async fn every_run_cap_refuses_with_its_code_and_names_the_cap() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = tenant(&store, TenantSettings::default()).await;

        // Cost: the run's own lifetime budget.
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_cost(usd("1.00")))
            .await
            .unwrap();
        let buy = |amount: &str| {
            Request::purchase(agent, dec(amount), Currency::USD, "OpenAI").run(run.id)
        };
        assert!(acme.authorize(buy("0.60")).await.unwrap().is_approved());
        let over = acme.authorize(buy("0.50")).await.unwrap();
        assert_eq!(
            over.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED],
            "{backend:?}"
        );
        let state = acme.runs().get(run.id).await.unwrap();
        assert_eq!((state.cost_spent, state.cost_held), (dec("0"), dec("0.6")));
        assert_eq!(state.run.rounds, 1);

        // Rounds.
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_rounds(2))
            .await
            .unwrap();
        for _ in 0..2 {
            assert!(
                acme.authorize(tool(agent, "search").run(run.id))
                    .await
                    .unwrap()
                    .is_approved()
            );
        }
        let third = acme
            .authorize(tool(agent, "search").run(run.id))
            .await
            .unwrap();
        assert_eq!(
            third.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
        assert!(
            third.reasons[0].message().contains("max_rounds"),
            "{:?}",
            third.reasons
        );

        // Allowed tools and models.
        let run = acme
            .runs()
            .start(
                NewRun::new(agent)
                    .allowed_tools(["search"])
                    .allowed_models(["small"]),
            )
            .await
            .unwrap();
        assert!(
            acme.authorize(tool(agent, "Search").run(run.id))
                .await
                .unwrap()
                .is_approved()
        );
        let shell = acme
            .authorize(tool(agent, "shell").run(run.id))
            .await
            .unwrap();
        assert_eq!(
            shell.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
        assert!(shell.reasons[0].message().contains("allowed_tools"));
        let big = acme
            .authorize(
                Request::new(agent, ActionKind::LlmUsage)
                    .model("big")
                    .run(run.id),
            )
            .await
            .unwrap();
        assert!(
            big.reasons[0].message().contains("allowed_models"),
            "{big:?}"
        );

        // Deadline.
        let run = acme
            .runs()
            .start(NewRun::new(agent).deadline(noon() + Duration::minutes(5)))
            .await
            .unwrap();
        assert!(
            acme.authorize(tool(agent, "search").run(run.id))
                .await
                .unwrap()
                .is_approved()
        );
        // A maximum duration counts from the run's start.
        let timed = acme
            .runs()
            .start(NewRun::new(agent).max_duration(std::time::Duration::from_secs(120)))
            .await
            .unwrap();
        clock.advance(Duration::minutes(1));
        assert!(
            acme.authorize(tool(agent, "search").run(timed.id))
                .await
                .unwrap()
                .is_approved()
        );
        clock.advance(Duration::minutes(1));
        let over = acme
            .authorize(tool(agent, "search").run(timed.id))
            .await
            .unwrap();
        assert_eq!(over.codes().collect::<Vec<_>>(), [codes::RUN_EXPIRED]);
        clock.advance(Duration::minutes(3));
        let late = acme
            .authorize(tool(agent, "search").run(run.id))
            .await
            .unwrap();
        assert_eq!(late.codes().collect::<Vec<_>>(), [codes::RUN_EXPIRED]);
        let err = acme
            .runs()
            .start(NewRun::new(agent).deadline(noon()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "deadline"));

        // Bad caps are refused, naming the field.
        let err = acme
            .runs()
            .start(NewRun::new(agent).max_rounds(0))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "max_rounds"));
        let err = acme
            .runs()
            .start(NewRun::new(agent).allowed_tools([" "]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "allowed_tools[0]"));
    }
}

#[tokio::test]
async fn the_kill_switch_releases_holds_and_refuses_everything_after() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = tenant(&store, TenantSettings::default()).await;
        let admin = common::member(&store, &acme, builtin::ADMIN).await;
        let developer = common::member(&store, &acme, builtin::DEVELOPER).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_cost(usd("10")))
            .await
            .unwrap();
        let held = acme
            .authorize(Request::purchase(agent, dec("4"), Currency::USD, "OpenAI").run(run.id))
            .await
            .unwrap();
        assert!(held.is_approved());
        let err = acme.runs().kill(run.id, admin, "  ").await.unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "reason"));
        let err = acme
            .runs()
            .kill(run.id, developer, "runaway loop")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Forbidden {
                    permission: "runs:write",
                    ..
                }
            ),
            "{err:?}"
        );
        let killed = acme
            .runs()
            .kill(run.id, admin, "runaway loop")
            .await
            .unwrap();
        assert_eq!(killed.status, RunStatus::Killed);
        assert_eq!(killed.kill_reason.as_deref(), Some("runaway loop"));
        let (hold, _) = acme
            .reservations()
            .get(held.reservation_id().unwrap())
            .await
            .unwrap();
        assert_eq!(hold.status, ReservationStatus::Released, "{backend:?}");
        assert_eq!(acme.runs().get(run.id).await.unwrap().cost_held, dec("0"));
        // Killing twice is a no-op success.
        assert_eq!(
            acme.runs()
                .kill(run.id, admin, "again")
                .await
                .unwrap()
                .kill_reason
                .as_deref(),
            Some("runaway loop")
        );
        for request in [
            tool(agent, "search").run(run.id),
            Request::purchase(agent, dec("1"), Currency::USD, "OpenAI").run(run.id),
        ] {
            let refused = acme.authorize(request).await.unwrap();
            assert_eq!(refused.codes().collect::<Vec<_>>(), [codes::RUN_KILLED]);
        }
        let audit = acme
            .audit_log()
            .list(bursar::store::PageRequest::new().limit(500))
            .await
            .unwrap();
        assert!(
            audit
                .items
                .iter()
                .any(|e| e.action == "run.killed" && e.actor_id == Some(admin.as_uuid())),
        );
        assert!(acme.reservations().reconcile().await.unwrap().is_clean());
        // The kill is announced once, with the hold it released.
        let events = acme.events().poll("ops", 100).await.unwrap();
        let killed: Vec<_> = events
            .iter()
            .filter(|e| e.event_type == "run.killed")
            .collect();
        assert_eq!(killed.len(), 1, "{backend:?}");
        assert!(
            killed[0]
                .payload
                .to_string()
                .contains(&held.reservation_id().unwrap().to_string())
        );
        // A completed run admits nothing more either.
        let done = acme.runs().start(NewRun::new(agent)).await.unwrap();
        acme.runs().complete(done.id).await.unwrap();
        let after = acme
            .authorize(tool(agent, "search").run(done.id))
            .await
            .unwrap();
        assert_eq!(after.codes().collect::<Vec<_>>(), [codes::RUN_EXPIRED]);
        let listed = acme
            .runs()
            .list(
                Some(agent),
                bursar::store::PageRequest::new().status("killed"),
            )
            .await
            .unwrap();
        assert_eq!(listed.items.len(), 1);
    }
}

#[tokio::test]
async fn an_agent_may_only_name_its_own_runs_and_a_tenant_can_require_one() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let settings = TenantSettings {
            require_run: true,
            ..TenantSettings::default()
        };
        let (acme, agent) = tenant(&store, settings).await;
        let other = acme
            .agents()
            .create(NewAgent::new("other"))
            .await
            .unwrap()
            .id;
        let theirs = acme.runs().start(NewRun::new(other)).await.unwrap();
        let err = acme
            .authorize(tool(agent, "search").run(theirs.id))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::NotFound { .. }),
            "{backend:?}: {err:?}"
        );
        let none = acme.authorize(tool(agent, "search")).await.unwrap();
        assert_eq!(none.codes().collect::<Vec<_>>(), [codes::RUN_REQUIRED]);
        let mine = acme.runs().start(NewRun::new(agent)).await.unwrap();
        assert!(
            acme.authorize(tool(agent, "search").run(mine.id))
                .await
                .unwrap()
                .is_approved()
        );
        // Another tenant's run is not found either.
        let (beta, beta_agent) = tenant(&store, TenantSettings::default()).await;
        let err = beta
            .authorize(tool(beta_agent, "search").run(mine.id))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn tool_calls_and_actions_go_through_policies_and_approval() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = tenant(&store, TenantSettings::default()).await;
        let finance = common::member(&store, &acme, builtin::FINANCE).await;
        acme.policies()
            .create(Policy::new(
                "no shell",
                Effect::Deny,
                "TOOL_BLOCKED",
                Condition::ToolIn {
                    tools: vec!["shell".into()],
                },
            ))
            .await
            .unwrap();
        acme.policies()
            .create(Policy::new(
                "deploys need a human",
                Effect::RequireApproval,
                "NEEDS_REVIEW",
                Condition::ToolIn {
                    tools: vec!["deploy".into()],
                },
            ))
            .await
            .unwrap();
        let denied = acme.authorize(tool(agent, "shell")).await.unwrap();
        assert_eq!(denied.codes().collect::<Vec<_>>(), ["TOOL_BLOCKED"]);
        assert_eq!(denied.intent.action_kind, "tool_call");
        let search = acme.authorize(tool(agent, "search")).await.unwrap();
        assert!(search.is_approved());
        assert!(search.reservation.is_none(), "no cost, nothing held");
        // With an estimated cost it is held like a purchase.
        let priced = acme
            .authorize(tool(agent, "search").cost(dec("0.25"), Currency::USD))
            .await
            .unwrap();
        assert!(priced.reservation.is_some());
        // An action that needs a human is approved, then the agent's retry
        // with the same key gets Approved.
        let deploy = || tool(agent, "deploy").idempotency_key("deploy-1");
        let pending = acme.authorize(deploy()).await.unwrap();
        assert_eq!(pending.outcome, Outcome::PendingApproval, "{backend:?}");
        acme.approvals()
            .decide(
                pending.approval.as_ref().unwrap().id,
                finance,
                ApprovalVote::Approve,
                None,
            )
            .await
            .unwrap();
        let retried = acme.authorize(deploy()).await.unwrap();
        assert!(retried.replayed);
        assert_eq!(retried.outcome, Outcome::Approved);
        let custom = acme
            .authorize(Request::custom(agent, "send_email"))
            .await
            .unwrap();
        assert_eq!(custom.intent.action_kind, "custom:send_email");
        let audit = acme
            .audit_log()
            .list(bursar::store::PageRequest::new().limit(500))
            .await
            .unwrap();
        assert!(audit.items.iter().any(|e| e.action == "tool_call.rejected"));
    }
}

async fn priced_tenant(store: &Store, settings: TenantSettings) -> (TenantScope, AgentId) {
    let (acme, agent) = tenant(store, settings).await;
    // 2.00 per million input, 10.00 per million output, cached 0.50.
    acme.prices()
        .set(
            NewPrice::new("acme-ai", "small", "USD", dec("2"), dec("10"))
                .cached_input(dec("0.5"))
                .effective_from(noon() - Duration::days(1)),
        )
        .await
        .unwrap();
    (acme, agent)
}

#[tokio::test]
async fn metered_calls_hold_the_estimate_and_capture_what_was_used() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_cost(usd("0.10")).max_tokens(50_000))
            .await
            .unwrap();
        let call = |input: u64, output: u64| {
            MeterRequest::new(agent, "acme-ai", "small", input)
                .max_output_tokens(output)
                .run(run.id)
        };
        // Estimate: 10,000 × 2 / 1M + 2,000 × 10 / 1M = 0.02 + 0.02 = 0.04.
        let first = acme.meter().begin(call(10_000, 2_000)).await.unwrap();
        assert!(first.is_approved(), "{backend:?}: {:?}", first.reasons);
        assert_eq!(
            first.reservation.as_ref().unwrap().amount.get(),
            dec("0.04")
        );
        // Used less: 10,000 in (4,000 cached), 1,000 out.
        // 6,000 × 2 + 4,000 × 0.5 + 1,000 × 10 = 12,000 + 2,000 + 10,000 → 0.024.
        let used = Usage {
            input_tokens: 10_000,
            cached_input_tokens: 4_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        let record = acme.meter().finish(first.intent.id, used).await.unwrap();
        assert_eq!(record.cost.get(), dec("0.024"));
        // Cached tokens are part of the input: more is refused.
        let err = acme
            .meter()
            .finish(
                first.intent.id,
                Usage {
                    input_tokens: 10,
                    cached_input_tokens: 11,
                    ..Usage::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "cached_input_tokens"));
        // Finishing again records once.
        let again = acme.meter().finish(first.intent.id, used).await.unwrap();
        assert_eq!(again.id, record.id);
        let state = acme.runs().get(run.id).await.unwrap();
        assert_eq!(
            (state.cost_spent, state.cost_held),
            (dec("0.024"), dec("0"))
        );
        assert_eq!(state.run.total_tokens, 11_000);

        // A failed call is charged its input only.
        let second = acme.meter().begin(call(5_000, 1_000)).await.unwrap();
        let failed = acme
            .meter()
            .finish(
                second.intent.id,
                Usage {
                    input_tokens: 5_000,
                    output_tokens: 900,
                    failed: true,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(failed.cost.get(), dec("0.01"));

        // Used more than estimated: posted, the excess over the cap as
        // overspend, and the next call refused.
        let third = acme.meter().begin(call(10_000, 3_000)).await.unwrap();
        assert!(third.is_approved(), "{:?}", third.reasons);
        acme.meter()
            .finish(
                third.intent.id,
                Usage {
                    input_tokens: 10_000,
                    output_tokens: 8_000,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        let state = acme.runs().get(run.id).await.unwrap();
        assert_eq!(state.cost_spent, dec("0.134"));
        let report = acme.reservations().reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.overspent.len(), 1);
        let refused = acme.meter().begin(call(10, 10)).await.unwrap();
        assert_eq!(
            refused.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );

        // Roll-ups equal the ledger.
        let totals = acme
            .meter()
            .totals(UsageFilter {
                run: Some(run.id),
                ..UsageFilter::default()
            })
            .await
            .unwrap();
        assert_eq!(totals.calls, 3);
        assert_eq!(totals.cost, vec![(Currency::USD, state.cost_spent)]);
    }
}

/// A metered call retried with its idempotency key is the first call again:
/// priced the same, it is replayed (one intent, one hold); with other tokens
/// it is another request and a conflict; a refused call is replayed refused.
#[tokio::test]
async fn a_metered_call_begun_again_with_its_key_is_replayed_and_another_call_under_it_conflicts() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let call = |model: &str, input: u64| {
            MeterRequest::new(agent, "acme-ai", model, input)
                .max_output_tokens(1_000)
                .idempotency_key(format!("call-{model}"))
        };
        // 2,000 × 2 / 1M + 1,000 × 10 / 1M = 0.004 + 0.01.
        let first = acme.meter().begin(call("small", 2_000)).await.unwrap();
        assert!(first.is_approved(), "{backend:?}: {:?}", first.reasons);
        assert!(!first.replayed);
        let held = first.reservation.clone().expect("held");
        assert_eq!(held.amount.get(), dec("0.014"));
        let again = acme.meter().begin(call("small", 2_000)).await.unwrap();
        assert!(again.replayed, "{backend:?}");
        assert_eq!(again.intent.id, first.intent.id);
        assert_eq!(again.reservation.map(|r| r.id), Some(held.id));
        let err = acme.meter().begin(call("small", 3_000)).await.unwrap_err();
        assert!(
            matches!(err, Error::Conflict { .. }),
            "{backend:?}: {err:?}"
        );
        let refused = acme.meter().begin(call("huge", 10)).await.unwrap();
        assert_eq!(refused.codes().collect::<Vec<_>>(), [codes::PRICE_UNKNOWN]);
        let refused_again = acme.meter().begin(call("huge", 10)).await.unwrap();
        assert!(refused_again.replayed);
        assert_eq!(refused_again.intent.id, refused.intent.id);
        assert_eq!(
            refused_again.codes().collect::<Vec<_>>(),
            [codes::PRICE_UNKNOWN]
        );
        // Only the first call holds anything.
        let report = acme.reservations().reconcile().await.unwrap();
        assert!(report.is_clean(), "{report:?}");
        let intents = acme
            .audit_log()
            .search(
                &bursar::audit::AuditFilter::new().action("llm_usage.approved"),
                bursar::store::PageRequest::new().limit(10),
            )
            .await
            .unwrap();
        assert_eq!(intents.items.len(), 1, "{backend:?}");
    }
}

#[tokio::test]
async fn an_unknown_price_or_an_unbounded_call_fails_closed() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let unknown = acme
            .meter()
            .begin(MeterRequest::new(agent, "acme-ai", "huge", 10).max_output_tokens(10))
            .await
            .unwrap();
        assert_eq!(unknown.codes().collect::<Vec<_>>(), [codes::PRICE_UNKNOWN]);
        assert!(unknown.reasons[0].is_undetermined());
        let unbounded = acme
            .meter()
            .begin(MeterRequest::new(agent, "acme-ai", "small", 10))
            .await
            .unwrap();
        assert_eq!(
            unbounded.codes().collect::<Vec<_>>(),
            [codes::PRICE_UNKNOWN]
        );
        // A price that takes effect later does not price a call now.
        acme.prices()
            .set(
                NewPrice::new("acme-ai", "later", "USD", dec("1"), dec("1"))
                    .effective_from(noon() + Duration::days(1)),
            )
            .await
            .unwrap();
        let later = acme
            .meter()
            .begin(MeterRequest::new(agent, "acme-ai", "later", 10).max_output_tokens(10))
            .await
            .unwrap();
        assert_eq!(later.codes().collect::<Vec<_>>(), [codes::PRICE_UNKNOWN]);
        let err = acme
            .prices()
            .set(NewPrice::new("acme-ai", "x", "USD", dec("-1"), dec("1")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { ref field, .. } if field == "input_per_million"));
        let err = acme
            .meter()
            .finish(unknown.intent.id, Usage::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
    }
}

#[tokio::test]
async fn byok_calls_are_metered_but_exempt_from_money_budgets_when_the_tenant_says_so() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let settings = TenantSettings {
            byok_exempt_from_budgets: true,
            ..TenantSettings::default()
        };
        let (acme, agent) = priced_tenant(&store, settings).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_cost(usd("0.01")).max_rounds(2))
            .await
            .unwrap();
        let byok = acme
            .meter()
            .begin(
                MeterRequest::new(agent, "acme-ai", "small", 100_000)
                    .max_output_tokens(100_000)
                    .run(run.id)
                    .byok(true),
            )
            .await
            .unwrap();
        assert!(byok.is_approved(), "{backend:?}: {:?}", byok.reasons);
        assert!(byok.reservation.is_none());
        let record = acme
            .meter()
            .finish(
                byok.intent.id,
                Usage {
                    input_tokens: 100_000,
                    output_tokens: 10_000,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        assert!(record.is_byok);
        assert_eq!(record.cost.get(), dec("0.3"));
        let state = acme.runs().get(run.id).await.unwrap();
        assert_eq!(state.cost_spent, dec("0"), "no money budget moved");
        assert_eq!((state.run.rounds, state.run.total_tokens), (1, 110_000));
        // The same call with the platform's key is held and refused by the cap.
        let paid = acme
            .meter()
            .begin(
                MeterRequest::new(agent, "acme-ai", "small", 100_000)
                    .max_output_tokens(100_000)
                    .run(run.id),
            )
            .await
            .unwrap();
        assert_eq!(
            paid.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_metered_calls_against_ten_rounds_admit_exactly_ten() {
    let mut targets = vec![Backend::SqliteMemory];
    if common::postgres_url().is_some() {
        targets.push(Backend::Postgres);
    }
    for backend in targets {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_rounds(10))
            .await
            .unwrap();
        let acme = Arc::new(acme);
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let acme = acme.clone();
            tasks.spawn(async move {
                acme.meter()
                    .begin(
                        MeterRequest::new(agent, "acme-ai", "small", 100)
                            .max_output_tokens(100)
                            .run(run.id),
                    )
                    .await
            });
        }
        let mut admitted = 0;
        while let Some(done) = tasks.join_next().await {
            let auth = done.unwrap().unwrap();
            if auth.is_approved() {
                admitted += 1;
            } else {
                assert_eq!(
                    auth.codes().collect::<Vec<_>>(),
                    [codes::RUN_LIMIT_EXCEEDED]
                );
            }
        }
        assert_eq!(admitted, 10, "{backend:?}");
        assert_eq!(acme.runs().get(run.id).await.unwrap().run.rounds, 10);
    }
}

#[tokio::test]
async fn read_only_mode_row_caps_and_blocked_fields_govern_tool_calls() {
    use bursar::policy::NumberOp;
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = tenant(&store, TenantSettings::default()).await;
        for (name, code, condition) in [
            ("read-only", "READ_ONLY", Condition::Writes),
            (
                "row cap",
                "TOO_MANY_ROWS",
                Condition::MetadataNumber {
                    key: "rows".into(),
                    op: NumberOp::Gt,
                    value: dec("1000"),
                },
            ),
            (
                "blocked fields",
                "FIELD_BLOCKED",
                Condition::FieldsIn {
                    fields: vec!["ssn".into()],
                },
            ),
        ] {
            acme.policies()
                .create(Policy::new(name, Effect::Deny, code, condition))
                .await
                .unwrap();
        }
        let query = |access: &str, rows: &str, fields: &str| {
            tool(agent, "sql")
                .metadata("access", access)
                .metadata("rows", rows)
                .metadata("fields", fields)
        };
        assert!(
            acme.authorize(query("read", "1000", "name,email"))
                .await
                .unwrap()
                .is_approved(),
            "{backend:?}"
        );
        let cases = [
            (query("write", "10", "name"), "READ_ONLY"),
            (query("read", "1001", "name"), "TOO_MANY_ROWS"),
            (query("read", "10", "name, SSN"), "FIELD_BLOCKED"),
            (tool(agent, "sql").metadata("rows", "5"), "READ_ONLY"),
        ];
        for (request, code) in cases {
            let auth = acme.authorize(request).await.unwrap();
            assert_eq!(auth.outcome, Outcome::Rejected);
            assert!(
                auth.codes().any(|c| c == code),
                "{code}: {:?}",
                auth.reasons
            );
        }
    }
}

#[tokio::test]
async fn the_token_cap_admits_a_call_only_when_its_bound_fits_what_is_left() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_tokens(1_000))
            .await
            .unwrap();
        let call = |input: u64, output: u64| {
            MeterRequest::new(agent, "acme-ai", "small", input)
                .max_output_tokens(output)
                .run(run.id)
        };
        // 500 + 600 may use 1,100 of 1,000: refused, naming the cap.
        let over = acme.meter().begin(call(500, 600)).await.unwrap();
        assert_eq!(
            over.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
        assert!(
            over.reasons[0].message().contains("max_tokens"),
            "{backend:?}"
        );
        let first = acme.meter().begin(call(400, 400)).await.unwrap();
        assert!(first.is_approved());
        acme.meter()
            .finish(
                first.intent.id,
                Usage {
                    input_tokens: 400,
                    output_tokens: 400,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        // 800 used: 100 + 100 fits exactly, 100 + 101 does not.
        let too_much = acme.meter().begin(call(100, 101)).await.unwrap();
        assert_eq!(
            too_much.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
        let exact = acme.meter().begin(call(100, 100)).await.unwrap();
        assert!(exact.is_approved(), "{:?}", exact.reasons);
        acme.meter()
            .finish(
                exact.intent.id,
                Usage {
                    input_tokens: 100,
                    output_tokens: 100,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        // All used: even a plain tool call in the run is refused.
        let spent = acme
            .authorize(tool(agent, "search").run(run.id))
            .await
            .unwrap();
        assert_eq!(
            spent.codes().collect::<Vec<_>>(),
            [codes::RUN_LIMIT_EXCEEDED]
        );
        assert_eq!(
            acme.runs().get(run.id).await.unwrap().run.total_tokens,
            1_000
        );
    }
}

#[tokio::test]
async fn a_call_is_charged_at_the_prices_it_began_with_and_finished_once_when_raced() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let begun = acme
            .meter()
            .begin(MeterRequest::new(agent, "acme-ai", "small", 10_000).max_output_tokens(2_000))
            .await
            .unwrap();
        assert!(begun.is_approved(), "{backend:?}: {:?}", begun.reasons);
        assert_eq!(
            begun
                .intent
                .metadata
                .0
                .get("price.output_per_million")
                .map(String::as_str),
            Some("10"),
            "{backend:?}: the intent records the prices it was estimated at"
        );
        // The table changes while the call is in flight, even backdated to
        // before the call began: the call keeps the prices it began with.
        acme.prices()
            .set(
                NewPrice::new("acme-ai", "small", "USD", dec("200"), dec("1000"))
                    .effective_from(noon() - Duration::hours(1)),
            )
            .await
            .unwrap();
        let used = Usage {
            input_tokens: 10_000,
            output_tokens: 1_000,
            ..Usage::default()
        };
        // Eight concurrent finishes of the same call: one record, one charge.
        let finishes = (0..8).map(|_| {
            let acme = acme.clone();
            let id = begun.intent.id;
            tokio::spawn(async move { acme.meter().finish(id, used).await })
        });
        // Spawned all at once, then awaited.
        let finishes: Vec<_> = finishes.collect();
        let mut ids = std::collections::BTreeSet::new();
        for finished in finishes {
            let record = finished.await.unwrap().unwrap();
            // 10,000 × 2 / 1M + 1,000 × 10 / 1M = 0.02 + 0.01.
            assert_eq!(record.cost.get(), dec("0.03"), "{backend:?}");
            ids.insert(record.id);
        }
        assert_eq!(ids.len(), 1, "{backend:?}: one usage record");
        let reservation = acme
            .reservations()
            .get(begun.reservation.as_ref().unwrap().id)
            .await
            .unwrap();
        assert_eq!(
            reservation.0.captured_amount.get(),
            dec("0.03"),
            "{backend:?}"
        );
        let totals = acme.meter().totals(UsageFilter::default()).await.unwrap();
        assert_eq!(totals.calls, 1, "{backend:?}");
    }
}

#[tokio::test]
async fn concurrent_finishes_of_one_run_count_every_call_once() {
    for backend in backends() {
        let clock = Arc::new(ManualClock::new(noon()));
        let store = store_for(backend, clock.clone()).await;
        let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
        let run = acme
            .runs()
            .start(NewRun::new(agent).max_cost(usd("100")))
            .await
            .unwrap();
        let mut handles = Vec::new();
        for _ in 0..16 {
            let begun = acme
                .meter()
                .begin(
                    MeterRequest::new(agent, "acme-ai", "small", 1_000)
                        .max_output_tokens(1_000)
                        .run(run.id),
                )
                .await
                .unwrap();
            assert!(begun.is_approved(), "{backend:?}: {:?}", begun.reasons);
            handles.push(begun.intent.id);
        }
        // Each call finishes with its own output, all at once: every finish
        // counts on the run as it is when its update runs, not as it was
        // when the call was read.
        let finishes = handles.into_iter().enumerate().map(|(i, id)| {
            let acme = acme.clone();
            let used = Usage {
                input_tokens: 1_000,
                output_tokens: 100 * (i as u64 + 1),
                ..Usage::default()
            };
            tokio::spawn(async move { acme.meter().finish(id, used).await })
        });
        // Spawned all at once, then awaited.
        let finishes: Vec<_> = finishes.collect();
        let mut cost = rust_decimal::Decimal::ZERO;
        let mut tokens = 0;
        for finished in finishes {
            let record = finished.await.unwrap().unwrap();
            cost += record.cost.get();
            tokens += record.input_tokens + record.output_tokens;
        }
        let counted = acme.runs().get(run.id).await.unwrap().run;
        assert_eq!(counted.total_tokens, tokens, "{backend:?}");
        assert_eq!(counted.total_tokens, 16 * 1_000 + 100 * (16 * 17 / 2));
        assert_eq!(counted.cost.get(), cost, "{backend:?}");
        assert_eq!(counted.rounds, 16, "{backend:?}");
    }
}

/// The calls to the database `docs/performance.md` counts ("Metering"):
/// with the policies cached, a metered call of a run with a cost cap, held on
/// the agent's monthly budget and the run's, makes 5 calls to `begin` and 10
/// to `finish` on SQLite (`BEGIN` and `COMMIT` aside; the model's price is
/// read with the tenant row, the budgets with their windows, every write
/// after the guarded update of the windows goes in one call with the
/// intent's audit entry, and the usage record in one call with its own);
/// the same agent's `reserve` + `capture` makes 6 + 7 (the reservation's
/// lines and ledger entries in one call).
#[tokio::test]
async fn a_metered_call_makes_five_calls_to_begin_and_ten_to_finish_on_sqlite() {
    use bursar::budget::Principal;
    use bursar::store::{BudgetRepository, NewBudget, ReserveRequest};
    use std::sync::atomic::Ordering;
    let (store, sent) = common::counting_store(noon()).await;
    let (acme, agent) = priced_tenant(&store, TenantSettings::default()).await;
    acme.budgets()
        .create(NewBudget::agent(agent).monthly(dec("1000"), "USD"))
        .await
        .unwrap();
    let run = acme
        .runs()
        .start(NewRun::new(agent).max_cost(usd("1000")))
        .await
        .unwrap();
    let mut counts = Vec::new();
    // The first round compiles and caches the policies; the second counts.
    for _ in 0..2 {
        counts.clear();
        let mark = |counts: &mut Vec<usize>| counts.push(sent.swap(0, Ordering::Relaxed));
        mark(&mut counts);
        let begun = acme
            .meter()
            .begin(
                MeterRequest::new(agent, "acme-ai", "small", 2_000)
                    .max_output_tokens(500)
                    .run(run.id),
            )
            .await
            .unwrap();
        assert!(begun.is_approved());
        mark(&mut counts);
        acme.meter()
            .finish(
                begun.intent.id,
                Usage {
                    input_tokens: 2_000,
                    output_tokens: 300,
                    ..Usage::default()
                },
            )
            .await
            .unwrap();
        mark(&mut counts);
        let held = acme
            .reservations()
            .reserve(
                ReserveRequest::new(usd("0.009"), noon() + Duration::minutes(15))
                    .principal(Principal::agent(agent)),
            )
            .await
            .unwrap();
        mark(&mut counts);
        acme.reservations()
            .capture(held.reservation().unwrap().id, usd("0.007"))
            .await
            .unwrap();
        mark(&mut counts);
    }
    // `begin`, `finish`, `reserve`, `capture` (the first mark is setup).
    assert_eq!(counts[1..], [5, 10, 6, 7]);
}
