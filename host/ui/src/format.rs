//! How the pages show times, durations and JSON: pure functions, no I/O.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// The marker a shortened value ends with.
pub const MORE: char = '…';

/// `ms` since the Unix epoch as `2026-12-07 14:31:05 UTC` (the page's script
/// shows it in the reader's time zone).
pub fn timestamp(ms: u64) -> String {
    let at = UNIX_EPOCH + Duration::from_millis(ms);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    // `2026-12-07T14:31:05Z`
    format!("{} UTC", text.replacen('T', " ", 1).trim_end_matches('Z'))
}

/// `ms` since the Unix epoch as RFC 3339 with milliseconds, for a
/// `<time datetime>`.
pub fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A duration people read: `850 ms`, `1.2 s`, `3 min 4 s`, `2 h 5 min`,
/// `3 d 4 h`.
pub fn duration(ms: u64) -> String {
    const S: u64 = 1_000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    const D: u64 = 24 * H;
    match ms {
        0..S => format!("{ms} ms"),
        S..10_000 => format!("{}.{} s", ms / S, ms % S / 100),
        10_000..MIN => format!("{} s", ms / S),
        MIN..H => with_rest(ms / MIN, "min", ms % MIN / S, "s"),
        H..D => with_rest(ms / H, "h", ms % H / MIN, "min"),
        _ => with_rest(ms / D, "d", ms % D / H, "h"),
    }
}

fn with_rest(whole: u64, unit: &str, rest: u64, rest_unit: &str) -> String {
    if rest == 0 {
        format!("{whole} {unit}")
    } else {
        format!("{whole} {unit} {rest} {rest_unit}")
    }
}

/// A duration in microseconds, as [`duration`] does, but below a
/// millisecond in µs.
pub fn duration_us(us: u64) -> String {
    if us < 1_000 {
        format!("{us} µs")
    } else if us < 10_000 {
        format!("{}.{} ms", us / 1_000, us % 1_000 / 100)
    } else {
        duration(us / 1_000)
    }
}

/// A value as one line of compact JSON, at most `max` characters (then
/// ending in [`MORE`]).
pub fn compact(value: &Value, max: usize) -> String {
    shorten(&value.to_string(), max)
}

/// A value as indented JSON.
pub fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// `text` cut to at most `max` characters, the last of them [`MORE`] when
/// something was cut.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max.saturating_sub(1)).collect();
    short.push(MORE);
    short
}

/// A component version as the pages show it: its first 12 characters.
pub fn short_version(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timestamps_are_utc_to_the_second() {
        assert_eq!(timestamp(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(timestamp(1_796_653_865_123), "2026-12-07 14:31:05 UTC");
        assert_eq!(rfc3339(1_796_653_865_123), "2026-12-07T14:31:05.123Z");
    }

    #[test]
    fn durations_read_as_people_say_them() {
        let cases = [
            (0, "0 ms"),
            (850, "850 ms"),
            (1_234, "1.2 s"),
            (12_345, "12 s"),
            (60_000, "1 min"),
            (184_000, "3 min 4 s"),
            (7_500_000, "2 h 5 min"),
            (3 * 86_400_000 + 4 * 3_600_000 + 5, "3 d 4 h"),
        ];
        for (ms, text) in cases {
            assert_eq!(duration(ms), text, "{ms} ms");
        }
        assert_eq!(duration_us(640), "640 µs");
        assert_eq!(duration_us(2_345), "2.3 ms");
        assert_eq!(duration_us(25_000), "25 ms");
    }

    #[test]
    fn long_values_are_cut_with_a_marker() {
        assert_eq!(shorten("abc", 3), "abc");
        assert_eq!(shorten("abcd", 3), "ab…");
        assert_eq!(shorten("ééééé", 4), "ééé…", "cut by characters, not bytes");
        assert_eq!(compact(&json!({"a": [1, 2]}), 40), r#"{"a":[1,2]}"#);
        assert_eq!(compact(&json!("x".repeat(50)), 10).chars().count(), 10);
        assert_eq!(short_version("0123456789abcdef"), "0123456789ab");
        assert_eq!(short_version("v1"), "v1");
    }
}
