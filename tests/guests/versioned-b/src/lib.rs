//! Test guest: version "b" of `Versioned` (see `../versioned.rs`), with the
//! same handlers as "a".
const LABEL: &str = "b";
include!("../../versioned.rs");
