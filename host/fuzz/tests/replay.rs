//! Every fuzz target over its seed corpus (`corpus/TARGET/`), then over
//! random inputs for a bounded time: a regression that breaks a property
//! on the corpus, or on what a few seconds of random inputs reach, fails
//! the suite. The real fuzzing is `cargo xtask fuzz TARGET` (libFuzzer,
//! coverage-guided).
//!
//! `WASMFLOW_FUZZ_SECONDS` sets the random part's time per target (default
//! 5 s); `WASMFLOW_FUZZ_SEED` repeats a run's inputs (each run prints its
//! seed). A failing random input is written to
//! `target/fuzz-failures/TARGET-SEED-N` so it can be replayed with libFuzzer
//! or added to the corpus.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{Rng, RngCore, SeedableRng};

fn target(name: &str) -> fn(&[u8]) {
    wasmflow_fuzz::TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target `{name}`"))
}

fn corpus(name: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the seed corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("a corpus entry").path())
        .collect();
    files.sort();
    files
}

fn replay(name: &str) {
    let run = target(name);
    let files = corpus(name);
    for file in &files {
        let bytes = std::fs::read(file).expect("read a corpus file");
        if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
            panic!("fuzz target `{name}` fails on {}", file.display());
        }
    }
    let seconds: f64 = std::env::var("WASMFLOW_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let seed: u64 = std::env::var("WASMFLOW_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut inputs = 0u64;
    while Instant::now() < until {
        let mut bytes = vec![0u8; rng.random_range(0..2048)];
        rng.fill_bytes(&mut bytes);
        if catch_unwind(AssertUnwindSafe(|| run(&bytes))).is_err() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
            let _ = std::fs::create_dir_all(&dir);
            let path = dir.join(format!("{name}-{seed}-{inputs}"));
            let _ = std::fs::write(&path, &bytes);
            panic!(
                "fuzz target `{name}` fails on random input {inputs} of seed {seed}, written to {}",
                path.display()
            );
        }
        inputs += 1;
    }
    eprintln!(
        "fuzz target `{name}`: {} corpus files, {inputs} random inputs (seed {seed})",
        files.len()
    );
}

#[test]
fn payload() {
    replay("payload");
}

#[test]
fn schema() {
    replay("schema");
}

#[test]
fn guest_values() {
    replay("guest_values");
}

#[test]
fn config() {
    replay("config");
}

#[test]
fn api() {
    replay("api");
}

#[test]
fn guest() {
    replay("guest");
}
