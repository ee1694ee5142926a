//! `Directive`: what a handler returns, built with `ctx.next`.

use crate::bindings::wasmflow::workflow::types as wit;
use crate::error::{Error, Result};

/// What the run does after this handler: run a step, wait for an event,
/// sleep, complete, or fail. Build one with [`ctx.next`](crate::Next).
///
/// A directive that could not be built (a result that does not serialize, a
/// step of another workflow) carries that error, and the activation fails
/// with it.
///
/// ```no_run
/// # use wasmflow::prelude::*;
/// # fn f(ctx: &mut Context, approved: bool) -> Result<Directive> {
/// let next: Directive = if approved {
///     ctx.next.complete("approved")
/// } else {
///     ctx.next.wait_for_event()
/// };
/// Ok(next)
/// # }
/// ```
#[must_use = "a handler must return its directive"]
pub struct Directive(pub(crate) Result<wit::Directive>);

impl Directive {
    pub(crate) fn step(name: &str) -> Self {
        Directive(Ok(wit::Directive::Step(name.to_owned())))
    }

    pub(crate) fn wait(timeout_ms: Option<u64>, on_timeout: Option<&str>) -> Self {
        Directive(Ok(wit::Directive::Wait(wit::WaitSpec {
            timeout_ms,
            on_timeout: on_timeout.map(str::to_owned),
        })))
    }

    pub(crate) fn sleep(duration_ms: u64, step: &str) -> Self {
        Directive(Ok(wit::Directive::Sleep(wit::SleepSpec {
            duration_ms,
            step: step.to_owned(),
        })))
    }

    pub(crate) fn complete(json: String) -> Self {
        Directive(Ok(wit::Directive::Complete(json)))
    }

    pub(crate) fn fail(error: Error) -> Self {
        Directive(Ok(wit::Directive::Fail(error.into_wit())))
    }

    pub(crate) fn from_error(error: Error) -> Self {
        Directive(Err(error))
    }
}

/// A reference to a `#[step]` of a workflow: the value `ctx.next.step(...)`
/// takes.
///
/// `#[wasmflow::workflow]` implements it for a unit struct named after each
/// step function, so `ctx.next.step(payment_done)` names the step itself and a
/// typo is a compile error. It is not meant to be implemented by hand.
///
/// ```
/// #[wasmflow::workflow(name = "Greeter")]
/// mod greeter {
///     use wasmflow::prelude::*;
///
///     #[start]
///     fn start(ctx: &mut Context) -> Result<Directive> {
///         Ok(ctx.next.step(greet))
///     }
///
///     #[step]
///     pub fn greet(ctx: &mut Context) -> Result<Directive> {
///         Ok(ctx.next.complete("Hello"))
///     }
/// }
///
/// use wasmflow::StepRef;
///
/// assert_eq!(<greeter::greet as StepRef>::NAME, "greet");
/// assert_eq!(<greeter::greet as StepRef>::WORKFLOW, "Greeter");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a step",
    label = "expected a `#[step]` function of this workflow",
    note = "mark the function `#[step]` inside the `#[wasmflow::workflow]` module"
)]
pub trait StepRef {
    /// The workflow type the step belongs to.
    const WORKFLOW: &'static str;
    /// The step's name.
    const NAME: &'static str;
}

/// What a handler may return: a [`Directive`], or a `Result` of one whose
/// error converts into [`Error`]. The generated handler wrappers call it.
///
/// ```
/// # #[wasmflow::workflow(name = "Counter")]
/// # mod counter {
/// use wasmflow::prelude::*;
///
/// // A handler may return the directive itself...
/// #[start]
/// fn start(ctx: &mut Context) -> Directive {
///     ctx.next.wait_for_event()
/// }
///
/// // ... or a `Result` of one.
/// #[event]
/// fn bump(ctx: &mut Context) -> Result<Directive> {
///     let n: u64 = ctx.store.try_get("n")?.unwrap_or(0);
///     ctx.store.put("n", n + 1)?;
///     Ok(ctx.next.wait_for_event())
/// }
/// # }
/// ```
pub trait IntoDirective {
    /// The directive, or the error the activation fails with.
    fn into_directive(self) -> Result<wit::Directive>;
}

impl IntoDirective for Directive {
    fn into_directive(self) -> Result<wit::Directive> {
        self.0
    }
}

impl<E: Into<Error>> IntoDirective for std::result::Result<Directive, E> {
    fn into_directive(self) -> Result<wit::Directive> {
        self.map_err(Into::into).and_then(|d| d.0)
    }
}
