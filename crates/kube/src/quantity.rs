//! Kubernetes resource quantities ("500m", "32Mi", "1.5G", "1e3").
//!
//! The grammar (from apimachinery's `resource.Quantity`):
//!
//! ```text
//! quantity  ::= sign? number suffix
//! number    ::= digits | digits "." digits? | "." digits
//! suffix    ::= binarySI | decimalSI | ("e" | "E") sign? digits
//! binarySI  ::= Ki | Mi | Gi | Ti | Pi | Ei
//! decimalSI ::= n | u | m | "" | k | M | G | T | P | E
//! ```
//!
//! A parsed quantity is kept exactly as `sign * digits * 10^exp10 * 2^exp2`,
//! so conversions round once, upwards, the way Kubernetes' `Value()` and
//! `MilliValue()` do.

use std::fmt;
use std::str::FromStr;

/// Mantissas longer than this are refused: they cannot be exact in a `u128`.
const MAX_DIGITS: usize = 36;
/// Exponents outside this range are refused as nonsense (Kubernetes caps
/// them far lower in practice).
const MAX_EXPONENT: i32 = 100;

/// Why a string is not a quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("quantity {0:?} is empty")]
    Empty(String),
    #[error("quantity {0:?} has no digits")]
    NoDigits(String),
    #[error(
        "quantity {0:?} has an unknown suffix {1:?} (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like 1e3)"
    )]
    BadSuffix(String, String),
    #[error("quantity {0:?} has too many digits")]
    TooManyDigits(String),
    #[error("quantity {0:?} has an exponent out of range")]
    ExponentRange(String),
}

/// A parsed quantity. `Quantity::from_str("1.5Gi")` etc.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    /// The decimal digits with the point removed.
    digits: u128,
    /// Power of ten applied to `digits` (fraction digits and SI suffix).
    exp10: i32,
    /// Power of two applied to `digits` (binary SI suffix).
    exp2: u32,
    text: String,
}

impl Quantity {
    /// Parses `text` by the Kubernetes quantity grammar.
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let err_text = || text.to_string();
        if text.is_empty() {
            return Err(QuantityError::Empty(err_text()));
        }
        let (negative, rest) = match text.as_bytes()[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(QuantityError::NoDigits(err_text()));
        }
        if frac_part.contains('.') {
            return Err(QuantityError::BadSuffix(err_text(), suffix.to_string()));
        }
        let all_digits = format!("{int_part}{frac_part}");
        let significant = all_digits.trim_start_matches('0');
        if significant.len() > MAX_DIGITS {
            return Err(QuantityError::TooManyDigits(err_text()));
        }
        let digits = if significant.is_empty() {
            0
        } else {
            significant
                .parse::<u128>()
                .map_err(|_| QuantityError::TooManyDigits(err_text()))?
        };
        let frac_len =
            i32::try_from(frac_part.len()).map_err(|_| QuantityError::TooManyDigits(err_text()))?;
        let (suffix_exp10, exp2) = parse_suffix(suffix)
            .ok_or_else(|| QuantityError::BadSuffix(err_text(), suffix.to_string()))?;
        let suffix_exp10 = suffix_exp10.map_err(|()| QuantityError::ExponentRange(err_text()))?;
        Ok(Quantity {
            negative: negative && digits != 0,
            digits,
            exp10: suffix_exp10 - frac_len,
            exp2,
            text: text.to_string(),
        })
    }

    /// True for a quantity below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// True for any spelling of zero ("0", "0Mi", "0.000").
    pub fn is_zero(&self) -> bool {
        self.digits == 0
    }

    /// The text this quantity was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The value times `10^scale`, rounded up, saturating at `u64::MAX`;
    /// negative quantities give 0.
    fn scaled_ceil(&self, scale: i32) -> u64 {
        if self.negative || self.digits == 0 {
            return 0;
        }
        let exp10 = self.exp10 + scale;
        let mut numerator = self.digits;
        for _ in 0..self.exp2 {
            numerator = match numerator.checked_mul(2) {
                Some(n) => n,
                None => return u64::MAX,
            };
        }
        if exp10 >= 0 {
            for _ in 0..exp10 {
                numerator = match numerator.checked_mul(10) {
                    Some(n) => n,
                    None => return u64::MAX,
                };
            }
            return u64::try_from(numerator).unwrap_or(u64::MAX);
        }
        let mut denominator: u128 = 1;
        for _ in 0..exp10.unsigned_abs() {
            denominator = match denominator.checked_mul(10) {
                Some(d) => d,
                // The value is below 1 at this scale: rounding up gives 1.
                None => return 1,
            };
        }
        u64::try_from(numerator.div_ceil(denominator)).unwrap_or(u64::MAX)
    }

    /// The value in whole units (bytes for memory), rounded up.
    pub fn value(&self) -> u64 {
        self.scaled_ceil(0)
    }

    /// The value in thousandths (millicpu for cpu), rounded up.
    pub fn milli_value(&self) -> u64 {
        self.scaled_ceil(3)
    }
}

impl FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `(power of ten, power of two)` of a suffix; `None` for an unknown suffix,
/// `Some((Err(()), _))` for an exponent out of range.
#[allow(clippy::type_complexity)]
fn parse_suffix(suffix: &str) -> Option<(Result<i32, ()>, u32)> {
    let fixed = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        _ => {
            let exponent = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))?;
            let unsigned = exponent
                .strip_prefix('-')
                .or_else(|| exponent.strip_prefix('+'))
                .unwrap_or(exponent);
            if unsigned.is_empty() || !unsigned.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let value = exponent
                .parse::<i32>()
                .ok()
                .filter(|e| e.abs() <= MAX_EXPONENT)
                .ok_or(());
            return Some((value, 0));
        }
    };
    Some((Ok(fixed.0), fixed.1))
}

/// A memory-like quantity in bytes, rounded up (negative gives 0).
pub fn to_bytes(q: &Quantity) -> u64 {
    q.value()
}

/// A cpu quantity in millicpu, rounded up (negative gives 0).
pub fn to_millicpu(q: &Quantity) -> u64 {
    q.milli_value()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        match Quantity::parse(s) {
            Ok(q) => q,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn binary_suffixes() {
        assert_eq!(to_bytes(&q("32Mi")), 32 * 1024 * 1024);
        assert_eq!(to_bytes(&q("1Ki")), 1024);
        assert_eq!(to_bytes(&q("1.5Gi")), 3 * 512 * 1024 * 1024);
        assert_eq!(to_bytes(&q("2Ei")), 2 << 60);
        assert_eq!(to_bytes(&q("1Pi")), 1 << 50);
        assert_eq!(to_bytes(&q("1Ti")), 1 << 40);
    }

    #[test]
    fn decimal_suffixes() {
        assert_eq!(to_bytes(&q("128")), 128);
        assert_eq!(to_bytes(&q("1k")), 1000);
        assert_eq!(to_bytes(&q("5G")), 5_000_000_000);
        assert_eq!(to_bytes(&q("1M")), 1_000_000);
        assert_eq!(to_bytes(&q("2T")), 2_000_000_000_000);
        assert_eq!(to_bytes(&q("1E")), 1_000_000_000_000_000_000);
        assert_eq!(to_bytes(&q("1P")), 1_000_000_000_000_000);
    }

    #[test]
    fn exponents() {
        assert_eq!(to_bytes(&q("1e3")), 1000);
        assert_eq!(to_bytes(&q("1E3")), 1000);
        assert_eq!(to_bytes(&q("12e+2")), 1200);
        assert_eq!(to_millicpu(&q("1e-3")), 1);
        assert_eq!(to_bytes(&q("1e-3")), 1, "rounds up");
    }

    #[test]
    fn cpu() {
        assert_eq!(to_millicpu(&q("500m")), 500);
        assert_eq!(to_millicpu(&q("1")), 1000);
        assert_eq!(to_millicpu(&q("0.5")), 500);
        assert_eq!(to_millicpu(&q(".25")), 250);
        assert_eq!(to_millicpu(&q("2.")), 2000);
        assert_eq!(to_millicpu(&q("100u")), 1, "rounds up");
        assert_eq!(to_millicpu(&q("1500000n")), 2, "rounds up");
        assert_eq!(to_millicpu(&q("+1")), 1000);
    }

    #[test]
    fn zero_and_negative() {
        assert!(q("0").is_zero());
        assert!(q("0Mi").is_zero());
        assert!(!q("-0").is_negative());
        assert!(q("-1").is_negative());
        assert_eq!(to_bytes(&q("-1Gi")), 0);
    }

    #[test]
    fn saturates() {
        assert_eq!(to_bytes(&q("100Ei")), u64::MAX);
        assert_eq!(to_bytes(&q("1e40")), u64::MAX);
        assert_eq!(to_bytes(&q("1e-90")), 1);
    }

    #[test]
    fn refused() {
        for bad in [
            "", "5Gx", "Mi", "1.2.3", "1 Mi", "1mi", "1KI", "e3", "1e", "1e+", "1ee3", "1.5e1.5",
            "abc", "1e1000", "--1", ".", "1Gi ",
        ] {
            assert!(Quantity::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let err = Quantity::parse("5Gx").err();
        assert_eq!(
            err.map(|e| e.to_string()),
            Some(
                "quantity \"5Gx\" has an unknown suffix \"Gx\" (use n, u, m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or an exponent like 1e3)"
                    .to_string()
            )
        );
    }
}
