//! One CSV field to one f32: the shared decimal parser for what JSON's number grammar
//! covers, the standard parser (which also takes `+1`, `.5`, `3.`, padding) otherwise.

use crate::parse::decimal;

/// Why a field is not a storable value.
pub enum Fault {
    NotANumber,
    NotFinite,
}

pub fn parse_value(field: &[u8]) -> Result<f32, Fault> {
    match decimal::parse(field) {
        Ok((value, len)) if len == field.len() => Ok(value),
        _ => parse_general(field),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_is_a_number_only_as_a_whole() {
        for (text, want) in [("3.", 3.0), (".5", 0.5), ("+1", 1.0), ("0.0625", 0.0625)] {
            assert!(
                matches!(parse_value(text.as_bytes()), Ok(v) if v == want),
                "{text}"
            );
        }
        assert!(matches!(parse_value(b"1e5"), Ok(v) if v == 1e5));
        assert!(matches!(parse_value(b" 2 "), Ok(v) if v == 2.0));
        assert!(matches!(parse_value(b"1.2.3"), Err(Fault::NotANumber)));
        assert!(matches!(parse_value(b"-inf"), Err(Fault::NotFinite)));
    }
}
