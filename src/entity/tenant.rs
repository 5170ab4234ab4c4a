//! `tenants`: a tenant: one organization whose agents bursar governs. Every other row except users and permission codes belongs to exactly one tenant.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::id::TenantId;
use crate::money::Currency;

/// A tenant: one organization whose agents bursar governs. Every other row except users and permission codes belongs to exactly one tenant.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: TenantId,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// URL-safe identifier, unique across tenants.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub slug: String,
    /// The host's plan name, e.g. `trial` or `pro`.
    #[sea_orm(column_type = "String(StringLen::N(50))")]
    pub plan: String,
    /// When the current plan (e.g. a trial) ends. For the host's own use:
    /// bursar writes `None` when it creates a tenant and never reads it.
    pub plan_expires_at: Option<DateTimeUtc>,
    /// Soft-delete / suspension flag; an inactive tenant's requests are refused.
    pub is_active: bool,
    /// IANA time-zone name (e.g. `Europe/Berlin`) in which budget periods are computed.
    #[sea_orm(column_type = "String(StringLen::N(64))")]
    pub timezone: String,
    /// The currency recorded on the purchase intent of an action that
    /// carries no cost (its amount is zero in this currency).
    pub default_currency: Currency,
    /// What happens when no policy matches a request (deny unless set otherwise).
    pub default_effect: crate::policy::DefaultEffect,
    /// Typed tenant settings.
    #[sea_orm(column_type = "JsonBinary")]
    pub settings: TenantSettings,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `tenants`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// Rows of `tenant_members` pointing here.
    #[sea_orm(has_many = "super::tenant_member::Entity")]
    TenantMembers,
    /// Rows of `roles` pointing here.
    #[sea_orm(has_many = "super::role::Entity")]
    Roles,
    /// Rows of `role_permissions` pointing here.
    #[sea_orm(has_many = "super::role_permission::Entity")]
    RolePermissions,
    /// Rows of `member_roles` pointing here.
    #[sea_orm(has_many = "super::member_role::Entity")]
    MemberRoles,
    /// Rows of `teams` pointing here.
    #[sea_orm(has_many = "super::team::Entity")]
    Teams,
    /// Rows of `projects` pointing here.
    #[sea_orm(has_many = "super::project::Entity")]
    Projects,
    /// Rows of `agents` pointing here.
    #[sea_orm(has_many = "super::agent::Entity")]
    Agents,
    /// Rows of `agent_api_keys` pointing here.
    #[sea_orm(has_many = "super::agent_api_key::Entity")]
    AgentApiKeys,
    /// Rows of `policies` pointing here.
    #[sea_orm(has_many = "super::policy::Entity")]
    Policies,
    /// Rows of `budgets` pointing here.
    #[sea_orm(has_many = "super::budget::Entity")]
    Budgets,
    /// Rows of `budget_windows` pointing here.
    #[sea_orm(has_many = "super::budget_window::Entity")]
    BudgetWindows,
    /// Rows of `agent_runs` pointing here.
    #[sea_orm(has_many = "super::agent_run::Entity")]
    AgentRuns,
    /// Rows of `reservations` pointing here.
    #[sea_orm(has_many = "super::reservation::Entity")]
    Reservations,
    /// Rows of `approval_requests` pointing here.
    #[sea_orm(has_many = "super::approval_request::Entity")]
    ApprovalRequests,
    /// Rows of `purchase_intents` pointing here.
    #[sea_orm(has_many = "super::purchase_intent::Entity")]
    PurchaseIntents,
    /// Rows of `reservation_lines` pointing here.
    #[sea_orm(has_many = "super::reservation_line::Entity")]
    ReservationLines,
    /// Rows of `ledger_entries` pointing here.
    #[sea_orm(has_many = "super::ledger_entry::Entity")]
    LedgerEntries,
    /// Rows of `virtual_cards` pointing here.
    #[sea_orm(has_many = "super::virtual_card::Entity")]
    VirtualCards,
    /// Rows of `transactions` pointing here.
    #[sea_orm(has_many = "super::transaction::Entity")]
    Transactions,
    /// Rows of `merchants` pointing here.
    #[sea_orm(has_many = "super::merchant::Entity")]
    Merchants,
    /// Rows of `blocked_attempts` pointing here.
    #[sea_orm(has_many = "super::blocked_attempt::Entity")]
    BlockedAttempts,
    /// Rows of `usage_records` pointing here.
    #[sea_orm(has_many = "super::usage_record::Entity")]
    UsageRecords,
    /// Rows of `approval_decisions` pointing here.
    #[sea_orm(has_many = "super::approval_decision::Entity")]
    ApprovalDecisions,
    /// Rows of `audit_logs` pointing here.
    #[sea_orm(has_many = "super::audit_log::Entity")]
    AuditLogs,
    /// Rows of `connections` pointing here.
    #[sea_orm(has_many = "super::connection::Entity")]
    Connections,
}

impl Related<super::tenant_member::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::TenantMembers.def()
    }
}

impl Related<super::role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Roles.def()
    }
}

impl Related<super::role_permission::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::RolePermissions.def()
    }
}

impl Related<super::member_role::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MemberRoles.def()
    }
}

impl Related<super::team::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Teams.def()
    }
}

impl Related<super::project::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Projects.def()
    }
}

impl Related<super::agent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Agents.def()
    }
}

impl Related<super::agent_api_key::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentApiKeys.def()
    }
}

impl Related<super::policy::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Policies.def()
    }
}

impl Related<super::budget::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Budgets.def()
    }
}

impl Related<super::budget_window::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BudgetWindows.def()
    }
}

impl Related<super::agent_run::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AgentRuns.def()
    }
}

impl Related<super::reservation::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Reservations.def()
    }
}

impl Related<super::approval_request::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalRequests.def()
    }
}

impl Related<super::purchase_intent::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::PurchaseIntents.def()
    }
}

impl Related<super::reservation_line::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ReservationLines.def()
    }
}

impl Related<super::ledger_entry::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::LedgerEntries.def()
    }
}

impl Related<super::virtual_card::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VirtualCards.def()
    }
}

impl Related<super::transaction::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Transactions.def()
    }
}

impl Related<super::merchant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Merchants.def()
    }
}

impl Related<super::blocked_attempt::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BlockedAttempts.def()
    }
}

impl Related<super::usage_record::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::UsageRecords.def()
    }
}

impl Related<super::approval_decision::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ApprovalDecisions.def()
    }
}

impl Related<super::audit_log::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AuditLogs.def()
    }
}

impl Related<super::connection::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Connections.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}

/// A tenant's settings, stored as JSON in `tenants.settings`. Every field is
/// optional so that settings written by older versions keep loading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(default)]
pub struct TenantSettings {
    /// How long an approved reservation is held before it expires, in seconds
    /// (`None`: bursar's default).
    pub reservation_ttl_secs: Option<u32>,
    /// How long an approval request waits for votes, in seconds (`None`: bursar's default).
    pub approval_ttl_secs: Option<u32>,
    /// Stored for the host; `authorize` does not read it. To require approval
    /// for every merchant the tenant has not bought from before, add a
    /// `new_vendor` policy, e.g. with
    /// [`SpendingControls::flag_all_new_vendors`](crate::policy::SpendingControls::flag_all_new_vendors).
    pub flag_all_new_vendors: bool,
    /// Where the host sends approval and budget notifications, if it sends
    /// any; bursar itself sends nothing.
    pub notification_email: Option<String>,
    /// Every agent action must name an active run of its agent; without one
    /// it is rejected with `RUN_REQUIRED`.
    pub require_run: bool,
    /// LLM calls made with the tenant's own provider key (BYOK) are metered
    /// for tokens and rounds but hold and spend nothing on money budgets.
    pub byok_exempt_from_budgets: bool,
    /// Separation of duties: the member who created an agent may not approve
    /// that agent's requests.
    pub separate_approver: bool,
}
