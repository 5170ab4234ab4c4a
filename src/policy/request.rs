//! What an agent asks to do.

use std::collections::BTreeMap;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::limits::{MAX_METADATA_ENTRIES, MAX_REQUEST_TEXT_LEN};
use crate::id::{AgentId, ProjectId, RunId, TeamId};
use crate::money::{Amount, Currency};

pub use crate::budget::Principal;

/// The kind of action requested.
///
/// Serialized as a string: `"purchase"`, `"tool_call"`, `"llm_usage"` or
/// `"custom:<name>"` (e.g. `"custom:deploy"`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ActionKind {
    /// Buying something from a merchant.
    Purchase,
    /// Calling a tool (an MCP tool, an API).
    ToolCall,
    /// Using a language model (metered cost).
    LlmUsage,
    /// A host-defined action, named.
    Custom(String),
}

impl ActionKind {
    /// Parses `"purchase"`, `"tool_call"`, `"llm_usage"` or `"custom:<name>"`.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming the text when it is none of these, or the
    /// custom name is empty.
    pub fn parse(s: &str) -> crate::Result<Self> {
        match s {
            "purchase" => Ok(Self::Purchase),
            "tool_call" => Ok(Self::ToolCall),
            "llm_usage" => Ok(Self::LlmUsage),
            other => match other.strip_prefix("custom:") {
                Some(name) if !name.trim().is_empty() => Ok(Self::Custom(name.to_owned())),
                _ => Err(crate::Error::invalid(
                    "action",
                    format!("{s:?} is not purchase, tool_call, llm_usage or custom:<name>"),
                )),
            },
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Purchase => f.write_str("purchase"),
            Self::ToolCall => f.write_str("tool_call"),
            Self::LlmUsage => f.write_str("llm_usage"),
            Self::Custom(name) => write!(f, "custom:{name}"),
        }
    }
}

impl Serialize for ActionKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ActionKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The merchant of a purchase.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Merchant {
    /// The merchant's name as the agent gave it, e.g. `"GitHub"`.
    pub name: String,
    /// The merchant's URL or domain, e.g. `"https://github.com/pricing"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// The ISO 18245 merchant category code (0–9999), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcc: Option<u16>,
}

/// A request from an agent, the input of [`evaluate`](super::evaluate).
///
/// Build it with one of the constructors and the chained setters:
///
/// ```
/// use bursar::money::Currency;
/// use bursar::policy::Request;
/// use bursar::id::{AgentId, TeamId};
/// use rust_decimal::Decimal;
///
/// let request = Request::purchase(AgentId::new(), Decimal::new(3000, 2), Currency::USD, "GitHub")
///     .team(TeamId::new())
///     .merchant_domain("github.com")
///     .mcc(5734)
///     .metadata("ticket", "OPS-12")
///     .idempotency_key("req-1");
/// assert_eq!(request.amount, Some(Decimal::new(3000, 2)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Who is asking.
    pub principal: Principal,
    /// What kind of action.
    pub action: ActionKind,
    /// The amount to be spent, for spending actions (JSON: a plain-decimal
    /// string, `"30.00"`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::money::decimal_text::option"
    )]
    pub amount: Option<Decimal>,
    /// The currency of `amount`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Currency>,
    /// The merchant, for purchases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merchant: Option<Merchant>,
    /// The tool, for tool calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The model, for LLM usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Free key/value pairs the host attaches (ticket ids, environment, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Makes a retried request return the first result (used by the store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
}

impl Request {
    /// A request by `agent_id` to do `action`, with nothing else set: add the
    /// merchant, tool, model, cost, run or metadata with the builder methods.
    #[must_use]
    pub fn new(agent_id: AgentId, action: ActionKind) -> Self {
        Self {
            principal: Principal::agent(agent_id),
            action,
            amount: None,
            currency: None,
            merchant: None,
            tool: None,
            model: None,
            metadata: BTreeMap::new(),
            idempotency_key: None,
        }
    }

    /// A purchase of `amount` in `currency` from the merchant named `merchant_name`.
    #[must_use]
    pub fn purchase(
        agent_id: AgentId,
        amount: Decimal,
        currency: Currency,
        merchant_name: impl Into<String>,
    ) -> Self {
        let mut r = Self::new(agent_id, ActionKind::Purchase);
        r.amount = Some(amount);
        r.currency = Some(currency);
        r.merchant = Some(Merchant {
            name: merchant_name.into(),
            domain: None,
            mcc: None,
        });
        r
    }

    /// A call of the tool named `tool` (no spending unless [`Request::cost`] is set).
    #[must_use]
    pub fn tool_call(agent_id: AgentId, tool: impl Into<String>) -> Self {
        let mut r = Self::new(agent_id, ActionKind::ToolCall);
        r.tool = Some(tool.into());
        r
    }

    /// Use of the language model `model` costing `cost` in `currency`.
    #[must_use]
    pub fn llm_usage(
        agent_id: AgentId,
        model: impl Into<String>,
        cost: Decimal,
        currency: Currency,
    ) -> Self {
        let mut r = Self::new(agent_id, ActionKind::LlmUsage);
        r.model = Some(model.into());
        r.amount = Some(cost);
        r.currency = Some(currency);
        r
    }

    /// A host-defined action named `name` (e.g. `"deploy"`).
    #[must_use]
    pub fn custom(agent_id: AgentId, name: impl Into<String>) -> Self {
        Self::new(agent_id, ActionKind::Custom(name.into()))
    }

    /// Sets the agent's team.
    #[must_use]
    pub fn team(mut self, team: TeamId) -> Self {
        self.principal.team_id = Some(team);
        self
    }

    /// Sets the project.
    #[must_use]
    pub fn project(mut self, project: ProjectId) -> Self {
        self.principal.project_id = Some(project);
        self
    }

    /// Sets the agent run.
    #[must_use]
    pub fn run(mut self, run: RunId) -> Self {
        self.principal.run_id = Some(run);
        self
    }

    /// Sets (or replaces) the amount and currency, for any kind of action.
    #[must_use]
    pub fn cost(mut self, amount: Decimal, currency: Currency) -> Self {
        self.amount = Some(amount);
        self.currency = Some(currency);
        self
    }

    fn merchant_mut(&mut self) -> &mut Merchant {
        self.merchant.get_or_insert_with(Merchant::default)
    }

    /// Sets the merchant's name.
    #[must_use]
    pub fn merchant(mut self, name: impl Into<String>) -> Self {
        self.merchant_mut().name = name.into();
        self
    }

    /// Sets the merchant's URL or domain (`"https://aws.amazon.com/ec2"` or `"aws.amazon.com"`).
    #[must_use]
    pub fn merchant_domain(mut self, domain: impl Into<String>) -> Self {
        self.merchant_mut().domain = Some(domain.into());
        self
    }

    /// Sets the merchant category code.
    #[must_use]
    pub fn mcc(mut self, mcc: u16) -> Self {
        self.merchant_mut().mcc = Some(mcc);
        self
    }

    /// Sets the tool name.
    #[must_use]
    pub fn tool(mut self, tool: impl Into<String>) -> Self {
        self.tool = Some(tool.into());
        self
    }

    /// Sets the model name.
    #[must_use]
    pub fn model(mut self, model: impl Into<String>) -> Self {
        self.model = Some(model.into());
        self
    }

    /// Adds a metadata pair (replacing an earlier value of the same key).
    #[must_use]
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Sets the idempotency key.
    #[must_use]
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// The amount with its currency, when both are present.
    #[must_use]
    pub fn money(&self) -> Option<(Decimal, Currency)> {
        Some((self.amount?, self.currency?))
    }

    /// Checks the request's bounds (call it before storing or evaluating
    /// untrusted input): texts at most [`MAX_REQUEST_TEXT_LEN`] bytes, at most
    /// [`MAX_METADATA_ENTRIES`] metadata pairs, an amount that can be stored
    /// exactly and is not negative, a currency whenever there is an amount, and
    /// an MCC of at most 9999.
    ///
    /// Facts the policies decide on must be present and not blank, so that a
    /// missing one can never pass for a known one: a purchase names a merchant,
    /// a tool call a tool and an LLM use a model; the merchant's name, the tool,
    /// the model, metadata keys, a custom action's name and the idempotency key
    /// are not empty or whitespace only; a merchant domain, when given, is a
    /// host name or a URL with one ([`merchant_host`](super::merchant_host)
    /// finds it).
    ///
    /// Evaluation never fails on a request that skipped this check; it only
    /// becomes slower (texts are compared in full) and an over-long text never
    /// matches an allow list.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] naming the field and the value.
    pub fn validate(&self) -> crate::Result<()> {
        fn text(field: &str, s: &str) -> crate::Result<()> {
            if s.len() > MAX_REQUEST_TEXT_LEN {
                return Err(crate::Error::invalid(
                    field,
                    format!("{} bytes, at most {MAX_REQUEST_TEXT_LEN}", s.len()),
                ));
            }
            Ok(())
        }
        /// A text policies match on: bounded and not blank.
        fn name(field: &str, s: &str) -> crate::Result<()> {
            text(field, s)?;
            if s.trim().is_empty() {
                return Err(crate::Error::invalid(
                    field,
                    format!("{s:?} is empty or only whitespace"),
                ));
            }
            Ok(())
        }
        fn required<T>(field: &str, value: Option<&T>, action: &ActionKind) -> crate::Result<()> {
            match value {
                Some(_) => Ok(()),
                None => Err(crate::Error::invalid(
                    field,
                    format!("a {action} request must name its {field}"),
                )),
            }
        }
        match &self.action {
            ActionKind::Custom(name) => {
                text("action", name)?;
                if name.trim().is_empty() {
                    return Err(crate::Error::invalid(
                        "action",
                        "custom action name is empty",
                    ));
                }
            }
            ActionKind::Purchase => required("merchant", self.merchant.as_ref(), &self.action)?,
            ActionKind::ToolCall => required("tool", self.tool.as_ref(), &self.action)?,
            ActionKind::LlmUsage => required("model", self.model.as_ref(), &self.action)?,
        }
        match (self.amount, self.currency) {
            (Some(amount), Some(_)) => {
                Amount::new(amount).map_err(|e| crate::Error::invalid("amount", e))?;
            }
            (Some(amount), None) => {
                return Err(crate::Error::invalid(
                    "currency",
                    format!("an amount ({amount}) needs a currency"),
                ));
            }
            _ => {}
        }
        if let Some(m) = &self.merchant {
            name("merchant.name", &m.name)?;
            if let Some(d) = &m.domain {
                name("merchant.domain", d)?;
                if super::normalize::host_of(d).is_none() {
                    return Err(crate::Error::invalid(
                        "merchant.domain",
                        format!("{d:?} is not a host name or a URL with one"),
                    ));
                }
            }
            if let Some(mcc) = m.mcc
                && mcc > 9999
            {
                return Err(crate::Error::invalid(
                    "merchant.mcc",
                    format!("{mcc} is above 9999"),
                ));
            }
        }
        if let Some(t) = &self.tool {
            name("tool", t)?;
        }
        if let Some(m) = &self.model {
            name("model", m)?;
        }
        if let Some(k) = &self.idempotency_key {
            name("idempotency_key", k)?;
        }
        if self.metadata.len() > MAX_METADATA_ENTRIES {
            return Err(crate::Error::invalid(
                "metadata",
                format!(
                    "{} entries, at most {MAX_METADATA_ENTRIES}",
                    self.metadata.len()
                ),
            ));
        }
        for (k, v) in &self.metadata {
            name("metadata key", k)?;
            text(&format!("metadata.{k}"), v)?;
        }
        Ok(())
    }
}
