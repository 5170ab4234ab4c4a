//! bursar
#![forbid(unsafe_code)]

pub mod budget;
pub mod codes;
pub mod entity;
pub mod error;
pub mod id;
pub mod money;

pub use error::{Error, Result};
