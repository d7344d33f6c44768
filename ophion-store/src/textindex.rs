//! The text index: which blocks of a Parquet file may hold a search term.
//!
//! A log search (`body LIKE '%ord-83748213%'`, `ILIKE`, the API's and the
//! copilot's `strpos(lower(body), ...)`) otherwise decompresses and scans
//! every body. Each file of an indexed signal carries, per block of
//! [`BLOCK_ROWS`] rows, a split-block bloom filter of the block's *grams*;
//! a search reads only the blocks whose filter holds every gram of its
//! literal text, through a Parquet row selection (pages of other blocks are
//! never fetched or decoded). DataFusion still evaluates the predicate on
//! every row it reads, so the index can only skip rows that cannot match:
//! it never changes a result. See `docs/adr/004-text-index.md` for the
//! measurements behind the choices.
//!
//! **Grams.** Text is folded (ASCII case folded; the few non-ASCII letters
//! that fold or lower-case to ASCII mapped to it; every other character a
//! separator) and split into tokens, the runs of `[a-z0-9]`. A token of at
//! least [`GRAM`] characters contributes its `GRAM`-character substrings
//! that start at every [`STRIDE`]-th position (every one as shipped; the
//! format also serves sparser grams, measured and not shipped); a shorter
//! one contributes itself, marked as a whole token.
//! A searched literal folds the same way. Each of its tokens of `GRAM` or
//! more characters lies inside some token of the line, whatever surrounds
//! it: where the literal shows the token's start (a separator before it),
//! its grams at positions 0, stride, ... must all be in the block; where it
//! does not, the literal may start at any position of the line's token, so
//! one of the stride's alignments of grams must be. A shorter token needs itself as a whole token only where the literal
//! bounds it on both sides (`'% 404 %'`); otherwise it adds no condition.
//! So substring semantics hold: `'%83748213%'` finds `order=83748213,` and
//! `x837482139`. Keys made of letters only (words', [`TWIN_WORDS`]) and
//! those of long numbers ([`DIGIT_GRAM`]) are in a block's filter under two
//! independent keys, and a search needs both: a search that knows only one
//! or two of them would otherwise pass a block by chance about one time in
//! ten.
//!
//! **Where it lives.** The filters are written into the Parquet file
//! itself, after the row groups, and found through the footer's key-value
//! entry [`KV_KEY`]: the index is published, copied and deleted with its
//! file, and files without one (older files, other signals) are scanned
//! whole.

use std::sync::Arc;

use arrow_array::{Array, RecordBatch, cast::AsArray};
use arrow_schema::DataType;
use bytes::Bytes;
use datafusion::{
    common::ScalarValue,
    logical_expr::{BinaryExpr, Expr, Operator, expr::Like, utils::split_conjunction},
};
use ophion_core::{Signal, schema::col};

use parquet::arrow::arrow_reader::{RowSelection, RowSelector};

/// Rows per indexed block: the unit a search skips.
pub const BLOCK_ROWS: usize = 8192;

/// Characters per gram.
pub const GRAM: usize = 5;

/// Bloom filter bits per distinct gram of a block.
pub const BITS_PER_GRAM: usize = 6;

/// Every how many positions of a token a gram is indexed: every one. The
/// format and the searches also serve sparser grams, measured and not
/// shipped (a 5-character search at an unknown position in a token then
/// needs nothing; see `docs/adr/004-text-index.md`).
pub const STRIDE: usize = 1;

/// Digits in a run of at least this many (order ids, user ids, long
/// numbers) are indexed as grams of this many digits instead of
/// [`GRAM`]-character ones: ten digits make only 100,000 grams of five,
/// which a block of number-heavy lines holds half of, so a search for a
/// number would read most blocks.
pub const DIGIT_GRAM: usize = 8;

/// Marks the second key of a digit gram, and of a word key when
/// [`TWIN_WORDS`]. A search for a long number needs only its few digit
/// grams, so one key each would let a block through at the filter's
/// false-positive rate (measured: 13 % of the rows read for the order id);
/// two independent keys square that rate.
const TWIN: u64 = 1 << 47;

/// Word keys (grams and short tokens of letters only, `is_word_key`) go
/// into a block's filter under two keys too. A search whose words give it
/// one certain gram (`'%E_QUOTA_7731%'`: the `_` are wildcards, so only
/// `quota` is known, and at an unknown place in a token) otherwise passes
/// a block without it at the filter's false-positive rate, about one in
/// ten at [`BITS_PER_GRAM`]. Words repeat from line to line (they are the
/// message templates), so a block holds few distinct ones and their
/// second keys cost little; the random tokens that fill an index hold
/// digits. See `docs/adr/004-text-index.md`.
pub const TWIN_WORDS: bool = true;

/// Whether `key` (of a gram or a whole short token) is made of letters
/// only. Folded text is `[a-z0-9]` and separators: letters have bit 6
/// set, digits do not.
fn is_word_key(key: u64) -> bool {
    let len = ((key >> 40) & 0x7f) as usize;
    let chars = match len {
        l if l == GRAM + 1 => GRAM,
        l if (1..GRAM).contains(&l) => l,
        _ => return false,
    };
    let letters = 0x40_4040_4040u64 & ((1u64 << (8 * chars)) - 1);
    key & letters == letters
}

/// The length field of a digit gram's key (grams use `GRAM + 1`, whole
/// tokens their length).
fn digit_tag(digit_gram: usize) -> u64 {
    16 + digit_gram as u64
}

/// The longest digit gram a file may declare (its digits fill 48 bits).
const MAX_DIGIT_GRAM: usize = 12;

/// The footer key-value entry that locates a file's index:
/// `<byte offset>:<length>`.
pub const KV_KEY: &str = "ophion.text_index";

/// Format 3 adds a flags byte ([`FLAG_TWIN_WORDS`]); format 2 (its
/// stride and digit grams recorded) and format 1 (every gram, digits
/// alike) are still read.
const MAGIC: &[u8; 4] = b"OTX3";
const MAGIC_V2: &[u8; 4] = b"OTX2";
const MAGIC_V1: &[u8; 4] = b"OTX1";

/// Format 3's flag: word keys are in the filters twice ([`TWIN_WORDS`]).
const FLAG_TWIN_WORDS: u8 = 1;

/// Separator byte of folded text.
const SEP: u8 = 0;
/// A wildcard or an unknown character of a pattern.
const OPEN: u8 = 1;

/// The columns of `signal`'s files that are indexed.
pub fn indexed_columns(signal: Signal) -> &'static [&'static str] {
    match signal {
        Signal::Logs => &[col::BODY],
        Signal::Traces | Signal::Metrics => &[],
    }
}

/// Appends `c` folded: ASCII letters and digits in lower case, the
/// non-ASCII letters that match or lower-case to ASCII letters under
/// `ILIKE` or `lower()` (Kelvin sign, long s, dotless and dotted capital
/// i) as those letters, anything else as a separator.
fn fold_char(c: char, out: &mut Vec<u8>) {
    match c {
        'a'..='z' | '0'..='9' => out.push(c as u8),
        'A'..='Z' => out.push(c.to_ascii_lowercase() as u8),
        '\u{212A}' => out.push(b'k'),
        '\u{17F}' => out.push(b's'),
        '\u{131}' => out.push(b'i'),
        // lower('İ') is 'i' followed by a combining dot.
        '\u{130}' => out.extend_from_slice(&[b'i', SEP]),
        _ => out.push(SEP),
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// [`fold_char`] of every ASCII byte, for lines that are all ASCII.
static FOLD_ASCII: [u8; 128] = {
    let mut t = [SEP; 128];
    let mut i = 0;
    while i < 128 {
        let b = i as u8;
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            t[i] = b;
        } else if b.is_ascii_uppercase() {
            t[i] = b.to_ascii_lowercase();
        }
        i += 1;
    }
    t
};

const GRAM_BITS: u64 = (1 << (8 * GRAM)) - 1;

/// Slots of [`IndexBuilder`]'s recent keys (a power of two).
const RECENT: usize = 4096;

/// The key of a gram or a whole short token of column `column`: the bytes
/// themselves (at most 5, 40 bits), their length (`GRAM + 1` for a gram,
/// so a gram never equals a whole token) and the column.
fn key(column: u8, bytes: &[u8], gram: bool) -> u64 {
    let mut v = 0u64;
    for &b in bytes {
        v = (v << 8) | u64::from(b);
    }
    let len = if gram {
        GRAM as u64 + 1
    } else {
        bytes.len() as u64
    };
    v | (len << 40) | (u64::from(column) << 48)
}

/// Calls `f` with the start and end of every token (run of token bytes)
/// of `folded`.
fn each_token(folded: &[u8], mut f: impl FnMut(usize, usize)) {
    let mut i = 0;
    while i < folded.len() {
        if !is_token_byte(folded[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < folded.len() && is_token_byte(folded[i]) {
            i += 1;
        }
        f(start, i);
    }
}

/// Writes into `out` the key of every indexed gram of the folded `text`
/// (those at every `stride`-th position of a token, but for digits inside
/// a run of `digit_gram` or more, see [`DIGIT_GRAM`]), every
/// `digit_gram`-digit gram of such a run, and every whole short token, in
/// text order (the twins of word keys are added by [`IndexBuilder`]);
/// returns how many. `out` is grown to twice the text's length and two
/// more, the most a text can make. This runs on every ingested line: a
/// token without digits (most of them) is one tight loop of rolling
/// grams, and keys go to a slice, not through a callback.
fn each_key(column: u8, text: &[u8], kind: Kind, out: &mut Vec<u64>) -> usize {
    let Kind {
        stride, digit_gram, ..
    } = kind;
    if out.len() < 2 * text.len() + 2 {
        out.resize(2 * text.len() + 2, 0);
    }
    let out = &mut out[..];
    let gram_tag = ((GRAM as u64 + 1) << 40) | (u64::from(column) << 48);
    let (mut n, mut i) = (0, 0);
    while i < text.len() {
        // Folded text is token bytes and separators only.
        if text[i] == SEP {
            i += 1;
            continue;
        }
        let (start, mut digits) = (i, false);
        while i < text.len() && text[i] != SEP {
            digits |= text[i].is_ascii_digit();
            i += 1;
        }
        let token = &text[start..i];
        if token.len() < GRAM {
            out[n] = key(column, token, false);
            n += 1;
        } else if digits && digit_gram > 0 {
            n = token_with_digits(column, token, kind, out, n);
        } else {
            let mut v = token[..GRAM - 1]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b));
            // Counted down, not `j % stride`: a division a byte cost a
            // fifth of the builder's time.
            let mut skip = 0;
            for &b in &token[GRAM - 1..] {
                v = ((v << 8) | u64::from(b)) & GRAM_BITS;
                if skip == 0 {
                    out[n] = v | gram_tag;
                    n += 1;
                    skip = stride;
                }
                skip -= 1;
            }
        }
    }
    n
}

/// [`each_key`] of one token of at least [`GRAM`] characters that holds
/// digits, written into `out` from `n`; returns the new end.
fn token_with_digits(column: u8, token: &[u8], kind: Kind, out: &mut [u64], mut n: usize) -> usize {
    let Kind {
        stride, digit_gram, ..
    } = kind;
    let column = u64::from(column) << 48;
    let gram_tag = ((GRAM as u64 + 1) << 40) | column;
    let digit_tag = (digit_tag(digit_gram) << 40) | column;
    let digit_bits = (1u64 << (4 * digit_gram)) - 1;
    let mut put = |key| {
        out[n] = key;
        n += 1;
    };
    let (mut v, mut run, mut next) = (0u64, 0usize, GRAM);
    // The trailing run of digits (4 bits each), its length, and its
    // all-digit grams held until the run is known to stay short.
    let (mut dv, mut digits) = (0u64, 0usize);
    let mut held = [0u64; MAX_DIGIT_GRAM];
    let mut n_held = 0;
    for &b in token {
        if b.is_ascii_digit() {
            digits += 1;
            dv = ((dv << 4) | u64::from(b - b'0')) & digit_bits;
            if digits >= digit_gram {
                // A long run: its digit grams replace its gram-sized ones,
                // each under two tags (see `DIGIT_GRAM`).
                n_held = 0;
                put(dv | digit_tag);
                put(dv | digit_tag | TWIN);
            }
        } else {
            if digits < digit_gram {
                held[..n_held].iter().for_each(|&k| put(k));
            }
            (dv, digits, n_held) = (0, 0, 0);
        }
        v = ((v << 8) | u64::from(b)) & GRAM_BITS;
        run += 1;
        if run == next {
            next += stride;
            let key = v | gram_tag;
            if digits < GRAM {
                put(key);
            } else if digits < digit_gram {
                held[n_held] = key;
                n_held += 1;
            }
        }
    }
    if digits < digit_gram {
        held[..n_held].iter().for_each(|&k| put(k));
    }
    n
}

/// A stable 64-bit mix of a key (splitmix64's finalizer): the filter's
/// hash, fixed forever because it is written into files.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The salts of Parquet's split-block bloom filter.
const SALT: [u32; 8] = [
    0x47b6_137b,
    0x4497_4d91,
    0x8824_ad5b,
    0xa2b7_289d,
    0x7054_95c7,
    0x2df1_424b,
    0x9efc_4947,
    0x5c6b_fb31,
];

fn bucket_of(h: u64, buckets: usize) -> usize {
    (((h >> 32) * buckets as u64) >> 32) as usize
}

fn mask(h: u64) -> [u32; 8] {
    let k = h as u32;
    SALT.map(|s| 1u32 << (k.wrapping_mul(s) >> 27))
}

/// Builds a file's index from its rows, in file order.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    columns: Vec<String>,
    /// How keys are taken: [`Kind::SHIPPED`].
    kind: Kind,
    /// The mixed keys of the open block (a repeat may be among them) are
    /// its first [`Self::keys`]; the rest is room.
    hashes: Vec<u64>,
    keys: usize,
    /// Scratch: the keys of one value.
    found: Vec<u64>,
    /// The block's recently added keys, by their low bits: most of a
    /// line's grams repeat earlier lines' (the message templates), and
    /// skipping them here cost less than counting and inserting them.
    recent: Vec<u64>,
    /// Scratch bitmap counting the block's distinct keys.
    seen: Vec<u64>,
    rows: usize,
    out: Vec<u8>,
    blocks: u32,
    folded: Vec<u8>,
}

impl IndexBuilder {
    /// A builder for `signal`'s files, or `None` when nothing is indexed.
    pub fn for_signal(signal: Signal) -> Option<Self> {
        let columns = indexed_columns(signal);
        (!columns.is_empty()).then(|| Self {
            columns: columns.iter().map(|c| (*c).to_string()).collect(),
            ..Self::default()
        })
    }

    /// Adds the next rows of the file.
    pub fn push(&mut self, batch: &RecordBatch) -> crate::Result<()> {
        let mut columns = Vec::with_capacity(self.columns.len());
        for name in &self.columns {
            let array = batch
                .column_by_name(name)
                .ok_or_else(|| crate::Error::Corrupt(format!("batch has no column {name}")))?;
            columns.push(Arc::clone(array));
        }
        let mut row = 0;
        while row < batch.num_rows() {
            let take = (BLOCK_ROWS - self.rows).min(batch.num_rows() - row);
            for (c, array) in columns.iter().enumerate() {
                self.add(c as u8, array.as_ref(), row, take);
            }
            self.rows += take;
            row += take;
            if self.rows == BLOCK_ROWS {
                self.close_block();
            }
        }
        Ok(())
    }

    fn add(&mut self, column: u8, array: &dyn Array, from: usize, len: usize) {
        if self.recent.is_empty() {
            self.forget_recent();
        }
        let Self {
            hashes,
            keys,
            recent,
            folded,
            found,
            kind,
            ..
        } = self;
        let mut one = |s: &str| {
            folded.clear();
            if s.is_ascii() {
                folded.extend(s.bytes().map(|b| FOLD_ASCII[usize::from(b & 0x7f)]));
            } else {
                for c in s.chars() {
                    fold_char(c, folded);
                }
            }
            let new = each_key(column, folded, *kind, found);
            // Room for every key and its twin.
            if hashes.len() < *keys + 2 * new {
                hashes.resize((*keys + 2 * new).max(2 * hashes.len()), 0);
            }
            // Every key is written, and kept by moving the end past it
            // unless it is a recent repeat: no branch to mispredict. A
            // word key's twin is added with it, and is a repeat when it
            // is (twinning every word key before that test cost 0.1 to
            // 0.2 µs a line more).
            let mut end = *keys;
            for &k in &found[..new] {
                let h = mix(k);
                let slot = &mut recent[h as usize % RECENT];
                let repeat = *slot == h;
                *slot = h;
                hashes[end] = h;
                end += usize::from(!repeat);
                if !repeat && kind.twins(k) {
                    hashes[end] = mix(k | TWIN);
                    end += 1;
                }
            }
            *keys = end;
        };
        let array = array.slice(from, len);
        let values: Box<dyn Iterator<Item = Option<&str>>> = match array.data_type() {
            DataType::Utf8 => Box::new(array.as_string::<i32>().iter()),
            DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
            DataType::Utf8View => Box::new(array.as_string_view().iter()),
            _ => return,
        };
        values.flatten().for_each(&mut one);
    }

    /// Empties [`Self::recent`]: each slot holds a value no key of that
    /// slot can have.
    fn forget_recent(&mut self) {
        self.recent.clear();
        self.recent.extend((0..RECENT as u64).map(|i| i ^ 1));
    }

    /// The number of distinct keys among the block's, estimated by linear
    /// counting on a bitmap of at least as many bits as keys (within a
    /// fraction of a percent there; a hash set cost twice the CPU).
    fn distinct_keys(&mut self) -> usize {
        let hashes = &self.hashes[..self.keys];
        let bits = hashes.len().next_power_of_two().max(1 << 12);
        let shift = 64 - bits.trailing_zeros();
        self.seen.clear();
        self.seen.resize(bits / 64, 0);
        for &h in hashes {
            let bit = (h >> shift) as usize;
            self.seen[bit / 64] |= 1 << (bit % 64);
        }
        let ones: u64 = self.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        let m = bits as f64;
        if ones as usize == bits {
            return hashes.len();
        }
        let estimate = -m * (1.0 - ones as f64 / m).ln();
        (estimate.ceil() as usize).min(hashes.len())
    }

    fn close_block(&mut self) {
        if self.rows == 0 {
            return;
        }
        let buckets = (self.distinct_keys() * BITS_PER_GRAM).div_ceil(256).max(1);
        let mut words = vec![0u32; buckets * 8];
        for &h in &self.hashes[..self.keys] {
            let b = bucket_of(h, buckets);
            for (w, m) in words[b * 8..b * 8 + 8].iter_mut().zip(mask(h)) {
                *w |= m;
            }
        }
        self.out
            .extend_from_slice(&(self.rows as u32).to_le_bytes());
        self.out.extend_from_slice(&(buckets as u32).to_le_bytes());
        for w in words {
            self.out.extend_from_slice(&w.to_le_bytes());
        }
        self.blocks += 1;
        self.rows = 0;
        self.keys = 0;
        self.forget_recent();
    }

    /// The serialized index (empty when no rows were added).
    pub fn finish(mut self) -> Vec<u8> {
        self.close_block();
        if self.blocks == 0 {
            return Vec::new();
        }
        encode(&self.columns, self.kind, self.blocks, &self.out)
    }
}

/// How an index's keys were taken (format 1: every gram, digits alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    stride: usize,
    digit_gram: usize,
    /// Word keys ([`is_word_key`]) are in the filter twice (format 3).
    twin_words: bool,
}

impl Kind {
    /// How this version writes its indexes.
    const SHIPPED: Self = Self {
        stride: STRIDE,
        digit_gram: DIGIT_GRAM,
        twin_words: TWIN_WORDS,
    };
    /// Format 1's, and a key set that needs nothing in particular.
    const EVERY_GRAM: Self = Self {
        stride: 1,
        digit_gram: 0,
        twin_words: false,
    };

    /// Whether `key` is in this kind's filters twice.
    fn twins(self, key: u64) -> bool {
        self.twin_words && is_word_key(key)
    }
}

impl Default for Kind {
    fn default() -> Self {
        Self::SHIPPED
    }
}

fn encode(columns: &[String], kind: Kind, blocks: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(MAGIC);
    out.push(GRAM as u8);
    out.push(kind.stride as u8);
    out.push(kind.digit_gram as u8);
    out.push(if kind.twin_words { FLAG_TWIN_WORDS } else { 0 });
    out.push(columns.len() as u8);
    for c in columns {
        out.push(c.len() as u8);
        out.extend_from_slice(c.as_bytes());
    }
    out.extend_from_slice(&blocks.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// One block of a parsed index.
#[derive(Debug, Clone, Copy)]
struct Block {
    rows: u32,
    /// Offset of its first filter word in the index bytes.
    start: usize,
    buckets: usize,
}

/// A file's parsed index.
#[derive(Debug)]
pub struct FileIndex {
    columns: Vec<String>,
    /// How its keys were taken.
    kind: Kind,
    blocks: Vec<Block>,
    /// Where the blocks start in `bytes`.
    body: usize,
    bytes: Bytes,
}

fn corrupt(what: &str) -> crate::Error {
    crate::Error::Corrupt(format!("text index: {what}"))
}

impl FileIndex {
    /// Parses an index written by [`IndexBuilder::finish`].
    pub fn parse(bytes: Bytes) -> crate::Result<Self> {
        let b = &bytes[..];
        let u32_at = |at: usize| -> crate::Result<u32> {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| corrupt("truncated"))
        };
        let byte = |at: usize| b.get(at).copied().ok_or_else(|| corrupt("truncated"));
        let (kind, mut at) = match b.get(..4) {
            Some(m) if m == MAGIC_V1 => (Kind::EVERY_GRAM, 5),
            Some(m) if m == MAGIC_V2 || m == MAGIC => {
                let kind = Kind {
                    stride: usize::from(byte(5)?),
                    digit_gram: usize::from(byte(6)?),
                    twin_words: false,
                };
                if m == MAGIC_V2 {
                    (kind, 7)
                } else {
                    let flags = byte(7)?;
                    if flags & !FLAG_TWIN_WORDS != 0 {
                        return Err(corrupt("unknown format"));
                    }
                    let twin_words = flags & FLAG_TWIN_WORDS != 0;
                    (Kind { twin_words, ..kind }, 8)
                }
            }
            _ => return Err(corrupt("unknown format")),
        };
        let digits_ok =
            kind.digit_gram == 0 || (GRAM < kind.digit_gram && kind.digit_gram <= MAX_DIGIT_GRAM);
        if b.get(4) != Some(&(GRAM as u8)) || kind.stride == 0 || !digits_ok {
            return Err(corrupt("unknown format"));
        }
        let n = *b.get(at).ok_or_else(|| corrupt("truncated"))? as usize;
        at += 1;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            let len = *b.get(at).ok_or_else(|| corrupt("truncated"))? as usize;
            let name = b
                .get(at + 1..at + 1 + len)
                .ok_or_else(|| corrupt("truncated"))?;
            columns.push(String::from_utf8_lossy(name).into_owned());
            at += 1 + len;
        }
        let count = u32_at(at)? as usize;
        at += 4;
        let body = at;
        let mut blocks = Vec::with_capacity(count);
        for _ in 0..count {
            let rows = u32_at(at)?;
            let buckets = u32_at(at + 4)? as usize;
            let start = at + 8;
            at = start + buckets * 32;
            if at > b.len() || buckets == 0 {
                return Err(corrupt("truncated"));
            }
            blocks.push(Block {
                rows,
                start,
                buckets,
            });
        }
        Ok(Self {
            columns,
            kind,
            blocks,
            body,
            bytes,
        })
    }

    /// Rows the index covers.
    pub fn rows(&self) -> u64 {
        self.blocks.iter().map(|b| u64::from(b.rows)).sum()
    }

    /// Bytes held in memory.
    pub fn size(&self) -> usize {
        self.bytes.len()
    }

    fn holds(&self, block: &Block, key: u64) -> bool {
        let h = mix(key);
        let at = block.start + bucket_of(h, block.buckets) * 32;
        let words = &self.bytes[at..at + 32];
        mask(h).iter().enumerate().all(|(i, m)| {
            let w = u32::from_le_bytes([
                words[i * 4],
                words[i * 4 + 1],
                words[i * 4 + 2],
                words[i * 4 + 3],
            ]);
            w & m == *m
        })
    }

    /// The rows `search` may match, or `None` when the index cannot tell
    /// (a searched column is not indexed in this file, or the search needs
    /// nothing this file's index holds) or every block may match: a scan
    /// handed a selection of every row ran up to 1.7 times slower than a
    /// plain one.
    pub fn select(&self, search: &TextSearch) -> Option<RowSelection> {
        let need = search.resolve(&self.columns, self.kind)?;
        if need.always() {
            return None;
        }
        let pass: Vec<bool> = self
            .blocks
            .iter()
            .map(|block| need.holds(&|k| self.holds(block, k)))
            .collect();
        if pass.iter().all(|p| *p) {
            return None;
        }
        let mut selectors: Vec<RowSelector> = Vec::with_capacity(self.blocks.len());
        for (block, pass) in self.blocks.iter().zip(pass) {
            let rows = block.rows as usize;
            match selectors.last_mut() {
                Some(last) if last.skip != pass => last.row_count += rows,
                _ => selectors.push(if pass {
                    RowSelector::select(rows)
                } else {
                    RowSelector::skip(rows)
                }),
            }
        }
        Some(RowSelection::from(selectors))
    }

    /// The index of files concatenated in order (their row groups copied
    /// as they are), or `None` when their indexes differ in kind.
    pub fn concat(parts: &[Self]) -> Option<Vec<u8>> {
        let first = parts.first()?;
        if parts
            .iter()
            .any(|p| p.columns != first.columns || p.kind != first.kind)
        {
            return None;
        }
        let mut body = Vec::new();
        let mut blocks = 0u32;
        for p in parts {
            body.extend_from_slice(&p.bytes[p.body..]);
            blocks += p.blocks.len() as u32;
        }
        Some(encode(&first.columns, first.kind, blocks, &body))
    }
}

/// What a block must hold, over keys of type `K`: a condition tree.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Need<K> {
    Key(K),
    All(Vec<Need<K>>),
    Any(Vec<Need<K>>),
}

impl Need<u64> {
    /// True of every block (an empty `All`, or an `Any` with such a branch).
    fn always(&self) -> bool {
        match self {
            Need::Key(_) => false,
            Need::All(all) => all.iter().all(Need::always),
            Need::Any(any) => any.iter().any(Need::always),
        }
    }

    fn holds(&self, has: &impl Fn(u64) -> bool) -> bool {
        match self {
            Need::Key(k) => has(*k),
            Need::All(all) => all.iter().all(|n| n.holds(has)),
            Need::Any(any) => any.iter().any(|n| n.holds(has)),
        }
    }
}

/// A supported predicate: the folded literal text it needs in a column.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Text {
    column: String,
    folded: Vec<u8>,
}

/// What a query's filters require of a block's text: every clause must
/// hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextSearch {
    clauses: Vec<Need<Text>>,
}

impl TextSearch {
    /// The conditions the filters (a conjunction) put on `columns`, or
    /// `None` when none of them helps.
    pub fn from_filters(filters: &[Expr], columns: &[&str]) -> Option<Self> {
        if columns.is_empty() {
            return None;
        }
        let clauses: Vec<_> = filters
            .iter()
            .flat_map(split_conjunction)
            .filter_map(|e| clause(e, columns))
            .filter(|c| !c.resolve(&|_| Some(0), Kind::EVERY_GRAM).always())
            .collect();
        (!clauses.is_empty()).then_some(Self { clauses })
    }

    /// The clauses as keys of an index with `columns` whose keys were
    /// taken as `kind` says; `None` if a column is not indexed.
    fn resolve(&self, columns: &[String], kind: Kind) -> Option<Need<u64>> {
        let column = |c: &str| columns.iter().position(|x| x == c).map(|i| i as u8);
        let mut all = Vec::with_capacity(self.clauses.len());
        for c in &self.clauses {
            all.push(c.try_resolve(&column, kind)?);
        }
        Some(Need::All(all))
    }
}

impl Need<Text> {
    fn try_resolve(&self, column: &impl Fn(&str) -> Option<u8>, kind: Kind) -> Option<Need<u64>> {
        Some(match self {
            Need::Key(t) => required_keys(column(&t.column)?, &t.folded, kind),
            Need::All(v) => Need::All(
                v.iter()
                    .map(|n| n.try_resolve(column, kind))
                    .collect::<Option<_>>()?,
            ),
            Need::Any(v) => Need::Any(
                v.iter()
                    .map(|n| n.try_resolve(column, kind))
                    .collect::<Option<_>>()?,
            ),
        })
    }

    /// Resolved with every column known (to tell whether it needs
    /// anything at all).
    fn resolve(&self, column: &impl Fn(&str) -> Option<u8>, kind: Kind) -> Need<u64> {
        self.try_resolve(column, kind)
            .unwrap_or(Need::All(Vec::new()))
    }
}

/// One filter as a condition tree: `OR` and `AND` of supported predicates.
/// `None` when some branch of an `OR` is not a text predicate (that branch
/// could match any block); an unsupported side of an `AND` is left out.
fn clause(e: &Expr, columns: &[&str]) -> Option<Need<Text>> {
    match e {
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Or,
            right,
        }) => Some(Need::Any(vec![
            clause(left, columns)?,
            clause(right, columns)?,
        ])),
        Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::And,
            right,
        }) => {
            let all: Vec<_> = [left, right]
                .into_iter()
                .filter_map(|side| clause(side, columns))
                .collect();
            (!all.is_empty()).then_some(Need::All(all))
        }
        _ => {
            let (column, folded) = text_condition(e, columns)?;
            Some(Need::Key(Text { column, folded }))
        }
    }
}

/// The literal text a supported predicate needs, folded, with `OPEN` where
/// anything may stand: `col [I]LIKE 'pattern'`, `strpos(col, 'x') > 0`,
/// `contains(col, 'x')` and the two functions of [`crate::textmatch`],
/// with `col` an indexed column or `lower()` of one.
fn text_condition(e: &Expr, columns: &[&str]) -> Option<(String, Vec<u8>)> {
    match e {
        Expr::Like(Like {
            negated: false,
            expr,
            pattern,
            escape_char,
            ..
        }) => {
            if escape_char.is_some_and(|c| c != '\\') {
                return None;
            }
            let column = indexed(expr, columns)?;
            Some((column, fold_pattern(string_literal(pattern)?)))
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            let positive = matches!(
                (op, int_literal(right)),
                (Operator::Gt | Operator::NotEq, Some(0)) | (Operator::GtEq, Some(1))
            );
            let Expr::ScalarFunction(f) = left.as_ref() else {
                return None;
            };
            if !positive || !matches!(f.name(), "strpos" | "instr" | "position") {
                return None;
            }
            needle(&f.args, columns)
        }
        Expr::ScalarFunction(f)
            if matches!(
                f.name(),
                "contains" | crate::textmatch::ICONTAINS | crate::textmatch::LOWER_CONTAINS
            ) =>
        {
            needle(&f.args, columns)
        }
        _ => None,
    }
}

fn needle(args: &[Expr], columns: &[&str]) -> Option<(String, Vec<u8>)> {
    let [haystack, needle] = args else {
        return None;
    };
    let column = indexed(haystack, columns)?;
    let mut folded = vec![OPEN];
    for c in string_literal(needle)?.chars() {
        fold_char(c, &mut folded);
    }
    folded.push(OPEN);
    Some((column, folded))
}

/// The indexed column `e` reads: the column, `lower()` of it, or a cast
/// of either between string types.
fn indexed(e: &Expr, columns: &[&str]) -> Option<String> {
    match e {
        Expr::Column(c) => columns
            .iter()
            .find(|x| **x == c.name)
            .map(|x| (*x).to_string()),
        Expr::Cast(c)
            if matches!(
                c.field.data_type(),
                DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8
            ) =>
        {
            indexed(&c.expr, columns)
        }
        Expr::ScalarFunction(f) if f.name() == "lower" && f.args.len() == 1 => {
            indexed(&f.args[0], columns)
        }
        _ => None,
    }
}

fn string_literal(e: &Expr) -> Option<&str> {
    match e {
        Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::Utf8View(Some(s))
            | ScalarValue::LargeUtf8(Some(s)),
            _,
        ) => Some(s),
        Expr::Cast(c) => string_literal(&c.expr),
        _ => None,
    }
}

fn int_literal(e: &Expr) -> Option<i64> {
    match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), _) => Some(*v),
        Expr::Literal(ScalarValue::Int32(Some(v)), _) => Some(i64::from(*v)),
        Expr::Cast(c) => int_literal(&c.expr),
        _ => None,
    }
}

/// A LIKE pattern folded: `%`, `_` and escaped characters become `OPEN`
/// (an escape and its character are unknown as far as the index is
/// concerned, which is safe whichever way the engine reads them); the start
/// and end of the pattern bound a token unless a wildcard stands there.
fn fold_pattern(pattern: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(pattern.len() + 2);
    out.push(SEP);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' | '_' => out.push(OPEN),
            '\\' => {
                chars.next();
                out.push(OPEN);
            }
            c => fold_char(c, &mut out),
        }
    }
    out.push(SEP);
    out
}

/// What a line's keys in column `column` must hold for the line to
/// contain the folded literal `folded`, in an index of `kind`.
fn required_keys(column: u8, folded: &[u8], kind: Kind) -> Need<u64> {
    // A word key and, where the index holds it, its twin.
    let word_or_key = |k: u64| {
        if kind.twins(k) {
            Need::All(vec![Need::Key(k), Need::Key(k | TWIN)])
        } else {
            Need::Key(k)
        }
    };
    let gram = |g: &[u8]| word_or_key(key(column, g, true));
    let mut all = Vec::new();
    each_token(folded, |start, end| {
        let token = &folded[start..end];
        let starts_token = start > 0 && folded[start - 1] == SEP;
        let ends_token = folded.get(end) == Some(&SEP);
        if token.len() < GRAM {
            if starts_token && ends_token {
                all.push(word_or_key(key(column, token, false)));
            }
            return;
        }
        // The digit runs of the token: (start, end, whether the line's run
        // is known to be just as long).
        let mut runs = Vec::new();
        let mut i = 0;
        while i < token.len() {
            if !token[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let a = i;
            while i < token.len() && token[i].is_ascii_digit() {
                i += 1;
            }
            let known = (a > 0 || starts_token) && (i < token.len() || ends_token);
            runs.push((a, i, known));
        }
        // Whether the gram at `q` is in the index of every line holding
        // the literal: not when all its characters are digits of a run
        // that is, or may be, a long one there.
        let indexed = |q: usize| {
            kind.digit_gram == 0
                || !runs.iter().any(|&(a, b, known)| {
                    a <= q && q + GRAM <= b && (b - a >= kind.digit_gram || !known)
                })
        };
        let grams = |from: usize| {
            Need::All(
                (from..=token.len() - GRAM)
                    .step_by(kind.stride)
                    .filter(|q| indexed(*q))
                    .map(|q| gram(&token[q..q + GRAM]))
                    .collect(),
            )
        };
        if starts_token {
            // At position 0 of the line's token: its indexed grams.
            all.push(grams(0));
        } else {
            // At an unknown position: one of the alignments.
            all.push(Need::Any((0..kind.stride).map(grams).collect()));
        }
        // Long runs of digits: every digit gram.
        if kind.digit_gram > 0 {
            for &(a, b, _) in &runs {
                for w in token[a..b].windows(kind.digit_gram) {
                    let digits = w.iter().fold(0u64, |v, d| (v << 4) | u64::from(d - b'0'));
                    let key =
                        digits | (digit_tag(kind.digit_gram) << 40) | (u64::from(column) << 48);
                    all.push(Need::Key(key));
                    all.push(Need::Key(key | TWIN));
                }
            }
        }
    });
    Need::All(all)
}

/// Parsed indexes of searched files, bounded in bytes
/// (`[store.query] text_index_cache_mb`).
///
/// A search passes over every file of its time range, so once the indexes
/// outgrow the cache, a cache that keeps the latest ones (first-in
/// first-out or least recently used) drops each index before the next
/// search needs it again and hits nothing. This one admits an index only
/// when it has been asked for more often than what it would evict
/// (moka's TinyLFU admission): a search over more than fits keeps what is
/// cached, and so finds that part, while the files that are searched more
/// often (a recent time range) win the room.
#[derive(Debug)]
pub struct IndexCache {
    cache: moka::sync::Cache<String, Arc<FileIndex>>,
}

impl IndexCache {
    /// A cache of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        let cache = moka::sync::Cache::builder()
            .max_capacity(limit as u64)
            .weigher(|_: &String, index: &Arc<FileIndex>| {
                u32::try_from(index.size()).unwrap_or(u32::MAX)
            })
            .build();
        Self { cache }
    }

    /// The cached index of `path`.
    pub fn get(&self, path: &str) -> Option<Arc<FileIndex>> {
        self.cache.get(path)
    }

    /// Offers `index` for `path` (see the type's documentation for what
    /// is kept).
    pub fn insert(&self, path: &str, index: Arc<FileIndex>) {
        self.cache.insert(path.to_string(), index);
    }

    /// Forgets `path` (its file was deleted).
    pub fn remove(&self, path: &str) {
        self.cache.invalidate(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col as c, lit};
    use std::collections::HashSet;

    fn keys_of(text: &str) -> HashSet<u64> {
        let mut folded = Vec::new();
        for ch in text.chars() {
            fold_char(ch, &mut folded);
        }
        let mut keys = Vec::new();
        let n = each_key(0, &folded, Kind::SHIPPED, &mut keys);
        // And the twins the builder adds.
        let twins = keys[..n]
            .iter()
            .filter(|k| is_word_key(**k))
            .map(|k| k | TWIN);
        keys[..n].iter().copied().chain(twins).collect()
    }

    /// What a search needs of a block of this version's index, when
    /// anything.
    fn needs(e: Expr) -> Option<Need<u64>> {
        let s = TextSearch::from_filters(&[e], &["body"])?;
        assert_eq!(s.clauses.len(), 1);
        let need = s.resolve(&["body".to_string()], Kind::SHIPPED)?;
        (!need.always()).then_some(need)
    }

    #[test]
    fn a_literal_needs_only_what_every_matching_line_holds() {
        let line = keys_of("Payment declined for ORDER=83748213, user Zoë (retry 2)");
        for (pattern, informative) in [
            ("%83748213%", true),
            ("%order=8374821%", true),
            ("%748213, user z%", true),
            ("%PAYMENT declined%", true),
            ("%retry 2)", true),
            ("Payment%", true),
            ("% for %", true),
            ("%zo_%", false),
            ("%ord%", false),
        ] {
            let need = needs(c("body").like(lit(pattern)));
            assert_eq!(need.is_some(), informative, "{pattern}");
            if let Some(need) = need {
                assert!(need.holds(&|k| line.contains(&k)), "{pattern}");
            }
        }
        // A whole short token is required only where the pattern bounds it.
        assert!(needs(c("body").like(lit("% for %"))).is_some());
        assert!(needs(c("body").like(lit("%for %"))).is_none());
    }

    #[test]
    fn non_ascii_letters_that_fold_to_ascii_are_indexed_as_ascii() {
        // 'ſ' matches 's' and the Kelvin sign 'k' under ILIKE; lower('İ')
        // starts with 'i'.
        let line = keys_of("\u{17F}ession \u{212A}eptic \u{130}STANBUL-44");
        for pattern in ["%session%", "%KEPTIC%", "%stanbul-44%"] {
            let e = c("body").ilike(lit(pattern));
            let need = needs(e).expect("informative");
            assert!(need.holds(&|k| line.contains(&k)), "{pattern}");
        }
        // strpos(lower(body), 'i̇stanbul'): lower('İ') is 'i' and a
        // combining dot, which separates tokens like the dot of the index.
        let lower = datafusion::functions::expr_fn::lower(c("body"));
        let strpos = datafusion::functions::expr_fn::strpos(lower, lit("i\u{307}stanbul"));
        let e = strpos.gt(lit(0));
        let need = needs(e.clone()).unwrap_or_else(|| panic!("informative: {e:?}"));
        assert!(need.holds(&|k| line.contains(&k)));
    }

    #[test]
    fn unsupported_or_negated_predicates_add_nothing() {
        assert!(needs(c("body").not_like(lit("%83748213%"))).is_none());
        assert!(needs(c("name").like(lit("%83748213%"))).is_none());
        assert!(needs(c("body").eq(lit("83748213"))).is_none());
        let mixed = c("body")
            .like(lit("%83748213%"))
            .or(c("severity_text").eq(lit("ERROR")));
        assert!(TextSearch::from_filters(&[mixed], &["body"]).is_none());
    }

    /// A batch of a single `body` column holding `rows`.
    fn body_batch(rows: Vec<String>) -> RecordBatch {
        let schema = Arc::new(arrow_schema::Schema::new(vec![arrow_schema::Field::new(
            "body",
            DataType::Utf8,
            true,
        )]));
        let array = arrow_array::StringArray::from(rows);
        RecordBatch::try_new(schema, vec![Arc::new(array)]).expect("batch")
    }

    #[test]
    fn blocks_without_the_grams_are_skipped() {
        let mut b = IndexBuilder::for_signal(Signal::Logs).expect("logs are indexed");
        let rows: Vec<String> = (0..BLOCK_ROWS * 3 + 5)
            .map(|i| format!("request {i} done"))
            .collect();
        let batch = body_batch(rows);
        // In two uneven pieces, so a block spans a batch boundary.
        b.push(&batch.slice(0, 1000)).expect("push");
        b.push(&batch.slice(1000, batch.num_rows() - 1000))
            .expect("push");
        let index = FileIndex::parse(Bytes::from(b.finish())).expect("parse");
        assert_eq!(index.rows(), batch.num_rows() as u64);
        let rows_total = batch.num_rows();
        let search = |p: &str| {
            let s = TextSearch::from_filters(&[c("body").like(lit(p))], &["body"]).expect("some");
            // None: every row may match.
            index
                .select(&s)
                .unwrap_or_else(|| RowSelection::from(vec![RowSelector::select(rows_total)]))
        };
        // Which blocks a selection reads (the filters may let a block
        // through by chance, at a few percent per gram; never drop one).
        let blocks = |sel: RowSelection| -> Vec<bool> {
            let mut read = vec![false; 4];
            let mut row = 0;
            for s in sel.iter() {
                if !s.skip {
                    for r in row..row + s.row_count {
                        read[r / BLOCK_ROWS] = true;
                    }
                }
                row += s.row_count;
            }
            read
        };
        let second = blocks(search(&format!("%request {} done%", BLOCK_ROWS + 17)));
        assert!(second[1], "the block holding the line");
        assert!(second.iter().filter(|b| **b).count() <= 2, "{second:?}");
        let last = blocks(search("%request 24580 done%"));
        assert!(last[3], "the last, short block");
        assert!(last.iter().filter(|b| **b).count() <= 2, "{last:?}");
        assert_eq!(search("%absent-token%").row_count(), 0);
        let twice = FileIndex::concat(&[
            FileIndex::parse(index.bytes.clone()).expect("parse"),
            FileIndex::parse(index.bytes.clone()).expect("parse"),
        ])
        .expect("same kind");
        let twice = FileIndex::parse(Bytes::from(twice)).expect("parse");
        assert_eq!(twice.rows(), 2 * index.rows());
    }

    /// Blocks of random words (letters `a` to `t`), and 2,000 searches for
    /// a 5-letter word with a `z` in it, which none holds: the share of
    /// blocks each index lets through by chance.
    #[test]
    fn a_search_with_one_word_gram_passes_few_blocks_without_it() {
        let mut seed = 0u64;
        let mut word = |len: usize, z: bool| -> String {
            seed += 1;
            let r = mix(seed);
            let mut w: Vec<u8> = (0..len)
                .map(|i| b'a' + ((r >> (5 * i)) % 20) as u8)
                .collect();
            if z {
                w[(r >> 60) as usize % len] = b'z';
            }
            String::from_utf8(w).expect("ascii")
        };
        let rows: Vec<String> = (0..BLOCK_ROWS * 16)
            .map(|_| format!("user {} did {} 42", word(8, false), word(7, false)))
            .collect();
        let batch = body_batch(rows);
        let probes: Vec<String> = (0..2000).map(|_| word(5, true)).collect();
        let passed = |twin_words: bool| -> f64 {
            let mut b = IndexBuilder::for_signal(Signal::Logs).expect("indexed");
            b.kind = Kind {
                twin_words,
                ..Kind::SHIPPED
            };
            b.push(&batch).expect("push");
            let index = FileIndex::parse(Bytes::from(b.finish())).expect("parse");
            let mut read = 0;
            for p in &probes {
                let s =
                    TextSearch::from_filters(&[c("body").like(lit(format!("%{p}%")))], &["body"])
                        .expect("informative");
                read += index.select(&s).map_or(BLOCK_ROWS * 16, |s| s.row_count());
            }
            read as f64 / (BLOCK_ROWS * 16 * probes.len()) as f64
        };
        let (once, twice) = (passed(false), passed(true));
        eprintln!("rows read by chance: one key {once:.4}, two keys {twice:.4}");
        // Measured: 9.9 % and 1.0 % (about the square).
        assert!(once > 0.05, "one key: {once}");
        assert!(twice < 0.02 && twice < once / 5.0, "two keys: {twice}");
    }

    #[test]
    fn literals_at_any_position_of_a_token_and_format_1_indexes_are_found() {
        // Filler with numbers of every length; the searched tokens are in
        // block 1 only.
        let tokens = [
            "9f3a7c21d4e8b6",
            "ord83748213409x",
            "4834680123",
            "x55512",
            "7731",
            // Words among digits: their letter grams are word keys too.
            "abquota7731x",
            "e9quotation",
        ];
        let mut rows: Vec<String> = (0..BLOCK_ROWS * 3)
            .map(|i| {
                format!(
                    "line {} of {} filler",
                    i % 97,
                    (i as u64) * 7919 % 1_000_003
                )
            })
            .collect();
        for (i, t) in tokens.iter().enumerate() {
            rows[BLOCK_ROWS + 5 + i] = format!("k={t} ok");
        }
        let batch = body_batch(rows);
        let build = |stride: usize, digit_gram: usize, twin_words: bool| {
            let mut b = IndexBuilder::for_signal(Signal::Logs).expect("indexed");
            b.kind = Kind {
                stride,
                digit_gram,
                twin_words,
            };
            b.push(&batch).expect("push");
            b.finish()
        };
        let parse = |stride, digits, twin| {
            FileIndex::parse(Bytes::from(build(stride, digits, twin))).expect("parse")
        };
        let mut indexes = vec![
            parse(STRIDE, DIGIT_GRAM, TWIN_WORDS),
            parse(STRIDE, DIGIT_GRAM, !TWIN_WORDS),
            parse(2, DIGIT_GRAM, true),
            parse(3, DIGIT_GRAM, false),
            parse(1, 6, true),
            parse(2, 0, true),
            parse(1, 0, true),
        ];
        // Format 2: no flags byte, no twins.
        let mut v2 = build(1, DIGIT_GRAM, false);
        v2.remove(7);
        v2[..4].copy_from_slice(MAGIC_V2);
        let v2 = FileIndex::parse(Bytes::from(v2)).expect("parse format 2");
        assert_eq!(
            v2.kind,
            Kind {
                twin_words: false,
                ..Kind::SHIPPED
            }
        );
        indexes.push(v2);
        // Format 1: every gram, digits alike, and none of the three bytes.
        let mut v1 = build(1, 0, false);
        v1.drain(5..8);
        v1[..4].copy_from_slice(MAGIC_V1);
        let v1 = FileIndex::parse(Bytes::from(v1)).expect("parse format 1");
        assert_eq!(v1.kind, Kind::EVERY_GRAM);
        indexes.push(v1);
        for index in &indexes {
            for token in tokens {
                // Every substring of at least 4 characters, at odd and even
                // starts, with and without the token's start or end shown.
                for from in 0..token.len() {
                    for to in from + 4..=token.len() {
                        let part = &token[from..to];
                        let left = if from == 0 { "=" } else { "" };
                        let right = if to == token.len() { " o" } else { "" };
                        for pattern in [
                            format!("%{part}%"),
                            format!("%{left}{part}%"),
                            format!("%{part}{right}%"),
                            format!("%{left}{part}{right}%"),
                        ] {
                            let Some(s) = TextSearch::from_filters(
                                &[c("body").like(lit(&pattern))],
                                &["body"],
                            ) else {
                                continue;
                            };
                            // None: every block is read.
                            let Some(sel) = index.select(&s) else {
                                continue;
                            };
                            let mut row = 0;
                            let mut read = false;
                            for r in sel.iter() {
                                let line = BLOCK_ROWS + 5;
                                if !r.skip && row <= line && line < row + r.row_count {
                                    read = true;
                                }
                                row += r.row_count;
                            }
                            assert!(read, "{pattern} ({:?})", index.kind);
                        }
                    }
                }
            }
        }
        // Whole short words, bounded on both sides: `ok` ends the lines
        // of block 1 only, `of` is in every block.
        for index in &indexes {
            let s = |p: &str| {
                TextSearch::from_filters(&[c("body").like(lit(p))], &["body"]).expect("informative")
            };
            let sel = index.select(&s("% ok")).expect("selective");
            let mut read = Vec::new();
            for r in sel.iter() {
                read.extend(std::iter::repeat_n(!r.skip, r.row_count / BLOCK_ROWS));
            }
            assert_eq!(read, [false, true, false], "{:?}", index.kind);
            assert!(index.select(&s("% of %")).is_none(), "{:?}", index.kind);
        }
        // A long number is found by its digit grams alone, and skips the
        // blocks whose numbers merely share its 5-digit pieces.
        let s = TextSearch::from_filters(&[c("body").like(lit("%4834680123%"))], &["body"])
            .expect("informative");
        let sel = indexes[0].select(&s).expect("selective");
        assert!(sel.row_count() <= BLOCK_ROWS, "{sel:?}");
    }

    /// Repeated searches over more files than the cache holds: a cache
    /// that keeps the latest inserts would hit nothing; this one keeps
    /// what it holds and hits it on every pass, and files asked for more
    /// often than the rest get in.
    #[test]
    fn the_index_cache_keeps_hitting_when_searches_outgrow_it() {
        let index = |i: usize| {
            let mut b = IndexBuilder::for_signal(Signal::Logs).expect("logs are indexed");
            let rows: Vec<String> = (0..2000).map(|r| format!("file {i} line {r}")).collect();
            let batch = body_batch(rows);
            b.push(&batch).expect("push");
            Arc::new(FileIndex::parse(Bytes::from(b.finish())).expect("parse"))
        };
        let files: Vec<(String, Arc<FileIndex>)> =
            (0..20).map(|i| (format!("f{i}"), index(i))).collect();
        let each = files[0].1.size();
        assert!(
            files
                .iter()
                .all(|(_, f)| f.size().abs_diff(each) * 10 < each)
        );
        // Room for about 8 of the 20.
        let cache = IndexCache::new(each * 8);
        let search = |which: &[usize]| {
            let mut hits = 0;
            for &i in which {
                let (path, index) = &files[i];
                if cache.get(path).is_some() {
                    hits += 1;
                } else {
                    cache.insert(path, Arc::clone(index));
                }
                cache.cache.run_pending_tasks();
            }
            hits
        };
        let all: Vec<usize> = (0..20).collect();
        search(&all);
        for pass in 0..5 {
            let hits = search(&all);
            assert!(hits >= 5, "pass {pass}: {hits} of 20 found");
            assert!(cache.cache.weighted_size() <= (each * 8) as u64);
        }
        // Three files not held, searched again and again (a recent time
        // range), get in.
        let cached: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| cache.get(&files[i].0).is_some())
            .collect();
        let hot: Vec<usize> = all
            .iter()
            .copied()
            .filter(|i| !cached.contains(i))
            .take(3)
            .collect();
        for _ in 0..20 {
            search(&hot);
        }
        assert_eq!(search(&hot), 3, "hot files {hot:?} not kept");
        cache.remove(&files[hot[0]].0);
        assert!(cache.get(&files[hot[0]].0).is_none());
    }
}
