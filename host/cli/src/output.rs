//! How the client subcommands print for people: times in the local time
//! zone, durations in words, tables and lines that fit [`WIDTH`] columns
//! with long values cut at a [`MARKER`]. (`--json` prints the API's JSON,
//! whole, and none of this.)

use std::time::Duration;

use comfy_table::{
    ColumnConstraint, ContentArrangement, Row, Table, Width,
    presets::{NOTHING, UTF8_BORDERS_ONLY},
};
use jiff::tz::TimeZone;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// The widest a table or line gets (narrower on a narrower terminal).
pub const WIDTH: u16 = 100;

/// What ends a value cut to fit.
pub const MARKER: &str = "…";

/// A time in Unix milliseconds as a local timestamp, `2026-12-07 14:31:05`.
pub fn local_time(ms: u64) -> String {
    time_in(ms, &TimeZone::system())
}

/// [`local_time`] in the time zone `tz`.
fn time_in(ms: u64, tz: &TimeZone) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            // Past the year 9999: nothing a host writes.
            || format!("{ms} ms after 1970"),
            |t| {
                t.to_zoned(tz.clone())
                    .strftime("%Y-%m-%d %H:%M:%S")
                    .to_string()
            },
        )
}

/// A duration in words: `450 µs`, `340 ms`, `1.2 s`, `3 min 4 s`, `2 h 5 min`,
/// `3 d 4 h` — the two largest units, rounded.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 && !d.is_zero() {
        return format!("{} µs", d.as_micros());
    }
    if ms < 1000 {
        return format!("{ms} ms");
    }
    // Tenths of a second below a minute, then whole seconds.
    let tenths = (ms + 50) / 100;
    if tenths < 600 {
        return format!("{}.{} s", tenths / 10, tenths % 10);
    }
    let s = (ms + 500) / 1000;
    let two = |big: u128, big_unit: &str, small: u128, small_unit: &str| {
        if small == 0 {
            format!("{big} {big_unit}")
        } else {
            format!("{big} {big_unit} {small} {small_unit}")
        }
    };
    if s < 3600 {
        two(s / 60, "min", s % 60, "s")
    } else if s < 86_400 {
        let m = (s + 30) / 60;
        two(m / 60, "h", m % 60, "min")
    } else {
        let h = (s + 1800) / 3600;
        two(h / 24, "d", h % 24, "h")
    }
}

/// [`duration`] of milliseconds.
pub fn duration_ms(ms: u64) -> String {
    duration(Duration::from_millis(ms))
}

/// The time from `from_ms` to `to_ms` (zero if it is before), in words.
pub fn between(from_ms: u64, to_ms: u64) -> String {
    duration(Duration::from_millis(to_ms.saturating_sub(from_ms)))
}

/// `at_ms` as seen at `now_ms`: `in 3 s` or `3 s ago`.
pub fn relative(at_ms: u64, now_ms: u64) -> String {
    if at_ms >= now_ms {
        format!("in {}", between(now_ms, at_ms))
    } else {
        format!("{} ago", between(at_ms, now_ms))
    }
}

/// The width tables and lines get: [`WIDTH`], or the terminal's if it is
/// narrower.
fn width() -> u16 {
    let probe = Table::new();
    probe.width().map_or(WIDTH, |w| w.clamp(20, WIDTH))
}

/// How a table is drawn.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Framed, with a line under the header.
    Framed,
    /// No lines at all: rows of several tables printed one after the other
    /// line up (with the same fixed column widths).
    Bare,
}

/// A table of `header` (none if empty) that fits [`width`]: a value too
/// long for its column is cut at the [`MARKER`], every row one line.
pub fn table(header: &[&str], style: Style) -> Table {
    let mut t = Table::new();
    t.load_preset(match style {
        Style::Framed => UTF8_BORDERS_ONLY,
        Style::Bare => NOTHING,
    });
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width())
        .set_truncation_indicator(MARKER)
        // No word breaks: a value that does not fit is cut where the
        // column ends, not at the last space before it.
        .set_delimiter('\0');
    if !header.is_empty() {
        let mut row = Row::from(header.to_vec());
        row.max_height(1);
        t.set_header(row);
    }
    t
}

/// Add a row of one line each.
pub fn add_row(t: &mut Table, cells: Vec<String>) {
    let mut row = Row::from(cells);
    row.max_height(1);
    t.add_row(row);
}

/// Keep column `index` as wide as its widest value (a status, a time).
pub fn keep_whole(t: &mut Table, index: usize) {
    if let Some(column) = t.column_mut(index) {
        column.set_constraint(ColumnConstraint::ContentWidth);
    }
}

/// Make column `index` exactly `chars` wide (plus its padding).
pub fn fixed(t: &mut Table, index: usize, chars: u16) {
    if let Some(column) = t.column_mut(index) {
        column.set_constraint(ColumnConstraint::Absolute(Width::Fixed(chars + 2)));
    }
}

/// `line` cut to fit [`width`] columns, ending in the [`MARKER`] if it was
/// cut; control characters (a newline in a message) are escaped.
pub fn fit(line: &str) -> String {
    cut(line, usize::from(width()))
}

/// `line` in at most `columns` display columns.
fn cut(line: &str, columns: usize) -> String {
    let mut escaped = String::new();
    for c in line.chars() {
        if c.is_control() {
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    let line = escaped;
    if line.width() <= columns {
        return line;
    }
    let room = columns.saturating_sub(MARKER.width());
    let mut out = String::new();
    let mut used = 0;
    for c in line.chars() {
        let w = c.width().unwrap_or(0);
        if used + w > room {
            break;
        }
        used += w;
        out.push(c);
    }
    out.push_str(MARKER);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_local_timestamps_in_the_zone() {
        // 2026-12-07 13:31:05.123 UTC.
        let ms = 1_796_650_265_123;
        assert_eq!(time_in(ms, &TimeZone::UTC), "2026-12-07 13:31:05");
        let plus_one = TimeZone::fixed(jiff::tz::offset(1));
        assert_eq!(time_in(ms, &plus_one), "2026-12-07 14:31:05");
        assert_eq!(time_in(0, &TimeZone::UTC), "1970-01-01 00:00:00");
        assert_eq!(
            time_in(u64::MAX, &TimeZone::UTC),
            format!("{} ms after 1970", u64::MAX)
        );
    }

    #[test]
    fn durations_are_in_words_with_two_units() {
        let ms = |n| duration(Duration::from_millis(n));
        assert_eq!(ms(0), "0 ms");
        assert_eq!(duration(Duration::from_micros(450)), "450 µs");
        assert_eq!(ms(340), "340 ms");
        assert_eq!(ms(1000), "1.0 s");
        assert_eq!(ms(1234), "1.2 s");
        assert_eq!(ms(59_940), "59.9 s");
        assert_eq!(ms(59_960), "1 min");
        assert_eq!(ms(184_000), "3 min 4 s");
        assert_eq!(ms(3_600_000), "1 h");
        assert_eq!(ms(7_500_000), "2 h 5 min");
        assert_eq!(ms(86_400_000 * 3 + 3_600_000 * 4), "3 d 4 h");
        assert_eq!(between(5000, 1000), "0 ms");
        assert_eq!(relative(4000, 1000), "in 3.0 s");
        assert_eq!(relative(1000, 4000), "3.0 s ago");
    }

    #[test]
    fn long_lines_are_cut_at_the_marker() {
        assert_eq!(cut("short", 10), "short");
        assert_eq!(cut("0123456789abc", 10), "012345678…");
        assert_eq!(cut("0123456789", 10), "0123456789");
        // Wide characters count two columns.
        assert_eq!(cut("日本語のテキスト", 7), "日本語…");
        assert_eq!(cut("a\nb", 10), "a\\nb");
    }

    #[test]
    fn a_table_fits_the_width_and_cuts_long_values() {
        let mut t = table(&["id", "value"], Style::Framed);
        add_row(&mut t, vec!["1".into(), "x".repeat(300)]);
        add_row(&mut t, vec!["2".into(), "two\nlines".into()]);
        let text = t.to_string();
        for line in text.lines() {
            assert!(line.width() <= usize::from(WIDTH), "{line}");
        }
        assert!(text.contains(&format!("x{MARKER}")), "{text}");
        assert!(text.contains(&format!("two{MARKER}")), "{text}");
        assert!(!text.contains("lines"), "{text}");
    }
}
