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
    ChildHandle, ChildOutcome, ChildStatus, ClosePolicy, Context, Log, Next, ParentInfo, RunInfo,
    StartOptions, Store,
};
pub use directive::{Directive, IntoDirective, StepRef};
pub use error::{Error, ErrorKind, Result};
/// `schemars`, whose `JsonSchema` gives a parameter type the schema the host
/// checks payloads against: `#[derive(JsonSchema)]` with
/// `#[schemars(crate = "wasmflow::schemars")]`, or depend on `schemars` 1.
pub use schemars;
pub use task::{Attempt, RetryPolicy};
pub use wasmflow_macros::{event, query, start, step, workflow};

/// Everything a workflow module needs: `use wasmflow::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Attempt, ChildHandle, ChildOutcome, ChildStatus, ClosePolicy, Context, Directive, Error,
        ErrorKind, Result, RetryPolicy, StartOptions, event, query, start, step,
    };
    pub use std::time::Duration;
}

/// Exports the component's workflow types: name every `#[workflow]` module,
/// once per component.
///
/// ```ignore
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
