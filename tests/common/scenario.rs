//! One scenario that puts rows in every tenant-owned table through the
//! public API, shared by the suites that need "everything bursar does":
//! `row_level_security.rs` runs it as a confined role, and
//! `statements_name_their_tenant.rs` records the statements it issues.

use bursar::audit::AuditEntry;
use bursar::audit::AuditLogRepository as _;
use bursar::entity::approval_decision::ApprovalVote;
use bursar::events::EventRepository;
use bursar::id::AgentId;
use bursar::keys::StaticKeyring;
use bursar::money::{Currency, Money};
use bursar::policy::{Request, SpendingControls};
use bursar::store::{
    AgentKeyRepository, AgentRepository, ApprovalRepository, BlockedAttemptRepository,
    CardRepository, ChargeStatus, FakeCardIssuer, MemberRepository, MerchantRepository,
    MeterRequest, NewAgent, NewGroup, NewPrice, NewRun, PageRequest, PolicyRepository,
    ProjectRepository, PurchaseIntentRepository, ReserveRequest, RoleRepository, TeamRepository,
    TransactionEvent, TransactionRepository, Usage, builtin, permissions,
};
use bursar::store::{BudgetRepository as _, PaymentRepository as _, ReservationRepository as _};
use bursar::vault::{NewConnection, Secret};
use bursar::{Store, TenantScope};
use chrono::{Duration, Utc};

use super::dec;

pub fn usd(s: &str) -> Money {
    Money::parse(s, "USD").expect("money")
}

pub fn buy(agent: AgentId, amount: &str, merchant: &str) -> Request {
    Request::purchase(agent, dec(amount), Currency::USD, merchant)
}

/// Puts at least one row in every tenant-owned table through `scope`'s
/// repositories, checking what each returns.
pub async fn populate(store: &Store, scope: &TenantScope) {
    let tenant = scope.tenant_id();
    let team = super::team(scope, "research").await;
    let project = scope
        .projects()
        .create(NewGroup::new("Evals", "evals"))
        .await
        .expect("project")
        .id;
    let agent = scope
        .agents()
        .create(NewAgent::new("bot").team(team).project(project))
        .await
        .expect("agent")
        .id;
    assert_eq!(
        scope.agents().get(agent).await.expect("agent").team_id,
        Some(team)
    );
    assert_eq!(scope.teams().get(team).await.expect("team").id, team);
    assert_eq!(
        scope.projects().get(project).await.expect("project").id,
        project
    );
    scope
        .apply_controls(
            &SpendingControls::new(Currency::USD)
                .agent(agent)
                .per_transaction_limit(dec("200"))
                .monthly_limit(dec("500"))
                .approval_threshold(dec("100"))
                .blocked_merchants(["facebook ads"])
                .build()
                .expect("controls"),
        )
        .await
        .expect("controls applied");
    assert!(
        !scope
            .policies()
            .list(PageRequest::new())
            .await
            .expect("policies")
            .items
            .is_empty()
    );
    let finance = super::member(store, scope, builtin::FINANCE).await;
    assert!(
        scope
            .roles()
            .can(finance, permissions::APPROVALS_WRITE)
            .await
            .expect("can")
    );
    assert_eq!(
        scope.members().get(finance).await.expect("member").user_id,
        finance
    );

    // Approved: a reservation with its lines and ledger, a merchant, an
    // intent; then a card, a captured charge and a refund.
    let approved = scope
        .authorize(buy(agent, "30", "GitHub"))
        .await
        .expect("authorize");
    assert!(approved.is_approved(), "{:?}", approved.reasons);
    assert!(
        scope
            .merchants()
            .is_known("github")
            .await
            .expect("merchant")
    );
    assert_eq!(
        scope
            .purchase_intents()
            .get(approved.intent.id)
            .await
            .expect("intent")
            .id,
        approved.intent.id
    );
    let card = scope
        .payments()
        .issue_card_with(approved.intent.id, &FakeCardIssuer::new())
        .await
        .expect("card");
    let charge = format!("ch_{tenant}");
    scope
        .payments()
        .record_transaction(
            TransactionEvent::new(&charge, ChargeStatus::Captured, usd("29.50"))
                .card(&card.provider_card_id),
        )
        .await
        .expect("capture");
    scope
        .payments()
        .record_transaction(
            TransactionEvent::new(&charge, ChargeStatus::Refunded, usd("9.50"))
                .refund_id(format!("re_{tenant}")),
        )
        .await
        .expect("refund");
    assert_eq!(scope.cards().get(card.id).await.expect("card").id, card.id);
    scope
        .transactions()
        .by_provider_charge_id(&charge)
        .await
        .expect("transaction");

    // Pending approval, decided by the finance member.
    let pending = scope
        .authorize(buy(agent, "150", "Vercel"))
        .await
        .expect("authorize");
    let approval = pending.approval.expect("an approval request").id;
    let decided = scope
        .approvals()
        .decide(approval, finance, ApprovalVote::Approve, None)
        .await
        .expect("decide");
    assert_eq!(decided.decisions.len(), 1);

    // Rejected: a blocked attempt.
    let rejected = scope
        .authorize(buy(agent, "5", "Facebook Ads"))
        .await
        .expect("authorize");
    assert!(!rejected.is_approved());
    assert_eq!(
        scope
            .blocked_attempts()
            .list(PageRequest::new())
            .await
            .expect("blocked")
            .items
            .len(),
        1
    );

    // Reservations and budgets directly.
    let held = scope
        .reservations()
        .reserve(ReserveRequest::new(
            usd("4"),
            Utc::now() + Duration::hours(1),
        ))
        .await
        .expect("reserve")
        .reservation()
        .expect("reserved")
        .id;
    scope
        .reservations()
        .capture(held, usd("3"))
        .await
        .expect("capture");
    assert!(
        scope
            .reservations()
            .reconcile()
            .await
            .expect("reconcile")
            .is_clean()
    );
    let budgets = scope.budgets().list().await.expect("budgets");
    assert!(!budgets.is_empty());
    scope
        .budgets()
        .status(budgets[0].id)
        .await
        .expect("budget status");

    // Keys, found through the scope and from the key alone.
    let (key, _) = scope
        .agent_keys()
        .issue(agent, Some("ci"), None)
        .await
        .expect("key");
    assert_eq!(
        scope
            .agent_keys()
            .verify(&key.secret)
            .await
            .expect("verify")
            .agent_id,
        agent
    );
    let who = store
        .authenticate_agent(&key.secret)
        .await
        .expect("authenticate");
    assert_eq!((who.tenant_id, who.agent_id), (tenant, agent));

    // Metering and runs.
    scope
        .prices()
        .set(
            NewPrice::new("acme-ai", "small", "USD", dec("2"), dec("10"))
                .effective_from(Utc::now() - Duration::days(1)),
        )
        .await
        .expect("price");
    let run = scope.runs().start(NewRun::new(agent)).await.expect("run");
    let metered = scope
        .meter()
        .begin(MeterRequest::new(agent, "acme-ai", "small", 1_000).max_output_tokens(100))
        .await
        .expect("meter");
    assert!(metered.is_approved(), "{:?}", metered.reasons);
    scope
        .meter()
        .finish(
            metered.intent.id,
            Usage {
                input_tokens: 900,
                output_tokens: 50,
                ..Usage::default()
            },
        )
        .await
        .expect("usage");
    scope.runs().complete(run.id).await.expect("run completed");
    assert_eq!(scope.runs().get(run.id).await.expect("run").run.id, run.id);

    // Vault, events, audit log.
    let keys = StaticKeyring::new(1, [5; 32]);
    let conn = scope
        .vault(&keys)
        .create(
            NewConnection::new(
                "openai",
                "prod",
                bursar::entity::connection::AuthType::ApiKey,
            ),
            Secret::new("sk-test"),
        )
        .await
        .expect("connection");
    let secret = scope
        .vault(&keys)
        .with_secret(conn.id, <[u8]>::to_vec)
        .await
        .expect("secret");
    assert_eq!(secret, b"sk-test");
    let events = scope.events().poll("host", 100).await.expect("events");
    let last = events.last().expect("events were written").seq;
    scope.events().ack("host", last).await.expect("ack");
    scope
        .audit_log()
        .record(AuditEntry::new("host.note", "tenant"))
        .await
        .expect("audit entry");
    assert!(
        scope
            .audit_log()
            .verify()
            .await
            .expect("verify")
            .is_intact()
    );
}

/// Calls the repository methods [`populate`] leaves out (listings, renames,
/// status changes, revocations, releases, refunds, cancellations, the vault's
/// changes, audit search and export), checking what each returns. Run it
/// after [`populate`] on the same scope.
pub async fn exercise_the_rest(store: &Store, scope: &TenantScope) {
    use bursar::entity::agent::AgentStatus;
    use bursar::entity::connection::{AuthType, ConnectionStatus};
    use bursar::entity::tenant_member::{MemberStatus, SeatType};
    use bursar::store::{Canceller, NewRole, UsageFilter, UserRepository};
    let page = PageRequest::new;

    // Teams, projects, agents.
    let teams = scope.teams().list(page()).await.expect("teams").items;
    let team = teams.first().expect("a team").id;
    scope
        .teams()
        .rename(team, "Research")
        .await
        .expect("rename");
    let projects = scope.projects().list(page()).await.expect("projects").items;
    let project = projects.first().expect("a project").id;
    scope
        .projects()
        .rename(project, "Evaluations")
        .await
        .expect("rename");
    let agents = scope.agents().list(page()).await.expect("agents").items;
    let agent = agents.first().expect("an agent").id;
    let spare = super::agent(scope, "spare", None).await;
    scope
        .agents()
        .assign(spare, Some(team), Some(project))
        .await
        .expect("assign");
    scope
        .agents()
        .set_status(spare, AgentStatus::Paused)
        .await
        .expect("pause");

    // Keys.
    let (key, row) = scope
        .agent_keys()
        .issue(agent, Some("spare"), None)
        .await
        .expect("key");
    assert_eq!(
        scope.agent_keys().get(row.id).await.expect("key").id,
        row.id
    );
    let keys = scope.agent_keys().list(agent, page()).await.expect("keys");
    assert!(keys.items.iter().any(|k| k.id == row.id));
    scope.agent_keys().revoke(row.id).await.expect("revoke");
    assert!(store.authenticate_agent(&key.secret).await.is_err());

    // Members and roles.
    let user = store
        .users()
        .create(bursar::store::NewUser::new(
            format!("extra-{}@example.com", scope.tenant_id()),
            "Extra",
        ))
        .await
        .expect("user");
    scope
        .members()
        .add(user.id, SeatType::Free)
        .await
        .expect("add");
    scope
        .members()
        .set_seat(user.id, SeatType::Pro)
        .await
        .expect("seat");
    scope
        .members()
        .set_status(user.id, MemberStatus::Suspended)
        .await
        .expect("status");
    assert!(
        !scope
            .members()
            .list(page())
            .await
            .expect("members")
            .items
            .is_empty()
    );
    let role = scope
        .roles()
        .create(NewRole::new("auditor").permission(permissions::AUDIT_READ))
        .await
        .expect("role");
    assert_eq!(scope.roles().get(role.id).await.expect("role").id, role.id);
    assert_eq!(
        scope.roles().permissions_of(role.id).await.expect("perms"),
        [permissions::AUDIT_READ]
    );
    scope
        .roles()
        .assign(user.id, role.id)
        .await
        .expect("assign");
    assert_eq!(
        scope.roles().roles_of(user.id).await.expect("roles").len(),
        1
    );
    scope
        .roles()
        .revoke(user.id, role.id)
        .await
        .expect("revoke");
    assert!(
        !scope
            .roles()
            .list(page())
            .await
            .expect("roles")
            .items
            .is_empty()
    );
    scope.roles().ensure_builtin().await.expect("builtin");
    scope.members().remove(user.id).await.expect("remove");

    // Policies and budgets; a velocity limit makes authorize count the
    // agent's recent requests.
    let burst = bursar::policy::Condition::VelocityAbove {
        window_seconds: 3_600,
        max: 1_000,
    };
    scope
        .policies()
        .create(bursar::policy::Policy::new(
            "a thousand an hour",
            bursar::policy::Effect::Deny,
            "TOO_FAST",
            burst,
        ))
        .await
        .expect("velocity policy");
    let counted = scope
        .authorize(buy(agent, "1", "GitHub").idempotency_key("counted"))
        .await
        .expect("authorize");
    assert!(counted.is_approved(), "{:?}", counted.reasons);
    let policies = scope.policies().list(page()).await.expect("policies").items;
    let policy = policies.first().expect("a policy").clone();
    let id = policy.id;
    scope.policies().update(policy).await.expect("update");
    scope
        .policies()
        .set_enabled(id, false)
        .await
        .expect("disable");
    scope
        .policies()
        .set_enabled(id, true)
        .await
        .expect("enable");
    scope.policies().get(id).await.expect("policy");
    let budget = scope.budgets().list().await.expect("budgets")[0].id;
    scope.budgets().get(budget).await.expect("budget");
    scope
        .budgets()
        .set_active(budget, true)
        .await
        .expect("active");

    // Reservations: release, refund, listings.
    let held = scope
        .reservations()
        .reserve(ReserveRequest::new(
            usd("2"),
            Utc::now() + Duration::hours(1),
        ))
        .await
        .expect("reserve")
        .reservation()
        .expect("reserved")
        .id;
    scope.reservations().get(held).await.expect("reservation");
    scope.reservations().release(held).await.expect("release");
    let direct = scope
        .reservations()
        .reserve(ReserveRequest::new(
            usd("2"),
            Utc::now() + Duration::hours(1),
        ))
        .await
        .expect("reserve")
        .reservation()
        .expect("reserved")
        .id;
    scope
        .reservations()
        .capture(direct, usd("2"))
        .await
        .expect("capture");
    let captured = scope
        .reservations()
        .list(page().status("captured"))
        .await
        .expect("captured")
        .items;
    assert!(captured.iter().any(|r| r.id == direct));
    scope
        .reservations()
        .refund(direct, usd("1"), &format!("re-direct-{direct}"))
        .await
        .expect("refund");
    scope
        .purchase_intents()
        .list(page())
        .await
        .expect("intents");

    // Approvals: one cancelled by its agent; the finance member's queue.
    let pending = scope
        .authorize(buy(agent, "120", "Fly.io"))
        .await
        .expect("authorize")
        .approval
        .expect("an approval request")
        .id;
    let finance = super::member(store, scope, builtin::ADMIN).await;
    scope
        .approvals()
        .decidable_by(finance, None, 10)
        .await
        .expect("decidable");
    scope
        .approvals()
        .cancel(pending, Canceller::Agent(agent))
        .await
        .expect("cancel");
    scope.approvals().get(pending).await.expect("approval");
    scope.approvals().list(page()).await.expect("approvals");

    // Payments' listings, merchants, blocked attempts.
    let transactions = scope.transactions().list(page()).await.expect("txns").items;
    let txn = transactions.first().expect("a transaction").id;
    scope.transactions().get(txn).await.expect("transaction");
    scope.cards().list(page()).await.expect("cards");
    let merchants = scope
        .merchants()
        .list(page())
        .await
        .expect("merchants")
        .items;
    let merchant = merchants.first().expect("a merchant");
    scope.merchants().get(merchant.id).await.expect("merchant");
    scope
        .merchants()
        .by_name(&merchant.name)
        .await
        .expect("by name");
    let blocked = scope
        .blocked_attempts()
        .list(page())
        .await
        .expect("blocked")
        .items;
    scope
        .blocked_attempts()
        .get(blocked[0].id)
        .await
        .expect("blocked attempt");

    // Runs and metering.
    let run = scope.runs().start(NewRun::new(agent)).await.expect("run");
    scope.runs().list(Some(agent), page()).await.expect("runs");
    scope
        .meter()
        .totals(UsageFilter::default())
        .await
        .expect("totals");
    scope
        .prices()
        .at("acme-ai", "small", Utc::now())
        .await
        .expect("price");
    scope
        .runs()
        .kill(run.id, finance, "enough")
        .await
        .expect("kill");

    // Vault changes, audit search, checkpoint and export.
    let keys = StaticKeyring::new(1, [5; 32]);
    let vault = scope.vault(&keys);
    let conn = vault
        .create(
            NewConnection::new("stripe", "spare", AuthType::ApiKey),
            Secret::new("sk-spare"),
        )
        .await
        .expect("connection");
    vault.get(conn.id).await.expect("connection");
    vault.list().await.expect("connections");
    vault
        .replace_secret(conn.id, Secret::new("sk-spare-2"))
        .await
        .expect("replace");
    vault
        .set_status(conn.id, ConnectionStatus::Active)
        .await
        .expect("status");
    vault.disable(conn.id).await.expect("disable");
    vault.rotate_to(1, 10).await.expect("rotate");
    vault.delete(conn.id).await.expect("delete");
    let checkpoint = scope
        .audit_log()
        .checkpoint(&keys)
        .await
        .expect("checkpoint");
    scope
        .audit_log()
        .verify_against(&checkpoint, &keys)
        .await
        .expect("verify against");
    let mut out = Vec::new();
    scope
        .audit_log()
        .export(1, None, &mut out)
        .await
        .expect("export");
    assert!(!out.is_empty());
    scope.policies().delete(id).await.expect("delete policy");
}
