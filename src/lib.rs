//! bursar
#![forbid(unsafe_code)]

pub mod audit;
pub mod authorize;
pub mod budget;
pub mod clock;
pub mod codes;
pub mod entity;
pub mod error;
pub mod id;
pub mod money;
pub mod policy;
pub mod store;

pub use error::{Error, Result};
pub use store::{Store, TenantScope};
