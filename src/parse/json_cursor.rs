//! A byte cursor over a JSON text: the lexical layer of the `instances` parser. It checks the
//! JSON grammar (RFC 8259) as strictly as serde_json does and reports where a text stops
//! being JSON by line and column.

use std::borrow::Cow;

use crate::parse::decimal::{self, NumberError};

/// serde_json's nesting limit, so a skipped value cannot exhaust the stack.
const MAX_DEPTH: usize = 128;

/// Where and why a text is not JSON (answered 400), or a number f32 cannot hold.
pub enum CursorError {
    Syntax(String),
    Range,
}

pub struct JsonCursor<'a> {
    pub text: &'a [u8],
    pub pos: usize,
}

impl<'a> JsonCursor<'a> {
    pub fn new(text: &'a [u8]) -> Self {
        JsonCursor { text, pos: 0 }
    }

    /// The next significant byte, after whitespace, without taking it.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        while let Some(&c) = self.text.get(self.pos) {
            if !matches!(c, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(c);
            }
            self.pos += 1;
        }
        None
    }

    /// Takes `byte` if it is next, else reports what was expected there.
    #[inline]
    pub fn expect(&mut self, byte: u8, what: &str) -> Result<(), CursorError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.syntax(what))
        }
    }

    /// After an element of an array or object: `true` if another follows (a comma was
    /// taken), `false` at the closing `close` (taken).
    #[inline]
    pub fn more(&mut self, close: u8, what: &str) -> Result<bool, CursorError> {
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(c) if c == close => {
                self.pos += 1;
                Ok(false)
            }
            _ => Err(self.syntax(what)),
        }
    }

    /// Takes `close` if the container is empty.
    #[inline]
    pub fn empty(&mut self, close: u8) -> bool {
        let empty = self.peek() == Some(close);
        if empty {
            self.pos += 1;
        }
        empty
    }

    /// "`what` at line L column C", or "EOF while parsing" at the end of the text.
    pub fn syntax(&self, what: &str) -> CursorError {
        let before = &self.text[..self.pos.min(self.text.len())];
        let line = 1 + before.iter().filter(|&&c| c == b'\n').count();
        let column = 1 + before.iter().rev().take_while(|&&c| c != b'\n').count();
        let problem = if self.pos >= self.text.len() {
            format!("EOF while parsing the body, expected {what}")
        } else {
            format!("expected {what}")
        };
        CursorError::Syntax(format!("{problem} at line {line} column {column}"))
    }

    #[inline(always)]
    pub fn number(&mut self) -> Result<f32, CursorError> {
        match decimal::parse(&self.text[self.pos..]) {
            Ok((value, used)) => {
                self.pos += used;
                Ok(value)
            }
            Err(NumberError::Range) => Err(CursorError::Range),
            Err(NumberError::Syntax(at)) => {
                self.pos += at;
                Err(self.syntax("a digit"))
            }
        }
    }

    /// A string (the cursor at its opening quote), borrowed from the text unless it has
    /// escapes.
    pub fn string(&mut self) -> Result<Cow<'a, str>, CursorError> {
        self.expect(b'"', "a string")?;
        let start = self.pos;
        let mut owned: Option<Vec<u8>> = None;
        let mut run = start; // start of the unescaped bytes not yet copied into `owned`
        loop {
            let Some(&c) = self.text.get(self.pos) else {
                return Err(self.syntax("a closing quote"));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let out = owned.get_or_insert_with(Vec::new);
                    out.extend_from_slice(&self.text[run..self.pos]);
                    self.pos += 1;
                    self.escape(out)?;
                    run = self.pos;
                }
                0..=0x1f => return Err(self.syntax("no control character in a string")),
                _ => self.pos += 1,
            }
        }
        let end = self.pos;
        self.pos += 1;
        let text = match owned {
            None => std::str::from_utf8(&self.text[start..end])
                .ok()
                .map(Cow::Borrowed),
            Some(mut out) => {
                out.extend_from_slice(&self.text[run..end]);
                String::from_utf8(out).ok().map(Cow::Owned)
            }
        };
        text.ok_or_else(|| self.syntax("UTF-8 text in a string"))
    }

    /// One escape after its backslash, appended to `out` as UTF-8.
    fn escape(&mut self, out: &mut Vec<u8>) -> Result<(), CursorError> {
        let c = self.text.get(self.pos).copied();
        self.pos += 1;
        let simple = match c {
            Some(b'"') => b'"',
            Some(b'\\') => b'\\',
            Some(b'/') => b'/',
            Some(b'b') => 8,
            Some(b'f') => 12,
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b't') => b'\t',
            Some(b'u') => {
                let mut code = u32::from(self.hex4()?);
                if (0xD800..0xDC00).contains(&code) {
                    // A high surrogate must be followed by an escaped low one.
                    if self.text.get(self.pos..self.pos + 2) != Some(b"\\u") {
                        return Err(self.syntax("a low surrogate escape"));
                    }
                    self.pos += 2;
                    let low = u32::from(self.hex4()?);
                    if !(0xDC00..0xE000).contains(&low) {
                        return Err(self.syntax("a low surrogate escape"));
                    }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                }
                let Some(ch) = char::from_u32(code) else {
                    return Err(self.syntax("a valid unicode escape"));
                };
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                return Ok(());
            }
            _ => {
                self.pos -= 1;
                return Err(self.syntax("a valid escape"));
            }
        };
        out.push(simple);
        Ok(())
    }

    fn hex4(&mut self) -> Result<u16, CursorError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|d| u16::from_str_radix(d, 16).ok());
        match digits {
            Some(v) => {
                self.pos += 4;
                Ok(v)
            }
            None => Err(self.syntax("four hex digits")),
        }
    }

    /// Takes `word` (`true`, `false`, `null`) if the text has it here.
    pub fn literal(&mut self, word: &[u8]) -> Result<(), CursorError> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(self.syntax("a JSON value"))
        }
    }

    /// Checks and steps over any one value.
    pub fn skip_value(&mut self, depth: usize) -> Result<(), CursorError> {
        if depth > MAX_DEPTH {
            return Err(self.syntax("less nesting"));
        }
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'[') => {
                self.pos += 1;
                if !self.empty(b']') {
                    loop {
                        self.skip_value(depth + 1)?;
                        if !self.more(b']', "`,` or `]`")? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            Some(b'{') => {
                self.pos += 1;
                if !self.empty(b'}') {
                    loop {
                        self.peek();
                        self.string()?;
                        self.expect(b':', "`:`")?;
                        self.skip_value(depth + 1)?;
                        if !self.more(b'}', "`,` or `}`")? {
                            break;
                        }
                    }
                }
                Ok(())
            }
            // A number too large for f32 is still JSON where its value is ignored.
            Some(b'-' | b'0'..=b'9') => match self.number() {
                Err(CursorError::Range) => self.skip_digits(),
                other => other.map(drop),
            },
            _ => Err(self.syntax("a JSON value")),
        }
    }

    /// Steps over number text already known to be valid.
    fn skip_digits(&mut self) -> Result<(), CursorError> {
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.text.get(self.pos) {
            self.pos += 1;
        }
        Ok(())
    }

    /// What kind of value starts here, for "is a string, not a number" messages; `None`
    /// if no JSON value does.
    pub fn kind(&mut self) -> Option<&'static str> {
        let first = self.peek()?;
        let rest = &self.text[self.pos..];
        Some(match first {
            b'"' => "a string",
            b'[' => "an array",
            b'{' => "an object",
            b'-' | b'0'..=b'9' => "a number",
            _ if rest.starts_with(b"true") || rest.starts_with(b"false") => "a boolean",
            _ if rest.starts_with(b"null") => "null",
            _ => return None,
        })
    }
}
