//! `framebus-bench`'s command line ([`cli`]); the benchmarks themselves are in the binary.

pub mod cli;
