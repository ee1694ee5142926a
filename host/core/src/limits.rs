//! The default of every setting and limit (documented in the README).

use std::time::Duration;

/// Activation deadline of handlers without their own timeout.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a host's claim on a run lasts without renewal (several hosts on
/// one database): a dead host's runs are taken over this long after.
pub const CLAIM_LEASE: Duration = Duration::from_secs(30);

/// How long finished runs are kept before the background deletion takes
/// them (`HostBuilder::retention`): 30 days.
pub const RETENTION: Duration = Duration::from_secs(30 * 86_400);
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

// Bounds on what a guest hands the host (SPEC 10). A guest over one fails
// its activation with `QuotaExceeded` naming the bound (log lines are kept
// up to the bound and the rest counted); a component whose `describe` is
// over one is rejected.

/// Longest store key, in bytes (`store-put`, `store-delete`).
pub const MAX_KEY_BYTES: usize = 1024;
/// Store keys one activation may write or delete (each is recorded in the
/// activation's history entry).
pub const MAX_KEYS_CHANGED_PER_ACTIVATION: usize = 10_000;
/// Longest name a guest gives the host, in bytes: workflow types, handler and
/// parameter names in `describe`, step names in directives, wait
/// `on_timeout` steps, child workflow ids and types, `on_completed` steps,
/// event names sent to the parent.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest error message a guest may fail with (also the panic message
/// kept), in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Largest error `details` a guest may fail with, as JSON text.
pub const MAX_DETAILS_BYTES: usize = 64 << 10;
/// Log lines kept per activation (log calls, stdout and stderr lines
/// together); the rest are counted in one summary line.
pub const MAX_LOG_LINES: usize = 1000;
/// Longest log line kept, in bytes; longer lines are cut.
pub const MAX_LOG_LINE_BYTES: usize = 4096;
/// Deepest nesting of arrays and objects in JSON from a guest or a client
/// (results, store values, events, child inputs, query answers, error
/// details). Below serde_json's own recursion limit (128), so everything
/// stored can always be read back.
pub const MAX_JSON_DEPTH: usize = 64;
/// Workflow types one component may declare in `describe`.
pub const MAX_TYPES_PER_COMPONENT: usize = 100;
/// Handlers one workflow type may declare.
pub const MAX_HANDLERS_PER_TYPE: usize = 200;
/// Parameters one handler may declare.
pub const MAX_PARAMS_PER_HANDLER: usize = 32;
/// Bytes of names (types, handlers, parameters) in one component's
/// `describe` answer, all together.
pub const MAX_DESCRIBE_BYTES: usize = 256 << 10;
/// Distinct workflow types the metrics label; runs of further types count
/// under [`METRICS_OVERFLOW_LABEL`].
pub const MAX_METRIC_TYPES: usize = 500;
/// The `workflow_type` label of types beyond [`MAX_METRIC_TYPES`].
pub const METRICS_OVERFLOW_LABEL: &str = "_other";

/// The longest workflow timeout a run may ask for (ten years); also the
/// bound of `timeout_ms` in the API. Shorter than 1 ms is refused too.
pub const MAX_WORKFLOW_TIMEOUT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// The longest activation deadline: the `step_timeout` setting and a
/// handler's own `timeout` in `describe` are 1 ms to this.
pub const MAX_STEP_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// An outbound HTTP request's whole time (connect, send, response, body).
pub const OUTBOUND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest response body a task may read.
pub const MAX_RESPONSE_BYTES: u64 = 1 << 20;
/// Task attempts one activation may record (every retry of every task).
pub const MAX_TASK_ATTEMPTS_PER_ACTIVATION: usize = 10_000;
/// Recorded values (`now`, `random`, `uuid4`) one activation may ask for.
pub const MAX_VALUES_PER_ACTIVATION: usize = 100_000;
/// Outbound requests one task attempt may make.
pub const MAX_REQUESTS_PER_ATTEMPT: usize = 100;
/// A retry delay is waited inside the activation only if at least this
/// much of the step timeout is left after it; a longer one parks the run.
pub const RETRY_IN_ACTIVATION_MARGIN: Duration = Duration::from_millis(500);
