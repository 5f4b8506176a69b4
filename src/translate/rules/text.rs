//! The request text as the rules read it: tokens, words, and which reading has claimed
//! each token.
//!
//! The text is scanned once into tokens (split on whitespace and punctuation; hyphens,
//! dots, underscores, percent signs and commas between digits kept; apostrophes dropped,
//! so "don't" reads as "dont") and read as words (tokens split on hyphens, so "near-RT RIC" and "near rt ric"
//! read alike). Readings that take tokens for themselves (the namespace phrase, a
//! component name, a resource quantity) claim them, and later readings see only the
//! free ones: that is how "namespace delete-test" is not a deletion and "cu-up" is not a
//! direction.
//!
//! Token text lives in two buffers, as written and lower-cased, that tokens and words
//! point into, and the fixed word lists are [`Phrases`] looked up by first word: reading
//! a request costs a few allocations and one lookup per word, however long the lists.

use std::collections::HashMap;
use std::ops::Range;

/// Dashes that read as '-' before a digit: hyphen, non-breaking hyphen, figure dash, en
/// dash, em dash, horizontal bar and the minus sign.
const DASHES: [char; 7] = [
    '\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2015}', '\u{2212}',
];

/// True for the dashes [`Text::new`] reads as '-' before a digit.
pub(super) fn is_dash(c: char) -> bool {
    DASHES.contains(&c)
}

/// What a token has been recognised as; only `Free` tokens are read for words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Free,
    Namespace,
    Component,
    /// A network-function name that is not an allowlisted component (MME, "cu"): it
    /// never counts as one, not even as the noun of a count ("3 MMEs").
    OtherFunction,
    Resource,
}

#[derive(Debug, Clone)]
struct Token {
    /// Where the token is in [`Text::raw`], as written (resource quantities are
    /// case-sensitive: `1Gi`, not `1gi`).
    raw: Range<usize>,
    /// Where it is in [`Text::lower`].
    lower: Range<usize>,
    /// Punctuation follows, so a number here ends its phrase ("scale to 5. It is urgent").
    ends_clause: bool,
    /// The last mark between the previous token and this one, if any: "3 - 5" and
    /// "3 \u{2192} 5" are told apart by it ('-' and '\u{2192}').
    mark_before: Option<char>,
    role: Role,
}

/// Where a word is: its text in [`Text::lower`] and the token it is part of.
#[derive(Debug, Clone)]
struct WordSpan {
    lower: Range<usize>,
    token: usize,
}

/// A request text split into tokens and words.
#[derive(Debug)]
pub(super) struct Text {
    /// The characters of every token as written, apostrophes dropped.
    raw: String,
    /// Every token lower-cased, one after the other.
    lower: String,
    tokens: Vec<Token>,
    words: Vec<WordSpan>,
    /// The last mark seen since the last token, for the next token's `mark_before`.
    pending_mark: Option<char>,
}

impl Text {
    pub(super) fn new(text: &str) -> Self {
        let mut scanned = Self {
            raw: String::with_capacity(text.len()),
            lower: String::with_capacity(text.len()),
            tokens: Vec::with_capacity(text.len() / 4),
            words: Vec::with_capacity(text.len() / 4),
            pending_mark: None,
        };
        // Where the token being read starts in `raw`.
        let mut start = 0;
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            // A comma between digits stays in its token ("1,500", "1,5"), so that the
            // number is refused as written instead of read as the two numbers 1 and 500.
            // A slash between digits stays too ("3/5"), so that it is refused as a range
            // or a ratio instead of read as the count 5.
            let after_digit = scanned.raw[start..].ends_with(|p: char| p.is_ascii_digit());
            let before_digit = chars.peek().is_some_and(char::is_ascii_digit);
            let digit_joint = matches!(c, ',' | '/') && after_digit && before_digit;
            // Typographic dashes and the minus sign before a digit read as '-': "3\u{2013}5"
            // is the range 3-5 and "\u{2212}3" a negative, not the numbers 3 and 5, or 3.
            let dash_before_digit =
                DASHES.contains(&c) && before_digit && (after_digit || scanned.raw.len() == start);
            if dash_before_digit {
                scanned.raw.push('-');
            } else if c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | '%') || digit_joint {
                scanned.raw.push(c);
            } else if matches!(c, '\'' | '\u{2019}') {
                // Apostrophes join: "don't" reads as "dont", one negation word.
            } else {
                scanned.end_token(start);
                start = scanned.raw.len();
                if !c.is_whitespace() {
                    scanned.pending_mark = Some(c);
                }
                if matches!(c, ',' | ';' | ':' | '!' | '?') {
                    if let Some(last) = scanned.tokens.last_mut() {
                        last.ends_clause = true;
                    }
                }
            }
        }
        scanned.end_token(start);
        scanned
    }

    /// Ends the token whose characters begin at `start` in `raw`.
    fn end_token(&mut self, start: usize) {
        let written = &self.raw[start..];
        // A trailing '.' ends a sentence ("in namespace core5g."); a leading '-' is kept so
        // that "-3 replicas" reads as a negative count rather than as 3, and a leading '.'
        // before a digit so that ".5" reads as a fraction rather than as 5.
        let kept = written.trim_end_matches(['.', '-']);
        let trimmed = match kept.strip_prefix('.') {
            Some(rest) if rest.starts_with(|c: char| c.is_ascii_digit()) => kept,
            _ => kept.trim_start_matches('.'),
        };
        if trimmed.is_empty() {
            // A lone "-" or "..." between two tokens is a mark between them.
            if let Some(mark) = written.chars().last() {
                self.pending_mark = Some(mark);
            }
            return;
        }
        let ends_clause = written.trim_end_matches('-').ends_with('.');
        let raw = start + kept.len() - trimmed.len()..start + kept.len();

        let lower_start = self.lower.len();
        if trimmed.is_ascii() {
            self.lower.push_str(trimmed);
            self.lower[lower_start..].make_ascii_lowercase();
        } else {
            self.lower.push_str(&trimmed.to_lowercase());
        }
        let token = self.tokens.len();
        let mut part_start = lower_start;
        for part in self.lower[lower_start..].split('-') {
            if !part.is_empty() {
                let lower = part_start..part_start + part.len();
                self.words.push(WordSpan { lower, token });
            }
            part_start += part.len() + 1;
        }
        self.tokens.push(Token {
            raw,
            lower: lower_start..self.lower.len(),
            ends_clause,
            mark_before: self.pending_mark.take(),
            role: Role::Free,
        });
    }

    /// The number of tokens.
    pub(super) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// The lower-cased token at `i` if it exists and no reading has claimed it.
    pub(super) fn free(&self, i: usize) -> Option<&str> {
        self.tokens
            .get(i)
            .filter(|t| t.role == Role::Free)
            .map(|t| &self.lower[t.lower.clone()])
    }

    /// Like [`Self::free`], for a position computed by subtraction that may underflow.
    pub(super) fn free_before(&self, i: usize, back: usize) -> Option<&str> {
        i.checked_sub(back).and_then(|j| self.free(j))
    }

    /// The token at `i` as written, if it exists and no reading has claimed it.
    pub(super) fn free_raw(&self, i: usize) -> Option<&str> {
        self.tokens
            .get(i)
            .filter(|t| t.role == Role::Free)
            .map(|t| &self.raw[t.raw.clone()])
    }

    /// The token at `i` as written, whatever its role.
    pub(super) fn raw_token(&self, i: usize) -> Option<&str> {
        self.tokens.get(i).map(|t| &self.raw[t.raw.clone()])
    }

    pub(super) fn role(&self, i: usize) -> Option<Role> {
        self.tokens.get(i).map(|t| t.role)
    }

    /// True when punctuation follows the token at `i`.
    pub(super) fn ends_clause(&self, i: usize) -> bool {
        self.tokens.get(i).is_some_and(|t| t.ends_clause)
    }

    /// The last mark between the token at `i` and the one before it.
    pub(super) fn mark_before(&self, i: usize) -> Option<char> {
        self.tokens.get(i).and_then(|t| t.mark_before)
    }

    pub(super) fn claim(&mut self, i: usize, role: Role) {
        if let Some(token) = self.tokens.get_mut(i) {
            token.role = role;
        }
    }

    /// The words of the text, each with the role its token has now.
    pub(super) fn words(&self) -> Vec<Word<'_>> {
        self.words
            .iter()
            .map(|word| Word {
                text: &self.lower[word.lower.clone()],
                token: word.token,
                role: self.tokens[word.token].role,
            })
            .collect()
    }
}

/// A hyphen-separated part of a token, lower-cased, e.g. `cu` and `up` of `CU-UP`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Word<'t> {
    pub(super) text: &'t str,
    /// The index of the token it is part of.
    pub(super) token: usize,
    pub(super) role: Role,
}

impl Word<'_> {
    pub(super) fn is_free(&self) -> bool {
        self.role == Role::Free
    }
}

/// True when the word at `at` is free and is `word`.
pub(super) fn word_at(words: &[Word], at: usize, word: &str) -> bool {
    free_word(words, Some(at)) == Some(word)
}

/// True when the free words starting at `at` are `phrase` (words separated by spaces).
fn phrase_at(words: &[Word], at: usize, phrase: &str) -> bool {
    phrase
        .split(' ')
        .enumerate()
        .all(|(k, expected)| word_at(words, at + k, expected))
}

/// The free word at `i`, if there is one.
pub(super) fn free_word<'t>(words: &[Word<'t>], i: Option<usize>) -> Option<&'t str> {
    i.and_then(|i| words.get(i))
        .filter(|w| w.is_free())
        .map(|w| w.text)
}

/// A fixed list of words and phrases ("delete", "tear down"), indexed by first word so
/// that finding one costs a lookup per word of the text rather than a pass over the list.
#[derive(Debug)]
pub(super) struct Phrases {
    /// Each first word's phrases, in list order.
    by_first_word: WordMap<Vec<&'static str>>,
}

impl Phrases {
    pub(super) fn new(phrases: &[&'static str]) -> Self {
        let mut by_first_word = WordMap::<Vec<&'static str>>::default();
        for &phrase in phrases {
            let first = phrase.split(' ').next().unwrap_or(phrase);
            by_first_word.entry(first).or_default().push(phrase);
        }
        Self { by_first_word }
    }

    /// The first phrase found in the free words: the earliest in the text, and of those
    /// starting at the same word, the earliest in the list.
    pub(super) fn find(&self, words: &[Word]) -> Option<&'static str> {
        words.iter().enumerate().find_map(|(at, word)| {
            if !word.is_free() {
                return None;
            }
            let candidates = self.by_first_word.get(word.text)?;
            candidates.iter().copied().find(|p| phrase_at(words, at, p))
        })
    }
}

/// A map keyed by the rules' fixed words, for looking up the words of a text.
///
/// Its keys are fixed when it is built, so a text cannot flood it and there is nothing
/// for the default SipHash to defend against; FNV-1a hashes a short word in a few
/// cycles, where SipHash took a third of the time spent reading a request.
pub(super) type WordMap<V> = HashMap<&'static str, V, fnv::FnvBuildHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &Text) -> Vec<(&str, &str, bool)> {
        (0..text.len())
            .map(|i| {
                let raw = text.free_raw(i).expect("free");
                (raw, text.free(i).expect("free"), text.ends_clause(i))
            })
            .collect()
    }

    #[test]
    fn tokens_split_on_spaces_and_punctuation_and_keep_their_case() {
        let text = Text::new("Deploy AMF, 1Gi memory; namespace=Core5G.");
        assert_eq!(
            tokens(&text),
            [
                ("Deploy", "deploy", false),
                ("AMF", "amf", true),
                ("1Gi", "1gi", false),
                ("memory", "memory", true),
                ("namespace", "namespace", false),
                ("Core5G", "core5g", true),
            ]
        );
    }

    #[test]
    fn apostrophes_join_and_dots_and_hyphens_are_trimmed() {
        let text = Text::new("Don\u{2019}t scale to 5. -3 x- .amf ... - né-Σ");
        assert_eq!(
            tokens(&text),
            [
                ("Dont", "dont", false),
                ("scale", "scale", false),
                ("to", "to", false),
                ("5", "5", true),
                ("-3", "-3", false),
                ("x", "x", false),
                ("amf", "amf", false),
                ("né-Σ", "né-σ", false),
            ]
        );
    }

    #[test]
    fn numbers_keep_their_separators() {
        let text = Text::new("to 1,500, .5 or 1,5Gi, 3, 4 and ...2");
        assert_eq!(
            tokens(&text),
            [
                ("to", "to", false),
                ("1,500", "1,500", true),
                (".5", ".5", false),
                ("or", "or", false),
                ("1,5Gi", "1,5gi", true),
                ("3", "3", true),
                ("4", "4", false),
                ("and", "and", false),
                ("2", "2", false),
            ]
        );
    }

    #[test]
    fn dashes_and_slashes_between_digits_join_and_marks_are_kept() {
        let text = Text::new("3\u{2013}5 3/5 \u{2212}3 a/b 3 - 5 3 \u{2192} 5 core\u{2013}5g");
        assert_eq!(
            tokens(&text)
                .iter()
                .map(|(raw, _, _)| *raw)
                .collect::<Vec<_>>(),
            ["3-5", "3/5", "-3", "a", "b", "3", "5", "3", "5", "core", "5g"]
        );
        let marks: Vec<Option<char>> = (0..text.len()).map(|i| text.mark_before(i)).collect();
        assert_eq!(
            marks,
            [
                None,
                None,
                None,
                None,
                Some('/'),
                None,
                Some('-'),
                None,
                Some('\u{2192}'),
                None,
                Some('\u{2013}'),
            ]
        );
    }

    #[test]
    fn words_split_tokens_on_hyphens_and_carry_their_role() {
        let mut text = Text::new("scale-out the near-RT RIC -3");
        text.claim(2, Role::Component);
        let words: Vec<(&str, usize, Role)> = text
            .words()
            .iter()
            .map(|w| (w.text, w.token, w.role))
            .collect();
        assert_eq!(
            words,
            [
                ("scale", 0, Role::Free),
                ("out", 0, Role::Free),
                ("the", 1, Role::Free),
                ("near", 2, Role::Component),
                ("rt", 2, Role::Component),
                ("ric", 3, Role::Free),
                ("3", 4, Role::Free),
            ]
        );
        assert_eq!(text.free(2), None);
        assert_eq!(text.free_raw(2), None);
        assert_eq!(text.role(2), Some(Role::Component));
    }

    #[test]
    fn phrases_are_found_first_by_position_then_by_list_order() {
        let phrases = Phrases::new(&["tear down", "tear", "down", "wipe"]);
        let text = Text::new("please tear down and wipe");
        assert_eq!(phrases.find(&text.words()), Some("tear down"));
        let text = Text::new("wipe, tear it down");
        assert_eq!(phrases.find(&text.words()), Some("wipe"));
        let text = Text::new("tear-it down");
        assert_eq!(phrases.find(&text.words()), Some("tear"));

        let mut text = Text::new("tear down wipe");
        text.claim(0, Role::Namespace);
        assert_eq!(phrases.find(&text.words()), Some("down"));
        assert_eq!(phrases.find(&Text::new("nothing here").words()), None);
    }
}
