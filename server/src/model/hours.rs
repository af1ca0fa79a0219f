//! Business hours, in the site's time zone (IANA name, daylight saving time included), and
//! the offline message a visitor gets when a conversation is handed to people who are not
//! there: outside business hours, or with no agent online.
//!
//! Settings (`PATCH /api/v1/site`): `"business_hours": {"timezone": "Europe/Berlin", "days":
//! [{"day": "mon", "open": "09:00", "close": "17:00"}, ...]}` (`null` = always open; a day may
//! have several windows; `close` may be `24:00`), and `"offline_message"`.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// The default `offline_message`.
pub const DEFAULT_OFFLINE_MESSAGE: &str =
    "Nobody from the team is available right now. Leave your email and we'll get back to you.";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// IANA time zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub days: Vec<OpenWindow>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// `mon`, `tue`, `wed`, `thu`, `fri`, `sat` or `sun`.
    pub day: String,
    /// `HH:MM`, local time.
    pub open: String,
    /// `HH:MM` after `open`; `24:00` is the end of the day.
    pub close: String,
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn weekday(name: &str) -> Option<Weekday> {
    let name = name.trim().to_ascii_lowercase();
    DAYS.iter()
        .find(|(short, _)| name.starts_with(short))
        .map(|(_, w)| *w)
}

/// Minutes since midnight of `HH:MM` (`24:00` = 1440).
fn minutes(hhmm: &str) -> Option<i32> {
    let (h, m) = hhmm.trim().split_once(':')?;
    let (h, m): (i32, i32) = (h.parse().ok()?, m.parse().ok()?);
    if m.clamp(0, 59) != m || h.clamp(0, 24) != h || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// The windows of one weekday as minute ranges, earliest first.
fn windows(hours: &BusinessHours, day: Weekday) -> Vec<(i32, i32)> {
    let mut out: Vec<(i32, i32)> = hours
        .days
        .iter()
        .filter(|w| weekday(&w.day) == Some(day))
        .filter_map(|w| Some((minutes(&w.open)?, minutes(&w.close)?)))
        .collect();
    out.sort_unstable();
    out
}

impl BusinessHours {
    /// Checks the time zone, the day names and the times.
    pub fn validate(&self) -> Result<(), String> {
        TimeZone::get(&self.timezone)
            .map_err(|_| format!("Unknown time zone {:?}.", self.timezone))?;
        if self.days.len() > 70 {
            return Err("At most 70 opening windows.".into());
        }
        for w in &self.days {
            if weekday(&w.day).is_none() {
                return Err(format!("Unknown day {:?} (use mon … sun).", w.day));
            }
            match (minutes(&w.open), minutes(&w.close)) {
                (Some(open), Some(close)) if open < close => {}
                _ => {
                    return Err(format!(
                        "Opening times must be HH:MM with open before close (got {} to {}).",
                        w.open, w.close
                    ));
                }
            }
        }
        Ok(())
    }

    fn tz(&self) -> TimeZone {
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// Is the team open at `at`?
    pub fn is_open(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.tz());
        let minute = i32::from(local.hour()) * 60 + i32::from(local.minute());
        windows(self, local.weekday())
            .iter()
            .any(|&(open, close)| open <= minute && minute < close)
    }

    /// When the team opens next after `at` (the start of the next window), in the site's
    /// time zone; `None` when no day has opening hours.
    pub fn next_open(&self, at: Timestamp) -> Option<jiff::Zoned> {
        let tz = self.tz();
        let today: Date = at.to_zoned(tz.clone()).date();
        for offset in 0..=8 {
            let date = today.checked_add(jiff::Span::new().days(offset)).ok()?;
            for (open, _) in windows(self, date.weekday()) {
                if open >= 24 * 60 {
                    continue;
                }
                let time = jiff::civil::time((open / 60) as i8, (open % 60) as i8, 0, 0);
                let Ok(start) = date.to_datetime(time).to_zoned(tz.clone()) else {
                    continue;
                };
                if start.timestamp() > at {
                    return Some(start);
                }
            }
        }
        None
    }
}

fn weekday_name(day: Weekday) -> &'static str {
    match day {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

/// What a visitor whose conversation was just handed to people is told, if anything: outside
/// business hours the offline message and when the team is back; inside them, with nobody
/// online, the offline message. `None` when someone can answer now.
pub fn offline_notice(
    hours: Option<&BusinessHours>,
    offline_message: &str,
    agents_online: u32,
    at: Timestamp,
) -> Option<String> {
    let message = if offline_message.trim().is_empty() {
        DEFAULT_OFFLINE_MESSAGE
    } else {
        offline_message.trim()
    };
    match hours {
        Some(hours) if !hours.is_open(at) => {
            let back = hours.next_open(at).map(|next| {
                let today = at.to_zoned(next.time_zone().clone()).date();
                let day = if next.date() == today {
                    "today".to_owned()
                } else if today.tomorrow().ok() == Some(next.date()) {
                    "tomorrow".to_owned()
                } else {
                    format!("on {}", weekday_name(next.weekday()))
                };
                format!(
                    " We're back {day} at {:02}:{:02} ({}).",
                    next.hour(),
                    next.minute(),
                    hours.timezone
                )
            });
            Some(format!("{message}{}", back.unwrap_or_default()))
        }
        _ if agents_online == 0 => Some(message.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekdays(tz: &str, open: &str, close: &str) -> BusinessHours {
        BusinessHours {
            timezone: tz.into(),
            days: ["mon", "tue", "wed", "thu", "fri"]
                .iter()
                .map(|d| OpenWindow {
                    day: (*d).into(),
                    open: open.into(),
                    close: close.into(),
                })
                .collect(),
        }
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn open_hours_follow_daylight_saving_time() {
        let berlin = weekdays("Europe/Berlin", "09:00", "17:00");
        // Friday before the switch: CET = UTC+1.
        assert!(berlin.is_open(at("2026-03-27T08:30:00Z")), "09:30 CET");
        assert!(!berlin.is_open(at("2026-03-27T16:30:00Z")), "17:30 CET");
        // Monday after the switch (2026-03-29): CEST = UTC+2.
        assert!(!berlin.is_open(at("2026-03-30T06:30:00Z")), "08:30 CEST");
        assert!(berlin.is_open(at("2026-03-30T07:30:00Z")), "09:30 CEST");
        assert!(
            !berlin.is_open(at("2026-03-30T15:30:00Z")),
            "17:30 CEST (would be 16:30 without DST)"
        );
        // Back to CET in autumn (2026-10-25).
        assert!(berlin.is_open(at("2026-10-26T15:30:00Z")), "16:30 CET");
    }

    #[test]
    fn time_zones_differ_and_weekends_are_closed() {
        let ny = weekdays("America/New_York", "09:00", "17:00");
        let tokyo = weekdays("Asia/Tokyo", "09:00", "17:00");
        let t = at("2026-11-25T15:00:00Z"); // Wed 10:00 in New York, Thu 00:00 in Tokyo
        assert!(ny.is_open(t));
        assert!(!tokyo.is_open(t));
        assert!(!ny.is_open(at("2026-11-28T15:00:00Z")), "Saturday");
    }

    #[test]
    fn next_opening_across_the_weekend_and_a_dst_switch() {
        let berlin = weekdays("Europe/Berlin", "09:00", "17:00");
        // Friday 2026-03-27 18:00 CET → Monday 2026-03-30 09:00 CEST = 07:00 UTC.
        let next = berlin.next_open(at("2026-03-27T17:00:00Z")).unwrap();
        assert_eq!(next.timestamp(), at("2026-03-30T07:00:00Z"));
        let text = offline_notice(Some(&berlin), "We're away.", 3, at("2026-03-27T17:00:00Z"));
        assert_eq!(
            text.as_deref(),
            Some("We're away. We're back on Monday at 09:00 (Europe/Berlin).")
        );
        // Early morning: back today.
        let text = offline_notice(Some(&berlin), "", 0, at("2026-03-30T05:00:00Z")).unwrap();
        assert!(
            text.ends_with("We're back today at 09:00 (Europe/Berlin)."),
            "{text}"
        );
        // Open with someone online: nothing to say; open with nobody: the message alone.
        assert_eq!(
            offline_notice(Some(&berlin), "x", 1, at("2026-03-30T08:00:00Z")),
            None
        );
        assert_eq!(
            offline_notice(None, "x", 0, at("2026-03-30T08:00:00Z")).as_deref(),
            Some("x")
        );
    }

    #[test]
    fn invalid_hours_are_refused() {
        assert!(
            weekdays("Mars/Olympus", "09:00", "17:00")
                .validate()
                .is_err()
        );
        assert!(weekdays("UTC", "17:00", "09:00").validate().is_err());
        assert!(weekdays("UTC", "9am", "17:00").validate().is_err());
        assert!(weekdays("UTC", "00:00", "24:00").validate().is_ok());
        let mut bad_day = weekdays("UTC", "09:00", "17:00");
        bad_day.days[0].day = "funday".into();
        assert!(bad_day.validate().is_err());
    }
}
