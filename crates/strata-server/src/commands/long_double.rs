//! `INCRBYFLOAT`'s arithmetic as Redis does it: in the x87 80-bit `long double` (64-bit
//! significand) that Redis uses on x86-64, parsed like C's `strtold`, printed like
//! `printf("%.17Lf")` with trailing zeros removed. An `f64` prints `0.1 + 0.2` as
//! `0.30000000000000004` where Redis prints `0.3`; this type gives Redis's digits.
//!
//! Values are exact dyadic rationals `±m × 2^e` with `m < 2^64`. Parsing, adding and printing
//! go through big integers, so every step rounds once, to nearest with ties to even, as the
//! x87 unit and glibc do.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};

/// Significand bits of an x87 `long double`.
const PRECISION: u64 = 64;
/// Exponent of the smallest subnormal: values are `m × 2^e` with `e ≥ MIN_EXP`.
const MIN_EXP: i64 = -16445;
/// Values at or above `2^MAX_BINARY_EXP` overflow to infinity.
const MAX_BINARY_EXP: i64 = 16384;
/// Redis refuses float arguments this long or longer (`MAX_LONG_DOUBLE_CHARS`).
const MAX_CHARS: usize = 5 * 1024;

/// A finite `long double`: `(-1)^negative × significand × 2^exponent`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LongDouble {
    negative: bool,
    significand: u64,
    exponent: i64,
}

/// A parsed `INCRBYFLOAT` operand: `strtold` also reads `inf` and `infinity`, which Redis
/// accepts as operands and then refuses as a result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Float {
    Finite(LongDouble),
    Infinite,
}

/// What rounding a real number to a `long double` gave.
enum Rounded {
    Finite(LongDouble),
    /// Nonzero, but rounds to zero (`strtold` reports `ERANGE`).
    Underflow,
    Overflow,
}

impl LongDouble {
    pub(crate) const ZERO: Self = Self {
        negative: false,
        significand: 0,
        exponent: 0,
    };

    /// Parses `text` as Redis's `string2ld` does: `strtold` syntax (decimal or hexadecimal,
    /// optional sign and exponent, `inf`, `infinity`), nothing before or after the number, and
    /// no NaN, nor a number out of range (too large, or nonzero but too small).
    pub(crate) fn parse(text: &[u8]) -> Option<Float> {
        if text.is_empty() || text.len() >= MAX_CHARS {
            return None;
        }
        let (negative, body) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(Float::Infinite);
        }
        let is_hex = body.len() > 2 && body[0] == b'0' && body[1].eq_ignore_ascii_case(&b'x');
        let rounded = if is_hex {
            parse_hex(&body[2..])?
        } else {
            parse_decimal(body)?
        };
        match rounded {
            Rounded::Finite(mut value) => {
                value.negative = negative && value.significand != 0;
                Some(Float::Finite(value))
            }
            Rounded::Underflow | Rounded::Overflow => None,
        }
    }

    /// The sum, or `None` if it overflows (Redis: "increment would produce NaN or Infinity").
    pub(crate) fn add(&self, other: &Self) -> Option<Self> {
        let exponent = self.exponent.min(other.exponent);
        let scaled = |v: &Self| BigUint::from(v.significand) << (v.exponent - exponent) as u64;
        let (a, b) = (scaled(self), scaled(other));
        let (negative, magnitude) = if self.negative == other.negative {
            (self.negative, a + b)
        } else if a >= b {
            (self.negative, a - b)
        } else {
            (other.negative, b - a)
        };
        if magnitude.is_zero() {
            // x + (-x) is +0 when rounding to nearest.
            return Some(Self::ZERO);
        }
        match round(&magnitude, &BigUint::one(), exponent) {
            Rounded::Finite(mut value) => {
                value.negative = negative;
                Some(value)
            }
            // A sum of representable values is a multiple of the smallest subnormal.
            Rounded::Underflow => Some(Self::ZERO),
            Rounded::Overflow => None,
        }
    }

    /// `printf("%.17Lf")`, then trailing zeros (and a trailing point) removed; `-0` is `0`.
    pub(crate) fn to_redis_string(&self) -> String {
        const DECIMALS: u32 = 17;
        let scale = BigUint::from(10u32).pow(DECIMALS);
        let significand = BigUint::from(self.significand);
        // The value times 10^17, rounded to an integer, ties to even.
        let scaled = if self.exponent >= 0 {
            (significand << self.exponent as u64) * scale
        } else {
            let shift = (-self.exponent) as u64;
            let numerator = significand * scale;
            let quotient = &numerator >> shift;
            let remainder = &numerator - (&quotient << shift);
            let half = BigUint::one() << (shift - 1);
            if remainder > half || (remainder == half && quotient.bit(0)) {
                quotient + 1u32
            } else {
                quotient
            }
        };
        let digits = format!("{scaled:0>18}");
        let (whole, fraction) = digits.split_at(digits.len() - DECIMALS as usize);
        let fraction = fraction.trim_end_matches('0');
        let negative = self.negative && !scaled.is_zero();
        let sign = if negative { "-" } else { "" };
        if fraction.is_empty() {
            format!("{sign}{whole}")
        } else {
            format!("{sign}{whole}.{fraction}")
        }
    }
}

/// Rounds `numerator / denominator × 2^exponent` (positive) to a `long double`.
fn round(numerator: &BigUint, denominator: &BigUint, exponent: i64) -> Rounded {
    // Find e with 2^63 ≤ numerator / denominator / 2^(e - exponent) < 2^64 …
    let bits = numerator.bits() as i64 - denominator.bits() as i64;
    let mut e = exponent + bits - PRECISION as i64;
    // … but no lower than the subnormals' exponent.
    e = e.max(MIN_EXP);
    loop {
        let shift = e - exponent;
        let (n, d) = if shift >= 0 {
            (numerator.clone(), denominator << shift as u64)
        } else {
            (numerator << (-shift) as u64, denominator.clone())
        };
        let quotient = &n / &d;
        if quotient.bits() > PRECISION {
            e += 1;
            continue;
        }
        if quotient.bits() < PRECISION && e > MIN_EXP {
            e -= 1;
            continue;
        }
        let remainder = &n - &quotient * &d;
        let twice = remainder << 1u32;
        let round_up = twice > d || (twice == d && quotient.bit(0));
        let mut significand = quotient.to_u64().unwrap_or(u64::MAX);
        if round_up {
            match significand.checked_add(1) {
                Some(s) => significand = s,
                None => {
                    significand = 1 << (PRECISION - 1);
                    e += 1;
                }
            }
        }
        if significand == 0 {
            return Rounded::Underflow;
        }
        if e + PRECISION as i64 > MAX_BINARY_EXP {
            return Rounded::Overflow;
        }
        return Rounded::Finite(LongDouble {
            negative: false,
            significand,
            exponent: e,
        });
    }
}

/// `digits[.digits][(e|E)[±]digits]`, at least one digit in the significand.
fn parse_decimal(text: &[u8]) -> Option<Rounded> {
    let (mantissa, exponent) = split_exponent(text, b'e')?;
    let (digits, point_shift) = mantissa_digits(mantissa, |c| c.is_ascii_digit())?;
    let value = BigUint::parse_bytes(&digits, 10)?;
    if value.is_zero() {
        return Some(Rounded::Finite(LongDouble::ZERO));
    }
    let power = exponent.checked_sub(point_shift)?;
    // The value is in [10^(leading - 1), 10^leading). Beyond these bounds it is surely out of
    // range (the largest long double is 1.19e4932, the smallest 3.6e-4951), and 10^power
    // would be needlessly large.
    let leading = power + significant_digits(&digits);
    if leading > 4940 {
        return Some(Rounded::Overflow);
    }
    if leading < -4960 {
        return Some(Rounded::Underflow);
    }
    let ten = BigUint::from(10u32);
    Some(if power >= 0 {
        round(&(value * ten.pow(power as u32)), &BigUint::one(), 0)
    } else {
        round(&value, &ten.pow((-power) as u32), 0)
    })
}

/// Hexadecimal after `0x`: `hexdigits[.hexdigits][(p|P)[±]digits]`.
fn parse_hex(text: &[u8]) -> Option<Rounded> {
    let (mantissa, exponent) = split_exponent(text, b'p')?;
    let (digits, point_shift) = mantissa_digits(mantissa, |c| c.is_ascii_hexdigit())?;
    let value = BigUint::parse_bytes(&digits, 16)?;
    if value.is_zero() {
        return Some(Rounded::Finite(LongDouble::ZERO));
    }
    let power = exponent.checked_sub(point_shift.checked_mul(4)?)?;
    // The value is in [2^(leading - 4), 2^leading).
    let leading = power + 4 * significant_digits(&digits);
    if leading > MAX_BINARY_EXP + 8 {
        return Some(Rounded::Overflow);
    }
    if leading < MIN_EXP - 8 {
        return Some(Rounded::Underflow);
    }
    Some(round(&value, &BigUint::one(), power))
}

/// Splits off an exponent introduced by `marker` (either case); 0 without one.
fn split_exponent(text: &[u8], marker: u8) -> Option<(&[u8], i64)> {
    match text.iter().position(|c| c.eq_ignore_ascii_case(&marker)) {
        None => Some((text, 0)),
        Some(at) => {
            let exponent = std::str::from_utf8(&text[at + 1..]).ok()?;
            let digits = exponent.trim_start_matches(['+', '-']);
            if digits.is_empty()
                || !digits.bytes().all(|c| c.is_ascii_digit())
                || exponent.len() - digits.len() > 1
            {
                return None;
            }
            // A huge exponent only says "out of range": clamp it.
            let value = digits
                .parse::<i64>()
                .unwrap_or(i64::MAX / 4)
                .min(i64::MAX / 4);
            Some((
                &text[..at],
                if exponent.starts_with('-') {
                    -value
                } else {
                    value
                },
            ))
        }
    }
}

/// How many digits are left once leading zeros are dropped.
fn significant_digits(digits: &[u8]) -> i64 {
    digits.iter().skip_while(|&&d| d == b'0').count() as i64
}

/// The significand's digits without the point, and how many came after the point.
fn mantissa_digits(text: &[u8], is_digit: impl Fn(u8) -> bool) -> Option<(Vec<u8>, i64)> {
    let (whole, fraction) = match text.iter().position(|&c| c == b'.') {
        Some(at) => (&text[..at], &text[at + 1..]),
        None => (text, &[][..]),
    };
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.iter().chain(fraction).all(|&c| is_digit(c)) {
        return None;
    }
    Some(([whole, fraction].concat(), fraction.len() as i64))
}

#[cfg(test)]
mod tests {
    use super::{Float, LongDouble};

    fn finite(text: &str) -> LongDouble {
        match LongDouble::parse(text.as_bytes()) {
            Some(Float::Finite(value)) => value,
            other => panic!("{text:?} parsed as {other:?}"),
        }
    }

    fn sum(a: &str, b: &str) -> String {
        finite(a).add(&finite(b)).expect("finite").to_redis_string()
    }

    /// Each expected reply is what redis-server 7.0 (x86-64) printed for
    /// `SET k A` then `INCRBYFLOAT k B`.
    #[test]
    fn sums_print_as_redis_prints_them() {
        for (a, b, redis) in [
            ("0.1", "0.2", "0.3"),
            ("0", "10000000000.1", "10000000000.09999999962747097"),
            ("0", "123456789.123456789", "123456789.12345678899873747"),
            ("0", "0x10", "16"),
            ("0", "0x1p3", "8"),
            ("0", "1e-20", "0"),
            ("0", "3.0e15", "3000000000000000"),
            ("5", "-5", "0"),
            ("0", ".5", "0.5"),
            ("0", "5.", "5"),
            ("0", "+1.5", "1.5"),
            ("1e3", "1", "1001"),
            ("10.5", "0.1", "10.6"),
        ] {
            assert_eq!(sum(a, b), redis, "{a} + {b}");
        }
        let huge = sum("0", "1e400");
        assert!(huge.starts_with("10000000000000000000281880683947586514586453433629"));
        assert_eq!(huge.len(), 401);
    }

    #[test]
    fn what_strtold_and_redis_refuse() {
        for text in [
            "",
            " 1",
            "1 ",
            "abc",
            "1e",
            "e5",
            ".",
            "0x",
            "nan",
            "-nan",
            "1e99999",
            "1e-99999",
            "--1",
            "1.2.3",
            "0x1p99999",
        ] {
            assert_eq!(LongDouble::parse(text.as_bytes()), None, "{text:?}");
        }
        for text in ["inf", "-INF", "Infinity"] {
            assert_eq!(LongDouble::parse(text.as_bytes()), Some(Float::Infinite));
        }
        assert_eq!(finite("0e99999"), finite("0"), "zero is zero");
        assert_eq!(finite("000000000000001e3"), finite("1000"));
        assert_eq!(finite("-0").to_redis_string(), "0");
    }

    #[test]
    fn overflow_is_refused() {
        let max = finite("1e4932");
        assert_eq!(max.add(&max), None);
    }
}
