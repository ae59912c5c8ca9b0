//! Jalin's integration tests live in `it/`. This library holds the fixtures they share
//! with the benchmarks in `benches/`: a fresh library, a consortium made by text, an
//! agreement every member signs, interlibrary-loan messages passed by hand.

pub mod fixtures;
pub mod kills;
pub mod measure;
