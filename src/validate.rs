//! The checks every repository applies to the text it stores: names, slugs,
//! descriptions and column widths. They sit below every repository, so that
//! tenants, teams, projects, members, roles, agents, keys, budgets and the
//! vault share one definition without importing each other.

use crate::{Error, Result};

/// Longest name (of a tenant, team, project, user, agent, key, budget or
/// connection), in characters.
pub const MAX_NAME_LEN: usize = 200;
/// Longest slug, in bytes.
pub const MAX_SLUG_LEN: usize = 63;

/// A display name: trimmed, 1 to [`MAX_NAME_LEN`] characters, no control
/// characters.
pub(crate) fn validate_name(field: &str, name: &str) -> Result<String> {
    let trimmed = name.trim();
    if trimmed.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > MAX_NAME_LEN {
        return Err(Error::invalid(
            field,
            format!("is {chars} characters long; at most {MAX_NAME_LEN} are allowed"),
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{trimmed:?} contains control characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// A slug: 1 to [`MAX_SLUG_LEN`] lowercase ASCII letters, digits and inner `-`.
pub(crate) fn validate_slug(field: &str, slug: &str) -> Result<String> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG_LEN
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-');
    if ok {
        Ok(slug.to_owned())
    } else {
        Err(Error::invalid(
            field,
            format!(
                "{slug:?} is not a slug: use 1 to {MAX_SLUG_LEN} lowercase letters, digits and inner '-'"
            ),
        ))
    }
}

/// Longest description, in characters.
pub const MAX_DESCRIPTION_LEN: usize = 2_000;

/// An optional description of at most [`MAX_DESCRIPTION_LEN`] characters.
pub(crate) fn validate_description(d: Option<&str>) -> Result<Option<String>> {
    match d {
        None => Ok(None),
        Some(d) if d.chars().count() > MAX_DESCRIPTION_LEN => Err(Error::invalid(
            "description",
            format!(
                "is {} characters long; at most {MAX_DESCRIPTION_LEN} are allowed",
                d.chars().count()
            ),
        )),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

/// Checks that `value` fits the column that stores it: at most `max`
/// characters (PostgreSQL's `varchar(n)` counts characters, so this is the
/// unit every text limit is counted in).
pub(crate) fn check_width(field: &str, value: &str, max: usize) -> Result<()> {
    let len = value.chars().count();
    if len > max {
        return Err(Error::invalid(
            field,
            format!("is {len} characters long; at most {max} are allowed"),
        ));
    }
    Ok(())
}
