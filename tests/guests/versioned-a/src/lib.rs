//! Test guest: version "a" of `Versioned` (see `../versioned.rs`).
const LABEL: &str = "a";
include!("../../versioned.rs");
