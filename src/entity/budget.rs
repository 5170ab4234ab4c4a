//! `budgets`: a budget definition: a limit per period on what a scope may spend in one currency. The running totals live in `budget_windows`.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

use crate::budget::{Period, Scope};
use crate::id::{BudgetId, TenantId};
use crate::money::{Amount, Currency};

/// A budget definition: a limit per period on what a scope may spend in one currency. The running totals live in `budget_windows`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "budgets")]
pub struct Model {
    /// Primary key.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: BudgetId,
    /// The owning tenant.
    pub tenant_id: TenantId,
    /// Display name.
    #[sea_orm(column_type = "String(StringLen::N(255))")]
    pub name: String,
    /// Whose spending is capped.
    pub scope_kind: ScopeKind,
    /// The team, project, agent or run id; `None` for a tenant-wide budget.
    pub scope_id: Option<Uuid>,
    /// Only requests in this currency count against the budget.
    pub currency: Currency,
    /// How often the budget resets.
    pub period: Period,
    /// The most that may be spent plus reserved per period.
    pub limit_amount: Amount,
    /// Inactive budgets are not applied.
    pub is_active: bool,
    /// The percentages of the limit whose crossing is announced as
    /// `budget.threshold_crossed`, once per window each; `None`:
    /// [`DEFAULT_ALERT_THRESHOLDS`](super::json::DEFAULT_ALERT_THRESHOLDS).
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub alert_thresholds: Option<super::json::AlertThresholds>,
    /// When the row was created (UTC).
    pub created_at: DateTimeUtc,
    /// When the row was last changed (UTC).
    pub updated_at: DateTimeUtc,
}

/// Relations of `budgets`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `tenant_id` → `tenants`.
    #[sea_orm(
        belongs_to = "super::tenant::Entity",
        from = "Column::TenantId",
        to = "super::tenant::Column::Id"
    )]
    Tenant,
    /// Rows of `budget_windows` pointing here.
    #[sea_orm(has_many = "super::budget_window::Entity")]
    BudgetWindows,
    /// Rows of `reservation_lines` pointing here.
    #[sea_orm(has_many = "super::reservation_line::Entity")]
    ReservationLines,
    /// Rows of `ledger_entries` pointing here.
    #[sea_orm(has_many = "super::ledger_entry::Entity")]
    LedgerEntries,
}

impl Related<super::tenant::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Tenant.def()
    }
}

impl Related<super::budget_window::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::BudgetWindows.def()
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

impl ActiveModelBehavior for ActiveModel {}

/// The stored kind of a budget scope ([`crate::budget::Scope`]).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(16))")]
#[serde(rename_all = "snake_case")]
pub enum ScopeKind {
    /// The whole tenant. Stored as `tenant`.
    #[sea_orm(string_value = "tenant")]
    Tenant,
    /// One team. Stored as `team`.
    #[sea_orm(string_value = "team")]
    Team,
    /// One project. Stored as `project`.
    #[sea_orm(string_value = "project")]
    Project,
    /// One agent. Stored as `agent`.
    #[sea_orm(string_value = "agent")]
    Agent,
    /// One agent run. Stored as `run`.
    #[sea_orm(string_value = "run")]
    Run,
}

impl From<&Scope> for ScopeKind {
    fn from(scope: &Scope) -> Self {
        match scope {
            Scope::Tenant => ScopeKind::Tenant,
            Scope::Team(_) => ScopeKind::Team,
            Scope::Project(_) => ScopeKind::Project,
            Scope::Agent(_) => ScopeKind::Agent,
            Scope::Run(_) => ScopeKind::Run,
        }
    }
}

/// The `(scope_kind, scope_id)` columns that store `scope`.
#[must_use]
pub fn scope_columns(scope: &Scope) -> (ScopeKind, Option<Uuid>) {
    let id = match scope {
        Scope::Tenant => None,
        Scope::Team(id) => Some(id.as_uuid()),
        Scope::Project(id) => Some(id.as_uuid()),
        Scope::Agent(id) => Some(id.as_uuid()),
        Scope::Run(id) => Some(id.as_uuid()),
    };
    (ScopeKind::from(scope), id)
}

impl Model {
    /// The budget's scope, rebuilt from `scope_kind` and `scope_id`.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming `scope_id` when it is missing for a
    /// non-tenant scope or present for a tenant scope.
    pub fn scope(&self) -> crate::Result<Scope> {
        let invalid = |reason: &str| crate::Error::Invalid {
            field: "scope_id".to_owned(),
            reason: format!("budget {}: {reason}", self.id),
        };
        let id = self.scope_id;
        match (self.scope_kind, id) {
            (ScopeKind::Tenant, None) => Ok(Scope::Tenant),
            (ScopeKind::Tenant, Some(_)) => Err(invalid("a tenant-wide budget has no scope id")),
            (_, None) => Err(invalid("missing for a team, project, agent or run budget")),
            (ScopeKind::Team, Some(id)) => Ok(Scope::Team(id.into())),
            (ScopeKind::Project, Some(id)) => Ok(Scope::Project(id.into())),
            (ScopeKind::Agent, Some(id)) => Ok(Scope::Agent(id.into())),
            (ScopeKind::Run, Some(id)) => Ok(Scope::Run(id.into())),
        }
    }
}
