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
