//! Helpers for HeyDoc's end-to-end tests and benchmarks: a closed-loop HTTP load generator
//! that reports throughput and latency percentiles.

pub mod browser;
pub mod load;
pub mod paced;
pub mod stack;

/// VmHWM (peak resident set) of a process, in kB, for the benchmarks.
pub fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}
