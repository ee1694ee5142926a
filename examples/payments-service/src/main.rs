//! `payments-service [--listen ADDR] [--token TOKEN]`: the demo's payments
//! service (see the library). Prints `listening on http://ADDR` once ready.

use anyhow::{Context, bail};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut listen = "127.0.0.1:0".to_owned();
    let mut options = payments_service::Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => listen = args.next().context("--listen needs an address")?,
            "--token" => options.token = Some(args.next().context("--token needs a value")?),
            other => bail!("unknown argument `{other}` (expected --listen ADDR, --token TOKEN)"),
        }
    }
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let running = payments_service::spawn(listener, options)?;
    println!("listening on {}", running.url());
    tokio::signal::ctrl_c().await?;
    println!("{}", serde_json::to_string(&running.stats())?);
    Ok(())
}
