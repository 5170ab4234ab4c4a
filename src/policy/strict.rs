//! Strict reading of policy JSON: a depth bound checked without recursion
//! before a value is deserialized, and a reading form of [`Condition`] that
//! refuses unknown fields on every kind, the field-less ones included.
//!
//! serde ignores extra fields next to the tag of a unit variant
//! (`{"type": "always", "extra": 1}`) even under `deny_unknown_fields`, so
//! [`Condition`] is read through [`ConditionRepr`], whose field-less kinds
//! are empty structs, and converted.

use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

use super::limits::MAX_POLICY_JSON_DEPTH;
use super::model::{BudgetScopeKind, Condition, MccSpec};
use super::request::ActionKind;
use crate::budget::Period;
use crate::money::{Currency, decimal_text};

/// Whether `value` nests arrays and objects more than `limit` deep (a
/// scalar is 0, `[]` and `[1]` are 1, `[{}]` is 2), counted with an explicit
/// stack: no input can overflow the call stack here.
fn depth_exceeds(value: &Value, limit: usize) -> bool {
    let mut stack = vec![(value, 1usize)];
    while let Some((v, depth)) = stack.pop() {
        let children: &mut dyn Iterator<Item = &Value> = match v {
            Value::Array(items) => &mut items.iter(),
            Value::Object(map) => &mut map.values(),
            _ => continue,
        };
        if depth > limit {
            return true;
        }
        stack.extend(children.map(|c| (c, depth + 1)));
    }
    false
}

/// Drops a value of any depth without recursion (the derived drop of
/// [`Value`] recurses once per level).
fn drop_flat(value: Value) {
    let mut stack = vec![value];
    while let Some(mut v) = stack.pop() {
        match &mut v {
            Value::Array(items) => stack.append(items),
            Value::Object(map) => stack.extend(std::mem::take(map).into_iter().map(|(_, v)| v)),
            _ => {}
        }
    }
}

/// Refuses (and drops without recursion) a value nested deeper than
/// [`MAX_POLICY_JSON_DEPTH`], the bound serde_json puts on JSON text.
pub(crate) fn check_depth(value: Value) -> crate::Result<Value> {
    if depth_exceeds(&value, MAX_POLICY_JSON_DEPTH) {
        drop_flat(value);
        return Err(crate::Error::InvalidPolicy {
            path: "$".into(),
            reason: format!("nested deeper than {MAX_POLICY_JSON_DEPTH} levels of JSON"),
        });
    }
    Ok(value)
}

/// The JSON form of [`Condition`], read strictly; see the module docs.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ConditionRepr {
    Always {},
    All {
        of: Vec<Condition>,
    },
    Any {
        of: Vec<Condition>,
    },
    Not {
        condition: Box<Condition>,
    },
    AmountAbove {
        #[serde(with = "decimal_text")]
        amount: Decimal,
        currency: Currency,
    },
    AmountAtLeast {
        #[serde(with = "decimal_text")]
        amount: Decimal,
        currency: Currency,
    },
    AmountBelow {
        #[serde(with = "decimal_text")]
        amount: Decimal,
        currency: Currency,
    },
    CurrencyIn {
        currencies: Vec<Currency>,
    },
    MerchantIn {
        merchants: Vec<String>,
    },
    MerchantNotIn {
        merchants: Vec<String>,
    },
    MccIn {
        codes: Vec<MccSpec>,
    },
    MccNotIn {
        codes: Vec<MccSpec>,
    },
    ActionIn {
        actions: Vec<ActionKind>,
    },
    ToolIn {
        tools: Vec<String>,
    },
    ToolNotIn {
        tools: Vec<String>,
    },
    ModelIn {
        models: Vec<String>,
    },
    TimeOfDay {
        start: String,
        end: String,
        #[serde(default)]
        timezone: Option<String>,
    },
    DayOfWeek {
        days: Vec<String>,
        #[serde(default)]
        timezone: Option<String>,
    },
    NewVendor {},
    VelocityAbove {
        window_seconds: u32,
        max: u32,
    },
    BudgetExceeded {
        #[serde(default)]
        period: Option<Period>,
        #[serde(default)]
        scope: Option<BudgetScopeKind>,
    },
    MetadataEquals {
        key: String,
        value: String,
    },
    MetadataNumber {
        key: String,
        op: super::model::NumberOp,
        #[serde(with = "decimal_text")]
        value: Decimal,
    },
    Writes {},
    FieldsIn {
        fields: Vec<String>,
    },
}

impl From<ConditionRepr> for Condition {
    fn from(r: ConditionRepr) -> Self {
        use ConditionRepr as R;
        match r {
            R::Always {} => Self::Always,
            R::All { of } => Self::All { of },
            R::Any { of } => Self::Any { of },
            R::Not { condition } => Self::Not { condition },
            R::AmountAbove { amount, currency } => Self::AmountAbove { amount, currency },
            R::AmountAtLeast { amount, currency } => Self::AmountAtLeast { amount, currency },
            R::AmountBelow { amount, currency } => Self::AmountBelow { amount, currency },
            R::CurrencyIn { currencies } => Self::CurrencyIn { currencies },
            R::MerchantIn { merchants } => Self::MerchantIn { merchants },
            R::MerchantNotIn { merchants } => Self::MerchantNotIn { merchants },
            R::MccIn { codes } => Self::MccIn { codes },
            R::MccNotIn { codes } => Self::MccNotIn { codes },
            R::ActionIn { actions } => Self::ActionIn { actions },
            R::ToolIn { tools } => Self::ToolIn { tools },
            R::ToolNotIn { tools } => Self::ToolNotIn { tools },
            R::ModelIn { models } => Self::ModelIn { models },
            R::TimeOfDay {
                start,
                end,
                timezone,
            } => Self::TimeOfDay {
                start,
                end,
                timezone,
            },
            R::DayOfWeek { days, timezone } => Self::DayOfWeek { days, timezone },
            R::NewVendor {} => Self::NewVendor,
            R::VelocityAbove {
                window_seconds,
                max,
            } => Self::VelocityAbove {
                window_seconds,
                max,
            },
            R::BudgetExceeded { period, scope } => Self::BudgetExceeded { period, scope },
            R::MetadataEquals { key, value } => Self::MetadataEquals { key, value },
            R::MetadataNumber { key, op, value } => Self::MetadataNumber { key, op, value },
            R::Writes {} => Self::Writes,
            R::FieldsIn { fields } => Self::FieldsIn { fields },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn depth_is_counted_per_level() {
        assert!(!depth_exceeds(&json!(1), 0));
        assert!(depth_exceeds(&json!([]), 0));
        assert!(!depth_exceeds(&json!([1]), 1));
        assert!(depth_exceeds(&json!([[]]), 1));
        assert!(!depth_exceeds(&json!({"a": [1, {"b": 2}]}), 3));
        assert!(depth_exceeds(&json!({"a": [1, {"b": [2]}]}), 3));
        assert!(!depth_exceeds(&json!({"a": [1, {"b": [2]}]}), 4));
        // Every branch is looked at, not only the last.
        assert!(depth_exceeds(&json!([[[]], 1]), 2));
        assert!(depth_exceeds(&json!({"a": [[]], "b": 1}), 2));
    }
}
