//! Integration tests live in this directory; see `support/`.
