//! What both backends do to a row's columns: JSON text in and out, run ids,
//! and the `Corrupt` error that names what did not read back.

use wasmflow_core::model::{Json, RunId, parse_json};

use crate::StorageError;

/// A value as the JSON text a column keeps.
pub fn to_json<T: serde::Serialize>(value: &T) -> Result<String, StorageError> {
    serde_json::to_string(value).map_err(|e| StorageError::Corrupt(e.to_string()))
}

/// A column's JSON text as the value written; `what` names it.
pub fn stored_json(text: &str, what: &str) -> Result<Json, StorageError> {
    parse_json(text, what).map_err(|e| StorageError::Corrupt(e.message))
}

/// A column of run `run_id` that does not read back as what was written.
pub fn corrupt_run(
    run_id: &dyn std::fmt::Display,
    what: &str,
    e: &dyn std::fmt::Display,
) -> StorageError {
    StorageError::Corrupt(format!("run `{run_id}`: {what}: {e}"))
}

/// A run id column.
pub fn parse_run_id(text: &str) -> Result<RunId, StorageError> {
    text.parse()
        .map_err(|e| StorageError::Corrupt(format!("run id `{text}`: {e}")))
}
