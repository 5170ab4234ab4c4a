//! Every entity writes and reads back exactly through the schema the migration
//! creates: one row per table, every column set (optional ones to `Some`).
//! Runs on in-memory SQLite, and on PostgreSQL when `BURSAR_TEST_POSTGRES_URL`
//! is set (in a fresh schema, dropped afterwards).

use std::collections::BTreeMap;
use std::str::FromStr;

use bursar::budget::Period;
use bursar::entity::json::{Metadata, ReasonList};
use bursar::entity::{
    agent, agent_api_key, agent_run, approval_decision, approval_request, audit_log,
    blocked_attempt, budget, budget_window, connection, ledger_entry, member_role, merchant,
    model_price, permission, policy, project, purchase_intent, refund, reservation,
    reservation_line, role, role_permission, team, tenant, tenant_member, transaction,
    usage_record, user, virtual_card,
};
use bursar::id::*;
use bursar::money::{Amount, Currency};
use bursar::policy::{BudgetDetail, Reason};
use bursar_migration::{Migrator, MigratorTrait, TABLES};
use chrono::{DateTime, TimeZone, Utc};
use rust_decimal::Decimal;
use sea_orm::{
    ActiveModelTrait, ConnectOptions, ConnectionTrait, Database, DatabaseConnection, EntityTrait,
    IntoActiveModel,
};
use serde_json::json;
use uuid::Uuid;

fn ts() -> DateTime<Utc> {
    // Microsecond precision: what PostgreSQL's timestamptz keeps.
    Utc.with_ymd_and_hms(2025, 3, 30, 1, 59, 59).unwrap() + chrono::Duration::microseconds(123_456)
}

fn amount() -> Amount {
    Amount::new(Decimal::from_str("12345678901234.123456").unwrap()).unwrap()
}

/// Inserts `row`, then checks that the insert returned it and that the table
/// holds exactly it.
async fn roundtrip<E, A>(db: &DatabaseConnection, row: E::Model)
where
    E: EntityTrait,
    E::Model: IntoActiveModel<A> + Clone + PartialEq + std::fmt::Debug,
    A: ActiveModelTrait<Entity = E> + sea_orm::ActiveModelBehavior + Send,
{
    let table = E::default().table_name().to_owned();
    let inserted = row
        .clone()
        .into_active_model()
        .insert(db)
        .await
        .unwrap_or_else(|err| panic!("insert into {table}: {err}"));
    assert_eq!(inserted, row, "{table}: insert returned a different row");
    let read = E::find()
        .all(db)
        .await
        .unwrap_or_else(|err| panic!("select from {table}: {err}"));
    assert_eq!(read, vec![row], "{table}: read back a different row");
}

async fn every_entity_roundtrips(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("migrations apply");
    let id_tenants = TenantId::new();
    let id_users = UserId::new();
    let id_roles = RoleId::new();
    let id_permissions = PermissionId::new();
    let id_teams = TeamId::new();
    let id_projects = ProjectId::new();
    let id_agents = AgentId::new();
    let id_agent_api_keys = ApiKeyId::new();
    let id_policies = PolicyId::new();
    let id_budgets = BudgetId::new();
    let id_budget_windows = BudgetWindowId::new();
    let id_agent_runs = RunId::new();
    let id_reservations = ReservationId::new();
    let id_approval_requests = ApprovalRequestId::new();
    let id_purchase_intents = PurchaseIntentId::new();
    let id_reservation_lines = ReservationLineId::new();
    let id_ledger_entries = LedgerEntryId::new();
    let id_virtual_cards = VirtualCardId::new();
    let id_transactions = TransactionId::new();
    let id_merchants = MerchantId::new();
    let id_blocked_attempts = BlockedAttemptId::new();
    let id_usage_records = UsageRecordId::new();
    let id_approval_decisions = ApprovalDecisionId::new();
    let id_audit_logs = AuditLogId::new();
    let id_connections = ConnectionId::new();

    let row = tenant::Model {
        id: id_tenants,
        name: "name-x".to_owned(),
        slug: "slug-x".to_owned(),
        plan: "plan-x".to_owned(),
        plan_expires_at: Some(ts()),
        is_active: true,
        timezone: "Europe/Berlin".to_owned(),
        default_currency: Currency::EUR,
        default_effect: bursar::policy::DefaultEffect::Deny,
        settings: tenant::TenantSettings {
            reservation_ttl_secs: Some(900),
            flag_all_new_vendors: true,
            ..Default::default()
        },
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<tenant::Entity, tenant::ActiveModel>(db, row).await;
    let row = user::Model {
        id: id_users,
        email: "email-x".to_owned(),
        name: "name-x".to_owned(),
        password_hash: Some("password_hash-x".to_owned()),
        auth_provider: Some("auth_provider-x".to_owned()),
        external_id: Some("external_id-x".to_owned()),
        kind: user::UserKind::ServiceAccount,
        is_active: true,
        gdpr_consent_at: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<user::Entity, user::ActiveModel>(db, row).await;
    let row = tenant_member::Model {
        tenant_id: id_tenants,
        user_id: id_users,
        seat_type: tenant_member::SeatType::Enterprise,
        status: tenant_member::MemberStatus::Suspended,
        invited_by: Some(id_users),
        joined_at: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<tenant_member::Entity, tenant_member::ActiveModel>(db, row).await;
    let row = role::Model {
        id: id_roles,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        description: Some("description: ünïcode ✓".to_owned()),
        is_builtin: true,
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<role::Entity, role::ActiveModel>(db, row).await;
    let row = permission::Model {
        id: id_permissions,
        code: "code-x".to_owned(),
        description: Some("description: ünïcode ✓".to_owned()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<permission::Entity, permission::ActiveModel>(db, row).await;
    let row = role_permission::Model {
        tenant_id: id_tenants,
        role_id: id_roles,
        permission_id: id_permissions,
        created_at: ts(),
    };
    roundtrip::<role_permission::Entity, role_permission::ActiveModel>(db, row).await;
    let row = member_role::Model {
        tenant_id: id_tenants,
        user_id: id_users,
        role_id: id_roles,
        created_at: ts(),
    };
    roundtrip::<member_role::Entity, member_role::ActiveModel>(db, row).await;
    let row = team::Model {
        id: id_teams,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        slug: "slug-x".to_owned(),
        description: Some("description: ünïcode ✓".to_owned()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<team::Entity, team::ActiveModel>(db, row).await;
    let row = project::Model {
        id: id_projects,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        slug: "slug-x".to_owned(),
        description: Some("description: ünïcode ✓".to_owned()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<project::Entity, project::ActiveModel>(db, row).await;
    let row = agent::Model {
        id: id_agents,
        tenant_id: id_tenants,
        team_id: Some(id_teams),
        project_id: Some(id_projects),
        name: "name-x".to_owned(),
        slug: Some("slug-x".to_owned()),
        description: Some("description: ünïcode ✓".to_owned()),
        status: agent::AgentStatus::Suspended,
        created_by: Some(id_users),
        metadata: Metadata(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<agent::Entity, agent::ActiveModel>(db, row).await;
    let row = agent_api_key::Model {
        id: id_agent_api_keys,
        tenant_id: id_tenants,
        agent_id: id_agents,
        prefix: "prefix-x".to_owned(),
        key_hash: "ab".repeat(32),
        label: Some("label-x".to_owned()),
        created_by: Some(id_users),
        expires_at: Some(ts()),
        revoked_at: Some(ts()),
        last_used_at: Some(ts()),
        created_at: ts(),
    };
    roundtrip::<agent_api_key::Entity, agent_api_key::ActiveModel>(db, row).await;
    let row = policy::Model {
        id: id_policies,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        description: Some("description: ünïcode ✓".to_owned()),
        scope: json!({"kind": "principals", "teams": [id_teams], "agents": [id_agents]}),
        effect: bursar::policy::Effect::RequireApproval,
        priority: 7,
        enabled: true,
        reason_code: "reason_code-x".to_owned(),
        message: "message: ünïcode ✓".to_owned(),
        conditions: json!({"k": [1, "two", null]}),
        approval: Some(json!({"quorum": {"type": "any_n", "n": 2}})),
        version: 7,
        created_by: Some(id_users),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<policy::Entity, policy::ActiveModel>(db, row).await;
    let row = budget::Model {
        id: id_budgets,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        scope_kind: budget::ScopeKind::Run,
        scope_id: Some(Uuid::now_v7()),
        currency: Currency::EUR,
        period: Period::Monthly,
        limit_amount: amount(),
        is_active: true,
        alert_thresholds: Some(bursar::entity::json::AlertThresholds(vec![80, 90, 100])),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<budget::Entity, budget::ActiveModel>(db, row).await;
    let row = budget_window::Model {
        id: id_budget_windows,
        tenant_id: id_tenants,
        budget_id: id_budgets,
        period_start: ts(),
        period_end: Some(ts()),
        limit_amount: amount(),
        spent: amount(),
        reserved: amount(),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<budget_window::Entity, budget_window::ActiveModel>(db, row).await;
    let row = agent_run::Model {
        id: id_agent_runs,
        tenant_id: id_tenants,
        agent_id: Some(id_agents),
        started_by: Some(id_users),
        description: Some("description: ünïcode ✓".to_owned()),
        status: agent_run::RunStatus::Killed,
        currency: Currency::EUR,
        max_cost: Some(amount()),
        max_rounds: Some(7),
        caps: agent_run::RunCaps {
            max_tokens: Some(100_000),
            allowed_tools: Some(vec!["search".to_owned()]),
            ..Default::default()
        },
        cost: amount(),
        total_tokens: 42,
        rounds: 7,
        started_at: ts(),
        completed_at: Some(ts()),
        killed_at: Some(ts()),
        killed_by: Some("killed_by-x".to_owned()),
        kill_reason: Some("kill_reason-x".to_owned()),
        metadata: Metadata(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<agent_run::Entity, agent_run::ActiveModel>(db, row).await;
    let row = reservation::Model {
        id: id_reservations,
        tenant_id: id_tenants,
        agent_id: Some(id_agents),
        run_id: Some(id_agent_runs),
        purchase_intent_id: Some(id_purchase_intents),
        idempotency_key: Some("idempotency_key-x".to_owned()),
        currency: Currency::EUR,
        amount: amount(),
        captured_amount: amount(),
        refunded_amount: amount(),
        status: reservation::ReservationStatus::Expired,
        expires_at: ts(),
        captured_at: Some(ts()),
        released_at: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<reservation::Entity, reservation::ActiveModel>(db, row).await;
    let row = approval_request::Model {
        id: id_approval_requests,
        tenant_id: id_tenants,
        subject_kind: approval_request::ApprovalSubjectKind::Run,
        subject_id: Uuid::now_v7(),
        agent_id: Some(id_agents),
        reservation_id: Some(id_reservations),
        rule: approval_request::ApprovalRule::Majority,
        required_approvals: 7,
        approver_role_id: Some(id_roles),
        eligible_approvers: bursar::entity::json::UserIdList(vec![id_users]),
        escalation_role_id: Some(id_roles),
        status: approval_request::ApprovalStatus::Cancelled,
        reasons: ReasonList(vec![
            Reason::new("OVER_THRESHOLD", "above 100 USD")
                .with_policy_id(id_policies)
                .with_budget(BudgetDetail {
                    budget_id: bursar::id::BudgetId::new(),
                    period: bursar::budget::Period::Monthly,
                    currency: bursar::money::Currency::USD,
                    limit: amount().get(),
                    remaining: amount().get(),
                }),
        ]),
        requested_by: Some(id_agents),
        expires_at: ts(),
        escalate_at: Some(ts()),
        escalated_to: Some(id_users),
        decided_at: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<approval_request::Entity, approval_request::ActiveModel>(db, row).await;
    let row = purchase_intent::Model {
        id: id_purchase_intents,
        tenant_id: id_tenants,
        agent_id: Some(id_agents),
        team_id: Some(id_teams),
        project_id: Some(id_projects),
        run_id: Some(id_agent_runs),
        idempotency_key: Some("idempotency_key-x".to_owned()),
        amount: amount(),
        currency: Currency::EUR,
        merchant_name: "merchant_name-x".to_owned(),
        action_kind: "custom:x".to_owned(),
        merchant_domain: Some("merchant_domain-x".to_owned()),
        merchant_url: Some("merchant_url: ünïcode ✓".to_owned()),
        mcc: Some(7),
        description: Some("description: ünïcode ✓".to_owned()),
        metadata: Metadata(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
        status: purchase_intent::PurchaseIntentStatus::Cancelled,
        rejection_code: Some("rejection_code-x".to_owned()),
        rejection_reason: Some("rejection_reason: ünïcode ✓".to_owned()),
        reasons: ReasonList(vec![
            Reason::new("OVER_THRESHOLD", "above 100 USD")
                .with_policy_id(id_policies)
                .with_budget(BudgetDetail {
                    budget_id: bursar::id::BudgetId::new(),
                    period: bursar::budget::Period::Monthly,
                    currency: bursar::money::Currency::USD,
                    limit: amount().get(),
                    remaining: amount().get(),
                }),
        ]),
        reservation_id: Some(id_reservations),
        approval_request_id: Some(id_approval_requests),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<purchase_intent::Entity, purchase_intent::ActiveModel>(db, row).await;
    let row = reservation_line::Model {
        id: id_reservation_lines,
        tenant_id: id_tenants,
        reservation_id: id_reservations,
        budget_id: id_budgets,
        window_id: id_budget_windows,
        amount: amount(),
        captured_amount: amount(),
        refunded_amount: amount(),
        created_at: ts(),
    };
    roundtrip::<reservation_line::Entity, reservation_line::ActiveModel>(db, row).await;
    let row = ledger_entry::Model {
        id: id_ledger_entries,
        tenant_id: id_tenants,
        budget_id: id_budgets,
        window_id: id_budget_windows,
        reservation_id: Some(id_reservations),
        entry_type: ledger_entry::LedgerEntryType::Adjust,
        bucket: ledger_entry::LedgerBucket::Reserved,
        direction: ledger_entry::LedgerDirection::Credit,
        amount: amount(),
        currency: Currency::EUR,
        category: Some("category-x".to_owned()),
        reference: Some("reference-x".to_owned()),
        description: Some("description: ünïcode ✓".to_owned()),
        occurred_at: ts(),
        created_at: ts(),
    };
    roundtrip::<ledger_entry::Entity, ledger_entry::ActiveModel>(db, row).await;
    let row = virtual_card::Model {
        id: id_virtual_cards,
        tenant_id: id_tenants,
        purchase_intent_id: id_purchase_intents,
        agent_id: Some(id_agents),
        provider: "provider-x".to_owned(),
        provider_card_id: "provider_card_id-x".to_owned(),
        last4: "4242".to_owned(),
        exp_month: 7,
        exp_year: 7,
        hard_limit: amount(),
        currency: Currency::EUR,
        status: virtual_card::VirtualCardStatus::Closed,
        expires_at: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<virtual_card::Entity, virtual_card::ActiveModel>(db, row).await;
    let row = transaction::Model {
        id: id_transactions,
        tenant_id: id_tenants,
        purchase_intent_id: Some(id_purchase_intents),
        virtual_card_id: Some(id_virtual_cards),
        reservation_id: Some(id_reservations),
        provider_charge_id: "provider_charge_id-x".to_owned(),
        provider_authorization_id: Some("provider_authorization_id-x".to_owned()),
        amount: amount(),
        currency: Currency::EUR,
        merchant_name: Some("merchant_name-x".to_owned()),
        mcc: Some(7),
        status: transaction::TransactionStatus::PartiallyRefunded,
        refunded_amount: amount(),
        attention: Some("attention-x".to_owned()),
        settled_at: Some(ts()),
        raw_event: Some(json!({"k": [1, "two", null]})),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<transaction::Entity, transaction::ActiveModel>(db, row).await;
    let row = refund::Model {
        id: RefundId::new(),
        tenant_id: id_tenants,
        reservation_id: Some(id_reservations),
        transaction_id: Some(id_transactions),
        provider_refund_id: "provider_refund_id-x".to_owned(),
        amount: amount(),
        currency: Currency::EUR,
        created_at: ts(),
    };
    roundtrip::<refund::Entity, refund::ActiveModel>(db, row).await;
    let row = merchant::Model {
        id: id_merchants,
        tenant_id: id_tenants,
        name: "name-x".to_owned(),
        normalized_name: "normalized_name-x".to_owned(),
        domain: Some("domain-x".to_owned()),
        first_seen_at: ts(),
        last_seen_at: ts(),
        purchase_count: 42,
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<merchant::Entity, merchant::ActiveModel>(db, row).await;
    let row = blocked_attempt::Model {
        id: id_blocked_attempts,
        tenant_id: id_tenants,
        agent_id: Some(id_agents),
        purchase_intent_id: Some(id_purchase_intents),
        policy_id: Some(id_policies),
        run_id: Some(id_agent_runs),
        reason_code: "reason_code-x".to_owned(),
        reason: "reason: ünïcode ✓".to_owned(),
        amount: Some(amount()),
        currency: Some(Currency::EUR),
        merchant_name: Some("merchant_name-x".to_owned()),
        created_at: ts(),
    };
    roundtrip::<blocked_attempt::Entity, blocked_attempt::ActiveModel>(db, row).await;
    let row = usage_record::Model {
        id: id_usage_records,
        tenant_id: id_tenants,
        agent_id: Some(id_agents),
        run_id: Some(id_agent_runs),
        reservation_id: Some(id_reservations),
        provider: "provider-x".to_owned(),
        model: "model-x".to_owned(),
        input_tokens: 42,
        output_tokens: 42,
        cached_input_tokens: 7,
        reasoning_tokens: 9,
        latency_ms: Some(120),
        purchase_intent_id: Some(id_purchase_intents),
        cost: amount(),
        currency: Currency::EUR,
        is_byok: true,
        occurred_at: ts(),
        metadata: Metadata(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
        created_at: ts(),
    };
    roundtrip::<usage_record::Entity, usage_record::ActiveModel>(db, row).await;
    let row = model_price::Model {
        id: ModelPriceId::new(),
        tenant_id: id_tenants,
        provider: "provider-x".to_owned(),
        model: "model-x".to_owned(),
        currency: Currency::EUR,
        input_per_million: amount(),
        output_per_million: amount(),
        cached_input_per_million: amount(),
        reasoning_per_million: amount(),
        effective_from: ts(),
        created_at: ts(),
    };
    roundtrip::<model_price::Entity, model_price::ActiveModel>(db, row).await;
    let row = approval_decision::Model {
        id: id_approval_decisions,
        tenant_id: id_tenants,
        approval_request_id: id_approval_requests,
        approver_id: id_users,
        decision: approval_decision::ApprovalVote::Reject,
        comment: Some("comment: ünïcode ✓".to_owned()),
        created_at: ts(),
    };
    roundtrip::<approval_decision::Entity, approval_decision::ActiveModel>(db, row).await;
    let row = audit_log::Model {
        id: id_audit_logs,
        tenant_id: id_tenants,
        seq: 42,
        actor_type: audit_log::AuditActorType::System,
        actor_id: Some(Uuid::now_v7()),
        action: "action-x".to_owned(),
        resource_type: "resource_type-x".to_owned(),
        resource_id: Some("resource_id-x".to_owned()),
        level: audit_log::AuditLevel::Error,
        status: audit_log::AuditStatus::Denied,
        correlation_id: Some("correlation_id-x".to_owned()),
        ip_address: Some("ip_address-x".to_owned()),
        user_agent: Some("user_agent-x".to_owned()),
        message: Some("message: ünïcode ✓".to_owned()),
        details: audit_log::AuditDetails {
            reason_codes: vec!["MERCHANT_BLOCKED".to_owned()],
            after: Some(json!({"name": "bot"})),
            ..Default::default()
        },
        prev_hash: "ab".repeat(32),
        hash: "ab".repeat(32),
        created_at: ts(),
    };
    roundtrip::<audit_log::Entity, audit_log::ActiveModel>(db, row).await;
    let row = bursar::entity::event::Model {
        id: EventId::new(),
        tenant_id: id_tenants,
        seq: 42,
        event_type: "approval.requested".to_owned(),
        version: 1,
        subject_type: "approval_request".to_owned(),
        subject_id: Some(Uuid::now_v7()),
        dedup_key: Some("threshold:x:80".to_owned()),
        payload: json!({"k": [1, "two", null]}),
        created_at: ts(),
    };
    roundtrip::<bursar::entity::event::Entity, bursar::entity::event::ActiveModel>(db, row).await;
    let row = bursar::entity::event_consumer::Model {
        id: EventConsumerId::new(),
        tenant_id: id_tenants,
        name: "webhooks ✓".to_owned(),
        acked_seq: 7,
        delivered_seq: 9,
        lease_until: Some(ts()),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<bursar::entity::event_consumer::Entity, bursar::entity::event_consumer::ActiveModel>(
        db, row,
    )
    .await;
    let row = connection::Model {
        id: id_connections,
        tenant_id: id_tenants,
        provider: "provider-x".to_owned(),
        label: "label-x".to_owned(),
        status: connection::ConnectionStatus::Inactive,
        auth_type: connection::AuthType::NoAuth,
        external_account_id: Some("external_account_id-x".to_owned()),
        server_url: Some("server_url: ünïcode ✓".to_owned()),
        encrypted_credentials: vec![0, 1, 2, 254, 255],
        key_version: 7,
        token_expires_at: Some(ts()),
        metadata: Metadata(BTreeMap::from([("env".to_owned(), "prod".to_owned())])),
        created_by: Some(id_users),
        created_at: ts(),
        updated_at: ts(),
    };
    roundtrip::<connection::Entity, connection::ActiveModel>(db, row).await;

    // Foreign keys stay within a tenant: another tenant's agent cannot point at
    // this tenant's team.
    let other = tenant::Model {
        id: TenantId::new(),
        slug: "other".to_owned(),
        ..tenant::Entity::find_by_id(id_tenants)
            .one(db)
            .await
            .unwrap()
            .unwrap()
    };
    other.clone().into_active_model().insert(db).await.unwrap();
    let stranger = agent::Model {
        id: AgentId::new(),
        tenant_id: other.id,
        slug: None,
        project_id: None,
        created_by: None,
        ..agent::Entity::find_by_id(id_agents)
            .one(db)
            .await
            .unwrap()
            .unwrap()
    };
    let err = stranger
        .into_active_model()
        .insert(db)
        .await
        .expect_err("an agent referenced another tenant's team");
    assert!(
        err.to_string().to_lowercase().contains("foreign key"),
        "{err}"
    );
}

#[tokio::test]
async fn every_entity_roundtrips_on_sqlite() {
    let mut opts = ConnectOptions::new("sqlite::memory:");
    opts.max_connections(1).min_connections(1);
    let db = Database::connect(opts).await.unwrap();
    every_entity_roundtrips(&db).await;
    Migrator::down(&db, None).await.expect("migrations revert");
    let left = db
        .query_all_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT name FROM sqlite_master WHERE type = 'table'              AND name NOT LIKE 'sqlite_%' AND name <> 'bursar_migrations'",
        ))
        .await
        .unwrap();
    assert!(left.is_empty(), "tables left after down: {}", left.len());
    assert_eq!(TABLES.len(), 32);
}

#[tokio::test]
async fn every_entity_roundtrips_on_postgres() {
    let Ok(url) = std::env::var("BURSAR_TEST_POSTGRES_URL") else {
        eprintln!("BURSAR_TEST_POSTGRES_URL not set; skipping");
        return;
    };
    let schema = format!("bursar_rt_{}", Uuid::now_v7().simple());
    let admin = Database::connect(&url).await.unwrap();
    admin
        .execute_unprepared(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let mut opts = ConnectOptions::new(&url);
    opts.max_connections(1)
        .set_schema_search_path(schema.clone());
    let db = Database::connect(opts).await.unwrap();
    every_entity_roundtrips(&db).await;
    Migrator::down(&db, None).await.expect("migrations revert");
    db.close().await.unwrap();
    admin
        .execute_unprepared(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
