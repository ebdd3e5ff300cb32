//! One CSV field to one f32: a fast path for plain decimals, the standard parser otherwise.

/// Why a field is not a storable value.
pub enum Fault {
    NotANumber,
    NotFinite,
}

pub fn parse_value(field: &[u8]) -> Result<f32, Fault> {
    if let Some((value, len)) = plain_decimal_prefix(field) {
        if len == field.len() {
            return Ok(value);
        }
    }
    parse_general(field)
}

/// The standard library's correctly rounded parser, after trimming surrounding whitespace.
pub fn parse_general(field: &[u8]) -> Result<f32, Fault> {
    let text = std::str::from_utf8(field)
        .map_err(|_| Fault::NotANumber)?
        .trim();
    let value: f32 = text.parse().map_err(|_| Fault::NotANumber)?;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(Fault::NotFinite)
    }
}

/// Powers of ten that f32 holds exactly.
const POW10: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

/// Fast path for plain decimals (`-12`, `0.0625`, `3.`), which is what numeric CSVs hold
/// almost everywhere. Reads the longest prefix of `bytes` made of an optional `-`, digits and
/// one `.`, and returns its value and length; the caller checks that the prefix is the whole
/// field. When the digits form an integer m < 2^24 and there are k ≤ 10 of them after the
/// point, m and 10^k are exact in f32 and one correctly rounded division gives the correctly
/// rounded value of m / 10^k — the same f32 as the full parser (Clinger's fast path).
/// Anything else returns None and takes the full parser.
#[inline]
pub fn plain_decimal_prefix(bytes: &[u8]) -> Option<(f32, usize)> {
    let negative = bytes.first() == Some(&b'-');
    let mut i = usize::from(negative);
    let mut mantissa: u32 = 0;
    let mut digits = 0usize;
    let mut point: Option<usize> = None;
    while let Some(&byte) = bytes.get(i) {
        let digit = byte.wrapping_sub(b'0');
        if digit < 10 {
            mantissa = mantissa * 10 + u32::from(digit);
            if mantissa >= 1 << 24 {
                return None;
            }
            digits += 1;
        } else if byte == b'.' && point.is_none() {
            point = Some(digits);
        } else {
            break;
        }
        i += 1;
    }
    let k = point.map_or(0, |at| digits - at);
    if digits == 0 || k >= POW10.len() {
        return None;
    }
    let value = mantissa as f32 / POW10[k];
    Some((if negative { -value } else { value }, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(text: &str) -> Option<f32> {
        plain_decimal_prefix(text.as_bytes())
            .filter(|&(_, len)| len == text.len())
            .map(|(value, _)| value)
    }

    #[test]
    fn plain_decimal_fast_path_agrees_with_the_standard_parser() {
        let mut texts: Vec<String> = [
            "0", "7", "-12", "255", "9999999", "-0", "3.", "0.1", "-0.0625", "16777215",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Many mantissas at every scale the fast path takes, including awkward roundings.
        let mut m: u64 = 1;
        for _ in 0..2000 {
            m = m
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let m = (m >> 40) % (1 << 24);
            for k in 0..=10usize {
                let digits = format!("{m:0>width$}", width = k + 1);
                let (int, frac) = digits.split_at(digits.len() - k);
                texts.push(format!("{int}.{frac}"));
            }
        }
        for text in &texts {
            let value = fast(text).expect(text);
            assert_eq!(
                value.to_bits(),
                text.parse::<f32>().unwrap().to_bits(),
                "{text}"
            );
        }
        for slow in [
            "16777216",
            "1e5",
            "0.00000000001",
            ".",
            "-",
            "",
            "1.2.3",
            " 1",
            "nan",
        ] {
            assert!(fast(slow).is_none(), "{slow}");
        }
    }

    #[test]
    fn a_prefix_stops_at_the_first_byte_that_is_not_part_of_a_decimal() {
        let prefix = |text: &str| plain_decimal_prefix(text.as_bytes());
        assert_eq!(prefix("12,3"), Some((12.0, 2)));
        assert_eq!(prefix("-0.5\r"), Some((-0.5, 4)));
        assert_eq!(prefix("1.2.3"), Some((1.2, 3)));
        assert_eq!(prefix("1e5"), Some((1.0, 1)));
        assert_eq!(prefix(",1"), None);
        assert!(matches!(parse_value(b"1e5"), Ok(v) if v == 1e5));
        assert!(matches!(parse_value(b" 2 "), Ok(v) if v == 2.0));
        assert!(matches!(parse_value(b"1.2.3"), Err(Fault::NotANumber)));
        assert!(matches!(parse_value(b"-inf"), Err(Fault::NotFinite)));
    }
}
