//! Stored names of the policy enums (`allow`, `deny`, `require_approval`).

use std::fmt;
use std::str::FromStr;

use super::{DefaultEffect, Effect};

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Effect {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(Effect::Allow),
            "deny" => Ok(Effect::Deny),
            "require_approval" => Ok(Effect::RequireApproval),
            other => Err(crate::Error::invalid(
                "effect",
                format!("{other:?} is not one of allow, deny, require_approval"),
            )),
        }
    }
}

impl DefaultEffect {
    /// The stored name: `allow` or `deny`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            DefaultEffect::Allow => "allow",
            DefaultEffect::Deny => "deny",
        }
    }
}

impl fmt::Display for DefaultEffect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DefaultEffect {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "allow" => Ok(DefaultEffect::Allow),
            "deny" => Ok(DefaultEffect::Deny),
            other => Err(crate::Error::invalid(
                "default_effect",
                format!("{other:?} is not one of allow, deny"),
            )),
        }
    }
}

/// A merchant name as policies compare it: trimmed, case-folded, inner
/// whitespace collapsed. The store keys known merchants by this form, so "a
/// new vendor" means exactly "a name no merchant policy would tell apart from
/// one seen before".
///
/// ```
/// assert_eq!(bursar::policy::fold_merchant("  Facebook   ADS "), bursar::policy::fold_merchant("facebook ads"));
/// ```
#[must_use]
pub fn fold_merchant(name: &str) -> String {
    super::normalize::fold(name)
}

/// The host of a merchant URL or domain, as policies match it: scheme, path,
/// port and a leading `www.` removed; `None` when it is not a plausible host.
///
/// ```
/// assert_eq!(bursar::policy::merchant_host("https://www.GitHub.com/pricing"), Some("GitHub.com"));
/// assert_eq!(bursar::policy::merchant_host("not a host"), None);
/// ```
#[must_use]
pub fn merchant_host(raw: &str) -> Option<&str> {
    super::normalize::host_of(raw)
}
