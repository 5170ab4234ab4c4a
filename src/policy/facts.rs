//! What the store knows at the moment of a request.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::budget::WindowBalance;

/// How many requests the principal made in a recent window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Velocity {
    /// The window's length, ending at `now`, in seconds.
    pub window_seconds: u32,
    /// Requests already made in the window (not counting this one).
    pub count: u32,
}

/// Everything [`evaluate`](super::evaluate) needs besides the request and the
/// policies. The store loads it; tests build it by hand.
///
/// ```
/// use bursar::policy::Facts;
/// use chrono::{TimeZone, Utc};
///
/// let facts = Facts::new(Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap(), chrono_tz::Europe::Berlin)
///     .new_vendor(true)
///     .velocity(3600, 12);
/// assert!(facts.new_vendor);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Facts {
    /// The current window of every budget that applies to the request (its
    /// agent, team, project, run and the tenant). A window in another
    /// currency than the request's cannot be compared with its amount: it
    /// makes a `budget_exceeded` condition that looks at it undetermined.
    pub budgets: Vec<WindowBalance>,
    /// Whether the request's merchant has never been seen in the tenant.
    pub new_vendor: bool,
    /// Recent request counts, one per window that a policy asks about (see
    /// [`CompiledPolicies::velocity_windows`](super::CompiledPolicies::velocity_windows)).
    pub velocity: Vec<Velocity>,
    /// The tenant's time zone (time-of-day and day-of-week conditions use it
    /// unless they name their own).
    pub timezone: Tz,
    /// The moment of the request.
    pub now: DateTime<Utc>,
}

impl Facts {
    /// Facts at `now` in `timezone`, with no budgets, no velocity and a known vendor.
    #[must_use]
    pub fn new(now: DateTime<Utc>, timezone: Tz) -> Self {
        Self {
            budgets: Vec::new(),
            new_vendor: false,
            velocity: Vec::new(),
            timezone,
            now,
        }
    }

    /// Adds a budget window.
    #[must_use]
    pub fn budget(mut self, window: WindowBalance) -> Self {
        self.budgets.push(window);
        self
    }

    /// Sets whether the merchant is new to the tenant.
    #[must_use]
    pub fn new_vendor(mut self, new_vendor: bool) -> Self {
        self.new_vendor = new_vendor;
        self
    }

    /// Adds a velocity count: `count` requests in the last `window_seconds`.
    #[must_use]
    pub fn velocity(mut self, window_seconds: u32, count: u32) -> Self {
        self.velocity.push(Velocity {
            window_seconds,
            count,
        });
        self
    }

    /// The count for a window of exactly `window_seconds`, if loaded.
    #[must_use]
    pub fn velocity_count(&self, window_seconds: u32) -> Option<u32> {
        self.velocity
            .iter()
            .find(|v| v.window_seconds == window_seconds)
            .map(|v| v.count)
    }
}
