//! What a `require_approval` policy asks of its approvers: the quorum, who may
//! vote, how long the request lives and whom it escalates to. Pure: the
//! settings, their validation, how several matching policies combine, and
//! how votes decide a request.

use serde::{Deserialize, Serialize};

use crate::id::RoleId;

/// The most approvals an `any_n` quorum may require.
pub const MAX_REQUIRED_APPROVALS: u32 = 100;
/// The shortest expiry an approval may set, in seconds (one minute).
pub const MIN_APPROVAL_TTL_SECS: u32 = 60;
/// The longest expiry an approval may set, in seconds (30 days).
pub const MAX_APPROVAL_TTL_SECS: u32 = 30 * 24 * 3600;

/// How approvers' votes combine.
///
/// JSON: `{"type": "single"}`, `{"type": "any_n", "n": 2}`,
/// `{"type": "unanimous"}` or `{"type": "majority"}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Quorum {
    /// The first vote decides.
    #[default]
    Single,
    /// `n` approvals approve; a rejection rejects once `n` approvals can no
    /// longer be reached.
    AnyN {
        /// Approvals needed, 1 to [`MAX_REQUIRED_APPROVALS`].
        n: u32,
    },
    /// Every eligible approver approves; any rejection rejects.
    Unanimous,
    /// More than half of the eligible approvers approve; rejected as soon as
    /// that can no longer happen (so a tie rejects).
    Majority,
}

impl Quorum {
    /// How many approvals it takes among `eligible` approvers.
    #[must_use]
    pub fn required(self, eligible: u32) -> u32 {
        match self {
            Quorum::Single => 1,
            Quorum::AnyN { n } => n,
            Quorum::Unanimous => eligible.max(1),
            Quorum::Majority => eligible / 2 + 1,
        }
    }

    /// Rank among quorums that need equally many approvals: unanimous over
    /// majority over any-n over single.
    fn rank(self) -> u8 {
        match self {
            Quorum::Single => 0,
            Quorum::AnyN { .. } => 1,
            Quorum::Majority => 2,
            Quorum::Unanimous => 3,
        }
    }
}

/// After a delay, a second role's members become eligible too, and
/// `approval.escalated` is announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    /// Seconds after the request's creation; less than its expiry.
    pub after_secs: u32,
    /// The role whose members (holding `approvals:write`) become eligible.
    pub role: RoleId,
}

/// The approval settings a `require_approval` policy carries.
///
/// ```
/// use bursar::policy::{ApprovalSettings, Condition, Effect, Policy, Quorum};
/// # let finance = bursar::id::RoleId::new();
/// # let admin = bursar::id::RoleId::new();
/// let two_of_finance = ApprovalSettings::new(Quorum::AnyN { n: 2 })
///     .approver_role(finance)
///     .expires_after_secs(24 * 3600)
///     .escalate_after(3600, admin);
/// let policy = Policy::new("Large purchases", Effect::RequireApproval, "OVER_THRESHOLD",
///     Condition::Always).approval(two_of_finance);
/// bursar::policy::validate(&policy)?;
/// # Ok::<(), bursar::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    /// How votes combine.
    #[serde(default)]
    pub quorum: Quorum,
    /// Only members holding this role (and `approvals:write`) may vote;
    /// `None`: every member holding `approvals:write`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_role: Option<RoleId>,
    /// Seconds until an undecided request expires; `None`: the tenant's
    /// `approval_ttl_secs`, else 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_after_secs: Option<u32>,
    /// Escalation, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<Escalation>,
}

impl ApprovalSettings {
    /// Settings with this quorum and nothing else set.
    #[must_use]
    pub fn new(quorum: Quorum) -> Self {
        Self {
            quorum,
            ..Self::default()
        }
    }

    /// Only members holding `role` may vote.
    #[must_use]
    pub fn approver_role(mut self, role: RoleId) -> Self {
        self.approver_role = Some(role);
        self
    }

    /// The request expires this many seconds after its creation.
    #[must_use]
    pub fn expires_after_secs(mut self, secs: u32) -> Self {
        self.expires_after_secs = Some(secs);
        self
    }

    /// After `secs`, members of `role` become eligible too.
    #[must_use]
    pub fn escalate_after(mut self, secs: u32, role: RoleId) -> Self {
        self.escalation = Some(Escalation {
            after_secs: secs,
            role,
        });
        self
    }

    /// Checks the bounds; `path` prefixes the offending field.
    pub(crate) fn check(&self, path: &str) -> Result<(), (String, String)> {
        if let Quorum::AnyN { n } = self.quorum {
            if n == 0 || n > MAX_REQUIRED_APPROVALS {
                return Err((
                    format!("{path}.quorum.n"),
                    format!("{n}, must be 1 to {MAX_REQUIRED_APPROVALS}"),
                ));
            }
        }
        if let Some(secs) = self.expires_after_secs {
            if !(MIN_APPROVAL_TTL_SECS..=MAX_APPROVAL_TTL_SECS).contains(&secs) {
                return Err((
                    format!("{path}.expires_after_secs"),
                    format!(
                        "{secs}, must be {MIN_APPROVAL_TTL_SECS} to {MAX_APPROVAL_TTL_SECS} seconds"
                    ),
                ));
            }
        }
        if let Some(e) = self.escalation {
            let limit = self.expires_after_secs.unwrap_or(MAX_APPROVAL_TTL_SECS);
            if e.after_secs == 0 || e.after_secs >= limit {
                return Err((
                    format!("{path}.escalation.after_secs"),
                    format!(
                        "{}, must be positive and less than the expiry ({limit} seconds)",
                        e.after_secs
                    ),
                ));
            }
            if Some(e.role) == self.approver_role {
                return Err((
                    format!("{path}.escalation.role"),
                    format!("{} is already the approver role", e.role),
                ));
            }
        }
        Ok(())
    }

    /// Combines the settings of every matching `require_approval` policy,
    /// given in evaluation order (highest priority first), into one: the
    /// strictest wins.
    ///
    /// - quorum: the one needing the most approvals among `eligible`
    ///   approvers; equal counts prefer unanimous, then majority, then any-n;
    /// - approver role: the first policy's that names one;
    /// - expiry: the shortest;
    /// - escalation: the earliest.
    ///
    /// No settings at all is [`ApprovalSettings::default`]: one approval by
    /// any member holding `approvals:write`.
    #[must_use]
    pub fn strictest<'a>(
        all: impl IntoIterator<Item = &'a ApprovalSettings>,
        eligible: impl Fn(Option<RoleId>) -> u32,
    ) -> ApprovalSettings {
        let all: Vec<&ApprovalSettings> = all.into_iter().collect();
        let approver_role = all.iter().find_map(|s| s.approver_role);
        let count = eligible(approver_role);
        let quorum = all
            .iter()
            .map(|s| s.quorum)
            .max_by_key(|q| (q.required(count), q.rank()))
            .unwrap_or_default();
        ApprovalSettings {
            quorum,
            approver_role,
            expires_after_secs: all.iter().filter_map(|s| s.expires_after_secs).min(),
            escalation: all
                .iter()
                .filter_map(|s| s.escalation)
                .filter(|e| Some(e.role) != approver_role)
                .min_by_key(|e| e.after_secs),
        }
    }
}

/// The outcome votes reach, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The quorum is reached.
    Approved,
    /// The quorum can no longer be reached.
    Rejected,
}

/// Whether `approves` and `rejects` among `eligible` voters decide a request
/// under `quorum`. Pure; `eligible` counts the approvers who may still vote
/// plus those who voted.
///
/// ```
/// use bursar::policy::{Quorum, Verdict, verdict};
/// assert_eq!(verdict(Quorum::AnyN { n: 2 }, 3, 1, 1), None);
/// assert_eq!(verdict(Quorum::AnyN { n: 2 }, 3, 1, 2), Some(Verdict::Rejected));
/// assert_eq!(verdict(Quorum::Majority, 4, 2, 2), Some(Verdict::Rejected));
/// assert_eq!(verdict(Quorum::Majority, 4, 3, 0), Some(Verdict::Approved));
/// ```
#[must_use]
pub fn verdict(quorum: Quorum, eligible: u32, approves: u32, rejects: u32) -> Option<Verdict> {
    if quorum == Quorum::Single {
        return if approves > 0 {
            Some(Verdict::Approved)
        } else if rejects > 0 {
            Some(Verdict::Rejected)
        } else {
            None
        };
    }
    let required = quorum.required(eligible);
    if approves >= required && eligible > 0 {
        return Some(Verdict::Approved);
    }
    // The most approvals still reachable.
    let reachable = eligible.saturating_sub(rejects);
    (rejects > 0 && reachable < required).then_some(Verdict::Rejected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_ties_and_rejections() {
        // single: first vote decides
        assert_eq!(verdict(Quorum::Single, 3, 0, 0), None);
        assert_eq!(verdict(Quorum::Single, 3, 1, 0), Some(Verdict::Approved));
        assert_eq!(verdict(Quorum::Single, 3, 0, 1), Some(Verdict::Rejected));
        // any_n(2) of 3
        let two = Quorum::AnyN { n: 2 };
        assert_eq!(verdict(two, 3, 1, 0), None);
        assert_eq!(verdict(two, 3, 2, 0), Some(Verdict::Approved));
        assert_eq!(verdict(two, 3, 1, 1), None);
        assert_eq!(verdict(two, 3, 0, 2), Some(Verdict::Rejected));
        // unanimous of 3: any rejection rejects
        assert_eq!(verdict(Quorum::Unanimous, 3, 2, 0), None);
        assert_eq!(verdict(Quorum::Unanimous, 3, 3, 0), Some(Verdict::Approved));
        assert_eq!(verdict(Quorum::Unanimous, 3, 2, 1), Some(Verdict::Rejected));
        // majority of 4: 3 approve; a 2-2 tie rejects
        assert_eq!(verdict(Quorum::Majority, 4, 2, 1), None);
        assert_eq!(verdict(Quorum::Majority, 4, 3, 0), Some(Verdict::Approved));
        assert_eq!(verdict(Quorum::Majority, 4, 2, 2), Some(Verdict::Rejected));
        assert_eq!(verdict(Quorum::Majority, 4, 1, 2), Some(Verdict::Rejected));
        // majority of 3: 2 approve
        assert_eq!(verdict(Quorum::Majority, 3, 2, 1), Some(Verdict::Approved));
        assert_eq!(verdict(Quorum::Majority, 3, 1, 1), None);
        // nobody eligible: nothing decides
        assert_eq!(verdict(Quorum::Unanimous, 0, 0, 0), None);
    }

    #[test]
    fn strictest_settings_win() {
        let finance = RoleId::new();
        let admin = RoleId::new();
        let a = ApprovalSettings::new(Quorum::AnyN { n: 2 })
            .expires_after_secs(7200)
            .escalate_after(3600, admin);
        let b = ApprovalSettings::new(Quorum::Majority)
            .approver_role(finance)
            .expires_after_secs(3600)
            .escalate_after(600, admin);
        // With 5 eligible, majority needs 3 > 2.
        let s = ApprovalSettings::strictest([&a, &b], |_| 5);
        assert_eq!(s.quorum, Quorum::Majority);
        assert_eq!(s.approver_role, Some(finance));
        assert_eq!(s.expires_after_secs, Some(3600));
        assert_eq!(s.escalation.map(|e| e.after_secs), Some(600));
        // With 3 eligible, both need 2: majority ranks above any-n.
        assert_eq!(
            ApprovalSettings::strictest([&a, &b], |_| 3).quorum,
            Quorum::Majority
        );
        // any_n(4) needs 4, more than a majority of 3.
        let c = ApprovalSettings::new(Quorum::AnyN { n: 4 });
        assert_eq!(
            ApprovalSettings::strictest([&b, &c], |_| 3).quorum,
            Quorum::AnyN { n: 4 }
        );
        assert_eq!(
            ApprovalSettings::strictest([], |_| 3),
            ApprovalSettings::default()
        );
    }

    #[test]
    fn bounds_are_checked() {
        let bad = ApprovalSettings::new(Quorum::AnyN { n: 0 });
        assert_eq!(bad.check("approval").unwrap_err().0, "approval.quorum.n");
        let bad = ApprovalSettings::default().expires_after_secs(10);
        assert_eq!(
            bad.check("approval").unwrap_err().0,
            "approval.expires_after_secs"
        );
        let bad = ApprovalSettings::default()
            .expires_after_secs(600)
            .escalate_after(600, RoleId::new());
        assert_eq!(
            bad.check("approval").unwrap_err().0,
            "approval.escalation.after_secs"
        );
    }
}
