//! The evaluation form of a tenant's policies.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::ActionKind;
use super::merchant::MerchantSet;
use super::model::{BudgetScopeKind, Condition, DefaultEffect, Effect, Policy, PolicyScope};
use super::normalize::fold;
use super::reason::PolicyText;
use super::template::Template;
use super::validate::{parse_day, parse_hhmm, parse_zone, validate};
use crate::budget::Period;
use crate::id::{AgentId, PolicyId, ProjectId, TeamId};
use crate::money::Currency;

/// How an amount condition compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AmountOp {
    Above,
    AtLeast,
    Below,
}

/// A compiled condition: sets sorted and folded, ranges merged, times parsed.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Const(bool),
    All(Box<[Node]>),
    Any(Box<[Node]>),
    Not(Box<Node>),
    Amount {
        op: AmountOp,
        threshold: Decimal,
        currency: Currency,
    },
    CurrencyIn(Box<[Currency]>),
    Merchant {
        set: MerchantSet,
        negate: bool,
    },
    Mcc {
        /// Sorted, disjoint, inclusive ranges.
        ranges: Box<[(u16, u16)]>,
        negate: bool,
    },
    Action {
        /// Bit 0 purchase, bit 1 tool call, bit 2 LLM usage.
        mask: u8,
        /// Folded, sorted custom action names.
        custom: Box<[Box<str>]>,
    },
    Tool {
        list: Box<[Box<str>]>,
        negate: bool,
    },
    Model(Box<[Box<str>]>),
    TimeOfDay {
        start: u16,
        end: u16,
        zone: Option<Tz>,
    },
    DayOfWeek {
        /// Bit 0 Monday … bit 6 Sunday.
        mask: u8,
        zone: Option<Tz>,
    },
    NewVendor,
    Velocity {
        window: u32,
        max: u32,
    },
    Budget(BudgetFilter),
    Metadata {
        key: Box<str>,
        value: Box<str>,
    },
    MetadataNumber {
        key: Box<str>,
        op: super::model::NumberOp,
        value: rust_decimal::Decimal,
    },
    Writes,
    /// Lower-cased blocked field names, sorted.
    Fields(Box<[Box<str>]>),
}

/// Which budget windows a budget condition looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BudgetFilter {
    pub(crate) period: Option<Period>,
    pub(crate) scope: Option<BudgetScopeKind>,
}

/// One enabled policy in evaluation form.
#[derive(Clone, Debug)]
pub(crate) struct CompiledPolicy {
    pub(crate) id: PolicyId,
    /// Name, code, message template and first threshold, shared with every
    /// reason the policy gives.
    pub(crate) text: Arc<PolicyText>,
    pub(crate) root: Node,
    /// Every amount threshold in the condition with its currency, in tree
    /// order: the first is `{limit}`; one in another currency than the
    /// request's explains an undetermined match.
    pub(crate) limits: Box<[(Decimal, Currency)]>,
    /// The budget conditions in the tree (to name the exceeded budget).
    pub(crate) budget_filters: Box<[BudgetFilter]>,
    /// The approval settings of a `require_approval` policy.
    pub(crate) approval: Option<super::ApprovalSettings>,
}

/// Policy positions (into [`CompiledPolicies::policies`], which is in
/// evaluation order) by effect, each ascending.
#[derive(Clone, Debug, Default)]
pub(crate) struct Buckets {
    pub(crate) deny: Vec<u32>,
    pub(crate) approval: Vec<u32>,
    pub(crate) allow: Vec<u32>,
}

impl Buckets {
    fn push(&mut self, effect: Effect, rank: u32) {
        match effect {
            Effect::Deny => self.deny.push(rank),
            Effect::RequireApproval => self.approval.push(rank),
            Effect::Allow => self.allow.push(rank),
        }
    }

    fn shrink(&mut self) {
        self.deny.shrink_to_fit();
        self.approval.shrink_to_fit();
        self.allow.shrink_to_fit();
    }
}

pub(crate) static EMPTY: Buckets = Buckets {
    deny: Vec::new(),
    approval: Vec::new(),
    allow: Vec::new(),
};

/// A hasher for UUID keys: UUIDs are already well mixed (v7: 74 random bits),
/// so a multiply-rotate fold is enough and far cheaper than SipHash.
#[derive(Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(23) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_usize(&mut self, _: usize) {
        // Only the slice length prefix comes through here; it is constant.
    }
}

pub(crate) type IdMap<K> = HashMap<K, Buckets, BuildHasherDefault<IdHasher>>;

/// A tenant's policies compiled once for evaluation: validated, disabled ones
/// dropped, sorted by priority, indexed by scope, every list folded and sorted.
///
/// Build it when the tenant's policies change and share it behind an
/// [`Arc`](std::sync::Arc): it is `Send + Sync` and evaluation only reads it.
///
/// ```
/// use bursar::policy::{CompiledPolicies, Condition, DefaultEffect, Effect, Policy};
/// let policies = vec![Policy::new("Allow all", Effect::Allow, "OK", Condition::Always)];
/// let compiled = CompiledPolicies::compile(&policies, DefaultEffect::Deny)?;
/// assert_eq!(compiled.len(), 1);
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CompiledPolicies {
    pub(crate) policies: Vec<CompiledPolicy>,
    pub(crate) tenant: Buckets,
    pub(crate) by_agent: IdMap<AgentId>,
    pub(crate) by_team: IdMap<TeamId>,
    pub(crate) by_project: IdMap<ProjectId>,
    pub(crate) default_effect: DefaultEffect,
    velocity_windows: Vec<u32>,
}

impl CompiledPolicies {
    /// Validates and compiles a tenant's policies.
    ///
    /// # Errors
    /// [`crate::Error::InvalidPolicy`] for the first invalid policy (its path is
    /// prefixed with `policies[i].`), or when there are more than
    /// [`MAX_POLICIES`](super::limits::MAX_POLICIES) policies.
    pub fn compile(policies: &[Policy], default_effect: DefaultEffect) -> crate::Result<Self> {
        use super::limits::MAX_POLICIES;
        if policies.len() > MAX_POLICIES {
            return Err(crate::Error::InvalidPolicy {
                path: "policies".into(),
                reason: format!("{} policies, at most {MAX_POLICIES}", policies.len()),
            });
        }
        for (i, p) in policies.iter().enumerate() {
            validate(p).map_err(|e| match e {
                crate::Error::InvalidPolicy { path, reason } => crate::Error::InvalidPolicy {
                    path: format!("policies[{i}].{path}"),
                    reason,
                },
                other => other,
            })?;
        }
        let mut order: Vec<&Policy> = policies.iter().filter(|p| p.enabled).collect();
        order.sort_by(|a, b| b.priority.cmp(&a.priority).then(a.id.cmp(&b.id)));

        let mut out = Self {
            policies: Vec::with_capacity(order.len()),
            tenant: Buckets::default(),
            by_agent: IdMap::default(),
            by_team: IdMap::default(),
            by_project: IdMap::default(),
            default_effect,
            velocity_windows: Vec::new(),
        };
        for (rank, p) in order.into_iter().enumerate() {
            let rank = u32::try_from(rank).map_err(|_| crate::Error::InvalidPolicy {
                path: "policies".into(),
                reason: "too many policies".into(),
            })?;
            let mut limits = Vec::new();
            let mut budget_filters = Vec::new();
            let root = node(
                &p.condition,
                &mut limits,
                &mut budget_filters,
                &mut out.velocity_windows,
            );
            let template =
                Template::parse(&p.message).map_err(|reason| crate::Error::InvalidPolicy {
                    path: "message".into(),
                    reason,
                })?;
            out.policies.push(CompiledPolicy {
                id: p.id,
                text: Arc::new(PolicyText {
                    name: p.name.as_str().into(),
                    code: p.reason_code.as_str().into(),
                    template,
                    first_limit: limits.first().copied(),
                }),
                root,
                limits: limits.into_boxed_slice(),
                budget_filters: budget_filters.into_boxed_slice(),
                approval: p.approval,
            });
            match &p.scope {
                PolicyScope::Tenant => out.tenant.push(p.effect, rank),
                PolicyScope::Principals {
                    teams,
                    projects,
                    agents,
                } => {
                    for a in agents {
                        push_once(out.by_agent.entry(*a).or_default(), p.effect, rank);
                    }
                    for t in teams {
                        push_once(out.by_team.entry(*t).or_default(), p.effect, rank);
                    }
                    for pr in projects {
                        push_once(out.by_project.entry(*pr).or_default(), p.effect, rank);
                    }
                }
            }
        }
        for b in out
            .by_agent
            .values_mut()
            .chain(out.by_team.values_mut())
            .chain(out.by_project.values_mut())
        {
            b.shrink();
        }
        out.velocity_windows.sort_unstable();
        out.velocity_windows.dedup();
        Ok(out)
    }

    /// How many enabled policies were compiled.
    #[must_use]
    pub fn len(&self) -> usize {
        self.policies.len()
    }

    /// Whether no enabled policy was compiled.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// The approval settings of the compiled policy `id`, if it is enabled
    /// and carries any.
    #[must_use]
    pub fn approval_settings(&self, id: crate::id::PolicyId) -> Option<&super::ApprovalSettings> {
        self.policies
            .iter()
            .find(|p| p.id == id)
            .and_then(|p| p.approval.as_ref())
    }

    /// The tenant's default effect.
    #[must_use]
    pub fn default_effect(&self) -> DefaultEffect {
        self.default_effect
    }

    /// The velocity windows (in seconds) that some policy asks about: the store
    /// should put a [`Velocity`](super::Velocity) for each into the facts. A
    /// missing one makes its condition undetermined (see `docs/policies.md`).
    #[must_use]
    pub fn velocity_windows(&self) -> &[u32] {
        &self.velocity_windows
    }

    /// The buckets that can apply to a principal: the tenant-wide one, then the
    /// agent's, team's and project's.
    pub(crate) fn buckets_for(&self, p: &super::Principal) -> [&Buckets; 4] {
        [
            &self.tenant,
            self.by_agent.get(&p.agent_id).unwrap_or(&EMPTY),
            p.team_id
                .and_then(|t| self.by_team.get(&t))
                .unwrap_or(&EMPTY),
            p.project_id
                .and_then(|t| self.by_project.get(&t))
                .unwrap_or(&EMPTY),
        ]
    }
}

/// Pushes `rank` unless it is already last (an id listed twice in one scope).
fn push_once(b: &mut Buckets, effect: Effect, rank: u32) {
    let list = match effect {
        Effect::Deny => &b.deny,
        Effect::RequireApproval => &b.approval,
        Effect::Allow => &b.allow,
    };
    if list.last() != Some(&rank) {
        b.push(effect, rank);
    }
}

fn folded_sorted(list: &[String]) -> Box<[Box<str>]> {
    let mut v: Vec<Box<str>> = list.iter().map(|s| fold(s).into_boxed_str()).collect();
    v.sort_unstable();
    v.dedup();
    v.into_boxed_slice()
}

/// Compiles a validated condition. Validation has already refused every value
/// that could fail here; the fallbacks below are never taken and keep the code
/// free of panics.
fn node(
    c: &Condition,
    limits: &mut Vec<(Decimal, Currency)>,
    budgets: &mut Vec<BudgetFilter>,
    velocity: &mut Vec<u32>,
) -> Node {
    let mut amount = |op, threshold: Decimal, currency: Currency| {
        limits.push((threshold, currency));
        Node::Amount {
            op,
            threshold,
            currency,
        }
    };
    let amount_node = match c {
        Condition::AmountAbove {
            amount: a,
            currency,
        } => Some(amount(AmountOp::Above, *a, *currency)),
        Condition::AmountAtLeast {
            amount: a,
            currency,
        } => Some(amount(AmountOp::AtLeast, *a, *currency)),
        Condition::AmountBelow {
            amount: a,
            currency,
        } => Some(amount(AmountOp::Below, *a, *currency)),
        _ => None,
    };
    if let Some(n) = amount_node {
        return n;
    }
    match c {
        Condition::Always => Node::Const(true),
        Condition::All { of } => Node::All(
            of.iter()
                .map(|c| node(c, limits, budgets, velocity))
                .collect(),
        ),
        Condition::Any { of } => Node::Any(
            of.iter()
                .map(|c| node(c, limits, budgets, velocity))
                .collect(),
        ),
        Condition::Not { condition } => {
            Node::Not(Box::new(node(condition, limits, budgets, velocity)))
        }
        Condition::AmountAbove { .. }
        | Condition::AmountAtLeast { .. }
        | Condition::AmountBelow { .. } => Node::Const(false),
        Condition::CurrencyIn { currencies } => {
            let mut v = currencies.clone();
            v.sort_unstable();
            v.dedup();
            Node::CurrencyIn(v.into_boxed_slice())
        }
        Condition::MerchantIn { merchants } => Node::Merchant {
            set: MerchantSet::new(merchants),
            negate: false,
        },
        Condition::MerchantNotIn { merchants } => Node::Merchant {
            set: MerchantSet::new(merchants),
            negate: true,
        },
        Condition::MccIn { codes } | Condition::MccNotIn { codes } => {
            let mut ranges: Vec<(u16, u16)> = codes.iter().filter_map(|s| s.range().ok()).collect();
            ranges.sort_unstable();
            let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
            for (lo, hi) in ranges {
                match merged.last_mut() {
                    Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
                    _ => merged.push((lo, hi)),
                }
            }
            Node::Mcc {
                ranges: merged.into_boxed_slice(),
                negate: matches!(c, Condition::MccNotIn { .. }),
            }
        }
        Condition::ActionIn { actions } => {
            let mut mask = 0u8;
            let mut custom = Vec::new();
            for a in actions {
                match a {
                    ActionKind::Purchase => mask |= 1,
                    ActionKind::ToolCall => mask |= 2,
                    ActionKind::LlmUsage => mask |= 4,
                    ActionKind::Custom(name) => custom.push(name.clone()),
                }
            }
            Node::Action {
                mask,
                custom: folded_sorted(&custom),
            }
        }
        Condition::ToolIn { tools } => Node::Tool {
            list: folded_sorted(tools),
            negate: false,
        },
        Condition::ToolNotIn { tools } => Node::Tool {
            list: folded_sorted(tools),
            negate: true,
        },
        Condition::ModelIn { models } => Node::Model(folded_sorted(models)),
        Condition::TimeOfDay {
            start,
            end,
            timezone,
        } => match (parse_hhmm(start), parse_hhmm(end)) {
            (Ok(start), Ok(end)) => Node::TimeOfDay {
                start,
                end,
                zone: timezone.as_deref().and_then(|z| parse_zone(z).ok()),
            },
            _ => Node::Const(false),
        },
        Condition::DayOfWeek { days, timezone } => Node::DayOfWeek {
            mask: days
                .iter()
                .filter_map(|d| parse_day(d).ok())
                .fold(0u8, |m, d| m | (1 << d)),
            zone: timezone.as_deref().and_then(|z| parse_zone(z).ok()),
        },
        Condition::NewVendor => Node::NewVendor,
        Condition::VelocityAbove {
            window_seconds,
            max,
        } => {
            velocity.push(*window_seconds);
            Node::Velocity {
                window: *window_seconds,
                max: *max,
            }
        }
        Condition::BudgetExceeded { period, scope } => {
            let f = BudgetFilter {
                period: *period,
                scope: *scope,
            };
            budgets.push(f);
            Node::Budget(f)
        }
        Condition::MetadataEquals { key, value } => Node::Metadata {
            key: key.as_str().into(),
            value: value.as_str().into(),
        },
        Condition::MetadataNumber { key, op, value } => Node::MetadataNumber {
            key: key.as_str().into(),
            op: *op,
            value: *value,
        },
        Condition::Writes => Node::Writes,
        Condition::FieldsIn { fields } => {
            let mut set: Vec<Box<str>> = fields
                .iter()
                .map(|f| f.trim().to_lowercase().into_boxed_str())
                .collect();
            set.sort_unstable();
            set.dedup();
            Node::Fields(set.into_boxed_slice())
        }
    }
}
