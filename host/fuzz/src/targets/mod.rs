//! One module per target.

pub mod api;
pub mod config;
pub mod guest;
pub mod guest_values;
pub mod payload;
pub mod schema;
