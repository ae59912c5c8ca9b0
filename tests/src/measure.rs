//! What the benchmarks share: the records of a MARC file, and the process's memory.

/// The records of an ISO 2709 file, each as its bytes (by the length in its leader).
pub fn records(bytes: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 5 <= bytes.len() {
        let Some(length) = std::str::from_utf8(&bytes[at..at + 5])
            .ok()
            .and_then(|s| s.parse::<usize>().ok())
        else {
            break;
        };
        // A length too short for a leader, or past the end: the file ends here.
        if length < 24 || at + length > bytes.len() {
            break;
        }
        out.push(&bytes[at..at + length]);
        at += length;
    }
    out
}

/// A figure of `/proc/self/status` in kB (`VmRSS:`, `VmHWM:`), 0 where there is none.
pub fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
