//! Task outcomes given by the test instead of running the tasks.

use std::collections::HashMap;
use std::sync::Mutex;

use wasmflow_host::activation::TaskStubs;
use wasmflow_host::journal::TaskResult;
use wasmflow_host::{ErrorKind, WorkflowError};

/// What a stubbed task returns: its value, or an error of a kind.
pub type StubOutcome = Result<serde_json::Value, (ErrorKind, String)>;

/// The stubs of a harness, by task name (any workflow type) or by workflow
/// type and task name.
#[derive(Debug, Default)]
pub(crate) struct Stubs {
    by_name: Mutex<HashMap<(Option<String>, String), StubOutcome>>,
}

impl Stubs {
    pub(crate) fn set(&self, workflow_type: Option<&str>, task: &str, outcome: StubOutcome) {
        let mut stubs = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        stubs.insert((workflow_type.map(str::to_owned), task.to_owned()), outcome);
    }

    pub(crate) fn clear(&self, task: &str) {
        let mut stubs = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        stubs.retain(|(_, name), _| name != task);
    }
}

impl TaskStubs for Stubs {
    fn outcome(&self, workflow_type: &str, task: &str) -> Option<TaskResult> {
        let stubs = self.by_name.lock().unwrap_or_else(|p| p.into_inner());
        let outcome = stubs
            .get(&(Some(workflow_type.to_owned()), task.to_owned()))
            .or_else(|| stubs.get(&(None, task.to_owned())))?;
        Some(match outcome {
            Ok(value) => TaskResult::Value(value.clone()),
            Err((kind, message)) => TaskResult::Error(WorkflowError::new(*kind, message.clone())),
        })
    }
}
