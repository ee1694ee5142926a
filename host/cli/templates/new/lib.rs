//! The `{{ type_name }}` workflow: started with a name, it waits up to a day
//! for an `approve` event, then completes; without one it fails.

#[wasmflow::workflow(name = "{{ type_name }}")]
mod {{ module }} {
    use wasmflow::prelude::*;

    /// Start with `{"name": "Ada"}`: the input binds to `name` by key.
    #[start]
    fn start(ctx: &mut Context, name: String) -> Result<Directive> {
        ctx.store.put("name", name)?;
        // Wait for an event; after a day without one, `expire` runs.
        Ok(ctx.next.wait_timeout(Duration::from_secs(24 * 3600), expire))
    }

    /// Event `approve` with `{"by": "Grace"}`.
    #[event]
    fn approve(ctx: &mut Context, by: String) -> Result<Directive> {
        ctx.store.put("approved_by", by)?;
        Ok(ctx.next.step(finish))
    }

    #[step]
    fn finish(ctx: &mut Context) -> Result<Directive> {
        let name: String = ctx.store.get("name")?;
        let by: String = ctx.store.get("approved_by")?;
        Ok(ctx.next.complete(format!("{name}, approved by {by}")))
    }

    #[step]
    fn expire(ctx: &mut Context) -> Result<Directive> {
        Ok(ctx.next.fail("not approved within a day"))
    }

    /// Query `status`: read-only, on the committed store.
    #[query]
    fn status(ctx: &mut Context) -> Result<String> {
        Ok(match ctx.store.try_get::<String>("approved_by")? {
            Some(by) => format!("approved by {by}"),
            None => "waiting for approval".to_owned(),
        })
    }
}

// Once per component: every workflow module it provides.
wasmflow::export!({{ module }});
