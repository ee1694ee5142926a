//! The integration tests of the whole system, in one test binary: real
//! components built from `examples/` and `tests/guests/`, the real host, a
//! real SQLite file in a temp dir, and the real `wasmflow` binary.
//!
//! Each file beside this one is a module; a new file needs one `mod` line
//! here and no manifest change. [`testbed`] is what they share: the guest
//! components (built once for the whole binary), plugin directories holding
//! a chosen few, and hosts on a fresh database.

// Helpers of the test bed that a given test file does not use.
#![allow(dead_code)]

mod testbed;

mod bad_input;
mod chaos;
mod children;
mod cli;
mod cli_output;
mod deploy;
mod events;
mod foundation;
mod hostile;
mod hosts;
mod plugins;
mod service;
mod tasks;
mod telemetry;
mod ui;
