//! How the operator tools (`outcomes`, `submit --wait`) show outcome events on a
//! terminal. Everything in an event was read from Kafka and may be hostile: a key or a
//! message holding an escape sequence, a carriage return or a bidi override could rewrite
//! what the operator sees, so every text taken from an event goes through [`escaped`].

use crate::outcome::{OutcomeEvent, Stage};

/// Longest text taken from an event that is shown, in characters; longer text is cut
/// and ends in `…`. The service's own messages are shorter
/// ([`crate::outcome::MAX_FAILURE_MESSAGE_BYTES`]); a forged event's need not be.
pub const MAX_SHOWN_CHARS: usize = 1024;

/// `text` safe to print: control characters (C0, DEL, C1), line and paragraph separators
/// and Unicode format characters written as `\u{..}` escapes (newline and tab as `\n`
/// and `\t`), cut to [`MAX_SHOWN_CHARS`].
pub fn escaped(text: &str) -> String {
    let mut shown = String::with_capacity(text.len().min(MAX_SHOWN_CHARS));
    for (n, c) in text.chars().enumerate() {
        if n == MAX_SHOWN_CHARS {
            shown.push('…');
            break;
        }
        match c {
            '\n' => shown.push_str("\\n"),
            '\t' => shown.push_str("\\t"),
            c if crate::decode::is_forbidden(c) => {
                shown.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => shown.push(c),
        }
    }
    shown
}

/// A JSON record as one line safe to print: compact, and every control or format
/// character (which compact JSON can only hold inside strings) written as a `\uXXXX`
/// escape, so the line is still the same JSON.
pub fn json_line(raw: &[u8]) -> String {
    let compact = match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(value) => value.to_string(),
        Err(_) => return escaped(&String::from_utf8_lossy(raw)),
    };
    let mut line = String::with_capacity(compact.len());
    for c in compact.chars() {
        if crate::decode::is_forbidden(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                line.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            line.push(c);
        }
    }
    line
}

/// One line per event: stage, key, intent or error, and what a duplicate duplicates.
pub fn summary(event: &OutcomeEvent) -> String {
    let mut line = format!(
        "{:<13} {}",
        event.stage.as_str(),
        escaped(&event.idempotency_key)
    );
    line.push_str(&details(event));
    line
}

/// What an event says beyond its stage and key, each part led by two spaces.
pub fn details(event: &OutcomeEvent) -> String {
    let mut line = String::new();
    if let Some(intent) = &event.intent {
        line.push_str(&format!(
            "  intent={}/{}",
            escaped(&intent.namespace),
            escaped(&intent.name)
        ));
    }
    if let (Stage::Translated, Some(translator)) = (event.stage, event.translator) {
        line.push_str(&format!("  translator={}", translator.as_str()));
    }
    if let Some(error) = &event.error {
        line.push_str(&format!(
            "  {}: {}",
            error.code.as_str(),
            escaped(&error.message)
        ));
    }
    if let Some(original) = &event.original {
        line.push_str(&format!(
            "  of {} at {}",
            original.stage.as_str(),
            place(&original.source)
        ));
    }
    line
}

/// `topic[partition]@offset`, the topic escaped.
pub fn place(source: &crate::message::SourceRef) -> String {
    format!(
        "{}[{}]@{}",
        escaped(&source.topic),
        source.partition,
        source.offset
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_format_characters_are_escaped() {
        assert_eq!(escaped("plain key-1"), "plain key-1");
        assert_eq!(escaped("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escaped("line\rover"), "line\\u{d}over");
        assert_eq!(escaped("two\nlines\there"), "two\\nlines\\there");
        assert_eq!(escaped("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(escaped("c1\u{9b}31m"), "c1\\u{9b}31m");
        assert_eq!(escaped("ünïcödé ok"), "ünïcödé ok");
    }

    #[test]
    fn json_lines_stay_json_without_raw_control_characters() {
        let raw = "{\"key\": \"a\u{9b}b\u{202e}c\u{e0041}\",\n \"n\": 1}";
        let line = json_line(raw.as_bytes());
        assert!(!line.chars().any(crate::decode::is_forbidden), "{line}");
        let back: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["key"], "a\u{9b}b\u{202e}c\u{e0041}");
    }

    #[test]
    fn long_text_is_cut() {
        let shown = escaped(&"x".repeat(MAX_SHOWN_CHARS + 10));
        assert_eq!(shown.chars().count(), MAX_SHOWN_CHARS + 1);
        assert!(shown.ends_with('…'));
    }
}
