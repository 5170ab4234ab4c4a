//! Period windows in a tenant's time zone.
//!
//! A window of a daily, weekly, monthly or yearly budget runs from one local
//! period boundary (00:00 on the first day of the period, in the tenant's IANA
//! time zone) to the next, and is returned as UTC instants. See
//! [`Period::window`] and `docs/budgets.md` ("Windows").

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
    Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::Period;
use crate::{Error, Result};

/// The start of every lifetime window: 1970-01-01T00:00:00Z.
///
/// A lifetime budget has exactly one window, whatever the instant or the time
/// zone, so that all its spending lands on the same stored window row.
pub const LIFETIME_START: DateTime<Utc> = DateTime::<Utc>::UNIX_EPOCH;

/// The longest time zone name accepted by [`parse_timezone`], in bytes.
///
/// The longest IANA name today is 32 bytes (`America/Argentina/ComodRivadavia`).
pub const MAX_TIMEZONE_LEN: usize = 64;

/// One period instance of a budget: the half-open UTC interval `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Window {
    /// The first instant of the window (inclusive).
    pub start: DateTime<Utc>,
    /// The first instant after the window (exclusive); `None` when the window
    /// never ends (lifetime budgets).
    pub end: Option<DateTime<Utc>>,
}

impl Window {
    /// Whether `at` lies in `[start, end)`.
    #[must_use]
    pub fn contains(&self, at: DateTime<Utc>) -> bool {
        self.start <= at && self.end.is_none_or(|end| at < end)
    }

    /// How long the window lasts (`None` when it never ends). A daily window is
    /// 24 hours, except on days when the clocks change (23 or 25 hours in most
    /// zones).
    #[must_use]
    pub fn duration(&self) -> Option<TimeDelta> {
        self.end.map(|end| end - self.start)
    }
}

/// Parses an IANA time zone name such as `"Europe/Berlin"` (exact spelling, as
/// in the tz database; surrounding whitespace is ignored).
///
/// ```
/// let berlin = bursar::budget::parse_timezone("Europe/Berlin")?;
/// assert_eq!(berlin, chrono_tz::Europe::Berlin);
/// assert!(bursar::budget::parse_timezone("Mars/Base").is_err());
/// # Ok::<(), bursar::Error>(())
/// ```
///
/// # Errors
/// [`Error::Invalid`] with field `timezone` naming the value when it is not a
/// time zone of the tz database (or longer than [`MAX_TIMEZONE_LEN`]).
pub fn parse_timezone(name: &str) -> Result<Tz> {
    let not_a_zone = || Error::invalid("timezone", format!("{name:?} is not an IANA time zone"));
    let trimmed = name.trim();
    if trimmed.is_empty() || trimmed.len() > MAX_TIMEZONE_LEN {
        return Err(not_a_zone());
    }
    trimmed.parse::<Tz>().map_err(|_| not_a_zone())
}

impl Period {
    /// The window of this period that contains `at`, computed in the time zone
    /// `tz` and returned as UTC instants.
    ///
    /// - Daily windows start at local midnight, weekly windows at midnight on
    ///   Monday, monthly windows at midnight on the 1st, yearly windows at
    ///   midnight on January 1st. Each ends where the next one starts, so a day
    ///   on which the clocks change lasts 23 or 25 hours.
    /// - Where local midnight does not exist (the clocks jump over it) or occurs
    ///   twice (the clocks fall back over it), the boundary is the **earliest
    ///   instant whose local time is at or after that midnight**: the moment of
    ///   the jump, or the first of the two midnights.
    /// - Lifetime windows start at [`LIFETIME_START`] and have no end.
    ///
    /// The result contains `at` (for lifetime windows: whenever `at` is at or
    /// after [`LIFETIME_START`]; earlier instants still get the one lifetime
    /// window), and the next window starts exactly where this one ends. At the
    /// very edges of the representable range (years beyond ±262,000), a
    /// boundary that cannot be represented becomes [`DateTime::<Utc>::MIN_UTC`]
    /// for a start and `None` for an end; this never panics.
    ///
    /// ```
    /// use bursar::budget::Period;
    /// use chrono::{TimeZone, Utc};
    /// use chrono_tz::America::New_York;
    ///
    /// // 2026-03-08 is the spring-forward day in New York: 23 hours long.
    /// let at = Utc.with_ymd_and_hms(2026, 3, 8, 15, 0, 0).unwrap();
    /// let day = Period::Daily.window(at, New_York);
    /// assert_eq!(day.start, Utc.with_ymd_and_hms(2026, 3, 8, 5, 0, 0).unwrap()); // 00:00 EST
    /// assert_eq!(day.end, Some(Utc.with_ymd_and_hms(2026, 3, 9, 4, 0, 0).unwrap())); // 00:00 EDT
    /// assert_eq!(day.duration().map(|d| d.num_hours()), Some(23));
    ///
    /// let month = Period::Monthly.window(at, New_York);
    /// assert_eq!(month.start, Utc.with_ymd_and_hms(2026, 3, 1, 5, 0, 0).unwrap());
    /// assert_eq!(month.end, Some(Utc.with_ymd_and_hms(2026, 4, 1, 4, 0, 0).unwrap()));
    /// ```
    #[must_use]
    pub fn window(self, at: DateTime<Utc>, tz: Tz) -> Window {
        if self == Period::Lifetime {
            return Window {
                start: LIFETIME_START,
                end: None,
            };
        }
        let Some(mut first_day) = local_time(tz, at).and_then(|t| self.first_day(t.date())) else {
            return Window {
                start: DateTime::<Utc>::MIN_UTC,
                end: None,
            };
        };
        let mut start = boundary(tz, first_day).unwrap_or(DateTime::<Utc>::MIN_UTC);
        // Normally no step is taken. Only where the clocks were set back across
        // a period boundary (never in the tz database since 1970) can `at` lie
        // outside the window of its local date; the windows then still
        // partition time, and `at` belongs to the one whose span contains it.
        for _ in 0..MAX_STEPS {
            if at >= start {
                break;
            }
            match self.previous_first_day(first_day) {
                Some(day) => {
                    first_day = day;
                    start = boundary(tz, day).unwrap_or(DateTime::<Utc>::MIN_UTC);
                }
                None => break,
            }
        }
        for _ in 0..MAX_STEPS {
            let Some(next_day) = self.next_first_day(first_day) else {
                return Window { start, end: None };
            };
            let Some(end) = boundary(tz, next_day) else {
                return Window { start, end: None };
            };
            if at < end {
                return Window {
                    start,
                    end: Some(end),
                };
            }
            first_day = next_day;
            start = end;
        }
        Window {
            start,
            end: self
                .next_first_day(first_day)
                .and_then(|day| boundary(tz, day)),
        }
    }

    /// The first local day of the period that contains `date`.
    fn first_day(self, date: NaiveDate) -> Option<NaiveDate> {
        match self {
            Period::Daily => Some(date),
            Period::Weekly => {
                date.checked_sub_days(Days::new(u64::from(date.weekday().num_days_from_monday())))
            }
            Period::Monthly => date.with_day(1),
            Period::Yearly => NaiveDate::from_ymd_opt(date.year(), 1, 1),
            Period::Lifetime => None,
        }
    }

    /// The first local day of the next period.
    fn next_first_day(self, first_day: NaiveDate) -> Option<NaiveDate> {
        match self {
            Period::Daily => first_day.checked_add_days(Days::new(1)),
            Period::Weekly => first_day.checked_add_days(Days::new(7)),
            Period::Monthly => first_day.checked_add_months(chrono::Months::new(1)),
            Period::Yearly => NaiveDate::from_ymd_opt(first_day.year().checked_add(1)?, 1, 1),
            Period::Lifetime => None,
        }
    }

    /// The first local day of the previous period.
    fn previous_first_day(self, first_day: NaiveDate) -> Option<NaiveDate> {
        match self {
            Period::Daily => first_day.checked_sub_days(Days::new(1)),
            Period::Weekly => first_day.checked_sub_days(Days::new(7)),
            Period::Monthly => first_day.checked_sub_months(chrono::Months::new(1)),
            Period::Yearly => NaiveDate::from_ymd_opt(first_day.year().checked_sub(1)?, 1, 1),
            Period::Lifetime => None,
        }
    }
}

/// At most this many periods are stepped over when the local date of an
/// instant and its window disagree (see [`Period::window`]).
const MAX_STEPS: usize = 4;

/// The UTC instant at which the local day `date` begins in `tz`: the earliest
/// instant whose local time is at or after `date` 00:00. `None` only at the
/// edges of the representable range.
fn boundary(tz: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let midnight = date.and_hms_opt(0, 0, 0)?;
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, b) => Some(a.min(b).with_timezone(&Utc)),
        LocalResult::None => first_instant_at_or_after(tz, midnight),
    }
}

/// The earliest instant (to the second; time zone transitions fall on whole
/// seconds) whose local time in `tz` is at or after `local`, when `local`
/// itself does not exist. Scans forward from well before `local` in steps of
/// [`SCAN_STEP`], then bisects the step in which the local time crossed it.
fn first_instant_at_or_after(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    // No UTC offset in the tz database exceeds ±16 hours, so the instant lies
    // within a day of `local` read as UTC.
    let reached = |t: DateTime<Utc>| local_time(tz, t).is_some_and(|t| t >= local);
    let naive_utc = local.and_utc();
    let last = naive_utc.checked_add_signed(SEARCH_SPAN)?;
    let mut before = naive_utc.checked_sub_signed(SEARCH_SPAN)?;
    let mut after = loop {
        let next = before.checked_add_signed(SCAN_STEP)?;
        if reached(next) {
            break next;
        }
        if next >= last {
            return None;
        }
        before = next;
    };
    // Invariant: `before` has not reached `local`, `after` has.
    while after - before > TimeDelta::seconds(1) {
        let mid = before + (after - before) / 2;
        let mid = mid.checked_sub_signed(TimeDelta::nanoseconds(i64::from(
            mid.timestamp_subsec_nanos(),
        )))?;
        if mid <= before {
            break;
        }
        if reached(mid) {
            after = mid;
        } else {
            before = mid;
        }
    }
    Some(after)
}

/// The local wall-clock time of `at` in `tz`; `None` when it falls outside the
/// representable range.
fn local_time(tz: Tz, at: DateTime<Utc>) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    at.naive_utc().checked_add_offset(offset)
}

/// How far either side of a local time read as UTC its instant can lie.
const SEARCH_SPAN: TimeDelta = TimeDelta::hours(27);
/// The scan step of [`first_instant_at_or_after`].
const SCAN_STEP: TimeDelta = TimeDelta::minutes(30);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{America, Asia, Europe, Pacific};
    use proptest::prelude::*;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    /// The UTC instant of an unambiguous local time.
    fn local(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn hours(w: Window) -> i64 {
        w.duration().unwrap().num_hours()
    }

    #[test]
    fn new_york_spring_forward_day_is_23_hours() {
        let w = Period::Daily.window(
            local(America::New_York, 2026, 3, 8, 12, 0),
            America::New_York,
        );
        assert_eq!(w.start, utc(2026, 3, 8, 5, 0));
        assert_eq!(w.end, Some(utc(2026, 3, 9, 4, 0)));
        assert_eq!(hours(w), 23);
    }

    #[test]
    fn new_york_fall_back_day_is_25_hours() {
        let w = Period::Daily.window(
            local(America::New_York, 2026, 11, 1, 12, 0),
            America::New_York,
        );
        assert_eq!(w.start, utc(2026, 11, 1, 4, 0));
        assert_eq!(w.end, Some(utc(2026, 11, 2, 5, 0)));
        assert_eq!(hours(w), 25);
    }

    #[test]
    fn berlin_windows_follow_central_european_time() {
        let berlin = Europe::Berlin;
        let winter = Period::Daily.window(utc(2026, 1, 15, 12, 0), berlin);
        assert_eq!(winter.start, utc(2026, 1, 14, 23, 0));
        assert_eq!(hours(winter), 24);
        let summer = Period::Daily.window(utc(2026, 7, 15, 12, 0), berlin);
        assert_eq!(summer.start, utc(2026, 7, 14, 22, 0));
        assert_eq!(hours(summer), 24);
        let spring = Period::Daily.window(local(berlin, 2026, 3, 29, 12, 0), berlin);
        assert_eq!((spring.start, hours(spring)), (utc(2026, 3, 28, 23, 0), 23));
        let autumn = Period::Daily.window(local(berlin, 2026, 10, 25, 12, 0), berlin);
        assert_eq!(
            (autumn.start, hours(autumn)),
            (utc(2026, 10, 24, 22, 0), 25)
        );
        // The instant of a repeated hour (02:30 happens twice) still lands in its day.
        assert_eq!(
            Period::Daily.window(utc(2026, 10, 25, 0, 30), berlin),
            autumn
        );
        assert_eq!(
            Period::Daily.window(utc(2026, 10, 25, 1, 30), berlin),
            autumn
        );
        let march = Period::Monthly.window(utc(2026, 3, 29, 12, 0), berlin);
        assert_eq!(march.start, utc(2026, 2, 28, 23, 0));
        assert_eq!(march.end, Some(utc(2026, 3, 31, 22, 0)));
    }

    #[test]
    fn kolkata_day_starts_at_18_30_utc_the_day_before() {
        let w = Period::Daily.window(utc(2026, 5, 10, 3, 0), Asia::Kolkata);
        assert_eq!(w.start, utc(2026, 5, 9, 18, 30));
        assert_eq!(w.end, Some(utc(2026, 5, 10, 18, 30)));
        // 19:00 UTC is already the next local day.
        assert_eq!(
            Period::Daily
                .window(utc(2026, 5, 10, 19, 0), Asia::Kolkata)
                .start,
            utc(2026, 5, 10, 18, 30)
        );
    }

    #[test]
    fn half_past_eleven_and_half_past_midnight_are_different_days() {
        let tz = Europe::Berlin;
        let late = Period::Daily.window(local(tz, 2026, 6, 1, 23, 30), tz);
        let early = Period::Daily.window(local(tz, 2026, 6, 2, 0, 30), tz);
        assert_ne!(late, early);
        assert_eq!(late.end, Some(early.start));
        assert_eq!(early.start, local(tz, 2026, 6, 2, 0, 0));
    }

    #[test]
    fn weeks_start_on_monday_local() {
        let tz = America::New_York;
        // 2026-03-08 is a Sunday: its week began on Monday 2026-03-02 (EST) and
        // ends on Monday 2026-03-09 (EDT), 167 hours later.
        let sunday = Period::Weekly.window(local(tz, 2026, 3, 8, 23, 0), tz);
        assert_eq!(sunday.start, local(tz, 2026, 3, 2, 0, 0));
        assert_eq!(sunday.end, Some(local(tz, 2026, 3, 9, 0, 0)));
        assert_eq!(hours(sunday), 7 * 24 - 1);
        let monday = Period::Weekly.window(local(tz, 2026, 3, 9, 0, 0), tz);
        assert_eq!(monday.start, local(tz, 2026, 3, 9, 0, 0));
        // Monday 01:00 in Kolkata is still Sunday in UTC.
        let w = Period::Weekly.window(utc(2026, 3, 1, 20, 0), Asia::Kolkata);
        assert_eq!(w.start, utc(2026, 3, 1, 18, 30));
    }

    #[test]
    fn months_end_where_the_next_begins_including_leap_february() {
        let tz = Europe::Berlin;
        let jan = Period::Monthly.window(local(tz, 2026, 1, 31, 23, 59), tz);
        assert_eq!(jan.start, local(tz, 2026, 1, 1, 0, 0));
        assert_eq!(jan.end, Some(local(tz, 2026, 2, 1, 0, 0)));
        let feb = Period::Monthly.window(local(tz, 2028, 2, 29, 12, 0), tz);
        assert_eq!(feb.start, local(tz, 2028, 2, 1, 0, 0));
        assert_eq!(feb.end, Some(local(tz, 2028, 3, 1, 0, 0)));
        assert_eq!(hours(feb), 29 * 24);
        let dec = Period::Monthly.window(utc(2026, 12, 31, 22, 0), America::New_York);
        assert_eq!(dec.end, Some(local(America::New_York, 2027, 1, 1, 0, 0)));
    }

    #[test]
    fn years_run_from_january_first_local() {
        let tz = Asia::Kolkata;
        let y = Period::Yearly.window(utc(2027, 6, 1, 0, 0), tz);
        assert_eq!(y.start, utc(2026, 12, 31, 18, 30));
        assert_eq!(y.end, Some(utc(2027, 12, 31, 18, 30)));
        // 2027-12-31 20:00 UTC is already 2028 in Kolkata (a leap year).
        let next = Period::Yearly.window(utc(2027, 12, 31, 20, 0), tz);
        assert_eq!(next.start, y.end.unwrap());
        assert_eq!(next.duration().unwrap().num_days(), 366);
    }

    #[test]
    fn lifetime_has_one_window_without_end() {
        for (at, tz) in [
            (utc(1999, 1, 1, 0, 0), Europe::Berlin),
            (utc(2026, 3, 8, 7, 0), America::New_York),
            (utc(2090, 12, 31, 23, 59), Asia::Kolkata),
        ] {
            let w = Period::Lifetime.window(at, tz);
            assert_eq!(
                w,
                Window {
                    start: LIFETIME_START,
                    end: None
                }
            );
            assert!(w.contains(at));
        }
        assert_eq!(LIFETIME_START.to_rfc3339(), "1970-01-01T00:00:00+00:00");
    }

    #[test]
    fn midnight_that_does_not_exist_starts_the_day_at_the_jump() {
        // Santiago sprang forward at 24:00 on 2022-09-10: local 2022-09-11 00:00
        // never happened; the day began at 04:00 UTC (01:00 -03).
        let tz = America::Santiago;
        assert!(matches!(
            tz.from_local_datetime(
                &NaiveDate::from_ymd_opt(2022, 9, 11)
                    .unwrap()
                    .and_hms_opt(0, 0, 0)
                    .unwrap()
            ),
            LocalResult::None
        ));
        let w = Period::Daily.window(utc(2022, 9, 11, 12, 0), tz);
        assert_eq!(w.start, utc(2022, 9, 11, 4, 0));
        assert_eq!(hours(w), 23);
        let before = Period::Daily.window(utc(2022, 9, 11, 3, 59), tz);
        assert_eq!(before.end, Some(w.start));
        // Havana springs forward at 00:00 too (2026-03-08, -05 to -04).
        let havana = Period::Daily.window(utc(2026, 3, 8, 12, 0), America::Havana);
        assert_eq!(havana.start, utc(2026, 3, 8, 5, 0));
        assert_eq!(hours(havana), 23);
    }

    #[test]
    fn midnight_that_happens_twice_starts_the_day_at_the_first() {
        // Havana falls back at 01:00 to 00:00 (2026-11-01): midnight occurs at
        // 04:00 and 05:00 UTC; the day starts at the first and lasts 25 hours.
        let tz = America::Havana;
        let midnight = NaiveDate::from_ymd_opt(2026, 11, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        assert!(matches!(
            tz.from_local_datetime(&midnight),
            LocalResult::Ambiguous(..)
        ));
        let w = Period::Daily.window(utc(2026, 11, 1, 12, 0), tz);
        assert_eq!(w.start, utc(2026, 11, 1, 4, 0));
        assert_eq!(hours(w), 25);
        assert_eq!(Period::Daily.window(utc(2026, 11, 1, 5, 30), tz), w);
    }

    #[test]
    fn a_skipped_day_has_no_window() {
        // Samoa skipped 2011-12-30: Thursday 29th 23:59:59 was followed by
        // Saturday 31st 00:00 (10:00 UTC on the 30th).
        let tz = Pacific::Apia;
        let thursday = Period::Daily.window(utc(2011, 12, 30, 9, 0), tz);
        let saturday = Period::Daily.window(utc(2011, 12, 30, 10, 0), tz);
        assert_eq!(thursday.end, Some(utc(2011, 12, 30, 10, 0)));
        assert_eq!(saturday.start, utc(2011, 12, 30, 10, 0));
        assert_eq!(hours(saturday), 24);
    }

    #[test]
    fn time_zone_names_are_checked() {
        assert_eq!(parse_timezone("Asia/Kolkata").unwrap(), Asia::Kolkata);
        assert_eq!(parse_timezone(" UTC ").unwrap(), chrono_tz::UTC);
        let err = parse_timezone("Mars/Base").unwrap_err();
        assert!(
            matches!(&err, Error::Invalid { field, reason }
                if field == "timezone" && reason == "\"Mars/Base\" is not an IANA time zone"),
            "{err:?}"
        );
        assert!(parse_timezone("").is_err());
        assert!(parse_timezone(&"A".repeat(10_000)).is_err());
    }

    #[test]
    fn the_edges_of_time_do_not_panic() {
        for tz in ZONES {
            for period in Period::ALL {
                for at in [DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC] {
                    let w = period.window(at, tz);
                    if period != Period::Lifetime {
                        assert!(w.contains(at), "{period} {tz} {at}: {w:?}");
                    }
                }
            }
        }
    }

    const ZONES: [Tz; 9] = [
        chrono_tz::UTC,
        America::New_York,
        America::Santiago,
        America::Havana,
        Europe::Berlin,
        Asia::Kolkata,
        Asia::Beirut,
        chrono_tz::Australia::Lord_Howe,
        Pacific::Chatham,
    ];

    /// Every daily boundary from 1950 to 2050 in zones that switch at or
    /// around midnight is the earliest instant at or after local midnight:
    /// its local time has reached midnight and one second earlier had not.
    #[test]
    fn every_boundary_is_the_earliest_instant_at_or_after_midnight() {
        let mut gaps = 0;
        for tz in ZONES {
            let mut at = utc(1950, 1, 1, 12, 0);
            let mut w = Period::Daily.window(at, tz);
            while at < utc(2050, 1, 1, 0, 0) {
                let end = w.end.unwrap();
                let date = end.with_timezone(&tz).date_naive();
                let midnight = date.and_hms_opt(0, 0, 0).unwrap();
                assert!(
                    end.with_timezone(&tz).naive_local() >= midnight,
                    "{tz} {end}"
                );
                let just_before = (end - TimeDelta::seconds(1))
                    .with_timezone(&tz)
                    .naive_local();
                assert!(just_before < midnight, "{tz} {end}: {just_before}");
                if matches!(tz.from_local_datetime(&midnight), LocalResult::None) {
                    gaps += 1;
                }
                let next = Period::Daily.window(end, tz);
                assert_eq!(next.start, end);
                assert!(w.start < end);
                (at, w) = (end, next);
            }
        }
        // Beirut, Santiago and Havana jumped over midnight dozens of times.
        assert!(gaps > 50, "{gaps}");
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2_000, rng_seed: proptest::test_runner::RngSeed::Fixed(0x6275_7273_6172),
            failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn windows_contain_the_instant_and_tile_time(
            secs in -2_208_988_800_i64..4_102_444_800_i64, // 1900 ..= 2100
            zone in 0..ZONES.len(),
            period in prop::sample::select(Period::ALL.to_vec()),
        ) {
            let tz = ZONES[zone];
            let at = DateTime::<Utc>::from_timestamp(secs, 0).unwrap();
            let w = period.window(at, tz);
            if period == Period::Lifetime {
                prop_assert_eq!(w, Window { start: LIFETIME_START, end: None });
            } else {
                prop_assert!(w.contains(at), "{w:?} does not contain {at}");
            }
            match w.end {
                None => prop_assert_eq!(period, Period::Lifetime),
                Some(end) => {
                    prop_assert!(w.start < end);
                    let next = period.window(end, tz);
                    prop_assert_eq!(next.start, end);
                    let last = period.window(end - TimeDelta::seconds(1), tz);
                    prop_assert_eq!(last, w);
                    // Every boundary is local midnight, or shortly after it when
                    // the clocks jumped over midnight.
                    let local = w.start.with_timezone(&tz).naive_local();
                    prop_assert!(local.time() < chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap(), "{local}");
                }
            }
        }
    }
}
