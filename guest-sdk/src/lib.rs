//! Write durable workflows for the wasmflow host, in Rust, as WebAssembly
//! components.
//!
//! A workflow type is an inline module marked `#[workflow]` whose functions
//! are its handlers: exactly one `#[start]`, any number of `#[step]`s,
//! `#[event]` handlers and `#[query]` handlers. Each handler gets a
//! [`Context`] and returns a [`Directive`] built with `ctx.next`: run a step,
//! wait for an event, complete, or fail. The host runs every handler in a
//! fresh sandboxed instance and commits its store writes atomically with the
//! directive it returns.
//!
//! ```no_run
//! #[wasmflow::workflow(name = "Greeter")]
//! mod greeter {
//!     use wasmflow::prelude::*;
//!
//!     /// The input `{"name": "Ada"}` binds to `name` by key.
//!     #[start]
//!     fn start(ctx: &mut Context, name: String) -> Result<Directive> {
//!         ctx.store.put("name", name)?;
//!         Ok(ctx.next.step(greet))
//!     }
//!
//!     #[step]
//!     fn greet(ctx: &mut Context) -> Result<Directive> {
//!         let name: String = ctx.store.get("name")?;
//!         Ok(ctx.next.complete(format!("Hello, {name}")))
//!     }
//! }
//!
//! // Once per component, listing every workflow module it provides.
//! wasmflow::export!(greeter);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (crate type
//! `cdylib`) and drop the `.wasm` into the host's plugins directory.
//!
//! Parameters bind by name from the input object (a scalar goes to a handler
//! with a single parameter; `Option<T>` parameters may be absent); event
//! names default to the function name (`#[event(name = "...")]` overrides
//! it); `timeout = "30s"` sets a handler's activation deadline.
//!
//! A panic in a handler fails the run with the panic's message; a handler
//! returning `Err` fails it with that error. Errors that the host produces
//! have a [kind](ErrorKind) handlers can match on.
//!
//! The names follow the seed page: `ctx.next.wait_for_event()`,
//! `ctx.start(type, workflow_id, workflow_input)` returning a handle whose
//! `run_info.id` is the child's run id, `StartOptions::new().workflow_timeout(...)`,
//! `ctx.send_to_parent(event, payload)`, `ctx.next.fail("message")`.
//!
//! ```no_run
//! // --- Child workflow ---
//! #[wasmflow::workflow(name = "Payment")]
//! mod payment {
//!     use serde_json::json;
//!     use wasmflow::prelude::*;
//!
//!     #[start]
//!     fn payment_start(ctx: &mut Context, amount: f64) -> Result<Directive> {
//!         ctx.store.put("amount", amount)?;
//!         Ok(ctx.next.step(payment_done))
//!     }
//!
//!     #[step]
//!     fn payment_done(ctx: &mut Context) -> Result<Directive> {
//!         let txn_id = ctx.uuid4();
//!         ctx.send_to_parent("payment_completed", &json!({ "txn_id": txn_id }))?;
//!         Ok(ctx.next.complete(txn_id))
//!     }
//! }
//!
//! // --- Parent workflow ---
//! #[wasmflow::workflow(name = "Order")]
//! mod order {
//!     use serde_json::json;
//!     use wasmflow::prelude::*;
//!
//!     #[start]
//!     fn order_start(ctx: &mut Context, order_id: String, amount: f64) -> Result<Directive> {
//!         ctx.store.put("order_id", order_id)?;
//!         ctx.store.put("amount", amount)?;
//!         Ok(ctx.next.wait_for_event())
//!     }
//!
//!     #[event]
//!     fn start_payment(ctx: &mut Context) -> Result<Directive> {
//!         let amount: f64 = ctx.store.get("amount")?;
//!         let order_id: String = ctx.store.get("order_id")?;
//!         let handle = ctx.start_with(
//!             super::payment::TYPE, // a typo here does not compile
//!             format!("payment-{order_id}"),
//!             &json!({ "amount": amount }),
//!             StartOptions::new().workflow_timeout(Duration::from_secs(5 * 60)),
//!         )?;
//!         ctx.store.put("payment_run_id", handle.run_info.id)?;
//!         Ok(ctx.next.wait_for_event())
//!     }
//!
//!     #[event(name = "payment_completed")]
//!     fn on_payment_done(ctx: &mut Context, txn_id: String) -> Result<Directive> {
//!         if txn_id.is_empty() {
//!             return Ok(ctx.next.fail("the payment returned no transaction id"));
//!         }
//!         ctx.store.put("txn_id", &txn_id)?;
//!         Ok(ctx.next.complete(txn_id))
//!     }
//! }
//!
//! wasmflow::export!(payment, order);
//! # fn main() {}
//! ```

#![warn(missing_docs)]

mod context;
mod directive;
mod error;
mod task;

#[doc(hidden)]
pub mod rt;

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "workflow",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "__export_world",
        default_bindings_module: "::wasmflow::bindings",
    });
}

#[doc(hidden)]
pub use bindings::__export_world;
#[doc(hidden)]
pub use rt as __rt;

pub use context::{
    ChildHandle, ChildOutcome, ChildStatus, ClosePolicy, Context, CurrentRun, Log, Next, NoInput,
    ParentInfo, RunInfo, RunRef, StartOptions, Store, WorkflowHandle, WorkflowInput, WorkflowType,
};
pub use directive::{Directive, IntoDirective, StepRef};
pub use error::{Error, ErrorKind, IntoError, Result, marker};
/// `schemars`, whose `JsonSchema` gives a parameter type the schema the host
/// checks payloads against: `#[derive(JsonSchema)]` with
/// `#[schemars(crate = "wasmflow::schemars")]`, or depend on `schemars` 1.
pub use schemars;
pub use task::{Attempt, RetryPolicy};
/// Declares a workflow type from the handlers in an inline module:
/// `#[wasmflow::workflow(name = "Greeter")]`.
///
/// ```no_run
/// #[wasmflow::workflow(name = "Greeter")]
/// mod greeter {
///     use wasmflow::prelude::*;
///
///     #[start]
///     fn start(ctx: &mut Context, name: String) -> Result<Directive> {
///         ctx.store.put("name", name)?;
///         Ok(ctx.next.step(greet))
///     }
///
///     #[step]
///     fn greet(ctx: &mut Context) -> Result<Directive> {
///         let name: String = ctx.store.get("name")?;
///         Ok(ctx.next.complete(format!("Hello, {name}")))
///     }
/// }
///
/// assert_eq!(greeter::TYPE.name(), "Greeter");
/// wasmflow::export!(greeter);
/// ```
pub use wasmflow_macros::workflow;

/// Marks the start handler, `#[start]`: exactly one per workflow. Its
/// parameters bind by name from the run's input; `timeout = "30s"` sets its
/// activation deadline.
///
/// ```no_run
/// # #[wasmflow::workflow(name = "Order")]
/// # mod order {
/// # use wasmflow::prelude::*;
/// #[start(timeout = "30s")]
/// fn order_start(ctx: &mut Context, order_id: String, note: Option<String>) -> Result<Directive> {
///     ctx.store.put("order_id", order_id)?;
///     ctx.store.put("note", note)?;
///     Ok(ctx.next.wait_for_event())
/// }
/// # }
/// ```
pub use wasmflow_macros::start;

/// Marks a step, `#[step]`: run by `ctx.next.step(name)` (or a timer). It
/// takes no parameter besides the context, or a child's [`ChildOutcome`]
/// (see [`StartOptions::on_completed`]).
///
/// ```no_run
/// # #[wasmflow::workflow(name = "Counter")]
/// # mod counter {
/// # use wasmflow::prelude::*;
/// # #[start]
/// # fn start(ctx: &mut Context) -> Result<Directive> { Ok(ctx.next.step(tick)) }
/// #[step]
/// fn tick(ctx: &mut Context) -> Result<Directive> {
///     let n: u32 = ctx.store.try_get("n")?.unwrap_or(0);
///     ctx.store.put("n", n + 1)?;
///     Ok(if n < 3 { ctx.next.step(tick) } else { ctx.next.complete(n) })
/// }
/// # }
/// ```
pub use wasmflow_macros::step;

/// Marks an event handler, `#[event]`: its name is the function's unless
/// `name = "..."` says otherwise, and the event's payload binds to its
/// parameters by name.
///
/// ```no_run
/// # #[wasmflow::workflow(name = "Order")]
/// # mod order {
/// # use wasmflow::prelude::*;
/// # #[start]
/// # fn start(ctx: &mut Context) -> Result<Directive> { Ok(ctx.next.wait_for_event()) }
/// #[event(name = "payment_completed")]
/// fn on_payment_done(ctx: &mut Context, txn_id: String) -> Result<Directive> {
///     Ok(ctx.next.complete(txn_id))
/// }
/// # }
/// ```
pub use wasmflow_macros::event;

/// Marks a query handler, `#[query]`: it reads the store and returns a
/// value (any serializable type) instead of a directive; it cannot change
/// the run.
///
/// ```no_run
/// # #[wasmflow::workflow(name = "Order")]
/// # mod order {
/// # use wasmflow::prelude::*;
/// # #[start]
/// # fn start(ctx: &mut Context) -> Result<Directive> { Ok(ctx.next.wait_for_event()) }
/// #[query]
/// fn summary(ctx: &mut Context) -> Result<serde_json::Value> {
///     Ok(serde_json::json!({ "txn_id": ctx.store.try_get::<String>("txn_id")? }))
/// }
/// # }
/// ```
pub use wasmflow_macros::query;

/// Everything a workflow module needs: `use wasmflow::prelude::*;`.
///
/// The handler attributes (`start`, `step`, `event`, `query`), the context
/// and what it hands out (`Context`, `CurrentRun`, `RunInfo`,
/// `ParentInfo`, `ChildHandle`/`WorkflowHandle`, `StartOptions`,
/// `ClosePolicy`, `ChildOutcome`, `ChildStatus`, `Attempt`, `RetryPolicy`),
/// `Directive`, `Error`, `ErrorKind`, `Result`, and `std::time::Duration`.
///
/// ```no_run
/// #[wasmflow::workflow(name = "Sleeper")]
/// mod sleeper {
///     use wasmflow::prelude::*;
///
///     #[start]
///     fn start(ctx: &mut Context) -> Result<Directive> {
///         Ok(ctx.next.sleep(Duration::from_secs(60), wake))
///     }
///
///     #[step]
///     fn wake(ctx: &mut Context) -> Result<Directive> {
///         Ok(ctx.next.complete(&ctx.run.id))
///     }
/// }
/// # wasmflow::export!(sleeper);
/// ```
pub mod prelude {
    pub use crate::{
        Attempt, ChildHandle, ChildOutcome, ChildStatus, ClosePolicy, Context, CurrentRun,
        Directive, Error, ErrorKind, ParentInfo, Result, RetryPolicy, RunInfo, StartOptions,
        WorkflowHandle, event, query, start, step,
    };
    pub use std::time::Duration;
}

/// Exports the component's workflow types: name every `#[workflow]` module,
/// once per component.
///
/// ```no_run
/// #[wasmflow::workflow(name = "Order")]
/// mod order {
///     use wasmflow::prelude::*;
///
///     #[start]
///     fn start(ctx: &mut Context) -> Result<Directive> {
///         Ok(ctx.next.wait_for_event())
///     }
/// }
///
/// #[wasmflow::workflow(name = "Payment")]
/// mod payment {
///     use wasmflow::prelude::*;
///
///     #[start]
///     fn start(ctx: &mut Context, amount: f64) -> Result<Directive> {
///         Ok(ctx.next.complete(amount))
///     }
/// }
///
/// wasmflow::export!(order, payment);
/// ```
#[macro_export]
macro_rules! export {
    ($($($module:ident)::+),+ $(,)?) => {
        const _: () = {
            static __WASMFLOW_WORKFLOWS: &[&$crate::__rt::WorkflowDef] =
                &[$(&$($module)::+::WORKFLOW),+];

            struct __WasmflowComponent;

            impl $crate::__rt::Guest for __WasmflowComponent {
                fn describe() -> ::std::vec::Vec<
                    $crate::bindings::wasmflow::workflow::types::WorkflowTypeInfo,
                > {
                    $crate::__rt::describe(__WASMFLOW_WORKFLOWS)
                }

                fn handle(
                    activation: $crate::__rt::Activation,
                ) -> ::std::result::Result<
                    $crate::__rt::WitDirective,
                    $crate::bindings::wasmflow::workflow::types::Error,
                > {
                    $crate::__rt::handle(__WASMFLOW_WORKFLOWS, activation)
                }
            }

            $crate::__export_world!(__WasmflowComponent);
        };
    };
}
