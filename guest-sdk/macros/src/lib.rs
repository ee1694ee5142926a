//! The attribute macros of the wasmflow guest SDK.
//!
//! `#[workflow(name = "Order")]` goes on an inline module and turns the
//! functions in it marked `#[start]`, `#[step]`, `#[event]` and `#[query]` into
//! one workflow type: it generates the type's description (what the host's
//! `describe` call returns), a wrapper per handler that binds the input's keys
//! to the parameters by name, and, for every step, a unit struct of the step's
//! name that implements `StepRef`, so `ctx.next.step(greet)` only compiles
//! when `greet` is a step, and the module's `TYPE`, the workflow type for
//! `ctx.start(payment::TYPE, ...)`. The inner attributes are markers read by
//! `#[workflow]`; on their own they are a compile error.
//!
//! Use them through the `wasmflow` crate, which re-exports them.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Error, Expr, ExprLit, FnArg, Ident, Item, ItemFn, ItemMod, Lit, LitStr, Meta,
    MetaNameValue, Pat, Token, Type,
};

/// Declares a workflow type from the handlers in an inline module.
///
/// Besides the handlers, the module gets `pub static WORKFLOW` (what
/// `wasmflow::export!` lists), `pub const TYPE: wasmflow::WorkflowType` (what
/// `ctx.start` takes to start a child of this type), and, for each step, a
/// unit struct of the step's name (what `ctx.next.step` takes).
///
/// ```ignore
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
/// wasmflow::export!(greeter);
/// ```
#[proc_macro_attribute]
pub fn workflow(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse_macro_input!(attr as WorkflowArgs);
    let module = syn::parse_macro_input!(item as ItemMod);
    match expand_workflow(args, module) {
        Ok(tokens) => tokens.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

macro_rules! marker {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Marks ", $what, " inside a `#[wasmflow::workflow]` module.")]
        #[proc_macro_attribute]
        pub fn $name(_attr: TokenStream, item: TokenStream) -> TokenStream {
            let item = TokenStream2::from(item);
            let msg = concat!(
                "#[",
                stringify!($name),
                "] must be used on a function inside a #[wasmflow::workflow(name = \"...\")] module"
            );
            quote_spanned!(Span::call_site() => compile_error!(#msg); #item).into()
        }
    };
}

marker!(start, "the start handler");
marker!(step, "a step handler");
marker!(event, "an event handler");
marker!(query, "a query handler");

struct WorkflowArgs {
    name: LitStr,
}

impl Parse for WorkflowArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(LitStr) {
            let name: LitStr = input.parse()?;
            return Ok(WorkflowArgs { name });
        }
        let metas = Punctuated::<MetaNameValue, Token![,]>::parse_terminated(input)?;
        let mut name = None;
        for meta in metas {
            if meta.path.is_ident("name") {
                name = Some(lit_str(&meta.value)?);
            } else {
                return Err(Error::new(
                    meta.path.span(),
                    "unknown workflow option; expected `name = \"...\"`",
                ));
            }
        }
        let name = name.ok_or_else(|| {
            Error::new(
                Span::call_site(),
                "a workflow needs a type name: #[workflow(name = \"Order\")]",
            )
        })?;
        Ok(WorkflowArgs { name })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Start,
    Step,
    Event,
    Query,
}

impl Kind {
    fn from_attr(attr: &Attribute) -> Option<Kind> {
        let last = attr.path().segments.last()?.ident.to_string();
        match last.as_str() {
            "start" => Some(Kind::Start),
            "step" => Some(Kind::Step),
            "event" => Some(Kind::Event),
            "query" => Some(Kind::Query),
            _ => None,
        }
    }

    fn tokens(self) -> TokenStream2 {
        match self {
            Kind::Start => quote!(::wasmflow::__rt::HandlerKind::Start),
            Kind::Step => quote!(::wasmflow::__rt::HandlerKind::Step),
            Kind::Event => quote!(::wasmflow::__rt::HandlerKind::Event),
            Kind::Query => quote!(::wasmflow::__rt::HandlerKind::Query),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::Start => "start handler",
            Kind::Step => "step",
            Kind::Event => "event handler",
            Kind::Query => "query",
        }
    }
}

struct Param {
    ident: Ident,
    /// The input key: the parameter's name without `r#`.
    key: String,
    ty: Type,
    optional: bool,
}

struct Handler {
    kind: Kind,
    /// The name the host knows the handler by.
    name: String,
    fn_ident: Ident,
    timeout_ms: Option<u64>,
    params: Vec<Param>,
    span: Span,
}

fn expand_workflow(args: WorkflowArgs, mut module: ItemMod) -> syn::Result<TokenStream2> {
    let workflow_name = args.name.value();
    if workflow_name.is_empty() || workflow_name.contains(char::is_whitespace) {
        return Err(Error::new(
            args.name.span(),
            "a workflow type name must be non-empty and contain no whitespace",
        ));
    }
    let Some((_, items)) = module.content.as_mut() else {
        return Err(Error::new(
            module.span(),
            "#[workflow] needs an inline module: `mod name { ... }`",
        ));
    };

    let mut handlers = Vec::new();
    let mut generated = Vec::new();
    for item in items.iter_mut() {
        let Item::Fn(func) = item else { continue };
        let Some(handler) = take_handler(func)? else {
            continue;
        };
        if handler.kind == Kind::Step {
            // The step's name becomes a unit struct implementing `StepRef`; the
            // function itself moves aside.
            let step_ident = func.sig.ident.clone();
            let vis = func.vis.clone();
            let name = &handler.name;
            let doc = format!("The `{name}` step of workflow `{workflow_name}`.");
            func.sig.ident = format_ident!("__wasmflow_step_{}", step_ident);
            generated.push(quote! {
                #[doc = #doc]
                #[allow(non_camel_case_types)]
                #[derive(Clone, Copy, Debug)]
                #vis struct #step_ident;
                impl ::wasmflow::StepRef for #step_ident {
                    const WORKFLOW: &'static str = #workflow_name;
                    const NAME: &'static str = #name;
                }
            });
        }
        handlers.push((handler, func.sig.ident.clone()));
    }

    check_handlers(&workflow_name, &handlers, module.ident.span())?;

    let mut defs = Vec::new();
    for (h, callee) in &handlers {
        let wrapper = format_ident!("__wasmflow_call_{}_{}", kind_prefix(h.kind), h.fn_ident);
        let name = &h.name;
        let kind = h.kind.tokens();
        let timeout = match h.timeout_ms {
            Some(ms) => quote!(::core::option::Option::Some(#ms)),
            None => quote!(::core::option::Option::None),
        };
        let param_defs = h.params.iter().map(|p| {
            let pname = &p.key;
            let optional = p.optional;
            let ty = &p.ty;
            // Start, event and query parameters describe their type with a
            // JSON Schema (the host checks payloads against it at the door);
            // a step's, a child's outcome, is the host's own.
            let schema = if h.kind == Kind::Step {
                quote!(|| ::core::option::Option::None)
            } else {
                quote_spanned!(p.ty.span()=> ::wasmflow::__rt::param_schema::<#ty>)
            };
            quote!(::wasmflow::__rt::ParamDef {
                name: #pname,
                optional: #optional,
                schema: #schema,
            })
        });
        // A step only ever receives a child's outcome: any other parameter
        // type could never be filled, so it does not compile.
        let step_checks = h.params.iter().filter(|_| h.kind == Kind::Step).map(|p| {
            let ty = &p.ty;
            quote_spanned!(p.ty.span()=> ::wasmflow::__rt::step_param::<#ty>();)
        });
        let binds = h.params.iter().enumerate().map(|(i, p)| {
            let ident = &p.ident;
            let ty = &p.ty;
            quote_spanned!(p.ty.span()=> let #ident: #ty = __args.take(#i)?;)
        });
        let idents = h.params.iter().map(|p| &p.ident);
        let call = if h.kind == Kind::Query {
            quote!(::wasmflow::__rt::query_result(#callee(__ctx, #(#idents),*)))
        } else {
            quote!(::wasmflow::IntoDirective::into_directive(#callee(__ctx, #(#idents),*)))
        };
        generated.push(quote_spanned! {h.span=>
            #[doc(hidden)]
            fn #wrapper(
                __ctx: &mut ::wasmflow::Context,
                __args: ::wasmflow::__rt::Args,
            ) -> ::wasmflow::Result<::wasmflow::__rt::WitDirective> {
                #(#step_checks)*
                let mut __args = __args;
                #(#binds)*
                #call
            }
        });
        defs.push(quote! {
            ::wasmflow::__rt::HandlerDef {
                name: #name,
                kind: #kind,
                params: &[#(#param_defs),*],
                timeout_ms: #timeout,
                call: #wrapper,
            }
        });
    }

    let type_doc = format!(
        "The `{workflow_name}` workflow type, for `ctx.start`: a child of this type \
         started with `TYPE` instead of `\"{workflow_name}\"` cannot name a type that \
         does not exist."
    );
    let doc = format!("The `{workflow_name}` workflow type, for `wasmflow::export!`.");
    generated.push(quote! {
        #[doc = #type_doc]
        pub const TYPE: ::wasmflow::WorkflowType = ::wasmflow::WorkflowType::__new(#workflow_name);
        #[doc = #doc]
        pub static WORKFLOW: ::wasmflow::__rt::WorkflowDef = ::wasmflow::__rt::WorkflowDef {
            name: #workflow_name,
            handlers: &[#(#defs),*],
        };
    });

    for tokens in generated {
        items.push(Item::Verbatim(tokens));
    }
    Ok(quote!(#module))
}

fn kind_prefix(kind: Kind) -> &'static str {
    match kind {
        Kind::Start => "start",
        Kind::Step => "step",
        Kind::Event => "event",
        Kind::Query => "query",
    }
}

/// Reads and removes the handler attribute of `func`, if it has one.
fn take_handler(func: &mut ItemFn) -> syn::Result<Option<Handler>> {
    let mut found: Option<(Kind, Attribute)> = None;
    let mut kept = Vec::new();
    for attr in func.attrs.drain(..) {
        match Kind::from_attr(&attr) {
            Some(kind) => {
                if found.is_some() {
                    return Err(Error::new(
                        attr.span(),
                        "a function can be only one kind of handler",
                    ));
                }
                found = Some((kind, attr));
            }
            None => kept.push(attr),
        }
    }
    func.attrs = kept;
    let Some((kind, attr)) = found else {
        return Ok(None);
    };

    let mut name = func.sig.ident.to_string();
    let mut timeout_ms = None;
    if let Meta::List(list) = &attr.meta {
        let metas =
            list.parse_args_with(Punctuated::<MetaNameValue, Token![,]>::parse_terminated)?;
        for meta in metas {
            if meta.path.is_ident("name") && matches!(kind, Kind::Event | Kind::Query) {
                let lit = lit_str(&meta.value)?;
                name = lit.value();
                if name.is_empty() {
                    return Err(Error::new(lit.span(), "a handler name cannot be empty"));
                }
            } else if meta.path.is_ident("timeout") && kind != Kind::Query {
                let lit = lit_str(&meta.value)?;
                timeout_ms = Some(parse_duration_ms(&lit.value()).ok_or_else(|| {
                    Error::new(
                        lit.span(),
                        "expected a duration such as \"500ms\", \"10s\", \"5m\" or \"1h\"",
                    )
                })?);
            } else {
                let allowed = match kind {
                    Kind::Event => "`name = \"...\"` or `timeout = \"10s\"`",
                    Kind::Query => "`name = \"...\"`",
                    Kind::Start | Kind::Step => "`timeout = \"10s\"`",
                };
                return Err(Error::new(
                    meta.path.span(),
                    format!("unknown {} option; expected {allowed}", kind.label()),
                ));
            }
        }
    }

    if func.sig.asyncness.is_some() {
        return Err(Error::new(
            func.sig.asyncness.span(),
            "handlers are plain functions; remove `async`",
        ));
    }
    if !func.sig.generics.params.is_empty() {
        return Err(Error::new(
            func.sig.generics.span(),
            "handlers cannot be generic",
        ));
    }

    let mut inputs = func.sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Typed(_)) => {}
        _ => {
            return Err(Error::new(
                func.sig.ident.span(),
                "a handler's first parameter is the context: `ctx: &mut Context`",
            ));
        }
    }
    let mut params = Vec::new();
    for arg in inputs {
        let FnArg::Typed(pat_type) = arg else {
            return Err(Error::new(arg.span(), "unexpected `self` parameter"));
        };
        let Pat::Ident(pat) = pat_type.pat.as_ref() else {
            return Err(Error::new(
                pat_type.pat.span(),
                "handler parameters must be plain names: they are bound by name from the input",
            ));
        };
        let ident = pat.ident.clone();
        let key = ident.to_string();
        let key = key.strip_prefix("r#").unwrap_or(&key).to_owned();
        params.push(Param {
            ident,
            key,
            optional: is_option(&pat_type.ty),
            ty: (*pat_type.ty).clone(),
        });
    }
    if kind == Kind::Step && params.len() > 1 {
        return Err(Error::new(
            func.sig.inputs.span(),
            "a step takes the context and at most one parameter (a child's outcome)",
        ));
    }

    Ok(Some(Handler {
        kind,
        name,
        fn_ident: func.sig.ident.clone(),
        timeout_ms,
        params,
        span: func.sig.ident.span(),
    }))
}

fn check_handlers(workflow: &str, handlers: &[(Handler, Ident)], span: Span) -> syn::Result<()> {
    let starts: Vec<_> = handlers
        .iter()
        .filter(|(h, _)| h.kind == Kind::Start)
        .collect();
    match starts.as_slice() {
        [] => {
            return Err(Error::new(
                span,
                format!("workflow `{workflow}` has no #[start] handler; it needs exactly one"),
            ));
        }
        [_] => {}
        [_, second, ..] => {
            return Err(Error::new(
                second.0.span,
                format!(
                    "workflow `{workflow}` has a second #[start] handler; it needs exactly one"
                ),
            ));
        }
    }
    for (i, (h, _)) in handlers.iter().enumerate() {
        if let Some((prev, _)) = handlers[..i]
            .iter()
            .find(|(p, _)| p.kind == h.kind && p.name == h.name)
        {
            let _ = prev;
            return Err(Error::new(
                h.span,
                format!(
                    "workflow `{workflow}` already has a {} named `{}`",
                    h.kind.label(),
                    h.name
                ),
            ));
        }
    }
    Ok(())
}

fn lit_str(expr: &Expr) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(Error::new(other.span(), "expected a string literal")),
    }
}

fn is_option(ty: &Type) -> bool {
    match ty {
        Type::Path(p) => p.path.segments.last().is_some_and(|s| s.ident == "Option"),
        _ => false,
    }
}

/// "500ms", "10s", "5m", "1h" → milliseconds.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let factor = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor).filter(|&ms| ms > 0)
}

#[cfg(test)]
mod tests {
    use super::parse_duration_ms;

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("500ms"), Some(500));
        assert_eq!(parse_duration_ms("10s"), Some(10_000));
        assert_eq!(parse_duration_ms("5m"), Some(300_000));
        assert_eq!(parse_duration_ms("1h"), Some(3_600_000));
        assert_eq!(parse_duration_ms("0s"), None);
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("ten s"), None);
        assert_eq!(parse_duration_ms("10 parsecs"), None);
    }
}
