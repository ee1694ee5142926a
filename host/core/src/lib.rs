//! The wasmflow host's model: what a run is and how it moves, without I/O.
//!
//! A **run** executes one **activation** at a time: one handler of its
//! workflow type, in a fresh sandboxed instance. The handler returns a
//! **directive** (run a step, wait, complete, fail), and [`plan`] turns that
//! outcome into the run's next state, its store writes, its history, the
//! children it started and the events it sent its parent. Storage applies
//! all of that in one transaction; then the next activation follows, until
//! the run waits or ends.
//!
//! ```
//! use std::time::Duration;
//! use wasmflow_core::activation::{ActivationOutcome, RunIdentity};
//! use wasmflow_core::model::{Directive, HandlerSpec, Pending, RunId, WorkflowTypeSpec, json_null};
//! use wasmflow_core::plan::{NextState, plan};
//! use wasmflow_core::{ErrorKind, HandlerKind, WorkflowError};
//!
//! // A workflow type as its component's `describe` reports it.
//! let step = |kind, name: &str| HandlerSpec { name: name.into(), kind, params: vec![], timeout: None };
//! let spec = WorkflowTypeSpec {
//!     name: "Greeter".into(),
//!     handlers: vec![step(HandlerKind::Start, "start"), step(HandlerKind::Step, "greet")],
//! };
//! let run_id = RunId::new();
//! let identity = RunIdentity {
//!     workflow_type: "Greeter".into(),
//!     workflow_id: "greeter-1".into(),
//!     run_id,
//!     version: "v1".into(),
//!     parent: None,
//! };
//! let start = Pending { kind: HandlerKind::Start, handler: "start".into(), input: json_null() };
//!
//! // The start handler asked for step `greet`: the run keeps running.
//! let mut outcome = ActivationOutcome::failed(WorkflowError::new(ErrorKind::Trap, "unused"));
//! outcome.result = Ok(Directive::Step("greet".into()));
//! let next = plan(&spec, run_id, &identity, &start, 0, outcome, 1_000);
//! assert!(matches!(&next.next, NextState::Running(p) if p.handler == "greet"));
//!
//! // A step the type does not have fails the run with a typed error.
//! let mut outcome = ActivationOutcome::failed(WorkflowError::new(ErrorKind::Trap, "unused"));
//! outcome.result = Ok(Directive::Step("typo".into()));
//! let next = plan(&spec, run_id, &identity, &start, 0, outcome, 1_000);
//! assert!(matches!(&next.next, NextState::Failed(e) if e.kind == ErrorKind::UnknownStep));
//! # let _ = Duration::ZERO;
//! ```
//!
//! The modules:
//! - [`model`]: run ids, workflow specs (from `describe`), directives,
//!   pending activations, child starts, history events;
//! - [`plan`]: the pure function from an activation's outcome to the run's
//!   next state, and the values storage applies (new runs, deliveries,
//!   timers);
//! - [`activation`]: the interface of the sandbox ([`activation::Sandbox`],
//!   [`activation::ComponentVersion`], requests and outcomes, and the
//!   [`activation::HostServices`] an activation may call);
//! - [`journal`]: what an activation records (task attempts, `now`,
//!   `random`, `uuid4`) so that executing it again gets the same answers;
//! - [`grant`]: what an operator lets a plugin reach (outbound HTTP
//!   targets, secrets) and the checks over it;
//! - [`error`]: [`WorkflowError`], the typed error runs fail with;
//! - [`limits`]: the default of every setting and quota.
//!
//! This crate knows neither wasmtime nor SQL nor HTTP; Cargo keeps it so.

pub mod activation;
pub mod clock;
pub mod error;
pub mod grant;
pub mod journal;
pub mod limits;
pub mod model;
pub mod plan;
pub mod schema;

pub use error::WorkflowError;
pub use wasmflow_protocol::{
    ChildOutcome, ChildStatus, ClosePolicy, ErrorKind, HandlerKind, RetryPolicy, RunStatus, payload,
};
