//! The tokens of a row that are not bare zeros, queued to be read eight at a time.

use super::plain::{careful, Kernel};

/// Tokens found but not read yet: the 8 bytes that end each, its length, and the index of
/// its value in the row.
pub struct Batch {
    words: [u64; 8],
    lens: [u64; 8],
    slots: [u32; 8],
    /// Where each token starts and ends in the text, for [`careful`] when it is not plain.
    spans: [(usize, usize); 8],
    count: usize,
}

impl Batch {
    pub fn new() -> Batch {
        Batch {
            words: [0; 8],
            lens: [0; 8],
            slots: [0; 8],
            spans: [(0, 0); 8],
            count: 0,
        }
    }

    /// Adds the token `text[start..at]` (one leading space allowed) whose value goes to
    /// `slot`; reads the batch into `out` once it is full. `false` if a token read is not a
    /// number.
    #[inline(always)]
    pub fn push<K: Kernel>(
        &mut self,
        text: &[u8],
        start: usize,
        at: usize,
        slot: usize,
        out: &mut [f32],
    ) -> bool {
        let start = start + usize::from(text[start] == b' ');
        let k = self.count;
        self.words[k] = u64::from_le_bytes(text[at - 8..at].try_into().expect("8 bytes"));
        self.lens[k] = (at - start) as u64;
        self.slots[k] = slot as u32;
        self.spans[k] = (start, at);
        self.count += 1;
        self.count < 8 || self.flush::<K>(text, out)
    }

    /// Reads the tokens held into `out`; `false` if one is not a number.
    #[inline(always)]
    pub fn flush<K: Kernel>(&mut self, text: &[u8], out: &mut [f32]) -> bool {
        let count = std::mem::take(&mut self.count);
        let (values, plain) = K::read(&self.words, &self.lens, count);
        let mut ok = true;
        for k in 0..count {
            let value = if plain & (1 << k) != 0 {
                values[k]
            } else {
                let (start, at) = self.spans[k];
                let (value, number) = careful(text, start, at);
                ok &= number;
                value
            };
            out[self.slots[k] as usize] = value;
        }
        ok
    }
}
