//! Fuzz targets for the doors into the host (SPEC 10, issue "Fuzz the
//! door"). Every byte that enters the host comes through a few functions;
//! each target here feeds one of them input built from fuzzer bytes and
//! checks a property, not only that nothing panics:
//!
//! | target | door | property |
//! |---|---|---|
//! | [`payload`] | the payload binder and the parameter schema check at the door | the host accepts exactly the payloads the SDK's binding can deserialize |
//! | [`schema`] | a parameter schema from `describe`, checked against payloads | compiling and checking answer in bounded time and text, the same way twice; a schema round-trips |
//! | [`guest_values`] | what a guest hands back: directives, results, errors, `describe`, child starts, event payloads | typed errors only; what is accepted re-encodes to the same JSON and is within its bounds |
//! | [`config`] | the operator's config file | a typed error naming the file, or a config whose grants are well formed |
//! | [`api`] | the HTTP API's requests, through the real router in-process | no 5xx, every error is `{"kind","message"}` with a known kind, a refused start stores nothing |
//! | [`guest`] | the scripted test guest in the real sandbox, doing what the fuzzer says | the host never panics, quotas hold, a neighbouring run completes |
//!
//! Each target is a `fn(&[u8])` that panics when its property breaks. The
//! libFuzzer drivers in `libfuzzer/` call them (`cargo xtask fuzz TARGET`);
//! this crate's tests replay the seed corpora in `corpus/TARGET/` and a
//! bounded run of random inputs on every `cargo xtask test`.
//!
//! ```
//! // The bytes are read by `arbitrary`: any input is some input.
//! wasmflow_fuzz::payload(b"any bytes at all");
//! wasmflow_fuzz::config(b"[database]\npool_size = 0");
//! ```

mod harness;
pub mod json;
mod targets;

pub use targets::api::api;
pub use targets::config::config;
pub use targets::guest::guest;
pub use targets::guest_values::guest_values;
pub use targets::payload::payload;
pub use targets::schema::schema;

/// A fuzz target: panics when its property breaks.
pub type Target = fn(&[u8]);

/// Every target by name, as `cargo xtask fuzz` and the replay test know them.
pub const TARGETS: &[(&str, Target)] = &[
    ("payload", payload),
    ("schema", schema),
    ("guest_values", guest_values),
    ("config", config),
    ("api", api),
    ("guest", guest),
];
