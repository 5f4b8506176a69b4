//! How a token reads as a number: digits, or a number word from zero to twenty.
//!
//! Anything else that looks like a number (a negative, a fraction, "twenty-one", "a
//! dozen", "1,500") is told apart from words that are not numbers at all, so that a replica count
//! the rules cannot read is refused instead of silently ignored.

#[rustfmt::skip]
pub(super) const NUMBER_WORDS: &[&str] = &[
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen", "twenty",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Number {
    Whole(u64),
    Negative,
    Fraction,
    /// Two numbers joined into one token: "3-5", "3..5", "3/5" (a range or a ratio).
    Range,
    /// Written as a number the rules do not read ("twenty-one", "thirty", "a dozen"), or
    /// with separators that could group thousands or mark decimals ("1,500", "1,5").
    Unreadable,
    NotNumeric,
}

/// Reads a lower-cased token.
pub(super) fn number(word: &str) -> Number {
    #[rustfmt::skip]
    const LARGER: &[&str] = &[
        "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety", "hundred", "thousand",
        "dozen",
    ];
    if let Some(n) = NUMBER_WORDS.iter().position(|w| *w == word) {
        return Number::Whole(n as u64);
    }
    let number_word = |w: &str| NUMBER_WORDS.contains(&w) || LARGER.contains(&w);
    if LARGER.contains(&word) || (word.contains('-') && word.split('-').all(number_word)) {
        return Number::Unreadable;
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let grouped = |s: &str| s.contains(',') && s.split(',').all(digits);
    if grouped(word.trim_start_matches('-')) {
        return Number::Unreadable;
    }
    let joined = |sep: &str| {
        word.split_once(sep)
            .is_some_and(|(a, b)| digits(a) && digits(b.trim_start_matches('-')))
    };
    if joined("-") || joined("..") || joined("/") {
        return Number::Range;
    }
    // "2.5", and ".5" too.
    let decimal = |s: &str| {
        s.split_once('.')
            .is_some_and(|(a, b)| (a.is_empty() || digits(a)) && digits(b))
    };
    if digits(word) {
        // Too many digits for u64 is still a huge number, refused later as too large.
        return Number::Whole(word.parse().unwrap_or(u64::MAX));
    }
    match word.strip_prefix('-') {
        Some(rest) if digits(rest) || decimal(rest) => Number::Negative,
        _ if decimal(word) => Number::Fraction,
        _ => Number::NotNumeric,
    }
}

#[cfg(test)]
mod tests {
    use super::super::expect::*;
    use super::*;
    use crate::intent::Component::*;

    #[test]
    fn tokens_as_numbers() {
        let cases = [
            ("0", Number::Whole(0)),
            ("42", Number::Whole(42)),
            ("seven", Number::Whole(7)),
            ("99999999999999999999999", Number::Whole(u64::MAX)),
            ("-3", Number::Negative),
            ("-2.5", Number::Negative),
            ("-.5", Number::Negative),
            ("2.5", Number::Fraction),
            (".5", Number::Fraction),
            ("twenty-one", Number::Unreadable),
            ("dozen", Number::Unreadable),
            ("1,500", Number::Unreadable),
            ("1,5", Number::Unreadable),
            ("-1,000", Number::Unreadable),
            ("3-5", Number::Range),
            ("3..5", Number::Range),
            ("3/5", Number::Range),
            ("3--5", Number::Range),
            ("2024-05-01", Number::NotNumeric),
            ("5%", Number::NotNumeric),
            ("2.5.1", Number::NotNumeric),
            ("500m", Number::NotNumeric),
            ("replicas", Number::NotNumeric),
        ];
        for (word, expected) in cases {
            assert_eq!(number(word), expected, "{word}");
        }
    }

    #[test]
    fn number_words_zero_to_twenty() {
        for (n, word) in NUMBER_WORDS.iter().enumerate() {
            let text = format!("Scale SMF to {word} replicas in namespace core5g");
            check(&text, scale(&[Smf], "core5g").replicas(n as u32));
        }
        check(
            "Deploy a single AMF instance in namespace core5g",
            deploy(&[Amf], "core5g").replicas(1),
        );
        check(
            "Deploy AMF as a single replica in namespace core5g",
            deploy(&[Amf], "core5g").replicas(1),
        );
    }
}
