//! `{{ type_name }}` in the real host, in-process, on a fake clock:
//! `cargo test` builds the component and runs these.

use std::time::Duration;

use serde_json::json;
use wasmflow_testing::{ErrorKind, Harness, RunStatus, build_component};

async fn harness() -> wasmflow_testing::Result<Harness> {
    Harness::new(build_component(env!("CARGO_MANIFEST_DIR"))?).await
}

#[tokio::test]
async fn approved_it_completes() -> wasmflow_testing::Result<()> {
    let mut h = harness().await?;
    h.start("{{ type_name }}", "{{ crate_name }}-1", json!({"name": "Ada"})).await?;
    assert_eq!(h.status("{{ crate_name }}-1").await?, RunStatus::Waiting);
    assert_eq!(
        h.query("{{ crate_name }}-1", "status", json!({})).await?,
        json!("waiting for approval")
    );
    h.advance(Duration::from_secs(3600)).await?; // an hour: still waiting
    h.send("{{ crate_name }}-1", "approve", json!({"by": "Grace"})).await?;
    assert_eq!(
        h.result::<String>("{{ crate_name }}-1").await?,
        "Ada, approved by Grace"
    );
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn without_approval_it_fails_after_a_day() -> wasmflow_testing::Result<()> {
    let mut h = harness().await?;
    h.start("{{ type_name }}", "{{ crate_name }}-2", json!({"name": "Ada"})).await?;
    h.advance(Duration::from_secs(24 * 3600)).await?; // fires the wait's timeout
    let error = h.error("{{ crate_name }}-2").await?.expect("the run failed");
    assert_eq!(error.kind, ErrorKind::Application);
    assert_eq!(error.message, "not approved within a day");
    h.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_crash_before_the_approval_is_committed_loses_nothing() -> wasmflow_testing::Result<()> {
    let mut h = harness().await?;
    h.start("{{ type_name }}", "{{ crate_name }}-3", json!({"name": "Ada"})).await?;
    h.crash_before_commit(); // the host restarts and executes `approve` again
    h.send("{{ crate_name }}-3", "approve", json!({"by": "Grace"})).await?;
    assert_eq!(h.restarts(), 1);
    assert_eq!(
        h.result::<String>("{{ crate_name }}-3").await?,
        "Ada, approved by Grace"
    );
    h.shutdown().await;
    Ok(())
}
