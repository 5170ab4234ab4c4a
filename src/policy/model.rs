//! Policies as they are written and stored: serde types, validated on parse.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::limits::MAX_POLICY_JSON_LEN;
use crate::budget::Period;
use crate::id::{AgentId, PolicyId, ProjectId, TeamId};
use crate::money::Currency;

/// What a matching policy does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Effect {
    /// Approve the request (unless a `deny` or `require_approval` also matches).
    Allow,
    /// Reject the request.
    Deny,
    /// Ask a human (unless a `deny` also matches).
    RequireApproval,
}

impl Effect {
    /// `allow`, `deny` or `require_approval`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
            Effect::RequireApproval => "require_approval",
        }
    }
}

/// What happens to a request that no `allow` policy matched (and no `deny` or
/// `require_approval` policy either): the tenant's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultEffect {
    /// Approve.
    Allow,
    /// Reject with [`NO_MATCHING_POLICY`](crate::codes::NO_MATCHING_POLICY).
    #[default]
    Deny,
}

/// Whose requests a policy applies to.
///
/// JSON: `{"kind": "tenant"}` or
/// `{"kind": "principals", "teams": [...], "projects": [...], "agents": [...]}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyScope {
    /// Every request of the tenant.
    #[default]
    Tenant,
    /// Requests whose agent, the agent's team or the request's project is listed.
    /// At least one id is required.
    Principals {
        /// Teams whose agents the policy covers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        teams: Vec<TeamId>,
        /// Projects whose requests the policy covers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        projects: Vec<ProjectId>,
        /// Agents the policy covers.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        agents: Vec<AgentId>,
    },
}

impl PolicyScope {
    /// A scope of one agent.
    #[must_use]
    pub fn agent(agent: AgentId) -> Self {
        Self::Principals {
            teams: Vec::new(),
            projects: Vec::new(),
            agents: vec![agent],
        }
    }

    /// A scope of one team.
    #[must_use]
    pub fn team(team: TeamId) -> Self {
        Self::Principals {
            teams: vec![team],
            projects: Vec::new(),
            agents: Vec::new(),
        }
    }

    /// A scope of one project.
    #[must_use]
    pub fn project(project: ProjectId) -> Self {
        Self::Principals {
            teams: Vec::new(),
            projects: vec![project],
            agents: Vec::new(),
        }
    }
}

/// One entry of an MCC list: a code (`7995` or `"7995"`) or an inclusive range
/// (`"5960-5969"`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MccSpec {
    /// A single code.
    Code(u32),
    /// A code or a range written as text.
    Text(String),
}

impl MccSpec {
    /// The inclusive range this entry stands for, or why it is malformed.
    pub(crate) fn range(&self) -> Result<(u16, u16), String> {
        fn code(s: &str) -> Result<u16, String> {
            let t = s.trim();
            if t.is_empty() || t.len() > 4 || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{s:?} is not an MCC (0-9999)"));
            }
            t.parse::<u16>()
                .map_err(|_| format!("{s:?} is not an MCC (0-9999)"))
        }
        match self {
            MccSpec::Code(c) => match u16::try_from(*c) {
                Ok(c) if c <= 9999 => Ok((c, c)),
                _ => Err(format!("{c} is not an MCC (0-9999)")),
            },
            MccSpec::Text(t) => {
                let (lo, hi) = match t.split_once('-') {
                    Some((a, b)) => (code(a)?, code(b)?),
                    None => {
                        let c = code(t)?;
                        (c, c)
                    }
                };
                if lo > hi {
                    return Err(format!("{t:?}: range start is above its end"));
                }
                Ok((lo, hi))
            }
        }
    }
}

/// Which budgets a [`Condition::BudgetExceeded`] looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum BudgetScopeKind {
    /// Budgets of the whole tenant.
    Tenant,
    /// Budgets of the agent's team.
    Team,
    /// Budgets of the request's project.
    Project,
    /// Budgets of the agent.
    Agent,
    /// Budgets of the agent run.
    Run,
}

impl BudgetScopeKind {
    pub(crate) fn of(scope: &crate::budget::Scope) -> Option<Self> {
        use crate::budget::Scope;
        match scope {
            Scope::Tenant => Some(Self::Tenant),
            Scope::Team(_) => Some(Self::Team),
            Scope::Project(_) => Some(Self::Project),
            Scope::Agent(_) => Some(Self::Agent),
            Scope::Run(_) => Some(Self::Run),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

/// A condition over the request and the facts. Stored as JSON, internally
/// tagged by `type`; see `docs/policies.md` for an example of each.
///
/// ```
/// use bursar::policy::Condition;
/// let c: Condition = serde_json::from_str(
///     r#"{"type": "all", "of": [
///           {"type": "amount_above", "amount": "100", "currency": "USD"},
///           {"type": "merchant_in", "merchants": ["aws", "aws.amazon.com"]}
///     ]}"#,
/// ).unwrap();
/// assert!(matches!(c, Condition::All { .. }));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "type",
    rename_all = "snake_case",
    deny_unknown_fields,
    from = "super::strict::ConditionRepr"
)]
#[non_exhaustive]
pub enum Condition {
    /// Always true.
    Always,
    /// True when every inner condition is (true when empty).
    All {
        /// The inner conditions.
        of: Vec<Condition>,
    },
    /// True when at least one inner condition is (false when empty).
    Any {
        /// The inner conditions.
        of: Vec<Condition>,
    },
    /// True when the inner condition is false.
    Not {
        /// The inner condition.
        condition: Box<Condition>,
    },
    /// The request's amount is strictly above `amount` in `currency`.
    AmountAbove {
        /// The threshold.
        amount: Decimal,
        /// The threshold's currency.
        currency: Currency,
    },
    /// The request's amount is at least `amount` in `currency`.
    AmountAtLeast {
        /// The threshold.
        amount: Decimal,
        /// The threshold's currency.
        currency: Currency,
    },
    /// The request's amount is strictly below `amount` in `currency`.
    AmountBelow {
        /// The threshold.
        amount: Decimal,
        /// The threshold's currency.
        currency: Currency,
    },
    /// The request's currency is one of these.
    CurrencyIn {
        /// The currencies.
        currencies: Vec<Currency>,
    },
    /// The merchant matches an entry (normalized name or domain match).
    MerchantIn {
        /// Names or domains.
        merchants: Vec<String>,
    },
    /// The request has a merchant and it matches no entry.
    MerchantNotIn {
        /// Names or domains.
        merchants: Vec<String>,
    },
    /// The merchant's category code is in one of these codes or ranges.
    MccIn {
        /// Codes or ranges.
        codes: Vec<MccSpec>,
    },
    /// The request has a category code and it is in none of these.
    MccNotIn {
        /// Codes or ranges.
        codes: Vec<MccSpec>,
    },
    /// The action kind is one of these (`purchase`, `tool_call`, `llm_usage`,
    /// `custom:<name>`).
    ActionIn {
        /// The action kinds.
        actions: Vec<super::ActionKind>,
    },
    /// The tool is one of these (case-folded exact match).
    ToolIn {
        /// Tool names.
        tools: Vec<String>,
    },
    /// The request names a tool and it is none of these.
    ToolNotIn {
        /// Tool names.
        tools: Vec<String>,
    },
    /// The model is one of these (case-folded exact match).
    ModelIn {
        /// Model names.
        models: Vec<String>,
    },
    /// The local time is in `[start, end)`; a window with `start > end` crosses
    /// midnight (`"22:00"`–`"06:00"`).
    TimeOfDay {
        /// Start, `"HH:MM"` (inclusive).
        start: String,
        /// End, `"HH:MM"` (exclusive).
        end: String,
        /// IANA zone; the tenant's zone when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// The local day is one of these (`"mon"` … `"sun"`).
    DayOfWeek {
        /// Days.
        days: Vec<String>,
        /// IANA zone; the tenant's zone when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timezone: Option<String>,
    },
    /// The merchant has never been seen in the tenant (from the facts).
    NewVendor,
    /// More than `max` requests in the last `window_seconds`, counting this one.
    VelocityAbove {
        /// The window's length in seconds.
        window_seconds: u32,
        /// Requests allowed in the window.
        max: u32,
    },
    /// The request's amount would exceed a budget window from the facts, of the
    /// given period and scope kind (any when absent).
    BudgetExceeded {
        /// Only budgets of this period.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        period: Option<Period>,
        /// Only budgets of this scope kind.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scope: Option<BudgetScopeKind>,
    },
    /// The request's metadata has `key` with exactly `value`.
    MetadataEquals {
        /// The key.
        key: String,
        /// The value.
        value: String,
    },
    /// The request's metadata value at `key`, read as a plain decimal number
    /// (`-?digits[.digits]`), compares to `value` with `op` (e.g. at most 1000
    /// rows per query: deny `{"key": "rows", "op": "gt", "value": "1000"}`).
    /// Undetermined when the key is absent or not a number.
    MetadataNumber {
        /// The key.
        key: String,
        /// The comparison.
        op: NumberOp,
        /// The number compared with.
        value: Decimal,
    },
    /// The action writes: its metadata `access` is `write` or `delete`. It is
    /// false for `read`, and undetermined when `access` is absent or anything
    /// else, so a read-only mode (`deny` on `writes`) refuses an action that
    /// does not say it only reads.
    Writes,
    /// The request names one of these fields in its metadata `fields` (a
    /// comma-separated list; compared case-insensitively). False when it names
    /// none.
    FieldsIn {
        /// The blocked field names.
        fields: Vec<String>,
    },
}

/// How [`Condition::MetadataNumber`] compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberOp {
    /// Less than.
    Lt,
    /// Less than or equal.
    Le,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Ge,
    /// Equal.
    Eq,
}

impl NumberOp {
    /// Whether `left op right` holds.
    #[must_use]
    pub fn holds(self, left: Decimal, right: Decimal) -> bool {
        match self {
            Self::Lt => left < right,
            Self::Le => left <= right,
            Self::Gt => left > right,
            Self::Ge => left >= right,
            Self::Eq => left == right,
        }
    }
}

impl Condition {
    /// `all` of the given conditions.
    #[must_use]
    pub fn all(of: impl IntoIterator<Item = Condition>) -> Self {
        Self::All {
            of: of.into_iter().collect(),
        }
    }

    /// `any` of the given conditions.
    #[must_use]
    pub fn any(of: impl IntoIterator<Item = Condition>) -> Self {
        Self::Any {
            of: of.into_iter().collect(),
        }
    }

    /// The negation of `condition`.
    #[must_use]
    #[allow(clippy::should_implement_trait)]
    pub fn not(condition: Condition) -> Self {
        Self::Not {
            condition: Box::new(condition),
        }
    }

    /// The JSON tag of this condition, e.g. `"merchant_in"`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::All { .. } => "all",
            Self::Any { .. } => "any",
            Self::Not { .. } => "not",
            Self::AmountAbove { .. } => "amount_above",
            Self::AmountAtLeast { .. } => "amount_at_least",
            Self::AmountBelow { .. } => "amount_below",
            Self::CurrencyIn { .. } => "currency_in",
            Self::MerchantIn { .. } => "merchant_in",
            Self::MerchantNotIn { .. } => "merchant_not_in",
            Self::MccIn { .. } => "mcc_in",
            Self::MccNotIn { .. } => "mcc_not_in",
            Self::ActionIn { .. } => "action_in",
            Self::ToolIn { .. } => "tool_in",
            Self::ToolNotIn { .. } => "tool_not_in",
            Self::ModelIn { .. } => "model_in",
            Self::TimeOfDay { .. } => "time_of_day",
            Self::DayOfWeek { .. } => "day_of_week",
            Self::NewVendor => "new_vendor",
            Self::VelocityAbove { .. } => "velocity_above",
            Self::BudgetExceeded { .. } => "budget_exceeded",
            Self::MetadataEquals { .. } => "metadata_equals",
            Self::MetadataNumber { .. } => "metadata_number",
            Self::Writes => "writes",
            Self::FieldsIn { .. } => "fields_in",
        }
    }
}

fn enabled_default() -> bool {
    true
}

/// A policy: who it applies to, what it does when its condition matches, and
/// the reason it gives.
///
/// ```
/// use bursar::policy::{Condition, Effect, Policy};
/// let json = r#"{
///   "id": "0190a0b0-0000-7000-8000-000000000001",
///   "name": "Block gambling",
///   "scope": {"kind": "tenant"},
///   "effect": "deny",
///   "priority": 100,
///   "reason_code": "CATEGORY_BLOCKED",
///   "message": "{merchant} is in a blocked category",
///   "condition": {"type": "mcc_in", "codes": [7995, "7800-7802"]}
/// }"#;
/// let policy = Policy::from_json(json)?;
/// assert_eq!(policy.effect, Effect::Deny);
/// assert!(policy.enabled);
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The policy's id.
    pub id: PolicyId,
    /// A human name.
    pub name: String,
    /// Whose requests it applies to.
    #[serde(default)]
    pub scope: PolicyScope,
    /// What it does when its condition matches.
    pub effect: Effect,
    /// Higher first; ties are broken by id.
    #[serde(default)]
    pub priority: i32,
    /// Disabled policies are ignored.
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// The reason code a match reports, `[A-Z][A-Z0-9_]*`.
    pub reason_code: String,
    /// The message template (placeholders: see `docs/policies.md`); the policy's
    /// name when empty.
    #[serde(default)]
    pub message: String,
    /// When the policy matches.
    pub condition: Condition,
    /// What approving takes, for a `require_approval` policy (refused on
    /// other effects); `None`: one approval by any approver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<super::approval::ApprovalSettings>,
}

impl Policy {
    /// A new enabled, tenant-wide policy of priority 0 with a fresh id.
    #[must_use]
    pub fn new(
        name: impl Into<String>,
        effect: Effect,
        reason_code: impl Into<String>,
        condition: Condition,
    ) -> Self {
        Self {
            id: PolicyId::new(),
            name: name.into(),
            scope: PolicyScope::Tenant,
            effect,
            priority: 0,
            enabled: true,
            reason_code: reason_code.into(),
            message: String::new(),
            condition,
            approval: None,
        }
    }

    /// Sets the approval settings of a `require_approval` policy.
    #[must_use]
    pub fn approval(mut self, settings: super::approval::ApprovalSettings) -> Self {
        self.approval = Some(settings);
        self
    }

    /// Sets the id.
    #[must_use]
    pub fn id(mut self, id: PolicyId) -> Self {
        self.id = id;
        self
    }

    /// Sets the scope.
    #[must_use]
    pub fn scope(mut self, scope: PolicyScope) -> Self {
        self.scope = scope;
        self
    }

    /// Sets the priority (higher first).
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Sets the message template.
    #[must_use]
    pub fn message(mut self, template: impl Into<String>) -> Self {
        self.message = template.into();
        self
    }

    /// Enables or disables the policy.
    #[must_use]
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Parses a policy from JSON and [validates](super::validate) it.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPolicy`]: with path `$` when the text is longer
    /// than [`MAX_POLICY_JSON_LEN`] or is not a policy (the reason carries
    /// serde's message with line and column), or any validation error.
    pub fn from_json(json: &str) -> crate::Result<Self> {
        if json.len() > MAX_POLICY_JSON_LEN {
            return Err(crate::Error::InvalidPolicy {
                path: "$".into(),
                reason: format!("{} bytes, at most {MAX_POLICY_JSON_LEN}", json.len()),
            });
        }
        let policy: Policy =
            serde_json::from_str(json).map_err(|e| crate::Error::InvalidPolicy {
                path: "$".into(),
                reason: e.to_string(),
            })?;
        super::validate(&policy)?;
        Ok(policy)
    }

    /// Parses a policy from a JSON value and validates it; see [`Policy::from_json`].
    ///
    /// The value's depth is checked first, without recursion: a value nested
    /// deeper than [`MAX_POLICY_JSON_DEPTH`](super::limits::MAX_POLICY_JSON_DEPTH)
    /// levels (the bound serde_json puts on JSON text) is refused before it is
    /// read, whatever its depth.
    ///
    /// # Errors
    /// As [`Policy::from_json`]; a value nested too deeply is refused with path `$`.
    pub fn from_value(value: serde_json::Value) -> crate::Result<Self> {
        let value = super::strict::check_depth(value)?;
        let policy: Policy =
            serde_json::from_value(value).map_err(|e| crate::Error::InvalidPolicy {
                path: "$".into(),
                reason: e.to_string(),
            })?;
        super::validate(&policy)?;
        Ok(policy)
    }
}
