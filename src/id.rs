//! Typed identifiers.
//!
//! Every row is keyed by a UUID v7 (time-ordered, so new rows land at the end of
//! B-tree indexes). Each table has its own newtype so that an agent id can never
//! be passed where a tenant id is wanted; the compiler refuses it.
//!
//! ```
//! use bursar::id::{AgentId, TenantId};
//! let tenant = TenantId::new();
//! let agent = AgentId::new();
//! assert_ne!(tenant.as_uuid(), agent.as_uuid());
//! // let wrong: TenantId = agent; // does not compile
//! let parsed: AgentId = agent.to_string().parse().unwrap();
//! assert_eq!(parsed, agent);
//! ```

use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $entity:literal) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            DeriveValueType,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered (UUID v7) identifier.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// Wraps an existing UUID.
            #[must_use]
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            #[must_use]
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// The entity this identifier names, as used in error messages.
            pub const ENTITY: &'static str = $entity;
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Display::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| crate::Error::Invalid {
                    field: concat!($entity, "_id").to_owned(),
                    reason: format!("{s:?} is not a UUID"),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }
    };
}

define_id!(/// Identifies a tenant (an organization).
    TenantId, "tenant");
define_id!(/// Identifies a user (a global identity that may belong to several tenants).
    UserId, "user");
define_id!(/// Identifies a role within a tenant.
    RoleId, "role");
define_id!(/// Identifies a permission code.
    PermissionId, "permission");
define_id!(/// Identifies a team.
    TeamId, "team");
define_id!(/// Identifies a project.
    ProjectId, "project");
define_id!(/// Identifies an AI agent.
    AgentId, "agent");
define_id!(/// Identifies an agent API key.
    ApiKeyId, "agent_api_key");
define_id!(/// Identifies a policy.
    PolicyId, "policy");
define_id!(/// Identifies a budget definition.
    BudgetId, "budget");
define_id!(/// Identifies one period instance of a budget.
    BudgetWindowId, "budget_window");
define_id!(/// Identifies a reservation (a hold on one or more budget windows).
    ReservationId, "reservation");
define_id!(/// Identifies one window line of a reservation.
    ReservationLineId, "reservation_line");
define_id!(/// Identifies a ledger entry.
    LedgerEntryId, "ledger_entry");
define_id!(/// Identifies a purchase intent.
    PurchaseIntentId, "purchase_intent");
define_id!(/// Identifies a virtual card.
    VirtualCardId, "virtual_card");
define_id!(/// Identifies a card transaction.
    TransactionId, "transaction");
define_id!(/// Identifies a recorded refund.
    RefundId, "refund");
define_id!(/// Identifies a model price.
    ModelPriceId, "model_price");
define_id!(/// Identifies a known merchant.
    MerchantId, "merchant");
define_id!(/// Identifies a blocked attempt.
    BlockedAttemptId, "blocked_attempt");
define_id!(/// Identifies an agent run (a unit of agent work).
    RunId, "agent_run");
define_id!(/// Identifies a usage record.
    UsageRecordId, "usage_record");
define_id!(/// Identifies an approval request.
    ApprovalRequestId, "approval_request");
define_id!(/// Identifies an approver's decision.
    ApprovalDecisionId, "approval_decision");
define_id!(/// Identifies an audit log entry.
    AuditLogId, "audit_log");
define_id!(/// Identifies an event of the outbox.
    EventId, "event");
define_id!(/// Identifies an event consumer's cursor.
    EventConsumerId, "event_consumer");
define_id!(/// Identifies a connection to an external provider.
    ConnectionId, "connection");
