//! Timed and scheduled requests ("for 3 hours", "at 18:00", "tomorrow"), which the rules
//! refuse: a NetworkIntent is applied at once and for good, which is not what was asked.

use super::number::{number, Number};
use super::refuse;
use super::text::Text;
use crate::translate::Untranslatable;

/// Words that make any request timed.
#[rustfmt::skip]
const WORDS: &[&str] = &[
    "temporarily", "temporary", "until", "till", "tomorrow", "tonight", "later",
    "schedule", "scheduled", "scheduling", "midnight", "noon", "overnight", "weekend",
    "weekends", "daily", "hourly", "nightly", "weekly", "monthly", "cron", "crontab",
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "mondays", "tuesdays", "wednesdays", "thursdays", "fridays", "saturdays", "sundays",
];

/// Units that make "for 3 ..." or "in 5 ..." a duration.
#[rustfmt::skip]
const UNITS: &[&str] = &[
    "second", "seconds", "sec", "secs", "minute", "minutes", "min", "mins", "hour",
    "hours", "hr", "hrs", "h", "day", "days", "week", "weeks", "month", "months",
    "night", "nights", "morning", "evening", "weekday", "weekdays",
];

pub(super) fn refuse_timing(text: &Text) -> Result<(), Untranslatable> {
    let digit_led = |w: &str| w.starts_with(|c: char| c.is_ascii_digit());
    for at in 0..text.len() {
        let Some(word) = text.free(at) else {
            continue;
        };
        let next = text.free(at + 1);
        let duration = matches!(word, "for" | "in" | "within" | "after")
            && next.is_some_and(|n| matches!(number(n), Number::Whole(_)))
            && text.free(at + 2).is_some_and(|u| UNITS.contains(&u));
        // "every hour", "next week", "every 5 minutes"
        let unit_at = |i: usize| text.free(i).is_some_and(|u| UNITS.contains(&u));
        let recurring = matches!(word, "every" | "next" | "each")
            && (unit_at(at + 1) || (next.is_some_and(digit_led) && unit_at(at + 2)));
        let timed = WORDS.contains(&word)
            || duration
            || recurring
            || (word == "at" && next.is_some_and(digit_led))
            || (word == "on" && next.is_some_and(|n| digit_led(n) && n.contains('-')));
        if timed {
            let len = match (duration, WORDS.contains(&word)) {
                (true, _) => 3,
                (false, true) => 1,
                (false, false) if recurring && !unit_at(at + 1) => 3,
                (false, false) => 2,
            };
            let phrase: Vec<&str> = (at..at + len).filter_map(|j| text.free(j)).collect();
            let phrase = phrase.join(" ");
            return refuse(format!(
                "timed or scheduled requests ('{phrase}') are not supported: send the request \
                 when it should take effect"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use crate::intent::Component::*;

    #[test]
    fn timed_and_scheduled_requests_are_refused() {
        for (text, phrase) in [
            (
                "Scale AMF to 5 for 3 hours in namespace core5g",
                "'for 3 hours'",
            ),
            ("Scale AMF to 4 at 18:00 in namespace core5g", "'at 18'"),
            ("Scale AMF to 4 at 5pm in namespace core5g", "'at 5pm'"),
            ("Deploy AMF in 5 min in namespace core5g", "'in 5 min'"),
            (
                "Deploy AMF on 2024-05-01 in namespace core5g",
                "'on 2024-05-01'",
            ),
            ("Deploy AMF tomorrow in namespace core5g", "'tomorrow"),
            (
                "Temporarily scale AMF to 5 in namespace core5g",
                "'temporarily",
            ),
            ("Deploy AMF in namespace core5g at 3am", "'at 3am'"),
            (
                "Scale AMF to 4 every day in namespace core5g",
                "'every day'",
            ),
            (
                "Scale AMF to 4 every 2 hours in namespace core5g",
                "'every 2 hours'",
            ),
            ("Deploy AMF next week in namespace core5g", "'next week'"),
            ("Scale AMF to 2 nightly in namespace core5g", "'nightly'"),
            ("Deploy AMF on Friday in namespace core5g", "'friday'"),
        ] {
            let reason = refused(text);
            assert!(reason.contains("timed or scheduled"), "{text}: {reason}");
            assert!(reason.contains(phrase), "{text}: {reason}");
        }
        // numbers of other things are not durations
        check(
            "Deploy AMF with 2 replicas for 2 tenants in namespace core5g",
            deploy(&[Amf], "core5g").replicas(2),
        );
    }
}
