//! bursar
#![forbid(unsafe_code)]

pub mod budget;
pub mod codes;
pub mod error;
pub mod id;
pub mod money;
pub mod policy;

pub use error::{Error, Result};
