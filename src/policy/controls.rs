//! Simple spending controls that compile to ordinary policies and budgets.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::approval::{ApprovalSettings, Quorum};
use super::model::{BudgetScopeKind, Condition, Effect, MccSpec, Policy, PolicyScope};
use super::{ActionKind, validate};
use crate::budget::{Period, Scope};
use crate::codes;
use crate::id::{AgentId, RoleId};
use crate::money::Currency;

/// Priorities of the generated policies, in the order the controls are
/// checked: hard limits first, then budgets, then approvals. Host policies can
/// be placed between them.
pub mod priority {
    /// Agent per-transaction limit.
    pub const OVER_TRANSACTION_LIMIT: i32 = 1_000;
    /// Tenant maximum transaction.
    pub const OVER_ORG_MAX_TRANSACTION: i32 = 990;
    /// Blocked merchants.
    pub const MERCHANT_BLOCKED: i32 = 980;
    /// Merchants outside the allowed list.
    pub const MERCHANT_NOT_ALLOWED: i32 = 970;
    /// Blocked merchant categories.
    pub const CATEGORY_BLOCKED: i32 = 960;
    /// Agent daily limit.
    pub const DAILY_LIMIT_EXCEEDED: i32 = 950;
    /// Agent monthly limit.
    pub const MONTHLY_LIMIT_EXCEEDED: i32 = 940;
    /// Tenant monthly budget.
    pub const ORG_BUDGET_EXCEEDED: i32 = 930;
    /// Agent approval threshold.
    pub const OVER_THRESHOLD: i32 = 900;
    /// Tenant approval threshold.
    pub const ORG_GUARDRAIL: i32 = 890;
    /// New vendors.
    pub const NEW_VENDOR: i32 = 880;
    /// The allow that approves every other purchase.
    pub const WITHIN_CONTROLS: i32 = 0;
}

/// A budget the store must create so that the limit also holds at reservation
/// time (two concurrent requests may each fit on their own, but not together).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetSpec {
    /// Whose spending it caps.
    pub scope: Scope,
    /// How often it resets.
    pub period: Period,
    /// Its limit.
    #[serde(with = "crate::money::decimal_text")]
    pub limit: Decimal,
    /// Its currency.
    pub currency: Currency,
    /// The reason code a shortfall reports.
    pub reason_code: &'static str,
}

/// What [`SpendingControls::build`] produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Controls {
    /// Ordinary policies, to store (and compile) with the tenant's others.
    pub policies: Vec<Policy>,
    /// Budgets to create; their windows feed the budget conditions above.
    pub budgets: Vec<BudgetSpec>,
}

/// Simple spending controls, at agent level and at tenant level, built into
/// ordinary policies and budgets. Build one without [`agent`](Self::agent)
/// for the tenant's controls and one per agent for the agents'.
///
/// Order of evaluation and reason codes (denies, then approvals; every
/// matching reason is reported):
///
/// | control | level | effect | code |
/// |---|---|---|---|
/// | per-transaction limit | agent | deny | `OVER_TRANSACTION_LIMIT` |
/// | max transaction | tenant | deny | `OVER_ORG_MAX_TRANSACTION` |
/// | blocked merchants | agent | deny | `MERCHANT_BLOCKED` |
/// | allowed merchants | agent | deny others | `MERCHANT_NOT_ALLOWED` |
/// | blocked categories | tenant | deny | `CATEGORY_BLOCKED` |
/// | daily limit | agent | deny + budget | `DAILY_LIMIT_EXCEEDED` |
/// | monthly limit | agent | deny + budget | `MONTHLY_LIMIT_EXCEEDED` |
/// | monthly budget | tenant | deny + budget | `ORG_BUDGET_EXCEEDED` |
/// | approval threshold | agent | require approval | `OVER_THRESHOLD` |
/// | require approval above | tenant | require approval | `ORG_GUARDRAIL` |
/// | flag new vendors | agent / tenant | require approval | `NEW_VENDOR` |
///
/// Each build also adds an `allow` for purchases in the controls' currency, so
/// ordinary purchases are approved.
///
/// ```
/// use bursar::policy::SpendingControls;
/// use bursar::{id::AgentId, money::Currency};
/// use rust_decimal::Decimal;
///
/// let agent = SpendingControls::new(Currency::USD)
///     .agent(AgentId::new())
///     .per_transaction_limit(Decimal::from(50))
///     .monthly_limit(Decimal::from(500))
///     .flag_new_vendors(true)
///     .build()?;
/// assert_eq!(agent.policies.len(), 4); // limit, monthly, new vendor, allow
/// assert_eq!(agent.budgets.len(), 1);
/// let tenant = SpendingControls::new(Currency::USD)
///     .monthly_budget(Decimal::from(10_000))
///     .blocked_categories([7995])
///     .build()?;
/// assert_eq!(tenant.budgets[0].scope, bursar::budget::Scope::Tenant);
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct SpendingControls {
    currency: Currency,
    agent: Option<AgentId>,
    per_transaction_limit: Option<Decimal>,
    daily_limit: Option<Decimal>,
    monthly_limit: Option<Decimal>,
    approval_threshold: Option<Decimal>,
    flag_new_vendors: bool,
    blocked_merchants: Vec<String>,
    allowed_merchants: Vec<String>,
    monthly_budget: Option<Decimal>,
    max_transaction: Option<Decimal>,
    require_approval_above: Option<Decimal>,
    flag_all_new_vendors: bool,
    blocked_categories: Vec<MccSpec>,
    approval: Option<ApprovalSettings>,
}

impl SpendingControls {
    /// Controls in `currency`, with nothing set.
    pub fn new(currency: Currency) -> Self {
        Self {
            currency,
            agent: None,
            per_transaction_limit: None,
            daily_limit: None,
            monthly_limit: None,
            approval_threshold: None,
            flag_new_vendors: false,
            blocked_merchants: Vec::new(),
            allowed_merchants: Vec::new(),
            monthly_budget: None,
            max_transaction: None,
            require_approval_above: None,
            flag_all_new_vendors: false,
            blocked_categories: Vec::new(),
            approval: None,
        }
    }

    /// The agent the agent-level controls apply to (required for them).
    pub fn agent(mut self, agent: AgentId) -> Self {
        self.agent = Some(agent);
        self
    }

    /// Agent: reject purchases above this amount.
    pub fn per_transaction_limit(mut self, limit: Decimal) -> Self {
        self.per_transaction_limit = Some(limit);
        self
    }

    /// Agent: a daily budget.
    pub fn daily_limit(mut self, limit: Decimal) -> Self {
        self.daily_limit = Some(limit);
        self
    }

    /// Agent: a monthly budget.
    pub fn monthly_limit(mut self, limit: Decimal) -> Self {
        self.monthly_limit = Some(limit);
        self
    }

    /// What approving takes, for every approval the controls require
    /// (threshold, new vendor, organization guardrail): the whole settings.
    pub fn approval(mut self, settings: ApprovalSettings) -> Self {
        self.approval = Some(settings);
        self
    }

    /// How approvers' votes combine (see [`Quorum`]).
    pub fn approval_quorum(mut self, quorum: Quorum) -> Self {
        self.approval
            .get_or_insert_with(ApprovalSettings::default)
            .quorum = quorum;
        self
    }

    /// Only members holding `role` (and `approvals:write`) may approve.
    pub fn approver_role(mut self, role: RoleId) -> Self {
        self.approval
            .get_or_insert_with(ApprovalSettings::default)
            .approver_role = Some(role);
        self
    }

    /// An approval request expires this many seconds after its creation.
    pub fn approval_expires_after_secs(mut self, secs: u32) -> Self {
        self.approval
            .get_or_insert_with(ApprovalSettings::default)
            .expires_after_secs = Some(secs);
        self
    }

    /// After `secs`, members of `role` may approve too.
    pub fn escalate_after(mut self, secs: u32, role: RoleId) -> Self {
        let settings = self.approval.unwrap_or_default().escalate_after(secs, role);
        self.approval = Some(settings);
        self
    }

    /// Agent: purchases above this amount need approval.
    pub fn approval_threshold(mut self, threshold: Decimal) -> Self {
        self.approval_threshold = Some(threshold);
        self
    }

    /// Agent: purchases from never-seen merchants need approval.
    pub fn flag_new_vendors(mut self, flag: bool) -> Self {
        self.flag_new_vendors = flag;
        self
    }

    /// Agent: reject purchases from these merchants (names or domains).
    pub fn blocked_merchants<S: Into<String>>(
        mut self,
        merchants: impl IntoIterator<Item = S>,
    ) -> Self {
        self.blocked_merchants = merchants.into_iter().map(Into::into).collect();
        self
    }

    /// Agent: reject purchases from any merchant not on this list.
    pub fn allowed_merchants<S: Into<String>>(
        mut self,
        merchants: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_merchants = merchants.into_iter().map(Into::into).collect();
        self
    }

    /// Tenant: a monthly budget for the whole tenant.
    pub fn monthly_budget(mut self, limit: Decimal) -> Self {
        self.monthly_budget = Some(limit);
        self
    }

    /// Tenant: reject any purchase above this amount.
    pub fn max_transaction(mut self, limit: Decimal) -> Self {
        self.max_transaction = Some(limit);
        self
    }

    /// Tenant: purchases above this amount need approval.
    pub fn require_approval_above(mut self, threshold: Decimal) -> Self {
        self.require_approval_above = Some(threshold);
        self
    }

    /// Tenant: purchases from never-seen merchants need approval, for every agent.
    pub fn flag_all_new_vendors(mut self, flag: bool) -> Self {
        self.flag_all_new_vendors = flag;
        self
    }

    /// Tenant: reject purchases in these merchant categories (codes or ranges,
    /// e.g. `7995` or `"5960-5969"`).
    pub fn blocked_categories<M: Into<MccSpec>>(
        mut self,
        codes: impl IntoIterator<Item = M>,
    ) -> Self {
        self.blocked_categories = codes.into_iter().map(Into::into).collect();
        self
    }

    /// Builds the policies and budgets.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] with field `controls.agent` when an
    /// agent-level control is set without [`agent`](Self::agent); otherwise
    /// [`crate::Error::InvalidPolicy`] when a value is out of bounds (a negative
    /// or too precise amount, an empty merchant, a bad category code).
    pub fn build(self) -> crate::Result<Controls> {
        let cur = self.currency;
        let purchase = || Condition::ActionIn {
            actions: vec![ActionKind::Purchase],
        };
        let above = |amount: Decimal| Condition::AmountAbove {
            amount,
            currency: cur,
        };
        let agent_level = self.per_transaction_limit.is_some()
            || self.daily_limit.is_some()
            || self.monthly_limit.is_some()
            || self.approval_threshold.is_some()
            || self.flag_new_vendors
            || !self.blocked_merchants.is_empty()
            || !self.allowed_merchants.is_empty();
        let agent_scope = match self.agent {
            Some(a) => PolicyScope::agent(a),
            None if agent_level => {
                return Err(crate::Error::invalid(
                    "controls.agent",
                    "agent-level controls need .agent(id)",
                ));
            }
            None => PolicyScope::Tenant,
        };
        let mut policies = Vec::new();
        let mut budgets = Vec::new();
        let approval = self.approval;
        let mut add =
            |name: &str, effect, code: &str, prio, scope: &PolicyScope, message: &str, c| {
                let mut policy = Policy::new(name, effect, code, c)
                    .scope(scope.clone())
                    .priority(prio)
                    .message(message);
                if effect == Effect::RequireApproval {
                    policy.approval = approval;
                }
                policies.push(policy);
            };
        let tenant = PolicyScope::Tenant;
        let budget_cond = |period, scope| {
            Condition::all([
                purchase(),
                Condition::BudgetExceeded {
                    period: Some(period),
                    scope: Some(scope),
                },
            ])
        };

        if let Some(l) = self.per_transaction_limit {
            add(
                "Per-transaction limit",
                Effect::Deny,
                codes::OVER_TRANSACTION_LIMIT,
                priority::OVER_TRANSACTION_LIMIT,
                &agent_scope,
                "Amount {amount} {currency} exceeds the per-transaction limit of {limit} {currency}",
                Condition::all([purchase(), above(l)]),
            );
        }
        if let Some(l) = self.max_transaction {
            add(
                "Organization maximum transaction",
                Effect::Deny,
                codes::OVER_ORG_MAX_TRANSACTION,
                priority::OVER_ORG_MAX_TRANSACTION,
                &tenant,
                "Amount {amount} {currency} exceeds the organization's maximum transaction of {limit} {currency}",
                Condition::all([purchase(), above(l)]),
            );
        }
        if !self.blocked_merchants.is_empty() {
            add(
                "Blocked merchants",
                Effect::Deny,
                codes::MERCHANT_BLOCKED,
                priority::MERCHANT_BLOCKED,
                &agent_scope,
                "Merchant {merchant} is blocked",
                Condition::MerchantIn {
                    merchants: self.blocked_merchants.clone(),
                },
            );
        }
        if !self.allowed_merchants.is_empty() {
            add(
                "Allowed merchants",
                Effect::Deny,
                codes::MERCHANT_NOT_ALLOWED,
                priority::MERCHANT_NOT_ALLOWED,
                &agent_scope,
                "Merchant {merchant} is not on the allowed list",
                Condition::all([
                    purchase(),
                    Condition::any([
                        Condition::MerchantNotIn {
                            merchants: self.allowed_merchants.clone(),
                        },
                        // A purchase without a merchant is not on the list either.
                        Condition::not(Condition::MerchantIn {
                            merchants: self.allowed_merchants.clone(),
                        }),
                    ]),
                ]),
            );
        }
        if !self.blocked_categories.is_empty() {
            add(
                "Blocked categories",
                Effect::Deny,
                codes::CATEGORY_BLOCKED,
                priority::CATEGORY_BLOCKED,
                &tenant,
                "Merchant {merchant} is in a blocked category",
                Condition::MccIn {
                    codes: self.blocked_categories.clone(),
                },
            );
        }
        let agent_budgets = [
            (
                self.daily_limit,
                Period::Daily,
                codes::DAILY_LIMIT_EXCEEDED,
                priority::DAILY_LIMIT_EXCEEDED,
                "daily limit",
            ),
            (
                self.monthly_limit,
                Period::Monthly,
                codes::MONTHLY_LIMIT_EXCEEDED,
                priority::MONTHLY_LIMIT_EXCEEDED,
                "monthly limit",
            ),
        ];
        for (limit, period, code, prio, what) in agent_budgets {
            let (Some(limit), Some(agent)) = (limit, self.agent) else {
                continue;
            };
            add(
                &format!("Agent {what}"),
                Effect::Deny,
                code,
                prio,
                &agent_scope,
                &format!(
                    "Amount {{amount}} {{currency}} would exceed the {what} of {{limit}} {{currency}} ({{remaining}} remaining)"
                ),
                budget_cond(period, BudgetScopeKind::Agent),
            );
            budgets.push(BudgetSpec {
                scope: Scope::Agent(agent),
                period,
                limit,
                currency: cur,
                reason_code: code,
            });
        }
        if let Some(limit) = self.monthly_budget {
            add(
                "Organization monthly budget",
                Effect::Deny,
                codes::ORG_BUDGET_EXCEEDED,
                priority::ORG_BUDGET_EXCEEDED,
                &tenant,
                "Amount {amount} {currency} would exceed the organization's monthly budget of {limit} {currency} ({remaining} remaining)",
                budget_cond(Period::Monthly, BudgetScopeKind::Tenant),
            );
            budgets.push(BudgetSpec {
                scope: Scope::Tenant,
                period: Period::Monthly,
                limit,
                currency: cur,
                reason_code: codes::ORG_BUDGET_EXCEEDED,
            });
        }
        if let Some(t) = self.approval_threshold {
            add(
                "Approval threshold",
                Effect::RequireApproval,
                codes::OVER_THRESHOLD,
                priority::OVER_THRESHOLD,
                &agent_scope,
                "Amount {amount} {currency} is above the approval threshold of {limit} {currency}",
                Condition::all([purchase(), above(t)]),
            );
        }
        if let Some(t) = self.require_approval_above {
            add(
                "Organization approval guardrail",
                Effect::RequireApproval,
                codes::ORG_GUARDRAIL,
                priority::ORG_GUARDRAIL,
                &tenant,
                "Amount {amount} {currency} is above the organization's approval threshold of {limit} {currency}",
                Condition::all([purchase(), above(t)]),
            );
        }
        if self.flag_new_vendors || self.flag_all_new_vendors {
            let scope = if self.flag_all_new_vendors {
                &tenant
            } else {
                &agent_scope
            };
            add(
                "New vendor",
                Effect::RequireApproval,
                codes::NEW_VENDOR,
                priority::NEW_VENDOR,
                scope,
                "{merchant} is a new vendor",
                Condition::all([purchase(), Condition::NewVendor]),
            );
        }
        add(
            "Within spending controls",
            Effect::Allow,
            codes::WITHIN_CONTROLS,
            priority::WITHIN_CONTROLS,
            &agent_scope,
            "",
            Condition::all([
                purchase(),
                Condition::CurrencyIn {
                    currencies: vec![cur],
                },
            ]),
        );
        for p in &policies {
            validate(p)?;
        }
        Ok(Controls { policies, budgets })
    }
}

impl From<u16> for MccSpec {
    fn from(code: u16) -> Self {
        MccSpec::Code(u32::from(code))
    }
}

impl From<&str> for MccSpec {
    fn from(text: &str) -> Self {
        MccSpec::Text(text.to_owned())
    }
}
