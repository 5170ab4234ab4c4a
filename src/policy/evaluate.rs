//! Evaluation: request + facts + compiled policies → decision.

use std::cell::Cell;
use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{Datelike, Timelike};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::compile::{AmountOp, BudgetFilter, CompiledPolicies, CompiledPolicy, Node};
use super::merchant::{MerchantMatch, MerchantSet};
use super::model::{BudgetScopeKind, DefaultEffect, Effect};
use super::normalize::contains_folded;
use super::reason::{BudgetDetail, Incomparable, Reason, Reasons, RequestText, Values};
use super::template::Field;
use super::{ActionKind, Facts, Request};
use crate::budget::WindowBalance;
use crate::codes;
use crate::id::PolicyId;

/// The outcome of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// The request may go ahead.
    Approved,
    /// A human must approve it first.
    PendingApproval,
    /// The request is refused.
    Rejected,
}

impl Outcome {
    /// The outcome's stable name, as serialized: `approved`,
    /// `pending_approval` or `rejected`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::PendingApproval => "pending_approval",
            Self::Rejected => "rejected",
        }
    }
}

/// The result of [`evaluate`]: an outcome and every reason for it.
///
/// ```
/// use bursar::policy::{evaluate, CompiledPolicies, DefaultEffect, Facts, Outcome, Request};
/// use bursar::{id::AgentId, money::Currency};
/// use chrono::Utc;
///
/// let compiled = CompiledPolicies::compile(&[], DefaultEffect::Deny)?;
/// let request = Request::purchase(AgentId::new(), 10.into(), Currency::USD, "GitHub");
/// let decision = evaluate(&compiled, &request, &Facts::new(Utc::now(), chrono_tz::UTC));
/// assert_eq!(decision.outcome(), Outcome::Rejected);
/// assert_eq!(decision.reasons()[0].code(), bursar::codes::NO_MATCHING_POLICY);
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    outcome: Outcome,
    #[serde(default, skip_serializing_if = "Reasons::is_empty")]
    reasons: Reasons,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allowed_by: Option<PolicyId>,
}

impl Decision {
    /// The outcome.
    #[must_use]
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Every reason, highest priority first. Empty when approved.
    #[must_use]
    pub fn reasons(&self) -> &[Reason] {
        self.reasons.as_slice()
    }

    /// Consumes the decision, returning its reasons.
    #[must_use]
    pub fn into_reasons(self) -> Vec<Reason> {
        self.reasons.into_vec()
    }

    /// The reason codes, highest priority first.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.reasons().iter().map(Reason::code)
    }

    /// The `allow` policy that approved the request (`None` when the tenant's
    /// default approved it, or when not approved).
    #[must_use]
    pub fn allowed_by(&self) -> Option<PolicyId> {
        self.allowed_by
    }

    /// Whether the request is approved.
    #[must_use]
    pub fn is_approved(&self) -> bool {
        self.outcome == Outcome::Approved
    }

    /// Whether the request waits for a human.
    #[must_use]
    pub fn is_pending_approval(&self) -> bool {
        self.outcome == Outcome::PendingApproval
    }

    /// Whether the request is rejected.
    #[must_use]
    pub fn is_rejected(&self) -> bool {
        self.outcome == Outcome::Rejected
    }
}

/// Three-valued truth: conditions that cannot be decided are `Unknown`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Truth {
    False,
    Unknown,
    True,
}

impl Truth {
    fn from_bool(b: bool) -> Self {
        if b { Truth::True } else { Truth::False }
    }

    fn not(self) -> Self {
        match self {
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
            Truth::True => Truth::False,
        }
    }
}

/// Per-evaluation state: the inputs and the local time, computed at most once.
struct Ctx<'a> {
    req: &'a Request,
    facts: &'a Facts,
    /// Minutes after midnight and weekday (0 = Monday) in the facts' zone.
    local: Cell<Option<(u16, u8)>>,
}

impl Ctx<'_> {
    #[inline(never)]
    fn local_in(&self, zone: Option<Tz>) -> (u16, u8) {
        fn compute(now: chrono::DateTime<chrono::Utc>, tz: Tz) -> (u16, u8) {
            let t = now.with_timezone(&tz);
            let minutes = u16::try_from(t.hour() * 60 + t.minute()).unwrap_or(0);
            let day = u8::try_from(t.weekday().num_days_from_monday()).unwrap_or(0);
            (minutes, day)
        }
        match zone {
            Some(tz) => compute(self.facts.now, tz),
            None => {
                if let Some(v) = self.local.get() {
                    return v;
                }
                let v = compute(self.facts.now, self.facts.timezone);
                self.local.set(Some(v));
                v
            }
        }
    }

    /// Whether a budget condition looks at the window `w` (in any currency).
    fn budget_applies(w: &WindowBalance, f: BudgetFilter) -> bool {
        f.period.is_none_or(|p| p == w.period)
            && f.scope
                .is_none_or(|s| BudgetScopeKind::of(&w.scope) == Some(s))
    }

    /// A condition's truth. Composites recurse; leaves are decided inline
    /// (the cheap ones) or by out-of-line helpers (the ones that scan text,
    /// budgets or the clock), which keeps this hot function small.
    fn eval(&self, n: &Node) -> Truth {
        match n {
            Node::All(of) => {
                let mut acc = Truth::True;
                for c in of.iter() {
                    match self.child(c) {
                        Truth::False => return Truth::False,
                        Truth::Unknown => acc = Truth::Unknown,
                        Truth::True => {}
                    }
                }
                acc
            }
            Node::Any(of) => {
                let mut acc = Truth::False;
                for c in of.iter() {
                    match self.child(c) {
                        Truth::True => return Truth::True,
                        Truth::Unknown => acc = Truth::Unknown,
                        Truth::False => {}
                    }
                }
                acc
            }
            Node::Not(c) => self.child(c).not(),
            leaf => self.leaf(leaf),
        }
    }

    /// A child of a composite: a leaf without another call of [`Self::eval`].
    #[inline(always)]
    fn child(&self, n: &Node) -> Truth {
        match n {
            Node::All(_) | Node::Any(_) | Node::Not(_) => self.eval(n),
            leaf => self.leaf(leaf),
        }
    }

    #[inline(always)]
    fn leaf(&self, n: &Node) -> Truth {
        match n {
            Node::Const(b) => Truth::from_bool(*b),
            Node::All(_) | Node::Any(_) | Node::Not(_) => self.eval(n),
            Node::Amount {
                op,
                threshold,
                currency,
            } => match self.req.money() {
                None => Truth::False,
                Some((_, c)) if c != *currency => Truth::Unknown,
                Some((a, _)) => {
                    let ord = cmp_decimal(a, *threshold);
                    Truth::from_bool(match op {
                        AmountOp::Above => ord == Ordering::Greater,
                        AmountOp::AtLeast => ord != Ordering::Less,
                        AmountOp::Below => ord == Ordering::Less,
                    })
                }
            },
            Node::CurrencyIn(list) => Truth::from_bool(
                self.req
                    .currency
                    .is_some_and(|c| list.binary_search(&c).is_ok()),
            ),
            Node::Merchant { set, negate } => self.merchant(set, *negate),
            Node::Mcc { ranges, negate } => match self.req.merchant.as_ref().and_then(|m| m.mcc) {
                None => Truth::False,
                Some(code) => {
                    let i = ranges.partition_point(|r| r.1 < code);
                    let hit = ranges.get(i).is_some_and(|r| r.0 <= code);
                    Truth::from_bool(hit != *negate)
                }
            },
            Node::Action { mask, custom } => Truth::from_bool(match &self.req.action {
                ActionKind::Purchase => mask & 1 != 0,
                ActionKind::ToolCall => mask & 2 != 0,
                ActionKind::LlmUsage => mask & 4 != 0,
                ActionKind::Custom(name) => contains_folded(custom, name),
            }),
            Node::Tool { list, negate } => match &self.req.tool {
                None => Truth::False,
                Some(t) => Truth::from_bool(contains_folded(list, t) != *negate),
            },
            Node::Model(list) => Truth::from_bool(
                self.req
                    .model
                    .as_deref()
                    .is_some_and(|m| contains_folded(list, m)),
            ),
            Node::TimeOfDay { start, end, zone } => {
                let (m, _) = self.local_in(*zone);
                Truth::from_bool(if start < end {
                    *start <= m && m < *end
                } else {
                    m >= *start || m < *end
                })
            }
            Node::DayOfWeek { mask, zone } => {
                let (_, d) = self.local_in(*zone);
                Truth::from_bool(mask & (1 << d) != 0)
            }
            Node::NewVendor => Truth::from_bool(self.facts.new_vendor),
            Node::Velocity { window, max } => match self.facts.velocity_count(*window) {
                None => Truth::Unknown,
                Some(count) => Truth::from_bool(count >= *max),
            },
            Node::Budget(f) => self.budget_exceeded(*f),
            Node::Metadata { .. }
            | Node::MetadataNumber { .. }
            | Node::Writes
            | Node::Fields(_) => self.metadata(n),
        }
    }

    /// The leaves that look up the request's metadata, out of line: they
    /// parse, trim or split text, which would make [`Self::eval`] heavier
    /// for every condition.
    #[inline(never)]
    fn metadata(&self, n: &Node) -> Truth {
        match n {
            Node::Metadata { key, value } => Truth::from_bool(
                self.req
                    .metadata
                    .get(&**key)
                    .is_some_and(|v| v.as_str() == &**value),
            ),
            Node::MetadataNumber { key, op, value } => {
                match self
                    .req
                    .metadata
                    .get(&**key)
                    .and_then(|v| crate::money::parse_decimal(v).ok())
                {
                    Some(number) => Truth::from_bool(op.holds(number, *value)),
                    None => Truth::Unknown,
                }
            }
            Node::Writes => match self.req.metadata.get("access").map(|a| a.trim()) {
                Some(a) if a.eq_ignore_ascii_case("write") || a.eq_ignore_ascii_case("delete") => {
                    Truth::True
                }
                Some(a) if a.eq_ignore_ascii_case("read") => Truth::False,
                _ => Truth::Unknown,
            },
            Node::Fields(blocked) => {
                Truth::from_bool(self.req.metadata.get("fields").is_some_and(|named| {
                    named.split(',').any(|f| {
                        let f = f.trim().to_lowercase();
                        blocked.binary_search_by(|b| (**b).cmp(f.as_str())).is_ok()
                    })
                }))
            }
            // Not a metadata leaf (never the case): decided as any other.
            other => self.eval(other),
        }
    }

    #[inline(never)]
    fn merchant(&self, set: &MerchantSet, negate: bool) -> Truth {
        match &self.req.merchant {
            None => Truth::False,
            Some(m) => {
                let truth = match set.matches(&m.name, m.domain.as_deref()) {
                    MerchantMatch::No => Truth::False,
                    MerchantMatch::NameOnly => Truth::Unknown,
                    MerchantMatch::Yes => Truth::True,
                };
                if negate { truth.not() } else { truth }
            }
        }
    }

    /// True when the amount does not fit a window in its currency that the
    /// filter looks at; else undetermined when such a window is in another
    /// currency (its limit cannot be compared); else false.
    #[inline(never)]
    fn budget_exceeded(&self, f: BudgetFilter) -> Truth {
        let Some((amount, currency)) = self.req.money() else {
            return Truth::False;
        };
        let mut truth = Truth::False;
        for w in self
            .facts
            .budgets
            .iter()
            .filter(|w| Self::budget_applies(w, f))
        {
            if w.currency != currency {
                truth = Truth::Unknown;
            } else if !fits(w, amount) {
                return Truth::True;
            }
        }
        truth
    }

    /// The first budget window in the request's currency, among those the
    /// policy's budget conditions look at, that the request's amount does not fit.
    fn exceeded_budget(&self, p: &CompiledPolicy) -> Option<&WindowBalance> {
        if p.budget_filters.is_empty() {
            return None;
        }
        let (amount, currency) = self.req.money()?;
        self.facts.budgets.iter().find(|w| {
            w.currency == currency
                && !fits(w, amount)
                && p.budget_filters.iter().any(|f| Self::budget_applies(w, *f))
        })
    }

    /// For a policy that matched undetermined, what could not be compared:
    /// the amount with a threshold or a budget window in another currency.
    /// `None` when the cause was something else.
    fn incomparable(&self, p: &CompiledPolicy) -> Option<Incomparable> {
        let (_, currency) = self.req.money()?;
        match p.limits.iter().find(|(_, c)| *c != currency) {
            Some((limit, c)) => Some(Incomparable {
                budget: None,
                limit: *limit,
                currency: *c,
            }),
            None => {
                let w = self.facts.budgets.iter().find(|w| {
                    w.currency != currency
                        && p.budget_filters.iter().any(|f| Self::budget_applies(w, *f))
                })?;
                Some(Incomparable {
                    budget: Some(w.period),
                    limit: w.limit,
                    currency: w.currency,
                })
            }
        }
    }

    /// The request's texts that the policy's template names (`None` when it
    /// names none, the common case: nothing is copied).
    fn request_text(&self, p: &CompiledPolicy) -> Option<Box<RequestText>> {
        let template = &p.text.template;
        if !template.names_request_text() {
            return None;
        }
        let copy = |field: Field, text: Option<&str>| {
            text.filter(|_| template.names(field)).map(Box::from)
        };
        Some(Box::new(RequestText {
            merchant: copy(
                Field::Merchant,
                self.req.merchant.as_ref().map(|m| m.name.trim()),
            ),
            tool: copy(Field::Tool, self.req.tool.as_deref()),
            model: copy(Field::Model, self.req.model.as_deref()),
            action: template
                .names(Field::Action)
                .then(|| self.req.action.clone()),
        }))
    }

    /// The reason a matching policy gives: its shared text and the values its
    /// message is rendered from when read.
    fn reason(&self, p: &CompiledPolicy, truth: Truth) -> Reason {
        let window = self.exceeded_budget(p);
        let incomparable = match truth {
            Truth::Unknown => self.incomparable(p),
            _ => None,
        };
        let request = match incomparable {
            Some(_) => None,
            None => self.request_text(p),
        };
        let values = Values {
            amount: self.req.amount,
            currency: self.req.currency,
            incomparable,
            request,
        };
        Reason::from_policy(
            Arc::clone(&p.text),
            values,
            p.id,
            window.map(|w| BudgetDetail {
                budget_id: w.budget_id,
                period: w.period,
                currency: w.currency,
                limit: w.limit,
                remaining: w.remaining(),
            }),
            truth == Truth::Unknown,
        )
    }
}

/// `10^n` for every scale a `Decimal` can have (0–28).
const POW10: [i128; 29] = {
    let mut t = [1i128; 29];
    let mut i = 1;
    while i < 29 {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// `mantissa · 10^(to − from)` for a `Decimal`'s mantissa (below 2^96 in
/// magnitude), or `None` when it would overflow.
fn scaled(mantissa: i128, from: u32, to: u32) -> Option<i128> {
    let up = to.checked_sub(from)?;
    match POW10.get(up as usize) {
        // 2^96 · 10^9 < 2^126: cannot overflow.
        Some(p) if up <= 9 => Some(mantissa * p),
        Some(p) => mantissa.checked_mul(*p),
        None => None,
    }
}

/// Compares two decimals as scaled integers: equal scales (the common case,
/// inlined) compare their mantissas, other scales bring the smaller one up;
/// `Decimal`'s own comparison only when that would overflow. Exact either way.
#[inline]
fn cmp_decimal(a: Decimal, b: Decimal) -> Ordering {
    if a.scale() == b.scale() {
        a.mantissa().cmp(&b.mantissa())
    } else {
        cmp_decimal_rescaled(a, b)
    }
}

/// [`cmp_decimal`] for two decimals of different scales.
#[inline(never)]
fn cmp_decimal_rescaled(a: Decimal, b: Decimal) -> Ordering {
    let (sa, sb) = (a.scale(), b.scale());
    let (ma, mb) = (a.mantissa(), b.mantissa());
    let pair = match sa.cmp(&sb) {
        Ordering::Equal => Some((ma, mb)),
        Ordering::Less => scaled(ma, sa, sb).map(|ma| (ma, mb)),
        Ordering::Greater => scaled(mb, sb, sa).map(|mb| (ma, mb)),
    };
    match pair {
        Some((ma, mb)) => ma.cmp(&mb),
        None => a.cmp(&b),
    }
}

/// [`WindowBalance::fits`] (`spent + reserved + amount <= limit`) computed on
/// scaled integers. When every operand and partial sum at the common scale
/// stays below 2^96 in magnitude, `Decimal` addition is exact too, so both
/// agree; outside that range the `Decimal` computation decides.
///
/// Four decimals of one scale (the usual case, inlined) are their mantissas,
/// each below 2^96 by construction; other scales are brought up to the
/// largest by [`fits_rescaled`].
#[inline]
fn fits(w: &WindowBalance, amount: Decimal) -> bool {
    let scale = amount.scale();
    if w.spent.scale() != scale || w.reserved.scale() != scale || w.limit.scale() != scale {
        return fits_rescaled(w, amount);
    }
    match total_within_bound(w.spent.mantissa(), w.reserved.mantissa(), amount.mantissa()) {
        Some(total) => total <= w.limit.mantissa(),
        None => w.fits(amount),
    }
}

/// [`fits`] for decimals of different scales.
#[inline(never)]
fn fits_rescaled(w: &WindowBalance, amount: Decimal) -> bool {
    let scale = w
        .spent
        .scale()
        .max(w.reserved.scale())
        .max(amount.scale())
        .max(w.limit.scale());
    let at = |d: Decimal| scaled(d.mantissa(), d.scale(), scale).filter(|m| below_2_96(*m));
    if let (Some(spent), Some(reserved), Some(amount), Some(limit)) =
        (at(w.spent), at(w.reserved), at(amount), at(w.limit))
        && let Some(total) = total_within_bound(spent, reserved, amount)
    {
        return total <= limit;
    }
    w.fits(amount)
}

/// Whether `m` is below 2^96 in magnitude, as every `Decimal` mantissa is:
/// where `Decimal` arithmetic on such values is exact.
#[inline]
fn below_2_96(m: i128) -> bool {
    const BOUND: i128 = 1 << 96;
    (-BOUND + 1..BOUND).contains(&m)
}

/// `spent + reserved + amount` for three terms below 2^96 in magnitude (so
/// the sums cannot overflow), or `None` when a partial sum reaches 2^96.
#[inline]
fn total_within_bound(spent: i128, reserved: i128, amount: i128) -> Option<i128> {
    let used = spent + reserved;
    let total = used + amount;
    (below_2_96(used) && below_2_96(total)).then_some(total)
}

/// Walks up to four ascending position lists as one ascending list without
/// repeats (a policy may be reachable through the agent and its team). The
/// usual cases, one list or two that are not empty, are walked directly;
/// three or four go through [`Merge`].
enum Positions<'a> {
    One(std::slice::Iter<'a, u32>),
    Two(&'a [u32], &'a [u32]),
    More(Merge<'a>),
}

impl<'a> Positions<'a> {
    fn new(lists: [&'a [u32]; 4]) -> Self {
        let mut filled = lists.into_iter().filter(|l| !l.is_empty());
        match (filled.next(), filled.next(), filled.next()) {
            (None, _, _) => Self::One([].iter()),
            (Some(a), None, _) => Self::One(a.iter()),
            (Some(a), Some(b), None) => Self::Two(a, b),
            (Some(_), Some(_), Some(_)) => Self::More(Merge { lists }),
        }
    }
}

impl Iterator for Positions<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        match self {
            Self::One(list) => list.next().copied(),
            Self::Two(a, b) => match (a.split_first(), b.split_first()) {
                (Some((&x, rest_a)), Some((&y, rest_b))) => {
                    if x <= y {
                        *a = rest_a;
                    }
                    if y <= x {
                        *b = rest_b;
                    }
                    Some(x.min(y))
                }
                (Some((&x, rest)), None) => {
                    *a = rest;
                    Some(x)
                }
                (None, Some((&y, rest))) => {
                    *b = rest;
                    Some(y)
                }
                (None, None) => None,
            },
            Self::More(merge) => merge.next(),
        }
    }
}

/// Walks up to four ascending position lists as one ascending list without
/// repeats, whichever of them are empty.
struct Merge<'a> {
    lists: [&'a [u32]; 4],
}

impl Merge<'_> {
    /// Stands for an exhausted list: no position reaches it, since there are
    /// at most [`MAX_POLICIES`](super::limits::MAX_POLICIES) policies.
    const END: u32 = u32::MAX;

    fn head(list: &[u32]) -> u32 {
        list.first().copied().unwrap_or(Self::END)
    }
}

impl Iterator for Merge<'_> {
    type Item = u32;

    fn next(&mut self) -> Option<u32> {
        let [a, b, c, d] = self.lists.map(Self::head);
        let min = a.min(b).min(c.min(d));
        if min == Self::END {
            return None;
        }
        for l in &mut self.lists {
            if Self::head(l) == min {
                *l = l.get(1..).unwrap_or_default();
            }
        }
        Some(min)
    }
}

/// Decides a request: the pure core of bursar.
///
/// 1. Any matching `deny` → [`Outcome::Rejected`] with every matching deny's
///    reason, highest priority first.
/// 2. Else any matching `require_approval` → [`Outcome::PendingApproval`] with
///    every such reason.
/// 3. Else a matching `allow`, or a default effect of allow →
///    [`Outcome::Approved`].
/// 4. Else [`Outcome::Rejected`] with [`codes::NO_MATCHING_POLICY`].
///
/// Only the policies whose scope contains the request's principal are visited
/// (through the compiled scope index). Reads nothing but its arguments,
/// never parses JSON, and allocates nothing for a decision with at most one
/// reason whose message names none of the request's texts (its message is
/// rendered when read, see [`Reason::message`]).
#[must_use]
pub fn evaluate(compiled: &CompiledPolicies, request: &Request, facts: &Facts) -> Decision {
    let ctx = Ctx {
        req: request,
        facts,
        local: Cell::new(None),
    };
    let buckets = compiled.buckets_for(&request.principal);
    let policies = &compiled.policies;
    let matching = |effect: Effect| {
        let lists = buckets.map(|b| match effect {
            Effect::Deny => b.deny.as_slice(),
            Effect::RequireApproval => b.approval.as_slice(),
            Effect::Allow => b.allow.as_slice(),
        });
        Positions::new(lists).filter_map(|rank| policies.get(rank as usize))
    };

    let mut reasons = Reasons::None;
    for effect in [Effect::Deny, Effect::RequireApproval] {
        for p in matching(effect) {
            let truth = ctx.eval(&p.root);
            if truth != Truth::False {
                reasons.push(ctx.reason(p, truth));
            }
        }
        if !reasons.is_empty() {
            let outcome = if effect == Effect::Deny {
                Outcome::Rejected
            } else {
                Outcome::PendingApproval
            };
            return Decision {
                outcome,
                reasons,
                allowed_by: None,
            };
        }
    }
    if let Some(p) = matching(Effect::Allow).find(|p| ctx.eval(&p.root) == Truth::True) {
        return Decision {
            outcome: Outcome::Approved,
            reasons,
            allowed_by: Some(p.id),
        };
    }
    if compiled.default_effect == DefaultEffect::Allow {
        return Decision {
            outcome: Outcome::Approved,
            reasons,
            allowed_by: None,
        };
    }
    reasons.push(Reason::new(
        codes::NO_MATCHING_POLICY,
        "no policy allows this request and the tenant's default is deny",
    ));
    Decision {
        outcome: Outcome::Rejected,
        reasons,
        allowed_by: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Period, Scope};
    use crate::id::BudgetId;
    use crate::money::Currency;

    /// Fixed-seed decimals: small and huge mantissas, every scale, both signs.
    fn decimals() -> Vec<Decimal> {
        let mut out = vec![
            Decimal::ZERO,
            -Decimal::ZERO,
            Decimal::MAX,
            Decimal::MIN,
            Decimal::new(1, 28),
            Decimal::new(30, 0),
            Decimal::new(3000, 2),
        ];
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        for i in 0..400u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = if i % 3 == 0 {
                i128::from(x % 100_000)
            } else {
                i128::from(x as i64) * i128::from((x >> 33) as u32)
            };
            out.push(Decimal::from_i128_with_scale(m, (x >> 58) as u32 % 29));
        }
        out
    }

    #[test]
    fn positions_walk_the_union_of_the_lists_in_order() {
        let lists: [&[u32]; 6] = [&[], &[0, 2, 4, 5], &[1, 3], &[2, 9], &[7], &[0, 1, 2, 3]];
        for a in lists {
            for b in lists {
                for c in lists {
                    for d in lists {
                        let mut union: Vec<u32> = [a, b, c, d].concat();
                        union.sort_unstable();
                        union.dedup();
                        let walked: Vec<u32> = Positions::new([a, b, c, d]).collect();
                        assert_eq!(walked, union, "{a:?} {b:?} {c:?} {d:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn scaling_a_mantissa_up_is_exact_until_it_would_overflow() {
        // Up by a few places (the unchecked multiplication) and by many.
        assert_eq!(scaled(5, 0, 2), Some(500));
        assert_eq!(scaled(-5, 2, 11), Some(-5_000_000_000));
        assert_eq!(scaled(7, 0, 12), Some(7_000_000_000_000));
        assert_eq!(scaled(3, 4, 4), Some(3));
        // The largest mantissa, up by 9 places, fits; up by 28 it does not.
        let max = i128::from(u64::MAX) << 32 | i128::from(u32::MAX);
        assert_eq!(scaled(max, 0, 9), Some(max * 1_000_000_000));
        assert_eq!(scaled(max, 0, 28), None);
        // Never down, and never past the largest scale.
        assert_eq!(scaled(500, 2, 0), None);
        assert_eq!(scaled(1, 0, 29), None);
    }

    #[test]
    fn totals_are_summed_while_every_partial_sum_stays_below_2_96() {
        let top = (1i128 << 96) - 1;
        assert!(below_2_96(top) && below_2_96(-top) && below_2_96(0));
        assert!(!below_2_96(top + 1) && !below_2_96(-top - 1));
        assert_eq!(total_within_bound(1, 2, 3), Some(6));
        assert_eq!(total_within_bound(-5, 2, 1), Some(-2));
        assert_eq!(total_within_bound(top, 0, 0), Some(top));
        assert_eq!(total_within_bound(-top, 0, 0), Some(-top));
        assert_eq!(total_within_bound(top - 2, 1, 1), Some(top));
        // `spent + reserved` reaching 2^96, or the total reaching it.
        assert_eq!(total_within_bound(top, 1, -5), None);
        assert_eq!(total_within_bound(-top, -1, 5), None);
        assert_eq!(total_within_bound(top, 0, 1), None);
        assert_eq!(total_within_bound(-top, 0, -1), None);
    }

    #[test]
    fn scaled_integer_comparison_equals_decimal_comparison() {
        let ds = decimals();
        for a in &ds {
            for b in &ds {
                assert_eq!(cmp_decimal(*a, *b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn scaled_integer_fit_equals_window_fit() {
        let ds = decimals();
        let mut checked = 0;
        for (i, limit) in ds.iter().enumerate() {
            let w = WindowBalance {
                budget_id: BudgetId::new(),
                scope: Scope::Tenant,
                period: Period::Daily,
                currency: Currency::USD,
                limit: *limit,
                spent: ds[(i * 7 + 1) % ds.len()],
                reserved: ds[(i * 13 + 2) % ds.len()],
            };
            for amount in ds.iter().step_by(5) {
                assert_eq!(fits(&w, *amount), w.fits(*amount), "{w:?} + {amount:?}");
                checked += 1;
            }
        }
        assert!(checked > 10_000);
    }
}
