//! Time windows (`when: { days, between }`), evaluated in the policy's time zone.
//! The start is included, the end excluded; an end before the start wraps past
//! midnight (and then the day named is the day the window starts).

use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

/// A compiled `when`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeWindow {
    /// Index 0 = Monday.
    pub days: [bool; 7],
    /// Minutes since midnight: start (included), end (excluded).
    pub between: Option<(u16, u16)>,
}

/// Parses a `days` entry: `mon`..`sun` (or full names), `weekdays`, `weekend`.
pub fn parse_days(names: &[String]) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for n in names {
        let lower = n.to_ascii_lowercase();
        match lower.as_str() {
            "weekdays" => days[..5].iter_mut().for_each(|d| *d = true),
            "weekend" => days[5..].iter_mut().for_each(|d| *d = true),
            "daily" | "all" => days.iter_mut().for_each(|d| *d = true),
            _ => {
                const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let short = lower.get(..3).unwrap_or(&lower);
                match NAMES.iter().position(|d| *d == short) {
                    Some(i) if lower.len() == 3 || is_full_day_name(&lower) => days[i] = true,
                    _ => {
                        return Err(format!(
                            "unknown day `{n}`: use mon, tue, wed, thu, fri, sat, sun, weekdays or weekend"
                        ))
                    }
                }
            }
        }
    }
    Ok(days)
}

fn is_full_day_name(s: &str) -> bool {
    matches!(
        s,
        "monday" | "tuesday" | "wednesday" | "thursday" | "friday" | "saturday" | "sunday"
    )
}

/// Parses `HH:MM` into minutes since midnight (`24:00` allowed as an end).
pub fn parse_clock(s: &str) -> Result<u16, String> {
    let bad = || format!("`{s}` is not a time of day: use HH:MM, e.g. \"12:00\"");
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl TimeWindow {
    /// Is `at` inside the window, in time zone `tz`?
    pub fn contains(&self, at: DateTime<Utc>, tz: Tz) -> bool {
        let local = at.with_timezone(&tz);
        let weekday = local.weekday().num_days_from_monday() as usize;
        let minute = (local.hour() * 60 + local.minute()) as u16;
        match self.between {
            None => self.days[weekday],
            Some((start, end)) if start <= end => {
                self.days[weekday] && minute >= start && minute < end
            }
            Some((start, end)) => {
                // Wraps past midnight: the late part belongs to today, the early
                // part to the window that started yesterday.
                let yesterday = (weekday + 6) % 7;
                (self.days[weekday] && minute >= start) || (self.days[yesterday] && minute < end)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn lunchtime_in_london() {
        let w = TimeWindow {
            days: parse_days(&["weekdays".into()]).unwrap(),
            between: Some((parse_clock("12:00").unwrap(), parse_clock("14:00").unwrap())),
        };
        let tz: Tz = "Europe/London".parse().unwrap();
        // 2026-07-01 is a Wednesday; BST is UTC+1.
        assert!(w.contains(at("2026-07-01T11:30:00Z"), tz));
        assert!(w.contains(at("2026-07-01T11:00:00Z"), tz)); // 12:00 local, start included
        assert!(!w.contains(at("2026-07-01T13:00:00Z"), tz)); // 14:00 local, end excluded
        assert!(!w.contains(at("2026-07-04T11:30:00Z"), tz)); // Saturday
                                                              // In winter London is UTC.
        assert!(w.contains(at("2026-01-07T12:30:00Z"), tz));
    }

    #[test]
    fn wraps_past_midnight() {
        let w = TimeWindow {
            days: parse_days(&["fri".into()]).unwrap(),
            between: Some((parse_clock("22:00").unwrap(), parse_clock("02:00").unwrap())),
        };
        let tz = chrono_tz::UTC;
        assert!(w.contains(at("2026-07-03T23:00:00Z"), tz)); // Fri 23:00
        assert!(w.contains(at("2026-07-04T01:00:00Z"), tz)); // Sat 01:00, Friday's window
        assert!(!w.contains(at("2026-07-04T23:00:00Z"), tz)); // Sat 23:00
        assert!(!w.contains(at("2026-07-03T01:00:00Z"), tz)); // Fri 01:00 belongs to Thursday
    }

    #[test]
    fn bad_input() {
        assert!(parse_days(&["funday".into()]).is_err());
        assert!(parse_clock("9:00").is_err());
        assert!(parse_clock("12:60").is_err());
        assert_eq!(parse_clock("24:00"), Ok(1440));
    }
}
