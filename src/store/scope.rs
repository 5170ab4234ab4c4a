//! [`TenantScope`]: every repository of one tenant.

use crate::id::TenantId;
use crate::store::Store;
use crate::store::agent_keys::AgentKeys;
use crate::store::agents::Agents;
use crate::store::blocked_attempts::BlockedAttempts;
use crate::store::budgets::Budgets;
use crate::store::cards::Cards;
use crate::store::members::Members;
use crate::store::merchants::Merchants;
use crate::store::repo::Ctx;
use crate::store::reservations::Reservations;
use crate::store::roles::Roles;
use crate::store::teams::{Projects, Teams};
use crate::store::transactions::Transactions;

/// Everything bursar knows about one tenant, and nothing about any other.
///
/// A scope carries its tenant's id, so no method takes one: every query it
/// issues is filtered by that id, and an id of another tenant's row behaves
/// exactly like an id that does not exist ([`Error::NotFound`](crate::Error::NotFound)).
#[derive(Clone, Debug)]
pub struct TenantScope {
    store: Store,
    tenant: TenantId,
}

impl TenantScope {
    pub(crate) fn new(store: Store, tenant: TenantId) -> Self {
        Self { store, tenant }
    }

    /// The tenant this scope is confined to.
    #[must_use]
    pub fn tenant_id(&self) -> TenantId {
        self.tenant
    }

    /// The store behind this scope.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx::new(self.store.connection(), self.tenant, self.store.clock())
    }

    /// Agents: create, look up, pause and suspend.
    #[must_use]
    pub fn agents(&self) -> Agents<'_> {
        Agents::new(self.ctx())
    }

    /// Teams.
    #[must_use]
    pub fn teams(&self) -> Teams<'_> {
        Teams::new(self.ctx())
    }

    /// Projects.
    #[must_use]
    pub fn projects(&self) -> Projects<'_> {
        Projects::new(self.ctx())
    }

    /// Budget definitions and their current balances.
    #[must_use]
    pub fn budgets(&self) -> Budgets<'_> {
        Budgets::new(self.ctx())
    }

    /// The tamper-evident audit log: read, verify, and record the host's own entries.
    #[must_use]
    pub fn audit_log(&self) -> crate::audit::AuditLog<'_> {
        crate::audit::AuditLog::new(self.ctx())
    }

    /// Reservations: reserve, capture, release, expire, refund, reconcile.
    #[must_use]
    pub fn reservations(&self) -> Reservations<'_> {
        Reservations::new(self.ctx())
    }

    /// Members: which users belong to the tenant, on which seat, in which state.
    #[must_use]
    pub fn members(&self) -> Members<'_> {
        Members::new(self.ctx())
    }

    /// Roles, their permissions, role assignments and the `can` check.
    #[must_use]
    pub fn roles(&self) -> Roles<'_> {
        Roles::new(self.ctx())
    }

    /// Agent API keys: issue, revoke, list, verify.
    #[must_use]
    pub fn agent_keys(&self) -> AgentKeys<'_> {
        AgentKeys::new(self.ctx())
    }

    /// Known merchants (new-vendor detection).
    #[must_use]
    pub fn merchants(&self) -> Merchants<'_> {
        Merchants::new(self.ctx())
    }

    /// Rejected requests, by reason code and time.
    #[must_use]
    pub fn blocked_attempts(&self) -> BlockedAttempts<'_> {
        BlockedAttempts::new(self.ctx())
    }

    /// Virtual cards (read side).
    #[must_use]
    pub fn cards(&self) -> Cards<'_> {
        Cards::new(self.ctx())
    }

    /// Card transactions (read side).
    #[must_use]
    pub fn transactions(&self) -> Transactions<'_> {
        Transactions::new(self.ctx())
    }
}
