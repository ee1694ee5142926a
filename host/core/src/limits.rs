//! The default of every setting and limit (documented in the README).

use std::time::Duration;

/// Activation deadline of handlers without their own timeout.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Deadline of a component's `describe` when it is loaded.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Linear memory cap per instance.
pub const MEMORY_BYTES: usize = 64 << 20;
/// Wasm stack per activation.
pub const MAX_WASM_STACK: usize = 512 << 10;
/// Instances at once; activations beyond wait for a slot.
pub const INSTANCE_SLOTS: u32 = 256;
/// Largest JSON value a guest may store, return or send.
pub const MAX_VALUE_BYTES: usize = 1 << 20;
/// Largest total size of a run's store (keys and values).
pub const MAX_STORE_BYTES: usize = 16 << 20;
/// Children one activation may start.
pub const MAX_CHILDREN_PER_ACTIVATION: usize = 10_000;
/// Events one activation may send to its parent.
pub const MAX_EVENTS_PER_ACTIVATION: usize = 10_000;
/// Events a run's inbox may hold.
pub const MAX_INBOX_LEN: u64 = 10_000;
/// History entries a run may have.
pub const MAX_HISTORY_LEN: u64 = 1_000_000;
/// Guest log bytes kept per activation, per stream (log calls, stdout,
/// stderr).
pub const LOG_BYTES: usize = 64 << 10;
