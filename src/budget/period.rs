use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The period a budget resets on. Windows are computed in the tenant's time
/// zone; weeks start on Monday.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Period {
    /// One calendar day.
    Daily,
    /// Monday 00:00 to the next Monday 00:00.
    Weekly,
    /// One calendar month.
    Monthly,
    /// One calendar year.
    Yearly,
    /// Never resets.
    Lifetime,
}

impl Period {
    /// Every period, shortest first.
    pub const ALL: [Period; 5] = [
        Period::Daily,
        Period::Weekly,
        Period::Monthly,
        Period::Yearly,
        Period::Lifetime,
    ];

    /// The stored name: `daily`, `weekly`, `monthly`, `yearly`, `lifetime`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Daily => "daily",
            Period::Weekly => "weekly",
            Period::Monthly => "monthly",
            Period::Yearly => "yearly",
            Period::Lifetime => "lifetime",
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Period {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Period::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                crate::Error::invalid(
                    "period",
                    format!("{s:?} is not one of daily, weekly, monthly, yearly, lifetime"),
                )
            })
    }
}
