//! The tokens of a row that are not bare zeros, queued to be read eight at a time.

use super::plain_row::Kernel;

/// Tokens found but not read yet: where each starts (a space may lead) and ends (at its
/// separator) in the text, and the index of its value in the row. Positions fit in an
/// `i32`: `plain_row` leaves longer texts to the general parser.
///
/// Every queued token has `8 <= end <= text.len()` and `slot < out.len()` for the text and
/// row it is read with (the contract of [`TokenQueue::push`]): the AVX-512 reader's gather
/// and scatter rely on it.
pub struct TokenQueue {
    pub starts: [u32; 8],
    pub ends: [u32; 8],
    pub slots: [u32; 8],
    count: usize,
}

impl TokenQueue {
    pub fn new() -> TokenQueue {
        TokenQueue {
            starts: [0; 8],
            ends: [0; 8],
            slots: [0; 8],
            count: 0,
        }
    }

    /// Adds the token `text[start..at]` whose value goes to `slot`; reads the queue into
    /// `out` once it is full. `false` if a token read is not a number.
    ///
    /// # Safety
    /// `8 <= at <= text.len()` and `slot < out.len()`, and every later `push` and `flush`
    /// of this queue gets the same `text` and `out`.
    #[inline(always)]
    pub unsafe fn push<K: Kernel>(
        &mut self,
        text: &[u8],
        start: usize,
        at: usize,
        slot: usize,
        out: &mut [f32],
    ) -> bool {
        let k = self.count;
        self.starts[k] = start as u32;
        self.ends[k] = at as u32;
        self.slots[k] = slot as u32;
        self.count += 1;
        self.count < 8 || self.flush::<K>(text, out)
    }

    /// Reads the tokens held into `out`; `false` if one is not a number.
    #[inline(always)]
    pub fn flush<K: Kernel>(&mut self, text: &[u8], out: &mut [f32]) -> bool {
        let count = std::mem::take(&mut self.count);
        K::read(text, self, count, out)
    }
}
