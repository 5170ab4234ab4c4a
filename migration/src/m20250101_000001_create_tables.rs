//! Creates every table, its keys, foreign keys and indexes.
//!
//! Foreign keys between tenant-owned tables are composite, `(tenant_id, x_id)`
//! referencing `(tenant_id, id)`, so a row can only point at rows of its own
//! tenant and the schema can be distributed by `tenant_id` unchanged.

use sea_orm_migration::prelude::*;

use crate::widths;

use crate::columns::{
    big_integer, binary, boolean, currency, integer, json, money, owned_by_tenant, plain_index,
    string, text, timestamp, unique_index, uuid,
};

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let backend = manager.get_database_backend();

        // tenants
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(uuid(Tenants::Id, false))
                    .col(string(Tenants::Name, 255, false))
                    .col(string(Tenants::Slug, 64, false))
                    .col(string(Tenants::Plan, 50, false))
                    .col(timestamp(Tenants::PlanExpiresAt, true))
                    .col(boolean(Tenants::IsActive, false))
                    .col(string(Tenants::Timezone, 64, false))
                    .col(currency(Tenants::DefaultCurrency, false))
                    .col(string(Tenants::DefaultEffect, 16, false))
                    .col(json(Tenants::Settings, false))
                    .col(timestamp(Tenants::CreatedAt, false))
                    .col(timestamp(Tenants::UpdatedAt, false))
                    .primary_key(Index::create().col(Tenants::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_tenants_slug",
                Tenants::Table,
                [Tenants::Slug],
            ))
            .await?;

        // users
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid(Users::Id, false))
                    .col(string(Users::Email, widths::EMAIL, false))
                    .col(string(Users::Name, 255, false))
                    .col(string(Users::PasswordHash, 255, true))
                    .col(string(Users::AuthProvider, widths::AUTH_PROVIDER, true))
                    .col(string(Users::ExternalId, widths::EXTERNAL_ID, true))
                    .col(string(Users::Kind, 32, false))
                    .col(boolean(Users::IsActive, false))
                    .col(timestamp(Users::GdprConsentAt, true))
                    .col(timestamp(Users::CreatedAt, false))
                    .col(timestamp(Users::UpdatedAt, false))
                    .primary_key(Index::create().col(Users::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index("ux_users_email", Users::Table, [Users::Email]))
            .await?;

        // tenant_members
        manager
            .create_table(
                Table::create()
                    .table(TenantMembers::Table)
                    .col(uuid(TenantMembers::TenantId, false))
                    .col(uuid(TenantMembers::UserId, false))
                    .col(string(TenantMembers::SeatType, 32, false))
                    .col(string(TenantMembers::Status, 32, false))
                    .col(uuid(TenantMembers::InvitedBy, true))
                    .col(timestamp(TenantMembers::JoinedAt, true))
                    .col(timestamp(TenantMembers::CreatedAt, false))
                    .col(timestamp(TenantMembers::UpdatedAt, false))
                    .primary_key(
                        Index::create()
                            .col(TenantMembers::TenantId)
                            .col(TenantMembers::UserId),
                    )
                    .foreign_key(&mut owned_by_tenant(
                        "fk_tenant_members_tenant_id",
                        TenantMembers::Table,
                        TenantMembers::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_tenant_members_user_id")
                            .from(TenantMembers::Table, TenantMembers::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(plain_index(
                "ix_tenant_members_tenant_id_status",
                TenantMembers::Table,
                [TenantMembers::TenantId, TenantMembers::Status],
            ))
            .await?;

        // roles
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .col(uuid(Roles::Id, false))
                    .col(uuid(Roles::TenantId, false))
                    .col(string(Roles::Name, 64, false))
                    .col(text(Roles::Description, true))
                    .col(boolean(Roles::IsBuiltin, false))
                    .col(timestamp(Roles::CreatedAt, false))
                    .col(timestamp(Roles::UpdatedAt, false))
                    .primary_key(Index::create().col(Roles::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_roles_tenant_id",
                        Roles::Table,
                        Roles::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_roles_tenant_id_id",
                Roles::Table,
                [Roles::TenantId, Roles::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_roles_tenant_id_name",
                Roles::Table,
                [Roles::TenantId, Roles::Name],
            ))
            .await?;

        // permissions
        manager
            .create_table(
                Table::create()
                    .table(Permissions::Table)
                    .col(uuid(Permissions::Id, false))
                    .col(string(Permissions::Code, 100, false))
                    .col(text(Permissions::Description, true))
                    .col(timestamp(Permissions::CreatedAt, false))
                    .col(timestamp(Permissions::UpdatedAt, false))
                    .primary_key(Index::create().col(Permissions::Id))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_permissions_code",
                Permissions::Table,
                [Permissions::Code],
            ))
            .await?;

        // role_permissions
        manager
            .create_table(
                Table::create()
                    .table(RolePermissions::Table)
                    .col(uuid(RolePermissions::TenantId, false))
                    .col(uuid(RolePermissions::RoleId, false))
                    .col(uuid(RolePermissions::PermissionId, false))
                    .col(timestamp(RolePermissions::CreatedAt, false))
                    .primary_key(
                        Index::create()
                            .col(RolePermissions::TenantId)
                            .col(RolePermissions::RoleId)
                            .col(RolePermissions::PermissionId),
                    )
                    .foreign_key(&mut owned_by_tenant(
                        "fk_role_permissions_tenant_id",
                        RolePermissions::Table,
                        RolePermissions::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_role_permissions_role_id")
                            .from(
                                RolePermissions::Table,
                                (RolePermissions::TenantId, RolePermissions::RoleId),
                            )
                            .to(Roles::Table, (Roles::TenantId, Roles::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_role_permissions_permission_id")
                            .from(RolePermissions::Table, RolePermissions::PermissionId)
                            .to(Permissions::Table, Permissions::Id),
                    )
                    .to_owned(),
            )
            .await?;

        // member_roles
        manager
            .create_table(
                Table::create()
                    .table(MemberRoles::Table)
                    .col(uuid(MemberRoles::TenantId, false))
                    .col(uuid(MemberRoles::UserId, false))
                    .col(uuid(MemberRoles::RoleId, false))
                    .col(timestamp(MemberRoles::CreatedAt, false))
                    .primary_key(
                        Index::create()
                            .col(MemberRoles::TenantId)
                            .col(MemberRoles::UserId)
                            .col(MemberRoles::RoleId),
                    )
                    .foreign_key(&mut owned_by_tenant(
                        "fk_member_roles_tenant_id",
                        MemberRoles::Table,
                        MemberRoles::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_member_roles_user_id")
                            .from(
                                MemberRoles::Table,
                                (MemberRoles::TenantId, MemberRoles::UserId),
                            )
                            .to(
                                TenantMembers::Table,
                                (TenantMembers::TenantId, TenantMembers::UserId),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_member_roles_role_id")
                            .from(
                                MemberRoles::Table,
                                (MemberRoles::TenantId, MemberRoles::RoleId),
                            )
                            .to(Roles::Table, (Roles::TenantId, Roles::Id)),
                    )
                    .to_owned(),
            )
            .await?;

        // teams
        manager
            .create_table(
                Table::create()
                    .table(Teams::Table)
                    .col(uuid(Teams::Id, false))
                    .col(uuid(Teams::TenantId, false))
                    .col(string(Teams::Name, 255, false))
                    .col(string(Teams::Slug, 64, false))
                    .col(text(Teams::Description, true))
                    .col(timestamp(Teams::CreatedAt, false))
                    .col(timestamp(Teams::UpdatedAt, false))
                    .primary_key(Index::create().col(Teams::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_teams_tenant_id",
                        Teams::Table,
                        Teams::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_teams_tenant_id_id",
                Teams::Table,
                [Teams::TenantId, Teams::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_teams_tenant_id_slug",
                Teams::Table,
                [Teams::TenantId, Teams::Slug],
            ))
            .await?;

        // projects
        manager
            .create_table(
                Table::create()
                    .table(Projects::Table)
                    .col(uuid(Projects::Id, false))
                    .col(uuid(Projects::TenantId, false))
                    .col(string(Projects::Name, 255, false))
                    .col(string(Projects::Slug, 64, false))
                    .col(text(Projects::Description, true))
                    .col(timestamp(Projects::CreatedAt, false))
                    .col(timestamp(Projects::UpdatedAt, false))
                    .primary_key(Index::create().col(Projects::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_projects_tenant_id",
                        Projects::Table,
                        Projects::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_projects_tenant_id_id",
                Projects::Table,
                [Projects::TenantId, Projects::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_projects_tenant_id_slug",
                Projects::Table,
                [Projects::TenantId, Projects::Slug],
            ))
            .await?;

        // agents
        manager
            .create_table(
                Table::create()
                    .table(Agents::Table)
                    .col(uuid(Agents::Id, false))
                    .col(uuid(Agents::TenantId, false))
                    .col(uuid(Agents::TeamId, true))
                    .col(uuid(Agents::ProjectId, true))
                    .col(string(Agents::Name, 255, false))
                    .col(string(Agents::Slug, 64, true))
                    .col(text(Agents::Description, true))
                    .col(string(Agents::Status, 32, false))
                    .col(uuid(Agents::CreatedBy, true))
                    .col(json(Agents::Metadata, false))
                    .col(timestamp(Agents::CreatedAt, false))
                    .col(timestamp(Agents::UpdatedAt, false))
                    .primary_key(Index::create().col(Agents::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_agents_tenant_id",
                        Agents::Table,
                        Agents::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_team_id")
                            .from(Agents::Table, (Agents::TenantId, Agents::TeamId))
                            .to(Teams::Table, (Teams::TenantId, Teams::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_project_id")
                            .from(Agents::Table, (Agents::TenantId, Agents::ProjectId))
                            .to(Projects::Table, (Projects::TenantId, Projects::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agents_created_by")
                            .from(Agents::Table, Agents::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_agents_tenant_id_id",
                Agents::Table,
                [Agents::TenantId, Agents::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_agents_tenant_id_slug",
                Agents::Table,
                [Agents::TenantId, Agents::Slug],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agents_tenant_id_status",
                Agents::Table,
                [Agents::TenantId, Agents::Status],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agents_tenant_id_team_id",
                Agents::Table,
                [Agents::TenantId, Agents::TeamId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agents_tenant_id_project_id",
                Agents::Table,
                [Agents::TenantId, Agents::ProjectId],
            ))
            .await?;

        // agent_api_keys
        manager
            .create_table(
                Table::create()
                    .table(AgentApiKeys::Table)
                    .col(uuid(AgentApiKeys::Id, false))
                    .col(uuid(AgentApiKeys::TenantId, false))
                    .col(uuid(AgentApiKeys::AgentId, false))
                    .col(string(AgentApiKeys::Prefix, 16, false))
                    .col(string(AgentApiKeys::KeyHash, 64, false))
                    .col(string(AgentApiKeys::Label, 255, true))
                    .col(uuid(AgentApiKeys::CreatedBy, true))
                    .col(timestamp(AgentApiKeys::ExpiresAt, true))
                    .col(timestamp(AgentApiKeys::RevokedAt, true))
                    .col(timestamp(AgentApiKeys::LastUsedAt, true))
                    .col(timestamp(AgentApiKeys::CreatedAt, false))
                    .primary_key(Index::create().col(AgentApiKeys::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_agent_api_keys_tenant_id",
                        AgentApiKeys::Table,
                        AgentApiKeys::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_api_keys_agent_id")
                            .from(
                                AgentApiKeys::Table,
                                (AgentApiKeys::TenantId, AgentApiKeys::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_api_keys_created_by")
                            .from(AgentApiKeys::Table, AgentApiKeys::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_agent_api_keys_key_hash",
                AgentApiKeys::Table,
                [AgentApiKeys::KeyHash],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agent_api_keys_tenant_id_agent_id",
                AgentApiKeys::Table,
                [AgentApiKeys::TenantId, AgentApiKeys::AgentId],
            ))
            .await?;

        // policies
        manager
            .create_table(
                Table::create()
                    .table(Policies::Table)
                    .col(uuid(Policies::Id, false))
                    .col(uuid(Policies::TenantId, false))
                    .col(string(Policies::Name, 255, false))
                    .col(text(Policies::Description, true))
                    .col(json(Policies::Scope, false))
                    .col(string(Policies::Effect, 32, false))
                    .col(integer(Policies::Priority, false))
                    .col(boolean(Policies::Enabled, false))
                    .col(string(Policies::ReasonCode, 64, false))
                    .col(text(Policies::Message, false))
                    .col(json(Policies::Conditions, false))
                    .col(json(Policies::Approval, true))
                    .col(integer(Policies::Version, false))
                    .col(uuid(Policies::CreatedBy, true))
                    .col(timestamp(Policies::CreatedAt, false))
                    .col(timestamp(Policies::UpdatedAt, false))
                    .primary_key(Index::create().col(Policies::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_policies_tenant_id",
                        Policies::Table,
                        Policies::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_policies_created_by")
                            .from(Policies::Table, Policies::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_policies_tenant_id_id",
                Policies::Table,
                [Policies::TenantId, Policies::Id],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_policies_tenant_id_enabled_priority",
                Policies::Table,
                [Policies::TenantId, Policies::Enabled, Policies::Priority],
            ))
            .await?;

        // budgets
        manager
            .create_table(
                Table::create()
                    .table(Budgets::Table)
                    .col(uuid(Budgets::Id, false))
                    .col(uuid(Budgets::TenantId, false))
                    .col(string(Budgets::Name, 255, false))
                    .col(string(Budgets::ScopeKind, 16, false))
                    .col(uuid(Budgets::ScopeId, true))
                    .col(currency(Budgets::Currency, false))
                    .col(string(Budgets::Period, 16, false))
                    .col(money(Budgets::LimitAmount, backend, false))
                    .col(boolean(Budgets::IsActive, false))
                    .col(json(Budgets::AlertThresholds, true))
                    .col(timestamp(Budgets::CreatedAt, false))
                    .col(timestamp(Budgets::UpdatedAt, false))
                    .primary_key(Index::create().col(Budgets::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_budgets_tenant_id",
                        Budgets::Table,
                        Budgets::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_budgets_tenant_id_id",
                Budgets::Table,
                [Budgets::TenantId, Budgets::Id],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_budgets_tenant_id_scope_kind_scope_id",
                Budgets::Table,
                [Budgets::TenantId, Budgets::ScopeKind, Budgets::ScopeId],
            ))
            .await?;

        // budget_windows
        manager
            .create_table(
                Table::create()
                    .table(BudgetWindows::Table)
                    .col(uuid(BudgetWindows::Id, false))
                    .col(uuid(BudgetWindows::TenantId, false))
                    .col(uuid(BudgetWindows::BudgetId, false))
                    .col(timestamp(BudgetWindows::PeriodStart, false))
                    .col(timestamp(BudgetWindows::PeriodEnd, true))
                    .col(money(BudgetWindows::LimitAmount, backend, false))
                    .col(money(BudgetWindows::Spent, backend, false))
                    .col(money(BudgetWindows::Reserved, backend, false))
                    .col(timestamp(BudgetWindows::CreatedAt, false))
                    .col(timestamp(BudgetWindows::UpdatedAt, false))
                    .primary_key(Index::create().col(BudgetWindows::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_budget_windows_tenant_id",
                        BudgetWindows::Table,
                        BudgetWindows::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_budget_windows_budget_id")
                            .from(
                                BudgetWindows::Table,
                                (BudgetWindows::TenantId, BudgetWindows::BudgetId),
                            )
                            .to(Budgets::Table, (Budgets::TenantId, Budgets::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_budget_windows_tenant_id_id",
                BudgetWindows::Table,
                [BudgetWindows::TenantId, BudgetWindows::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_budget_windows_tenant_id_budget_id_period_start",
                BudgetWindows::Table,
                [
                    BudgetWindows::TenantId,
                    BudgetWindows::BudgetId,
                    BudgetWindows::PeriodStart,
                ],
            ))
            .await?;

        // agent_runs
        manager
            .create_table(
                Table::create()
                    .table(AgentRuns::Table)
                    .col(uuid(AgentRuns::Id, false))
                    .col(uuid(AgentRuns::TenantId, false))
                    .col(uuid(AgentRuns::AgentId, true))
                    .col(uuid(AgentRuns::StartedBy, true))
                    .col(text(AgentRuns::Description, true))
                    .col(string(AgentRuns::Status, 32, false))
                    .col(currency(AgentRuns::Currency, false))
                    .col(money(AgentRuns::MaxCost, backend, true))
                    .col(integer(AgentRuns::MaxRounds, true))
                    .col(json(AgentRuns::Caps, false))
                    .col(money(AgentRuns::Cost, backend, false))
                    .col(big_integer(AgentRuns::TotalTokens, false))
                    .col(integer(AgentRuns::Rounds, false))
                    .col(timestamp(AgentRuns::StartedAt, false))
                    .col(timestamp(AgentRuns::CompletedAt, true))
                    .col(timestamp(AgentRuns::KilledAt, true))
                    .col(string(AgentRuns::KilledBy, 255, true))
                    .col(string(AgentRuns::KillReason, 500, true))
                    .col(json(AgentRuns::Metadata, false))
                    .col(timestamp(AgentRuns::CreatedAt, false))
                    .col(timestamp(AgentRuns::UpdatedAt, false))
                    .primary_key(Index::create().col(AgentRuns::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_agent_runs_tenant_id",
                        AgentRuns::Table,
                        AgentRuns::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_runs_agent_id")
                            .from(AgentRuns::Table, (AgentRuns::TenantId, AgentRuns::AgentId))
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_agent_runs_started_by")
                            .from(AgentRuns::Table, AgentRuns::StartedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_agent_runs_tenant_id_id",
                AgentRuns::Table,
                [AgentRuns::TenantId, AgentRuns::Id],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agent_runs_tenant_id_status",
                AgentRuns::Table,
                [AgentRuns::TenantId, AgentRuns::Status],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_agent_runs_tenant_id_agent_id",
                AgentRuns::Table,
                [AgentRuns::TenantId, AgentRuns::AgentId],
            ))
            .await?;

        // reservations
        manager
            .create_table(
                Table::create()
                    .table(Reservations::Table)
                    .col(uuid(Reservations::Id, false))
                    .col(uuid(Reservations::TenantId, false))
                    .col(uuid(Reservations::AgentId, true))
                    .col(uuid(Reservations::RunId, true))
                    .col(uuid(Reservations::PurchaseIntentId, true))
                    .col(string(
                        Reservations::IdempotencyKey,
                        widths::IDEMPOTENCY_KEY,
                        true,
                    ))
                    .col(currency(Reservations::Currency, false))
                    .col(money(Reservations::Amount, backend, false))
                    .col(money(Reservations::CapturedAmount, backend, false))
                    .col(money(Reservations::RefundedAmount, backend, false))
                    .col(string(Reservations::Status, 16, false))
                    .col(timestamp(Reservations::ExpiresAt, false))
                    .col(timestamp(Reservations::CapturedAt, true))
                    .col(timestamp(Reservations::ReleasedAt, true))
                    .col(timestamp(Reservations::CreatedAt, false))
                    .col(timestamp(Reservations::UpdatedAt, false))
                    .primary_key(Index::create().col(Reservations::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_reservations_tenant_id",
                        Reservations::Table,
                        Reservations::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reservations_agent_id")
                            .from(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reservations_run_id")
                            .from(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::RunId),
                            )
                            .to(AgentRuns::Table, (AgentRuns::TenantId, AgentRuns::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_reservations_tenant_id_id",
                Reservations::Table,
                [Reservations::TenantId, Reservations::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_reservations_tenant_id_idempotency_key",
                Reservations::Table,
                [Reservations::TenantId, Reservations::IdempotencyKey],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_reservations_tenant_id_status_expires_at",
                Reservations::Table,
                [
                    Reservations::TenantId,
                    Reservations::Status,
                    Reservations::ExpiresAt,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_reservations_tenant_id_purchase_intent_id",
                Reservations::Table,
                [Reservations::TenantId, Reservations::PurchaseIntentId],
            ))
            .await?;

        // approval_requests
        manager
            .create_table(
                Table::create()
                    .table(ApprovalRequests::Table)
                    .col(uuid(ApprovalRequests::Id, false))
                    .col(uuid(ApprovalRequests::TenantId, false))
                    .col(string(ApprovalRequests::SubjectKind, 32, false))
                    .col(uuid(ApprovalRequests::SubjectId, false))
                    .col(uuid(ApprovalRequests::AgentId, true))
                    .col(uuid(ApprovalRequests::ReservationId, true))
                    .col(string(ApprovalRequests::Rule, 16, false))
                    .col(integer(ApprovalRequests::RequiredApprovals, false))
                    .col(uuid(ApprovalRequests::ApproverRoleId, true))
                    .col(json(ApprovalRequests::EligibleApprovers, false))
                    .col(uuid(ApprovalRequests::EscalationRoleId, true))
                    .col(string(ApprovalRequests::Status, 16, false))
                    .col(json(ApprovalRequests::Reasons, false))
                    .col(uuid(ApprovalRequests::RequestedBy, true))
                    .col(timestamp(ApprovalRequests::ExpiresAt, false))
                    .col(timestamp(ApprovalRequests::EscalateAt, true))
                    .col(uuid(ApprovalRequests::EscalatedTo, true))
                    .col(timestamp(ApprovalRequests::DecidedAt, true))
                    .col(timestamp(ApprovalRequests::CreatedAt, false))
                    .col(timestamp(ApprovalRequests::UpdatedAt, false))
                    .primary_key(Index::create().col(ApprovalRequests::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_approval_requests_tenant_id",
                        ApprovalRequests::Table,
                        ApprovalRequests::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_requests_agent_id")
                            .from(
                                ApprovalRequests::Table,
                                (ApprovalRequests::TenantId, ApprovalRequests::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_requests_reservation_id")
                            .from(
                                ApprovalRequests::Table,
                                (ApprovalRequests::TenantId, ApprovalRequests::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_requests_approver_role_id")
                            .from(
                                ApprovalRequests::Table,
                                (ApprovalRequests::TenantId, ApprovalRequests::ApproverRoleId),
                            )
                            .to(Roles::Table, (Roles::TenantId, Roles::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_requests_escalated_to")
                            .from(ApprovalRequests::Table, ApprovalRequests::EscalatedTo)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_approval_requests_tenant_id_id",
                ApprovalRequests::Table,
                [ApprovalRequests::TenantId, ApprovalRequests::Id],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_approval_requests_tenant_id_status_expires_at",
                ApprovalRequests::Table,
                [
                    ApprovalRequests::TenantId,
                    ApprovalRequests::Status,
                    ApprovalRequests::ExpiresAt,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_approval_requests_tenant_id_subject_kind_subject_id",
                ApprovalRequests::Table,
                [
                    ApprovalRequests::TenantId,
                    ApprovalRequests::SubjectKind,
                    ApprovalRequests::SubjectId,
                ],
            ))
            .await?;

        // purchase_intents
        manager
            .create_table(
                Table::create()
                    .table(PurchaseIntents::Table)
                    .col(uuid(PurchaseIntents::Id, false))
                    .col(uuid(PurchaseIntents::TenantId, false))
                    .col(uuid(PurchaseIntents::AgentId, true))
                    .col(uuid(PurchaseIntents::TeamId, true))
                    .col(uuid(PurchaseIntents::ProjectId, true))
                    .col(uuid(PurchaseIntents::RunId, true))
                    .col(string(
                        PurchaseIntents::IdempotencyKey,
                        widths::IDEMPOTENCY_KEY,
                        true,
                    ))
                    .col(money(PurchaseIntents::Amount, backend, false))
                    .col(currency(PurchaseIntents::Currency, false))
                    .col(string(
                        PurchaseIntents::MerchantName,
                        widths::MERCHANT,
                        false,
                    ))
                    .col(string(
                        PurchaseIntents::MerchantDomain,
                        widths::MERCHANT,
                        true,
                    ))
                    .col(text(PurchaseIntents::MerchantUrl, true))
                    .col(integer(PurchaseIntents::Mcc, true))
                    .col(text(PurchaseIntents::Description, true))
                    .col(json(PurchaseIntents::Metadata, false))
                    .col(string(PurchaseIntents::Status, 32, false))
                    .col(string(PurchaseIntents::RejectionCode, 64, true))
                    .col(text(PurchaseIntents::RejectionReason, true))
                    .col(json(PurchaseIntents::Reasons, false))
                    .col(uuid(PurchaseIntents::ReservationId, true))
                    .col(uuid(PurchaseIntents::ApprovalRequestId, true))
                    .col(timestamp(PurchaseIntents::CreatedAt, false))
                    .col(timestamp(PurchaseIntents::UpdatedAt, false))
                    .primary_key(Index::create().col(PurchaseIntents::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_purchase_intents_tenant_id",
                        PurchaseIntents::Table,
                        PurchaseIntents::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_agent_id")
                            .from(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_team_id")
                            .from(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::TeamId),
                            )
                            .to(Teams::Table, (Teams::TenantId, Teams::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_project_id")
                            .from(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::ProjectId),
                            )
                            .to(Projects::Table, (Projects::TenantId, Projects::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_run_id")
                            .from(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::RunId),
                            )
                            .to(AgentRuns::Table, (AgentRuns::TenantId, AgentRuns::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_reservation_id")
                            .from(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_purchase_intents_approval_request_id")
                            .from(
                                PurchaseIntents::Table,
                                (
                                    PurchaseIntents::TenantId,
                                    PurchaseIntents::ApprovalRequestId,
                                ),
                            )
                            .to(
                                ApprovalRequests::Table,
                                (ApprovalRequests::TenantId, ApprovalRequests::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_purchase_intents_tenant_id_id",
                PurchaseIntents::Table,
                [PurchaseIntents::TenantId, PurchaseIntents::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_purchase_intents_tenant_id_idempotency_key",
                PurchaseIntents::Table,
                [PurchaseIntents::TenantId, PurchaseIntents::IdempotencyKey],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_purchase_intents_tenant_id_status",
                PurchaseIntents::Table,
                [PurchaseIntents::TenantId, PurchaseIntents::Status],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_purchase_intents_tenant_id_agent_id_created_at",
                PurchaseIntents::Table,
                [
                    PurchaseIntents::TenantId,
                    PurchaseIntents::AgentId,
                    PurchaseIntents::CreatedAt,
                ],
            ))
            .await?;

        // reservation_lines
        manager
            .create_table(
                Table::create()
                    .table(ReservationLines::Table)
                    .col(uuid(ReservationLines::Id, false))
                    .col(uuid(ReservationLines::TenantId, false))
                    .col(uuid(ReservationLines::ReservationId, false))
                    .col(uuid(ReservationLines::BudgetId, false))
                    .col(uuid(ReservationLines::WindowId, false))
                    .col(money(ReservationLines::Amount, backend, false))
                    .col(money(ReservationLines::CapturedAmount, backend, false))
                    .col(money(ReservationLines::RefundedAmount, backend, false))
                    .col(timestamp(ReservationLines::CreatedAt, false))
                    .primary_key(Index::create().col(ReservationLines::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_reservation_lines_tenant_id",
                        ReservationLines::Table,
                        ReservationLines::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reservation_lines_reservation_id")
                            .from(
                                ReservationLines::Table,
                                (ReservationLines::TenantId, ReservationLines::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reservation_lines_budget_id")
                            .from(
                                ReservationLines::Table,
                                (ReservationLines::TenantId, ReservationLines::BudgetId),
                            )
                            .to(Budgets::Table, (Budgets::TenantId, Budgets::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reservation_lines_window_id")
                            .from(
                                ReservationLines::Table,
                                (ReservationLines::TenantId, ReservationLines::WindowId),
                            )
                            .to(
                                BudgetWindows::Table,
                                (BudgetWindows::TenantId, BudgetWindows::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_reservation_lines_tenant_id_reservation_id_window_id",
                ReservationLines::Table,
                [
                    ReservationLines::TenantId,
                    ReservationLines::ReservationId,
                    ReservationLines::WindowId,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_reservation_lines_tenant_id_window_id",
                ReservationLines::Table,
                [ReservationLines::TenantId, ReservationLines::WindowId],
            ))
            .await?;

        // ledger_entries
        manager
            .create_table(
                Table::create()
                    .table(LedgerEntries::Table)
                    .col(uuid(LedgerEntries::Id, false))
                    .col(uuid(LedgerEntries::TenantId, false))
                    .col(uuid(LedgerEntries::BudgetId, false))
                    .col(uuid(LedgerEntries::WindowId, false))
                    .col(uuid(LedgerEntries::ReservationId, true))
                    .col(string(LedgerEntries::EntryType, 16, false))
                    .col(string(LedgerEntries::Bucket, 16, false))
                    .col(string(LedgerEntries::Direction, 16, false))
                    .col(money(LedgerEntries::Amount, backend, false))
                    .col(currency(LedgerEntries::Currency, false))
                    .col(string(LedgerEntries::Category, 64, true))
                    .col(string(LedgerEntries::Reference, widths::REFERENCE, true))
                    .col(text(LedgerEntries::Description, true))
                    .col(timestamp(LedgerEntries::OccurredAt, false))
                    .col(timestamp(LedgerEntries::CreatedAt, false))
                    .primary_key(Index::create().col(LedgerEntries::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_ledger_entries_tenant_id",
                        LedgerEntries::Table,
                        LedgerEntries::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ledger_entries_budget_id")
                            .from(
                                LedgerEntries::Table,
                                (LedgerEntries::TenantId, LedgerEntries::BudgetId),
                            )
                            .to(Budgets::Table, (Budgets::TenantId, Budgets::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ledger_entries_window_id")
                            .from(
                                LedgerEntries::Table,
                                (LedgerEntries::TenantId, LedgerEntries::WindowId),
                            )
                            .to(
                                BudgetWindows::Table,
                                (BudgetWindows::TenantId, BudgetWindows::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_ledger_entries_reservation_id")
                            .from(
                                LedgerEntries::Table,
                                (LedgerEntries::TenantId, LedgerEntries::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(plain_index(
                "ix_ledger_entries_tenant_id_window_id",
                LedgerEntries::Table,
                [LedgerEntries::TenantId, LedgerEntries::WindowId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_ledger_entries_tenant_reservation_entry_type_bucket_referenc",
                LedgerEntries::Table,
                [
                    LedgerEntries::TenantId,
                    LedgerEntries::ReservationId,
                    LedgerEntries::EntryType,
                    LedgerEntries::Bucket,
                    LedgerEntries::Reference,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_ledger_entries_tenant_id_occurred_at",
                LedgerEntries::Table,
                [LedgerEntries::TenantId, LedgerEntries::OccurredAt],
            ))
            .await?;

        // virtual_cards
        manager
            .create_table(
                Table::create()
                    .table(VirtualCards::Table)
                    .col(uuid(VirtualCards::Id, false))
                    .col(uuid(VirtualCards::TenantId, false))
                    .col(uuid(VirtualCards::PurchaseIntentId, false))
                    .col(uuid(VirtualCards::AgentId, true))
                    .col(string(VirtualCards::Provider, 50, false))
                    .col(string(
                        VirtualCards::ProviderCardId,
                        widths::PROVIDER_ID,
                        false,
                    ))
                    .col(string(VirtualCards::Last4, 4, false))
                    .col(integer(VirtualCards::ExpMonth, false))
                    .col(integer(VirtualCards::ExpYear, false))
                    .col(money(VirtualCards::HardLimit, backend, false))
                    .col(currency(VirtualCards::Currency, false))
                    .col(string(VirtualCards::Status, 16, false))
                    .col(timestamp(VirtualCards::ExpiresAt, true))
                    .col(timestamp(VirtualCards::CreatedAt, false))
                    .col(timestamp(VirtualCards::UpdatedAt, false))
                    .primary_key(Index::create().col(VirtualCards::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_virtual_cards_tenant_id",
                        VirtualCards::Table,
                        VirtualCards::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_virtual_cards_purchase_intent_id")
                            .from(
                                VirtualCards::Table,
                                (VirtualCards::TenantId, VirtualCards::PurchaseIntentId),
                            )
                            .to(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_virtual_cards_agent_id")
                            .from(
                                VirtualCards::Table,
                                (VirtualCards::TenantId, VirtualCards::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_virtual_cards_tenant_id_id",
                VirtualCards::Table,
                [VirtualCards::TenantId, VirtualCards::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_virtual_cards_tenant_id_provider_card_id",
                VirtualCards::Table,
                [VirtualCards::TenantId, VirtualCards::ProviderCardId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_virtual_cards_tenant_id_purchase_intent_id",
                VirtualCards::Table,
                [VirtualCards::TenantId, VirtualCards::PurchaseIntentId],
            ))
            .await?;

        // transactions
        manager
            .create_table(
                Table::create()
                    .table(Transactions::Table)
                    .col(uuid(Transactions::Id, false))
                    .col(uuid(Transactions::TenantId, false))
                    .col(uuid(Transactions::PurchaseIntentId, true))
                    .col(uuid(Transactions::VirtualCardId, true))
                    .col(uuid(Transactions::ReservationId, true))
                    .col(string(
                        Transactions::ProviderChargeId,
                        widths::PROVIDER_ID,
                        false,
                    ))
                    .col(string(
                        Transactions::ProviderAuthorizationId,
                        widths::PROVIDER_ID,
                        true,
                    ))
                    .col(money(Transactions::Amount, backend, false))
                    .col(currency(Transactions::Currency, false))
                    .col(string(Transactions::MerchantName, widths::MERCHANT, true))
                    .col(integer(Transactions::Mcc, true))
                    .col(string(Transactions::Status, 24, false))
                    .col(money(Transactions::RefundedAmount, backend, false))
                    .col(string(Transactions::Attention, widths::ATTENTION, true))
                    .col(timestamp(Transactions::SettledAt, true))
                    .col(json(Transactions::RawEvent, true))
                    .col(timestamp(Transactions::CreatedAt, false))
                    .col(timestamp(Transactions::UpdatedAt, false))
                    .primary_key(Index::create().col(Transactions::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_transactions_tenant_id",
                        Transactions::Table,
                        Transactions::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transactions_purchase_intent_id")
                            .from(
                                Transactions::Table,
                                (Transactions::TenantId, Transactions::PurchaseIntentId),
                            )
                            .to(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transactions_virtual_card_id")
                            .from(
                                Transactions::Table,
                                (Transactions::TenantId, Transactions::VirtualCardId),
                            )
                            .to(
                                VirtualCards::Table,
                                (VirtualCards::TenantId, VirtualCards::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_transactions_reservation_id")
                            .from(
                                Transactions::Table,
                                (Transactions::TenantId, Transactions::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_transactions_tenant_id_id",
                Transactions::Table,
                [Transactions::TenantId, Transactions::Id],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_transactions_tenant_id_provider_charge_id",
                Transactions::Table,
                [Transactions::TenantId, Transactions::ProviderChargeId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_transactions_tenant_id_purchase_intent_id",
                Transactions::Table,
                [Transactions::TenantId, Transactions::PurchaseIntentId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_transactions_tenant_id_status",
                Transactions::Table,
                [Transactions::TenantId, Transactions::Status],
            ))
            .await?;

        // refunds: one row per refund id, so a repeated refund is recognised
        // whether or not a budget window recorded it.
        manager
            .create_table(
                Table::create()
                    .table(Refunds::Table)
                    .col(uuid(Refunds::Id, false))
                    .col(uuid(Refunds::TenantId, false))
                    .col(uuid(Refunds::ReservationId, true))
                    .col(uuid(Refunds::TransactionId, true))
                    .col(string(Refunds::ProviderRefundId, widths::REFERENCE, false))
                    .col(money(Refunds::Amount, backend, false))
                    .col(currency(Refunds::Currency, false))
                    .col(timestamp(Refunds::CreatedAt, false))
                    .primary_key(Index::create().col(Refunds::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_refunds_tenant_id",
                        Refunds::Table,
                        Refunds::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refunds_reservation_id")
                            .from(Refunds::Table, (Refunds::TenantId, Refunds::ReservationId))
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_refunds_transaction_id")
                            .from(Refunds::Table, (Refunds::TenantId, Refunds::TransactionId))
                            .to(
                                Transactions::Table,
                                (Transactions::TenantId, Transactions::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_refunds_tenant_id_provider_refund_id",
                Refunds::Table,
                [Refunds::TenantId, Refunds::ProviderRefundId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_refunds_tenant_id_reservation_id",
                Refunds::Table,
                [Refunds::TenantId, Refunds::ReservationId],
            ))
            .await?;

        // merchants
        manager
            .create_table(
                Table::create()
                    .table(Merchants::Table)
                    .col(uuid(Merchants::Id, false))
                    .col(uuid(Merchants::TenantId, false))
                    .col(string(Merchants::Name, widths::MERCHANT, false))
                    .col(string(Merchants::NormalizedName, widths::MERCHANT, false))
                    .col(string(Merchants::Domain, widths::MERCHANT, true))
                    .col(timestamp(Merchants::FirstSeenAt, false))
                    .col(timestamp(Merchants::LastSeenAt, false))
                    .col(big_integer(Merchants::PurchaseCount, false))
                    .col(timestamp(Merchants::CreatedAt, false))
                    .col(timestamp(Merchants::UpdatedAt, false))
                    .primary_key(Index::create().col(Merchants::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_merchants_tenant_id",
                        Merchants::Table,
                        Merchants::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_merchants_tenant_id_normalized_name",
                Merchants::Table,
                [Merchants::TenantId, Merchants::NormalizedName],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_merchants_tenant_id_domain",
                Merchants::Table,
                [Merchants::TenantId, Merchants::Domain],
            ))
            .await?;

        // blocked_attempts
        manager
            .create_table(
                Table::create()
                    .table(BlockedAttempts::Table)
                    .col(uuid(BlockedAttempts::Id, false))
                    .col(uuid(BlockedAttempts::TenantId, false))
                    .col(uuid(BlockedAttempts::AgentId, true))
                    .col(uuid(BlockedAttempts::PurchaseIntentId, true))
                    .col(uuid(BlockedAttempts::PolicyId, true))
                    .col(uuid(BlockedAttempts::RunId, true))
                    .col(string(BlockedAttempts::ReasonCode, 64, false))
                    .col(text(BlockedAttempts::Reason, false))
                    .col(money(BlockedAttempts::Amount, backend, true))
                    .col(currency(BlockedAttempts::Currency, true))
                    .col(string(
                        BlockedAttempts::MerchantName,
                        widths::MERCHANT,
                        true,
                    ))
                    .col(timestamp(BlockedAttempts::CreatedAt, false))
                    .primary_key(Index::create().col(BlockedAttempts::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_blocked_attempts_tenant_id",
                        BlockedAttempts::Table,
                        BlockedAttempts::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_blocked_attempts_agent_id")
                            .from(
                                BlockedAttempts::Table,
                                (BlockedAttempts::TenantId, BlockedAttempts::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_blocked_attempts_purchase_intent_id")
                            .from(
                                BlockedAttempts::Table,
                                (BlockedAttempts::TenantId, BlockedAttempts::PurchaseIntentId),
                            )
                            .to(
                                PurchaseIntents::Table,
                                (PurchaseIntents::TenantId, PurchaseIntents::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_blocked_attempts_policy_id")
                            .from(
                                BlockedAttempts::Table,
                                (BlockedAttempts::TenantId, BlockedAttempts::PolicyId),
                            )
                            .to(Policies::Table, (Policies::TenantId, Policies::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_blocked_attempts_run_id")
                            .from(
                                BlockedAttempts::Table,
                                (BlockedAttempts::TenantId, BlockedAttempts::RunId),
                            )
                            .to(AgentRuns::Table, (AgentRuns::TenantId, AgentRuns::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(plain_index(
                "ix_blocked_attempts_tenant_id_created_at",
                BlockedAttempts::Table,
                [BlockedAttempts::TenantId, BlockedAttempts::CreatedAt],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_blocked_attempts_tenant_id_agent_id",
                BlockedAttempts::Table,
                [BlockedAttempts::TenantId, BlockedAttempts::AgentId],
            ))
            .await?;

        // usage_records
        manager
            .create_table(
                Table::create()
                    .table(UsageRecords::Table)
                    .col(uuid(UsageRecords::Id, false))
                    .col(uuid(UsageRecords::TenantId, false))
                    .col(uuid(UsageRecords::AgentId, true))
                    .col(uuid(UsageRecords::RunId, true))
                    .col(uuid(UsageRecords::ReservationId, true))
                    .col(string(UsageRecords::Provider, 50, false))
                    .col(string(UsageRecords::Model, 100, false))
                    .col(big_integer(UsageRecords::InputTokens, false))
                    .col(big_integer(UsageRecords::OutputTokens, false))
                    .col(money(UsageRecords::Cost, backend, false))
                    .col(currency(UsageRecords::Currency, false))
                    .col(boolean(UsageRecords::IsByok, false))
                    .col(timestamp(UsageRecords::OccurredAt, false))
                    .col(json(UsageRecords::Metadata, false))
                    .col(timestamp(UsageRecords::CreatedAt, false))
                    .primary_key(Index::create().col(UsageRecords::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_usage_records_tenant_id",
                        UsageRecords::Table,
                        UsageRecords::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_usage_records_agent_id")
                            .from(
                                UsageRecords::Table,
                                (UsageRecords::TenantId, UsageRecords::AgentId),
                            )
                            .to(Agents::Table, (Agents::TenantId, Agents::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_usage_records_run_id")
                            .from(
                                UsageRecords::Table,
                                (UsageRecords::TenantId, UsageRecords::RunId),
                            )
                            .to(AgentRuns::Table, (AgentRuns::TenantId, AgentRuns::Id)),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_usage_records_reservation_id")
                            .from(
                                UsageRecords::Table,
                                (UsageRecords::TenantId, UsageRecords::ReservationId),
                            )
                            .to(
                                Reservations::Table,
                                (Reservations::TenantId, Reservations::Id),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(plain_index(
                "ix_usage_records_tenant_id_run_id",
                UsageRecords::Table,
                [UsageRecords::TenantId, UsageRecords::RunId],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_usage_records_tenant_id_agent_id_occurred_at",
                UsageRecords::Table,
                [
                    UsageRecords::TenantId,
                    UsageRecords::AgentId,
                    UsageRecords::OccurredAt,
                ],
            ))
            .await?;

        // approval_decisions
        manager
            .create_table(
                Table::create()
                    .table(ApprovalDecisions::Table)
                    .col(uuid(ApprovalDecisions::Id, false))
                    .col(uuid(ApprovalDecisions::TenantId, false))
                    .col(uuid(ApprovalDecisions::ApprovalRequestId, false))
                    .col(uuid(ApprovalDecisions::ApproverId, false))
                    .col(string(ApprovalDecisions::Decision, 16, false))
                    .col(text(ApprovalDecisions::Comment, true))
                    .col(timestamp(ApprovalDecisions::CreatedAt, false))
                    .primary_key(Index::create().col(ApprovalDecisions::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_approval_decisions_tenant_id",
                        ApprovalDecisions::Table,
                        ApprovalDecisions::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_decisions_approval_request_id")
                            .from(
                                ApprovalDecisions::Table,
                                (
                                    ApprovalDecisions::TenantId,
                                    ApprovalDecisions::ApprovalRequestId,
                                ),
                            )
                            .to(
                                ApprovalRequests::Table,
                                (ApprovalRequests::TenantId, ApprovalRequests::Id),
                            ),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_approval_decisions_approver_id")
                            .from(
                                ApprovalDecisions::Table,
                                (ApprovalDecisions::TenantId, ApprovalDecisions::ApproverId),
                            )
                            .to(
                                TenantMembers::Table,
                                (TenantMembers::TenantId, TenantMembers::UserId),
                            ),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_approval_decisions_tenant_id_approval_request_id_approver_id",
                ApprovalDecisions::Table,
                [
                    ApprovalDecisions::TenantId,
                    ApprovalDecisions::ApprovalRequestId,
                    ApprovalDecisions::ApproverId,
                ],
            ))
            .await?;

        // audit_logs
        manager
            .create_table(
                Table::create()
                    .table(AuditLogs::Table)
                    .col(uuid(AuditLogs::Id, false))
                    .col(uuid(AuditLogs::TenantId, false))
                    .col(big_integer(AuditLogs::Seq, false))
                    .col(string(AuditLogs::ActorType, 32, false))
                    .col(uuid(AuditLogs::ActorId, true))
                    .col(string(AuditLogs::Action, 100, false))
                    .col(string(AuditLogs::ResourceType, 100, false))
                    .col(string(AuditLogs::ResourceId, 255, true))
                    .col(string(AuditLogs::Level, 16, false))
                    .col(string(AuditLogs::Status, 16, false))
                    .col(string(AuditLogs::CorrelationId, 255, true))
                    .col(string(AuditLogs::IpAddress, 45, true))
                    .col(string(AuditLogs::UserAgent, 500, true))
                    .col(text(AuditLogs::Message, true))
                    .col(json(AuditLogs::Details, false))
                    .col(string(AuditLogs::PrevHash, 64, false))
                    .col(string(AuditLogs::Hash, 64, false))
                    .col(timestamp(AuditLogs::CreatedAt, false))
                    .primary_key(Index::create().col(AuditLogs::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_audit_logs_tenant_id",
                        AuditLogs::Table,
                        AuditLogs::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_audit_logs_tenant_id_seq",
                AuditLogs::Table,
                [AuditLogs::TenantId, AuditLogs::Seq],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_audit_logs_tenant_id_created_at",
                AuditLogs::Table,
                [AuditLogs::TenantId, AuditLogs::CreatedAt],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_audit_logs_tenant_id_resource_type_resource_id",
                AuditLogs::Table,
                [
                    AuditLogs::TenantId,
                    AuditLogs::ResourceType,
                    AuditLogs::ResourceId,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_audit_logs_tenant_id_correlation_id",
                AuditLogs::Table,
                [AuditLogs::TenantId, AuditLogs::CorrelationId],
            ))
            .await?;

        // connections
        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .col(uuid(Connections::Id, false))
                    .col(uuid(Connections::TenantId, false))
                    .col(string(Connections::Provider, 50, false))
                    .col(string(Connections::Label, 255, false))
                    .col(string(Connections::Status, 16, false))
                    .col(string(Connections::AuthType, 16, false))
                    .col(string(Connections::ExternalAccountId, 255, true))
                    .col(text(Connections::ServerUrl, true))
                    .col(binary(Connections::EncryptedCredentials, false))
                    .col(integer(Connections::KeyVersion, false))
                    .col(timestamp(Connections::TokenExpiresAt, true))
                    .col(json(Connections::Metadata, false))
                    .col(uuid(Connections::CreatedBy, true))
                    .col(timestamp(Connections::CreatedAt, false))
                    .col(timestamp(Connections::UpdatedAt, false))
                    .primary_key(Index::create().col(Connections::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_connections_tenant_id",
                        Connections::Table,
                        Connections::TenantId,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_connections_created_by")
                            .from(Connections::Table, Connections::CreatedBy)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_connections_tenant_id_provider_label",
                Connections::Table,
                [
                    Connections::TenantId,
                    Connections::Provider,
                    Connections::Label,
                ],
            ))
            .await?;
        manager
            .create_index(plain_index(
                "ix_connections_tenant_id_status",
                Connections::Table,
                [Connections::TenantId, Connections::Status],
            ))
            .await?;

        // events: the transactional outbox
        manager
            .create_table(
                Table::create()
                    .table(Events::Table)
                    .col(uuid(Events::Id, false))
                    .col(uuid(Events::TenantId, false))
                    .col(big_integer(Events::Seq, false))
                    .col(string(Events::EventType, 64, false))
                    .col(integer(Events::Version, false))
                    .col(string(Events::SubjectType, 64, false))
                    .col(uuid(Events::SubjectId, true))
                    .col(string(Events::DedupKey, 255, true))
                    .col(json(Events::Payload, false))
                    .col(timestamp(Events::CreatedAt, false))
                    .primary_key(Index::create().col(Events::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_events_tenant_id",
                        Events::Table,
                        Events::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_events_tenant_id_seq",
                Events::Table,
                [Events::TenantId, Events::Seq],
            ))
            .await?;
        manager
            .create_index(unique_index(
                "ux_events_tenant_id_dedup_key",
                Events::Table,
                [Events::TenantId, Events::DedupKey],
            ))
            .await?;

        // event_consumers: one delivery cursor per tenant and consumer name
        manager
            .create_table(
                Table::create()
                    .table(EventConsumers::Table)
                    .col(uuid(EventConsumers::Id, false))
                    .col(uuid(EventConsumers::TenantId, false))
                    .col(string(EventConsumers::Name, 100, false))
                    .col(big_integer(EventConsumers::AckedSeq, false))
                    .col(big_integer(EventConsumers::DeliveredSeq, false))
                    .col(timestamp(EventConsumers::LeaseUntil, true))
                    .col(timestamp(EventConsumers::CreatedAt, false))
                    .col(timestamp(EventConsumers::UpdatedAt, false))
                    .primary_key(Index::create().col(EventConsumers::Id))
                    .foreign_key(&mut owned_by_tenant(
                        "fk_event_consumers_tenant_id",
                        EventConsumers::Table,
                        EventConsumers::TenantId,
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique_index(
                "ux_event_consumers_tenant_id_name",
                EventConsumers::Table,
                [EventConsumers::TenantId, EventConsumers::Name],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Children before parents: the reverse of creation order.
        for table in crate::TABLES.iter().rev() {
            manager
                .drop_table(
                    Table::drop()
                        .table(Alias::new(*table))
                        .if_exists()
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    Slug,
    Plan,
    PlanExpiresAt,
    IsActive,
    Timezone,
    DefaultCurrency,
    DefaultEffect,
    Settings,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    AuthProvider,
    ExternalId,
    Kind,
    IsActive,
    GdprConsentAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TenantMembers {
    Table,
    TenantId,
    UserId,
    SeatType,
    Status,
    InvitedBy,
    JoinedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    IsBuiltin,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Permissions {
    Table,
    Id,
    Code,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RolePermissions {
    Table,
    TenantId,
    RoleId,
    PermissionId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum MemberRoles {
    Table,
    TenantId,
    UserId,
    RoleId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    Id,
    TenantId,
    Name,
    Slug,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Projects {
    Table,
    Id,
    TenantId,
    Name,
    Slug,
    Description,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Agents {
    Table,
    Id,
    TenantId,
    TeamId,
    ProjectId,
    Name,
    Slug,
    Description,
    Status,
    CreatedBy,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AgentApiKeys {
    Table,
    Id,
    TenantId,
    AgentId,
    Prefix,
    KeyHash,
    Label,
    CreatedBy,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Policies {
    Table,
    Id,
    TenantId,
    Name,
    Description,
    Scope,
    Effect,
    Priority,
    Enabled,
    ReasonCode,
    Message,
    Conditions,
    Approval,
    Version,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Budgets {
    Table,
    Id,
    TenantId,
    Name,
    ScopeKind,
    ScopeId,
    Currency,
    Period,
    LimitAmount,
    IsActive,
    AlertThresholds,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BudgetWindows {
    Table,
    Id,
    TenantId,
    BudgetId,
    PeriodStart,
    PeriodEnd,
    LimitAmount,
    Spent,
    Reserved,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AgentRuns {
    Table,
    Id,
    TenantId,
    AgentId,
    StartedBy,
    Description,
    Status,
    Currency,
    MaxCost,
    MaxRounds,
    Caps,
    Cost,
    TotalTokens,
    Rounds,
    StartedAt,
    CompletedAt,
    KilledAt,
    KilledBy,
    KillReason,
    Metadata,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Reservations {
    Table,
    Id,
    TenantId,
    AgentId,
    RunId,
    PurchaseIntentId,
    IdempotencyKey,
    Currency,
    Amount,
    CapturedAmount,
    RefundedAmount,
    Status,
    ExpiresAt,
    CapturedAt,
    ReleasedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApprovalRequests {
    Table,
    Id,
    TenantId,
    SubjectKind,
    SubjectId,
    AgentId,
    ReservationId,
    Rule,
    RequiredApprovals,
    ApproverRoleId,
    EligibleApprovers,
    EscalationRoleId,
    Status,
    Reasons,
    RequestedBy,
    ExpiresAt,
    EscalateAt,
    EscalatedTo,
    DecidedAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum PurchaseIntents {
    Table,
    Id,
    TenantId,
    AgentId,
    TeamId,
    ProjectId,
    RunId,
    IdempotencyKey,
    Amount,
    Currency,
    MerchantName,
    MerchantDomain,
    MerchantUrl,
    Mcc,
    Description,
    Metadata,
    Status,
    RejectionCode,
    RejectionReason,
    Reasons,
    ReservationId,
    ApprovalRequestId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ReservationLines {
    Table,
    Id,
    TenantId,
    ReservationId,
    BudgetId,
    WindowId,
    Amount,
    CapturedAmount,
    RefundedAmount,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    TenantId,
    BudgetId,
    WindowId,
    ReservationId,
    EntryType,
    Bucket,
    Direction,
    Amount,
    Currency,
    Category,
    Reference,
    Description,
    OccurredAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum VirtualCards {
    Table,
    Id,
    TenantId,
    PurchaseIntentId,
    AgentId,
    Provider,
    ProviderCardId,
    #[sea_orm(iden = "last4")]
    Last4,
    ExpMonth,
    ExpYear,
    HardLimit,
    Currency,
    Status,
    ExpiresAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Transactions {
    Table,
    Id,
    TenantId,
    PurchaseIntentId,
    VirtualCardId,
    ReservationId,
    ProviderChargeId,
    ProviderAuthorizationId,
    Amount,
    Currency,
    MerchantName,
    Mcc,
    Status,
    RefundedAmount,
    Attention,
    SettledAt,
    RawEvent,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Refunds {
    Table,
    Id,
    TenantId,
    ReservationId,
    TransactionId,
    ProviderRefundId,
    Amount,
    Currency,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Merchants {
    Table,
    Id,
    TenantId,
    Name,
    NormalizedName,
    Domain,
    FirstSeenAt,
    LastSeenAt,
    PurchaseCount,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BlockedAttempts {
    Table,
    Id,
    TenantId,
    AgentId,
    PurchaseIntentId,
    PolicyId,
    RunId,
    ReasonCode,
    Reason,
    Amount,
    Currency,
    MerchantName,
    CreatedAt,
}

#[derive(DeriveIden)]
enum UsageRecords {
    Table,
    Id,
    TenantId,
    AgentId,
    RunId,
    ReservationId,
    Provider,
    Model,
    InputTokens,
    OutputTokens,
    Cost,
    Currency,
    IsByok,
    OccurredAt,
    Metadata,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApprovalDecisions {
    Table,
    Id,
    TenantId,
    ApprovalRequestId,
    ApproverId,
    Decision,
    Comment,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Events {
    Table,
    Id,
    TenantId,
    Seq,
    EventType,
    Version,
    SubjectType,
    SubjectId,
    DedupKey,
    Payload,
    CreatedAt,
}

#[derive(DeriveIden)]
enum EventConsumers {
    Table,
    Id,
    TenantId,
    Name,
    AckedSeq,
    DeliveredSeq,
    LeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum AuditLogs {
    Table,
    Id,
    TenantId,
    Seq,
    ActorType,
    ActorId,
    Action,
    ResourceType,
    ResourceId,
    Level,
    Status,
    CorrelationId,
    IpAddress,
    UserAgent,
    Message,
    Details,
    PrevHash,
    Hash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    TenantId,
    Provider,
    Label,
    Status,
    AuthType,
    ExternalAccountId,
    ServerUrl,
    EncryptedCredentials,
    KeyVersion,
    TokenExpiresAt,
    Metadata,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}
