//! Reasons: why a decision came out as it did, with their messages rendered
//! when read.
//!
//! A reason that a policy gives shares the policy's code, name and message
//! template with the compiled policy (one reference count) and keeps the
//! typed values its template names (the amount and currency, the budget, the
//! threshold). The message is rendered from them only when it is read
//! ([`Reason::message`], [`Reason::write_message`]), serialized, compared or
//! printed, so a caller that looks only at the codes pays for no text.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use rust_decimal::Decimal;
use serde::ser::SerializeStruct as _;
use serde::{Deserialize, Serialize, Serializer};

use super::ActionKind;
use super::template::{DECIMAL_LEN_HINT, Field, Template, write_decimal};
use crate::budget::Period;
use crate::id::{BudgetId, PolicyId};
use crate::money::Currency;

/// The budget behind a reason: which one would be exceeded, and by how much room.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDetail {
    /// The budget that the request does not fit.
    pub budget_id: BudgetId,
    /// Its period.
    pub period: Period,
    /// Its currency.
    pub currency: Currency,
    /// Its limit.
    #[serde(with = "crate::money::decimal_text")]
    pub limit: Decimal,
    /// What remained in its window before the request.
    #[serde(with = "crate::money::decimal_text")]
    pub remaining: Decimal,
}

/// The text of a compiled policy that every reason it gives shares.
#[derive(Debug)]
pub(crate) struct PolicyText {
    pub(crate) name: Box<str>,
    pub(crate) code: Box<str>,
    pub(crate) template: Template,
    /// The policy's first amount threshold: `{limit}` when no budget is exceeded.
    pub(crate) first_limit: Option<(Decimal, Currency)>,
}

/// What could not be compared when a policy matched undetermined: the amount
/// with a threshold (`budget: None`) or with the window of a budget of this
/// period, kept in another currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Incomparable {
    pub(crate) budget: Option<Period>,
    pub(crate) limit: Decimal,
    pub(crate) currency: Currency,
}

/// The request's text that a template names, copied only for the
/// placeholders the template uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RequestText {
    pub(crate) merchant: Option<Box<str>>,
    pub(crate) tool: Option<Box<str>>,
    pub(crate) model: Option<Box<str>>,
    pub(crate) action: Option<ActionKind>,
}

/// The typed values a policy's message is rendered from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Values {
    pub(crate) amount: Option<Decimal>,
    pub(crate) currency: Option<Currency>,
    /// When set, the message says what could not be compared instead of
    /// rendering the template.
    pub(crate) incomparable: Option<Incomparable>,
    /// `None` when the template names no request text.
    pub(crate) request: Option<Box<RequestText>>,
}

#[derive(Clone)]
enum Text {
    /// Code and message as given: the refusals decided before any policy
    /// runs, the default deny, reasons read back from storage.
    Given {
        code: Cow<'static, str>,
        message: Cow<'static, str>,
    },
    /// A policy's reason: its shared text and the values to fill in.
    Policy {
        policy: Arc<PolicyText>,
        values: Values,
    },
}

/// Why a decision came out as it did: one per matching `deny` (for a
/// rejection) or `require_approval` policy (for a pending approval), or a
/// refusal decided before any policy (an unknown agent, a spent budget).
///
/// The code, policy and budget are read directly; the message is rendered
/// when read. Serialized, a reason is
/// `{"code", "message", "policy_id"?, "budget"?, "undetermined"?}`.
///
/// ```
/// use bursar::policy::{evaluate, CompiledPolicies, Condition, DefaultEffect, Effect, Facts, Policy, Request};
/// use bursar::{id::AgentId, money::Currency};
/// use chrono::Utc;
/// use rust_decimal::Decimal;
///
/// let limit = Policy::new("Per-transaction limit", Effect::Deny, "OVER_TRANSACTION_LIMIT",
///     Condition::AmountAbove { amount: Decimal::from(50), currency: Currency::USD })
///     .message("{amount} {currency} is above the limit of {limit}");
/// let compiled = CompiledPolicies::compile(&[limit], DefaultEffect::Allow)?;
/// let request = Request::purchase(AgentId::new(), Decimal::from(80), Currency::USD, "GitHub");
/// let decision = evaluate(&compiled, &request, &Facts::new(Utc::now(), chrono_tz::UTC));
///
/// let reason = &decision.reasons()[0];
/// assert_eq!(reason.code(), "OVER_TRANSACTION_LIMIT");
/// assert_eq!(reason.message(), "80.00 USD is above the limit of 50.00");
///
/// // Or into a buffer reused across reasons.
/// let mut line = String::new();
/// reason.write_message(&mut line);
/// assert_eq!(line, "80.00 USD is above the limit of 50.00");
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Deserialize)]
#[serde(from = "StoredReason")]
pub struct Reason {
    text: Text,
    policy_id: Option<PolicyId>,
    budget: Option<BudgetDetail>,
    undetermined: bool,
}

impl Reason {
    /// A reason with its code and message given as text, naming no policy.
    ///
    /// ```
    /// use bursar::policy::Reason;
    ///
    /// let reason = Reason::new("AGENT_PAUSED", "the agent is paused").with_undetermined(true);
    /// assert_eq!((reason.code(), &*reason.message()), ("AGENT_PAUSED", "the agent is paused"));
    /// assert!(reason.is_undetermined() && reason.policy_id().is_none());
    /// ```
    #[must_use]
    pub fn new(code: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: Text::Given {
                code: code.into(),
                message: message.into(),
            },
            policy_id: None,
            budget: None,
            undetermined: false,
        }
    }

    /// A policy's reason, its message to be rendered from `values`.
    pub(crate) fn from_policy(
        policy: Arc<PolicyText>,
        values: Values,
        policy_id: PolicyId,
        budget: Option<BudgetDetail>,
        undetermined: bool,
    ) -> Self {
        Self {
            text: Text::Policy { policy, values },
            policy_id: Some(policy_id),
            budget,
            undetermined,
        }
    }

    /// The same reason, naming the policy that gave it.
    #[must_use]
    pub fn with_policy_id(mut self, policy_id: PolicyId) -> Self {
        self.policy_id = Some(policy_id);
        self
    }

    /// The same reason, naming the budget that does not fit. A policy's
    /// reason keeps the message it had (rendered with its own budget).
    #[must_use]
    pub fn with_budget(mut self, budget: BudgetDetail) -> Self {
        self.freeze();
        self.budget = Some(budget);
        self
    }

    /// The same reason, marked undetermined or not (see
    /// [`is_undetermined`](Self::is_undetermined)).
    #[must_use]
    pub fn with_undetermined(mut self, undetermined: bool) -> Self {
        self.undetermined = undetermined;
        self
    }

    /// Renders a policy's message once and keeps it as text (the budget no
    /// longer feeds it).
    fn freeze(&mut self) {
        if let Text::Policy { .. } = &self.text {
            let message = self.message().into_owned();
            self.text = Text::Given {
                code: Cow::Owned(self.code().to_owned()),
                message: Cow::Owned(message),
            };
        }
    }

    /// The reason code (the policy's, a refusal's such as
    /// [`codes::AGENT_NOT_FOUND`](crate::codes::AGENT_NOT_FOUND), or
    /// [`codes::NO_MATCHING_POLICY`](crate::codes::NO_MATCHING_POLICY)).
    #[must_use]
    pub fn code(&self) -> &str {
        match &self.text {
            Text::Given { code, .. } => code,
            Text::Policy { policy, .. } => &policy.code,
        }
    }

    /// The message: the policy's template rendered with the request's values
    /// (the policy's name when it has no template), or the text given.
    /// Rendered on each call for a policy's reason; see
    /// [`write_message`](Self::write_message) to render into a buffer.
    #[must_use]
    pub fn message(&self) -> Cow<'_, str> {
        match &self.text {
            Text::Given { message, .. } => Cow::Borrowed(message),
            Text::Policy { policy, values } => {
                let mut out = String::with_capacity(message_len_hint(policy, values));
                write_policy_message(policy, values, self.budget.as_ref(), &mut out);
                Cow::Owned(out)
            }
        }
    }

    /// Appends the message (as [`message`](Self::message) gives it) to `out`.
    pub fn write_message(&self, out: &mut String) {
        match &self.text {
            Text::Given { message, .. } => out.push_str(message),
            Text::Policy { policy, values } => {
                write_policy_message(policy, values, self.budget.as_ref(), out);
            }
        }
    }

    /// The policy that gave the reason (`None` for the default effect and
    /// for refusals decided before any policy).
    #[must_use]
    pub fn policy_id(&self) -> Option<PolicyId> {
        self.policy_id
    }

    /// For budget conditions and budget refusals, the budget that would be
    /// exceeded.
    #[must_use]
    pub fn budget(&self) -> Option<&BudgetDetail> {
        self.budget.as_ref()
    }

    /// True when the policy matched only because part of its condition could
    /// not be decided (an amount in another currency, a missing velocity
    /// count, a merchant whose name is listed but whose domain is not):
    /// `deny` and `require_approval` policies fail closed.
    #[must_use]
    pub fn is_undetermined(&self) -> bool {
        self.undetermined
    }
}

/// The expected length of a policy's message, to allocate it once.
fn message_len_hint(policy: &PolicyText, values: &Values) -> usize {
    if values.incomparable.is_some() {
        return 120 + policy.name.len();
    }
    if policy.template.is_empty() {
        return policy.name.len();
    }
    let request = values.request.as_deref();
    let text_len = |t: Option<&str>| t.map_or(0, str::len);
    policy.template.len_hint(|field| match field {
        Field::Amount | Field::Limit | Field::Remaining => DECIMAL_LEN_HINT,
        Field::Currency => 3,
        Field::Merchant => text_len(request.and_then(|r| r.merchant.as_deref())),
        Field::Policy => policy.name.len(),
        Field::Code => policy.code.len(),
        Field::Tool => text_len(request.and_then(|r| r.tool.as_deref())),
        Field::Model => text_len(request.and_then(|r| r.model.as_deref())),
        Field::Action | Field::Period => 16,
    })
}

/// Writes a policy's message: what could not be compared, else its template
/// rendered, else its name.
fn write_policy_message(
    policy: &PolicyText,
    values: &Values,
    budget: Option<&BudgetDetail>,
    out: &mut String,
) {
    if let (Some(i), Some(amount), Some(currency)) =
        (values.incomparable, values.amount, values.currency)
    {
        write_incomparable(policy, amount, currency, i, out);
    } else if policy.template.is_empty() {
        out.push_str(&policy.name);
    } else {
        policy.template.render_into(out, |field, out| {
            write_field(policy, values, budget, field, out)
        });
    }
}

/// `Amount 80.00 USD cannot be compared with the limit of 50.00 EUR of "…"
/// (different currency)`, or `… with the monthly budget of …`.
fn write_incomparable(
    policy: &PolicyText,
    amount: Decimal,
    currency: Currency,
    i: Incomparable,
    out: &mut String,
) {
    out.push_str("Amount ");
    write_decimal(out, amount, currency.minor_units());
    out.push(' ');
    out.push_str(currency.code());
    out.push_str(" cannot be compared with the ");
    match i.budget {
        Some(period) => {
            out.push_str(period.as_str());
            out.push_str(" budget");
        }
        None => out.push_str("limit"),
    }
    out.push_str(" of ");
    write_decimal(out, i.limit, i.currency.minor_units());
    out.push(' ');
    out.push_str(i.currency.code());
    out.push_str(" of \"");
    out.push_str(&policy.name);
    out.push_str("\" (different currency)");
}

/// Writes one placeholder's value (see [`PLACEHOLDERS`](super::PLACEHOLDERS)).
fn write_field(
    policy: &PolicyText,
    values: &Values,
    budget: Option<&BudgetDetail>,
    field: Field,
    out: &mut String,
) {
    let request = values.request.as_deref();
    let text = |pick: fn(&RequestText) -> Option<&str>| request.and_then(pick).unwrap_or("");
    match field {
        Field::Amount => {
            if let Some(a) = values.amount {
                write_decimal(out, a, values.currency.map_or(0, |c| c.minor_units()));
            }
        }
        Field::Currency => {
            if let Some(c) = values.currency {
                out.push_str(c.code());
            }
        }
        Field::Limit => match (budget, policy.first_limit) {
            (Some(b), _) => write_decimal(out, b.limit, b.currency.minor_units()),
            (None, Some((l, c))) => write_decimal(out, l, c.minor_units()),
            (None, None) => {}
        },
        Field::Remaining => {
            if let Some(b) = budget {
                write_decimal(out, b.remaining, b.currency.minor_units());
            }
        }
        Field::Merchant => out.push_str(text(|r| r.merchant.as_deref())),
        Field::Policy => out.push_str(&policy.name),
        Field::Code => out.push_str(&policy.code),
        Field::Tool => out.push_str(text(|r| r.tool.as_deref())),
        Field::Model => out.push_str(text(|r| r.model.as_deref())),
        Field::Action => match request.and_then(|r| r.action.as_ref()) {
            Some(ActionKind::Custom(name)) => {
                out.push_str("custom:");
                out.push_str(name);
            }
            Some(other) => {
                use std::fmt::Write as _;
                let _ = write!(out, "{other}");
            }
            None => {}
        },
        Field::Period => {
            if let Some(b) = budget {
                out.push_str(b.period.as_str());
            }
        }
    }
}

impl Reason {
    /// How many fields the serialized reason has: code and message, then
    /// the policy id, budget and undetermined flag when present.
    fn serialized_fields(&self) -> usize {
        2 + usize::from(self.policy_id.is_some())
            + usize::from(self.budget.is_some())
            + usize::from(self.undetermined)
    }

    /// The capacity a policy's message is rendered into (`None` for a given
    /// text), for tests that check it is enough and not wasteful.
    #[cfg(test)]
    pub(crate) fn message_capacity_hint(&self) -> Option<usize> {
        match &self.text {
            Text::Given { .. } => None,
            Text::Policy { policy, values } => Some(message_len_hint(policy, values)),
        }
    }

    #[cfg(test)]
    pub(crate) fn serialized_field_count(&self) -> usize {
        self.serialized_fields()
    }
}

impl PartialEq for Reason {
    /// Reasons are equal when everything a caller can read is: code, message,
    /// policy, budget and whether undetermined.
    fn eq(&self, other: &Self) -> bool {
        self.code() == other.code()
            && self.policy_id == other.policy_id
            && self.budget == other.budget
            && self.undetermined == other.undetermined
            && self.message() == other.message()
    }
}

impl Eq for Reason {}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reason")
            .field("code", &self.code())
            .field("message", &self.message())
            .field("policy_id", &self.policy_id)
            .field("budget", &self.budget)
            .field("undetermined", &self.undetermined)
            .finish()
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Reason", self.serialized_fields())?;
        s.serialize_field("code", self.code())?;
        s.serialize_field("message", &*self.message())?;
        if let Some(id) = &self.policy_id {
            s.serialize_field("policy_id", id)?;
        }
        if let Some(budget) = &self.budget {
            s.serialize_field("budget", budget)?;
        }
        if self.undetermined {
            s.serialize_field("undetermined", &true)?;
        }
        s.end()
    }
}

/// A reason as stored: what [`Reason`] serializes to.
#[derive(Deserialize)]
struct StoredReason {
    code: String,
    message: String,
    #[serde(default)]
    policy_id: Option<PolicyId>,
    #[serde(default)]
    budget: Option<BudgetDetail>,
    #[serde(default)]
    undetermined: bool,
}

impl From<StoredReason> for Reason {
    fn from(s: StoredReason) -> Self {
        Self {
            text: Text::Given {
                code: Cow::Owned(s.code),
                message: Cow::Owned(s.message),
            },
            policy_id: s.policy_id,
            budget: s.budget,
            undetermined: s.undetermined,
        }
    }
}

/// The reasons of a decision: none and one (the common cases) without an
/// allocation of their own.
#[derive(Clone, Default)]
pub(crate) enum Reasons {
    #[default]
    None,
    One(Reason),
    Many(Vec<Reason>),
}

impl Reasons {
    pub(crate) fn as_slice(&self) -> &[Reason] {
        match self {
            Self::None => &[],
            Self::One(r) => std::slice::from_ref(r),
            Self::Many(v) => v,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, Self::None)
    }

    pub(crate) fn push(&mut self, reason: Reason) {
        match std::mem::take(self) {
            Self::None => *self = Self::One(reason),
            Self::One(first) => {
                let mut v = Vec::with_capacity(4);
                v.push(first);
                v.push(reason);
                *self = Self::Many(v);
            }
            Self::Many(mut v) => {
                v.push(reason);
                *self = Self::Many(v);
            }
        }
    }

    pub(crate) fn into_vec(self) -> Vec<Reason> {
        match self {
            Self::None => Vec::new(),
            Self::One(r) => vec![r],
            Self::Many(v) => v,
        }
    }
}

impl From<Vec<Reason>> for Reasons {
    fn from(mut v: Vec<Reason>) -> Self {
        match v.len() {
            0 => Self::None,
            1 => v.pop().map_or(Self::None, Self::One),
            _ => Self::Many(v),
        }
    }
}

impl PartialEq for Reasons {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for Reasons {}

impl fmt::Debug for Reasons {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

impl Serialize for Reasons {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Reasons {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Vec::<Reason>::deserialize(deserializer).map(Self::from)
    }
}
