//! Parsing the status filter of a [`PageRequest`](crate::store::PageRequest)
//! into a table's status enum.

use sea_orm::{ActiveEnum, Iterable};

use crate::{Error, Result};

/// The status enum value stored as `status`, or [`Error::Invalid`] (field
/// `status`) listing the accepted values.
pub(crate) fn parse_status<T>(status: &str) -> Result<T>
where
    T: ActiveEnum<Value = String> + Iterable,
{
    T::try_from_value(&status.to_owned()).map_err(|_| {
        let accepted: Vec<String> = T::iter().map(|v| v.to_value()).collect();
        Error::invalid(
            "status",
            format!("{status:?} is not one of {}", accepted.join(", ")),
        )
    })
}
