//! Helpers for HeyDoc's end-to-end tests and benchmarks: a closed-loop HTTP load generator
//! that reports throughput and latency percentiles.

pub mod browser;
pub mod load;
pub mod stack;
