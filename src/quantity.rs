//! Kubernetes resource quantities (`500m`, `2`, `1.5`, `512Mi`, `1G`), parsed exactly.
//!
//! Validation needs to know that a quantity is well formed and the policy needs to compare
//! it with its bounds, so both read it here, once, with checked arithmetic: a value is
//! held as an exact count of nano-units (rounded up below a nano-unit, as Kubernetes
//! does), and one too large to hold is [`QuantityError::TooLarge`], never wrapped.
//!
//! Deliberately stricter than Kubernetes: no sign, no exponent forms (`1e3`, which a
//! reader can mistake for a plain number), at most 9 decimal places, at most
//! [`MAX_QUANTITY_CHARS`] characters.

use std::fmt;

/// Longest quantity accepted, in characters.
pub const MAX_QUANTITY_CHARS: usize = 32;
const MAX_DECIMALS: usize = 9;
const NANOS_PER_UNIT: u128 = 1_000_000_000;

/// A parsed quantity: its value in nano-units, and the text it was written as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    nanos: u128,
    written: String,
}

/// Why a text is not a quantity this service accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not a quantity at all, or a form this service refuses (exponents, signs, ...).
    #[error("{0}")]
    Malformed(String),
    /// Well formed, but larger than can be held (far above any bound).
    #[error("is too large to represent")]
    TooLarge,
}

impl Quantity {
    /// Parses `s`, which must be exactly a quantity (no surrounding spaces).
    pub fn parse(s: &str) -> Result<Self, QuantityError> {
        let malformed = |why: &str| Err(QuantityError::Malformed(why.to_string()));
        if s.chars().count() > MAX_QUANTITY_CHARS {
            return malformed("is longer than 32 characters");
        }
        let number_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (number, suffix) = s.split_at(number_end);
        let multiplier = match suffix_nanos(suffix) {
            Some(m) => m,
            None if suffix.starts_with(['e', 'E']) && suffix.len() > 1 => {
                return malformed("is in exponent form; write it with a suffix such as k, M, Gi")
            }
            None if suffix.starts_with(['+', '-']) || s.starts_with(['+', '-']) => {
                return malformed("has a sign; quantities here are unsigned")
            }
            None => {
                return malformed(
                    "has an unknown suffix (use m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi or Ei)",
                )
            }
        };
        let (whole, fraction) = match number.split_once('.') {
            Some((w, f)) => (w, f),
            None => (number, ""),
        };
        if fraction.contains('.') {
            return malformed("has more than one decimal point");
        }
        if whole.is_empty() && fraction.is_empty() {
            return malformed("has no digits");
        }
        let fraction = fraction.trim_end_matches('0');
        if fraction.len() > MAX_DECIMALS {
            return malformed("has more than 9 decimal places");
        }
        let mut whole_value: u128 = 0;
        for digit in whole.bytes() {
            whole_value = whole_value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .ok_or(QuantityError::TooLarge)?;
        }
        let whole_nanos = whole_value
            .checked_mul(multiplier)
            .ok_or(QuantityError::TooLarge)?;
        // At most 9 digits over a multiplier of at most 2^60 * 10^9: no overflow possible.
        let mut fraction_value: u128 = 0;
        for digit in fraction.bytes() {
            fraction_value = fraction_value * 10 + u128::from(digit - b'0');
        }
        let scale = 10u128.pow(fraction.len() as u32);
        let fraction_nanos = (fraction_value * multiplier).div_ceil(scale);
        let nanos = whole_nanos
            .checked_add(fraction_nanos)
            .ok_or(QuantityError::TooLarge)?;
        Ok(Self {
            nanos,
            written: s.to_string(),
        })
    }

    /// The value in nano-units (1 = 10⁻⁹ of a core, or of a byte).
    pub fn nanos(&self) -> u128 {
        self.nanos
    }

    /// The text the quantity was written as.
    pub fn as_str(&self) -> &str {
        &self.written
    }
}

impl PartialOrd for Quantity {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.nanos.cmp(&other.nanos))
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// What one unit of `suffix` is, in nano-units.
fn suffix_nanos(suffix: &str) -> Option<u128> {
    const KI: u128 = 1 << 10;
    let n = NANOS_PER_UNIT;
    Some(match suffix {
        "n" => 1,
        "u" => 1_000,
        "m" => 1_000_000,
        "" => n,
        "k" => n * 1_000,
        "M" => n * 1_000_000,
        "G" => n * 1_000_000_000,
        "T" => n * 1_000_000_000_000,
        "P" => n * 1_000_000_000_000_000,
        "E" => n * 1_000_000_000_000_000_000,
        "Ki" => n * KI,
        "Mi" => n * KI.pow(2),
        "Gi" => n * KI.pow(3),
        "Ti" => n * KI.pow(4),
        "Pi" => n * KI.pow(5),
        "Ei" => n * KI.pow(6),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(s: &str) -> u128 {
        Quantity::parse(s)
            .unwrap_or_else(|e| panic!("{s:?}: {e}"))
            .nanos()
    }

    const N: u128 = NANOS_PER_UNIT;

    #[test]
    fn the_usual_forms() {
        assert_eq!(nanos("500m"), N / 2);
        assert_eq!(nanos("2"), 2 * N);
        assert_eq!(nanos("1.5"), 3 * N / 2);
        assert_eq!(nanos(".5"), N / 2);
        assert_eq!(nanos("2."), 2 * N);
        assert_eq!(nanos("512Mi"), 512 * 1024 * 1024 * N);
        assert_eq!(nanos("1G"), 1_000_000_000 * N);
        assert_eq!(nanos("1.5Gi"), 3 * 512 * 1024 * 1024 * N);
        assert_eq!(nanos("0"), 0);
        assert_eq!(
            nanos("1.000000000000"),
            N,
            "trailing zeros are not decimals"
        );
    }

    #[test]
    fn below_a_nano_unit_rounds_up() {
        assert_eq!(nanos("0.5n"), 1);
        assert_eq!(nanos("1.000000001"), N + 1);
    }

    #[test]
    fn ordering_is_by_value() {
        let a = Quantity::parse("1500m").unwrap();
        let b = Quantity::parse("2").unwrap();
        assert!(a < b);
        assert!(Quantity::parse("1Gi").unwrap() > Quantity::parse("1G").unwrap());
    }

    #[test]
    fn huge_values_are_too_large_not_wrapped() {
        assert!(Quantity::parse("999999Ti").unwrap().nanos() > 64 * (1 << 30) * N);
        assert_eq!(
            Quantity::parse("99999999999999999999999999999999"),
            Err(QuantityError::TooLarge)
        );
        assert_eq!(
            Quantity::parse("999999999999999Ei"),
            Err(QuantityError::TooLarge)
        );
    }

    #[test]
    fn malformed_forms_are_refused_with_the_reason() {
        for (bad, why) in [
            ("1e3", "exponent"),
            ("1E3", "exponent"),
            ("-1", "sign"),
            ("+1", "sign"),
            ("1.2.3", "decimal point"),
            ("", "no digits"),
            (".", "no digits"),
            ("m", "no digits"),
            ("lots", "suffix"),
            ("1 Gi", "suffix"),
            ("1gi", "suffix"),
            ("1.0000000001", "9 decimal"),
            (&"1".repeat(33), "longer"),
            ("١", "suffix"),
        ] {
            match Quantity::parse(bad) {
                Err(QuantityError::Malformed(reason)) => {
                    assert!(reason.contains(why), "{bad:?}: {reason}")
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
