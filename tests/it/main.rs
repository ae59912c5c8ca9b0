//! Jalin's integration tests: one binary, a module per capability.

mod architecture;
mod formats;
mod roundtrip;
mod support;
