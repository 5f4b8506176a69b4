//! How `submit --wait` shows the stages of its request as they arrive: on a terminal, one
//! live line rewritten in place; otherwise (a pipe, a CI log) one plain line per stage,
//! the same lines `outcomes` prints. Everything shown from an event is escaped
//! ([`crate::show::escaped`]).

use std::io::Write;
use std::time::Instant;

use crate::outcome::{OutcomeEvent, Stage};
use crate::show::{escaped, summary};

/// Longest key shown on the live line, in characters: the line must fit a terminal's
/// width, or rewriting it in place would leave its wrapped part behind.
const MAX_LIVE_KEY_CHARS: usize = 40;

/// Erases the terminal's current line and returns to its start.
const CLEAR_LINE: &str = "\r\x1b[2K";

pub struct Progress {
    live: bool,
    key: String,
    stages: Vec<String>,
    started: Instant,
}

impl Progress {
    /// `live`: standard output is a terminal.
    pub fn new(key: &str, live: bool) -> Self {
        Self {
            live,
            key: key.to_string(),
            stages: Vec::new(),
            started: Instant::now(),
        }
    }

    /// Shows an event about the request.
    pub fn stage(&mut self, event: &OutcomeEvent) {
        if self.live {
            self.stages.push(stage_label(event));
            self.redraw();
        } else {
            println!("{}", summary(event));
        }
    }

    /// Refreshes the live line (its elapsed time); nothing otherwise.
    pub fn tick(&mut self) {
        if self.live {
            self.redraw();
        }
    }

    /// A line of its own (stdout), without breaking the live line.
    pub fn note(&mut self, text: &str) {
        self.above(|| println!("{text}"));
    }

    /// A warning (stderr), without breaking the live line.
    pub fn warn(&mut self, text: &str) {
        self.above(|| eprintln!("warning: {text}"));
    }

    /// Ends the live line, so what follows starts on a line of its own.
    pub fn finish(&mut self) {
        if self.live {
            println!();
            self.live = false;
        }
    }

    fn above(&mut self, print: impl FnOnce()) {
        if self.live {
            print!("{CLEAR_LINE}");
            let _ = std::io::stdout().flush();
            print();
            self.redraw();
        } else {
            print();
        }
    }

    fn redraw(&self) {
        let line = live_line(&self.key, &self.stages, self.started.elapsed().as_secs());
        print!("{CLEAR_LINE}{line}");
        let _ = std::io::stdout().flush();
    }
}

/// The live line: the key, the stages so far, the seconds waited.
fn live_line(key: &str, stages: &[String], elapsed_secs: u64) -> String {
    let mut shown = escaped(key);
    if shown.chars().count() > MAX_LIVE_KEY_CHARS {
        shown = shown
            .chars()
            .take(MAX_LIVE_KEY_CHARS - 1)
            .collect::<String>()
            + "…";
    }
    let stages = if stages.is_empty() {
        "waiting for the worker".to_string()
    } else {
        stages.join(" › ")
    };
    format!("{shown}: {stages}  ({elapsed_secs}s)")
}

/// A stage on the live line: its name, and the one detail that matters most there.
fn stage_label(event: &OutcomeEvent) -> String {
    let stage = event.stage.as_str();
    match (event.stage, event.translator, &event.error) {
        (Stage::Translated, Some(by), _) => format!("{stage} ({})", by.as_str()),
        (_, _, Some(error)) => format!("{stage} ({})", error.code.as_str()),
        _ => stage.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_line_is_short_and_escaped() {
        let line = live_line(
            &format!("\u{1b}]0;{}", "k".repeat(100)),
            &["received".into(), "translated (rules)".into()],
            3,
        );
        assert!(!line.contains('\u{1b}'), "{line}");
        assert!(line.starts_with("\\u{1b}]0;"), "{line}");
        assert!(
            line.ends_with(": received › translated (rules)  (3s)"),
            "{line}"
        );
        assert!(line.chars().count() < 80, "{line}");
        assert_eq!(
            live_line("k-1", &[], 0),
            "k-1: waiting for the worker  (0s)"
        );
    }
}
