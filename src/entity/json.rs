//! Typed JSON values shared by several tables.

use std::collections::BTreeMap;

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Serialize};

/// Host-defined key/value labels (`{"env": "prod", "cost_center": "42"}`),
/// stored as a JSON object. Policies can match on them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct Metadata(pub BTreeMap<String, String>);

/// Every reason of a decision, in the order the decision listed them, stored
/// as a JSON array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct ReasonList(pub Vec<crate::policy::Reason>);

/// A set of user ids, ascending, stored as a JSON array (the eligible
/// approvers of an approval request).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct UserIdList(pub Vec<crate::id::UserId>);

/// The alert thresholds of a budget that sets none: 50, 80 and 100 percent.
pub const DEFAULT_ALERT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// Percentages of a budget's limit (ascending, 1 to 1,000: above 100 for
/// budgets that may be overspent), stored as a JSON array.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, FromJsonQueryResult)]
#[serde(transparent)]
pub struct AlertThresholds(pub Vec<u32>);
