//! What the harness's tests share: the built components.

use std::path::PathBuf;
use std::sync::OnceLock;

/// A built component: examples and test guests, built once per test binary
/// (`xtask::build_guests`, the suite's shared build).
pub fn component(name: &str) -> PathBuf {
    static GUESTS: OnceLock<xtask::Guests> = OnceLock::new();
    let guests = GUESTS.get_or_init(|| xtask::build_guests().expect("the guest components build"));
    let example = guests.example(name);
    if example.exists() {
        example
    } else {
        guests.test_guest(name)
    }
}
