//! Resource limits for a job run, and their parsing from the command line or configuration.

use std::time::Duration;

/// Memory and time a run may use. Going over either ends the run with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes DataFusion's memory pool may hand out (aggregation tables, sorts, buffers).
    pub memory_bytes: usize,
    /// Wall-clock time per output, planning and execution included.
    pub time: Duration,
    /// Worker threads (and DataFusion partitions).
    pub threads: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 2 << 30,
            time: Duration::from_secs(600),
            threads: 2,
        }
    }
}

/// Parses a size: a number of bytes, or a number followed by K, M or G (powers of 1024),
/// e.g. `512M`, `1.5G`.
pub fn parse_memory(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (number, factor) = match t.char_indices().last() {
        Some((i, c)) if c.eq_ignore_ascii_case(&'k') => (&t[..i], 1u64 << 10),
        Some((i, c)) if c.eq_ignore_ascii_case(&'m') => (&t[..i], 1 << 20),
        Some((i, c)) if c.eq_ignore_ascii_case(&'g') => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    let bad =
        || format!("memory limit {text:?}: use bytes or a number with K, M or G, e.g. 512M or 2G");
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n <= 0.0 {
        return Err(bad());
    }
    Ok((n * factor as f64) as usize)
}

/// Parses a duration: seconds, or a number followed by ms, s, m or h, e.g. `90s`, `10m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || {
        format!("time limit {text:?}: use seconds or a number with ms, s, m or h, e.g. 30s or 10m")
    };
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("1024"), Ok(1024));
        assert_eq!(parse_memory("512M"), Ok(512 << 20));
        assert_eq!(parse_memory("1.5g"), Ok(3 << 29));
        assert!(parse_memory("lots").unwrap_err().contains("512M"));
        assert!(parse_memory("0").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").unwrap_err().contains("10m"));
        assert!(parse_duration("5d").is_err());
    }
}
