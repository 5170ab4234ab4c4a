//! Validation of policies when they are written.

use rust_decimal::Decimal;

use super::limits::*;
use super::merchant::is_public_suffix_entry;
use super::model::{Condition, MccSpec, Policy, PolicyScope};
use super::normalize::fold;
use super::template::Template;
use crate::Error;

/// Checks a policy against every bound in [`limits`](super::limits) and every
/// rule of the language. Run it whenever a policy is written; compiling runs it
/// again.
///
/// ```
/// use bursar::policy::{validate, Condition, Effect, Policy};
/// let policy = Policy::new("Block", Effect::Deny, "MERCHANT_BLOCKED",
///     Condition::all([Condition::MerchantIn { merchants: vec!["ok".into(), "  ".into()] }]));
/// let err = validate(&policy).unwrap_err();
/// assert_eq!(err.to_string(), "invalid policy at condition.all[0].merchant_in[1]: empty pattern \"  \"");
/// ```
///
/// # Errors
/// [`Error::InvalidPolicy`] with the JSON path of the first offending value
/// (`condition.all[2].merchant_in[0]`) and what is wrong with it.
pub fn validate(policy: &Policy) -> crate::Result<()> {
    text("name", &policy.name, MAX_NAME_LEN)?;
    if policy.name.trim().is_empty() {
        return Err(bad("name", "empty name"));
    }
    reason_code("reason_code", &policy.reason_code)?;
    text("message", &policy.message, MAX_MESSAGE_LEN)?;
    Template::parse(&policy.message).map_err(|reason| bad("message", reason))?;
    if let PolicyScope::Principals {
        teams,
        projects,
        agents,
    } = &policy.scope
    {
        let n = teams.len() + projects.len() + agents.len();
        if n == 0 {
            return Err(bad(
                "scope",
                "a principals scope needs at least one team, project or agent (use {\"kind\": \"tenant\"} for the whole tenant)",
            ));
        }
        if n > MAX_SCOPE_IDS {
            return Err(bad("scope", format!("{n} ids, at most {MAX_SCOPE_IDS}")));
        }
    }
    if let Some(settings) = &policy.approval {
        if policy.effect != super::Effect::RequireApproval {
            return Err(bad(
                "approval",
                format!(
                    "approval settings need the require_approval effect, not {}",
                    policy.effect.as_str()
                ),
            ));
        }
        settings
            .check("approval")
            .map_err(|(path, reason)| bad(path, reason))?;
    }
    let mut nodes = 0;
    condition(&policy.condition, "condition", 1, &mut nodes)
}

fn bad(path: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::InvalidPolicy {
        path: path.into(),
        reason: reason.into(),
    }
}

fn text(path: &str, s: &str, max: usize) -> crate::Result<()> {
    if s.len() > max {
        return Err(bad(path, format!("{} bytes, at most {max}", s.len())));
    }
    Ok(())
}

/// Checks a reason code: 1 to [`MAX_REASON_CODE_LEN`] bytes of `[A-Z][A-Z0-9_]*`.
pub(crate) fn reason_code(path: &str, code: &str) -> crate::Result<()> {
    let ok = !code.is_empty()
        && code.len() <= MAX_REASON_CODE_LEN
        && code.as_bytes()[0].is_ascii_uppercase()
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(bad(
            path,
            format!(
                "{code:?} is not a reason code ([A-Z][A-Z0-9_]*, at most {MAX_REASON_CODE_LEN} bytes)"
            ),
        ))
    }
}

fn list_len<T>(path: &str, list: &[T]) -> crate::Result<()> {
    if list.is_empty() {
        return Err(bad(path, "empty list"));
    }
    if list.len() > MAX_LIST_LEN {
        return Err(bad(
            path,
            format!("{} entries, at most {MAX_LIST_LEN}", list.len()),
        ));
    }
    Ok(())
}

fn patterns(path: &str, list: &[String]) -> crate::Result<()> {
    list_len(path, list)?;
    for (i, p) in list.iter().enumerate() {
        let at = format!("{path}[{i}]");
        text(&at, p, MAX_PATTERN_LEN)?;
        if fold(p).is_empty() {
            return Err(bad(at, format!("empty pattern {p:?}")));
        }
    }
    Ok(())
}

fn amount(path: &str, value: Decimal) -> crate::Result<()> {
    if value.is_sign_negative() && !value.is_zero() {
        return Err(bad(
            format!("{path}.amount"),
            format!("{value} is negative"),
        ));
    }
    let n = value.normalize();
    if n.scale() > MAX_AMOUNT_SCALE {
        return Err(bad(
            format!("{path}.amount"),
            format!(
                "{value} has {} decimal places, at most {MAX_AMOUNT_SCALE}",
                n.scale()
            ),
        ));
    }
    let bound = Decimal::from_i128_with_scale(10_i128.pow(MAX_AMOUNT_INTEGER_DIGITS), 0);
    if n >= bound {
        return Err(bad(
            format!("{path}.amount"),
            format!("{value} is not below 10^{MAX_AMOUNT_INTEGER_DIGITS}"),
        ));
    }
    Ok(())
}

/// Parses `"HH:MM"` into minutes after midnight.
pub(crate) fn parse_hhmm(s: &str) -> Result<u16, String> {
    let err = || format!("{s:?} is not a time of day \"HH:MM\" (00:00 to 23:59)");
    let (h, m) = s.split_once(':').ok_or_else(err)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(err());
    }
    let h: u16 = h.parse().map_err(|_| err())?;
    let m: u16 = m.parse().map_err(|_| err())?;
    if h > 23 || m > 59 {
        return Err(err());
    }
    Ok(h * 60 + m)
}

/// Parses a day name (`mon` … `sun`, or the full English name, any case) into
/// 0 (Monday) … 6 (Sunday).
pub(crate) fn parse_day(s: &str) -> Result<u8, String> {
    const DAYS: [(&str, &str); 7] = [
        ("mon", "monday"),
        ("tue", "tuesday"),
        ("wed", "wednesday"),
        ("thu", "thursday"),
        ("fri", "friday"),
        ("sat", "saturday"),
        ("sun", "sunday"),
    ];
    let t = s.trim();
    DAYS.iter()
        .position(|(short, long)| t.eq_ignore_ascii_case(short) || t.eq_ignore_ascii_case(long))
        .and_then(|i| u8::try_from(i).ok())
        .ok_or_else(|| format!("{s:?} is not a day of the week (mon, tue, ..., sun)"))
}

/// Parses an IANA time zone name.
pub(crate) fn parse_zone(s: &str) -> Result<chrono_tz::Tz, String> {
    if s.len() > MAX_PATTERN_LEN {
        return Err(format!("{} bytes, at most {MAX_PATTERN_LEN}", s.len()));
    }
    s.parse::<chrono_tz::Tz>()
        .map_err(|_| format!("{s:?} is not an IANA time zone"))
}

fn condition(c: &Condition, path: &str, depth: usize, nodes: &mut usize) -> crate::Result<()> {
    *nodes += 1;
    if *nodes > MAX_CONDITION_NODES {
        return Err(bad(
            path,
            format!("more than {MAX_CONDITION_NODES} conditions in one policy"),
        ));
    }
    if depth > MAX_CONDITION_DEPTH {
        return Err(bad(
            path,
            format!("nested deeper than {MAX_CONDITION_DEPTH}"),
        ));
    }
    let tag = c.type_name();
    match c {
        Condition::Always | Condition::NewVendor => Ok(()),
        Condition::All { of } | Condition::Any { of } => {
            if of.len() > MAX_LIST_LEN {
                return Err(bad(
                    format!("{path}.{tag}"),
                    format!("{} entries, at most {MAX_LIST_LEN}", of.len()),
                ));
            }
            for (i, inner) in of.iter().enumerate() {
                condition(inner, &format!("{path}.{tag}[{i}]"), depth + 1, nodes)?;
            }
            Ok(())
        }
        Condition::Not { condition: inner } => {
            condition(inner, &format!("{path}.not"), depth + 1, nodes)
        }
        Condition::AmountAbove { amount: a, .. }
        | Condition::AmountAtLeast { amount: a, .. }
        | Condition::AmountBelow { amount: a, .. } => amount(&format!("{path}.{tag}"), *a),
        Condition::CurrencyIn { currencies } => list_len(&format!("{path}.{tag}"), currencies),
        Condition::MerchantIn { merchants } | Condition::MerchantNotIn { merchants } => {
            let at = format!("{path}.{tag}");
            patterns(&at, merchants)?;
            match merchants.iter().position(|m| is_public_suffix_entry(m)) {
                Some(i) => Err(bad(
                    format!("{at}[{i}]"),
                    format!(
                        "{:?} is a public suffix, under which anyone may register a site: list a registrable domain (user.github.io) or a name",
                        merchants[i]
                    ),
                )),
                None => Ok(()),
            }
        }
        Condition::ToolIn { tools } | Condition::ToolNotIn { tools } => {
            patterns(&format!("{path}.{tag}"), tools)
        }
        Condition::ModelIn { models } => patterns(&format!("{path}.{tag}"), models),
        Condition::MccIn { codes } | Condition::MccNotIn { codes } => {
            let at = format!("{path}.{tag}");
            list_len(&at, codes)?;
            for (i, spec) in codes.iter().enumerate() {
                if let MccSpec::Text(t) = spec {
                    text(&format!("{at}[{i}]"), t, MAX_PATTERN_LEN)?;
                }
                spec.range()
                    .map_err(|reason| bad(format!("{at}[{i}]"), reason))?;
            }
            Ok(())
        }
        Condition::ActionIn { actions } => {
            let at = format!("{path}.{tag}");
            list_len(&at, actions)?;
            for (i, a) in actions.iter().enumerate() {
                if let super::ActionKind::Custom(name) = a {
                    text(&format!("{at}[{i}]"), name, MAX_PATTERN_LEN)?;
                }
            }
            Ok(())
        }
        Condition::TimeOfDay {
            start,
            end,
            timezone,
        } => {
            let at = format!("{path}.{tag}");
            let s = parse_hhmm(start).map_err(|r| bad(format!("{at}.start"), r))?;
            let e = parse_hhmm(end).map_err(|r| bad(format!("{at}.end"), r))?;
            if s == e {
                return Err(bad(
                    format!("{at}.end"),
                    format!(
                        "{end:?} equals start: an empty window (use \"always\" for the whole day)"
                    ),
                ));
            }
            if let Some(z) = timezone {
                parse_zone(z).map_err(|r| bad(format!("{at}.timezone"), r))?;
            }
            Ok(())
        }
        Condition::DayOfWeek { days, timezone } => {
            let at = format!("{path}.{tag}");
            list_len(&at, days)?;
            for (i, d) in days.iter().enumerate() {
                parse_day(d).map_err(|r| bad(format!("{at}[{i}]"), r))?;
            }
            if let Some(z) = timezone {
                parse_zone(z).map_err(|r| bad(format!("{at}.timezone"), r))?;
            }
            Ok(())
        }
        Condition::VelocityAbove {
            window_seconds,
            max: _,
        } => {
            if *window_seconds == 0 || *window_seconds > MAX_VELOCITY_WINDOW_SECONDS {
                return Err(bad(
                    format!("{path}.{tag}.window_seconds"),
                    format!("{window_seconds} is not between 1 and {MAX_VELOCITY_WINDOW_SECONDS}"),
                ));
            }
            Ok(())
        }
        Condition::BudgetExceeded { .. } => Ok(()),
        Condition::MetadataEquals { key, value } => {
            let at = format!("{path}.{tag}");
            text(&format!("{at}.key"), key, MAX_PATTERN_LEN)?;
            text(&format!("{at}.value"), value, MAX_PATTERN_LEN)?;
            if key.is_empty() {
                return Err(bad(format!("{at}.key"), "empty key"));
            }
            Ok(())
        }
        Condition::MetadataNumber { key, .. } => {
            let at = format!("{path}.{tag}");
            text(&format!("{at}.key"), key, MAX_PATTERN_LEN)?;
            if key.trim().is_empty() {
                return Err(bad(format!("{at}.key"), "empty key"));
            }
            Ok(())
        }
        Condition::Writes => Ok(()),
        Condition::FieldsIn { fields } => patterns(&format!("{path}.{tag}"), fields),
    }
}
