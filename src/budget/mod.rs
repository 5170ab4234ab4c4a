//! Budgets, without I/O: period windows in a tenant's time zone, which budgets
//! apply to a request, and whether an amount fits.

mod period;

pub use period::Period;
