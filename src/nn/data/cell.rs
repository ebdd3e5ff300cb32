//! One stored cell in one f32: a number, a category level's code, or missing.
//!
//! Numbers are finite floats and stay exactly as parsed. The other two are quiet NaNs that
//! differ in their payload (NaN-boxing): a level is the payload `code + 1`, missing is the
//! payload 0 (the NaN arithmetic produces, and what `"NaN".parse()` gives). Cells are only
//! ever copied, never computed on, before [`decode`] reads them, so the payloads survive;
//! a chunk keeps four bytes per cell whatever the column holds, and every stored dataset
//! of numbers is already a valid table of cells.

const QUIET_NAN: u32 = 0x7FC0_0000;
const PAYLOAD: u32 = 0x003F_FFFF;

/// Levels a column can have: the payloads that are not missing.
pub const MAX_LEVELS: u32 = PAYLOAD - 1;

/// The texts that mean a missing value unless an upload says otherwise: pandas' and R's
/// markers, an empty field first.
pub const MISSING_MARKERS: [&str; 7] = ["", "NA", "N/A", "NaN", "nan", "null", "None"];

/// A missing value.
pub const MISSING: f32 = f32::from_bits(QUIET_NAN);

/// A level no dataset stores (the highest code): a text first seen at predict time, which
/// every encoding sends to its out-of-vocabulary slot.
pub const UNSEEN: f32 = f32::from_bits(QUIET_NAN | PAYLOAD);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell {
    Number(f32),
    /// A code into the column's vocabulary.
    Level(u32),
    Missing,
}

/// The cell of level `code` (below [`MAX_LEVELS`]).
pub fn level(code: u32) -> f32 {
    debug_assert!(code < MAX_LEVELS);
    f32::from_bits(QUIET_NAN | (code + 1))
}

pub fn decode(value: f32) -> Cell {
    if !value.is_nan() {
        return Cell::Number(value);
    }
    let bits = value.to_bits();
    match bits & PAYLOAD {
        payload if payload != 0 && bits & !PAYLOAD == QUIET_NAN => Cell::Level(payload - 1),
        _ => Cell::Missing,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_round_trip_through_their_bytes() {
        for code in [0, 1, 77, MAX_LEVELS - 1] {
            let stored = f32::from_le_bytes(level(code).to_le_bytes());
            assert_eq!(decode(stored), Cell::Level(code));
        }
        assert_eq!(decode(MISSING), Cell::Missing);
        assert_eq!(decode("NaN".parse().unwrap()), Cell::Missing);
        assert_eq!(decode(-f32::NAN), Cell::Missing);
        assert_eq!(decode(UNSEEN), Cell::Level(MAX_LEVELS));
        for v in [0.0, -0.0, 1.5, f32::MAX, -f32::MIN_POSITIVE] {
            assert_eq!(decode(v), Cell::Number(v));
        }
    }
}
