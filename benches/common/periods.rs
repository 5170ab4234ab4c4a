//! The daily and monthly periods of a budget in its tenant's time zone,
//! computed by hand (with `chrono-tz`) for the raw baselines of
//! `benches/reservations.rs` and `benches/authorize.rs`, so that they use
//! nothing of bursar's own period code.
#![allow(dead_code)]

use chrono::{DateTime, Datelike, Months, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

/// Why a period could not be computed.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

fn local_midnight(tz: Tz, day: NaiveDate) -> Result<DateTime<Utc>, Error> {
    let naive = day.and_hms_opt(0, 0, 0).ok_or("no midnight")?;
    let local = tz
        .from_local_datetime(&naive)
        .earliest()
        .ok_or("midnight falls in a gap")?;
    Ok(local.with_timezone(&Utc))
}

/// `[start, end)` of the daily or monthly period holding `now` in `tz`.
pub fn period(
    kind: &str,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<(DateTime<Utc>, DateTime<Utc>), Error> {
    let today = now.with_timezone(&tz).date_naive();
    let (first, next) = match kind {
        "daily" => (today, today.succ_opt().ok_or("no next day")?),
        "monthly" => {
            let first = today.with_day(1).ok_or("no first day")?;
            (
                first,
                first
                    .checked_add_months(Months::new(1))
                    .ok_or("no next month")?,
            )
        }
        other => return Err(format!("the baseline knows no {other} period").into()),
    };
    Ok((local_midnight(tz, first)?, local_midnight(tz, next)?))
}
