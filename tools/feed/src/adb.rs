//! apk-tools 3's ADB container (doc/apk-v3.5.scd, src/adb.h, src/adb.c):
//! a writer that lays values out exactly as apk's `adb_w_*` does (same
//! order, alignment and de-duplication, so a package built from the same
//! input has the same ADB block as `apk mkpkg` makes), a bounds-checked
//! reader, and a printer of what `apk adbdump` shows.
//!
//! File: optional `ADBd` + raw deflate of the rest; `ADB.` + schema (u32 LE);
//! then blocks, each a u32 LE `type << 30 | (4 + payload length)`, the
//! payload, zero padding to 8 bytes: one ADB block, SIG blocks, DATA blocks.
//! ADB payload: `adb_hdr` (compat 0, ver 0, reserved, root value), then the
//! values. A value is a u32 LE: 4 type bits, 28 bits of immediate or offset
//! into the ADB payload.

use std::collections::HashMap;
use std::io::{Read, Write};

use crate::Error;

pub type Val = u32;
pub const NULL: Val = 0;
pub const T_INT: u32 = 0x1000_0000;
pub const T_INT32: u32 = 0x2000_0000;
pub const T_INT64: u32 = 0x3000_0000;
pub const T_BLOB8: u32 = 0x8000_0000;
pub const T_BLOB16: u32 = 0x9000_0000;
pub const T_BLOB32: u32 = 0xa000_0000;
pub const T_ARRAY: u32 = 0xd000_0000;
pub const T_OBJECT: u32 = 0xe000_0000;
const TYPE_MASK: u32 = 0xf000_0000;
const VALUE_MASK: u32 = 0x0fff_ffff;

pub const SCHEMA_INDEX: u32 = 0x7864_6e69; // "indx"
pub const SCHEMA_PACKAGE: u32 = 0x676b_6370; // "pckg"
const MAGIC: &[u8; 4] = b"ADB.";

pub const BLOCK_ADB: u32 = 0;
pub const BLOCK_SIG: u32 = 1;
pub const BLOCK_DATA: u32 = 2;
const BLOCK_EXT: u32 = 3;
const BLOCK_ALIGN: usize = 8;

// --- writer --------------------------------------------------------------------

/// Builds one ADB payload the way apk's writer does: every blob, int and
/// object goes through `data`, which pads to the value's alignment and
/// reuses an earlier identical, suitably aligned copy.
pub struct Writer {
    buf: Vec<u8>,
    cache: HashMap<Vec<u8>, usize>,
}

impl Default for Writer {
    fn default() -> Self {
        Self::new()
    }
}

impl Writer {
    pub fn new() -> Self {
        // adb_hdr: compat 0, ver 0, reserved 0, root filled in by finish()
        Writer {
            buf: vec![0; 8],
            cache: HashMap::new(),
        }
    }

    fn raw(&mut self, bytes: &[u8], align: usize) -> usize {
        let pad = self.buf.len().next_multiple_of(align) - self.buf.len();
        self.buf.resize(self.buf.len() + pad, 0);
        let offs = self.buf.len();
        self.buf.extend_from_slice(bytes);
        offs
    }

    fn data(&mut self, bytes: &[u8], align: usize) -> usize {
        if let Some(&offs) = self.cache.get(bytes) {
            if offs % align == 0 {
                return offs;
            }
        }
        let offs = self.raw(bytes, align);
        self.cache.insert(bytes.to_vec(), offs);
        offs
    }

    fn val(typ: u32, offs: usize) -> Result<Val, Error> {
        u32::try_from(offs)
            .ok()
            .filter(|&o| o <= VALUE_MASK)
            .map(|o| typ | o)
            .ok_or_else(|| Error::msg("ADB block larger than 256 MiB"))
    }

    fn blob_bytes(b: &[u8]) -> Option<(u32, Vec<u8>, usize)> {
        let (typ, mut bytes, align) = match b.len() {
            0 => return None,
            n @ 1..=0xff => (T_BLOB8, vec![n as u8], 1),
            n @ 0x100..=0xffff => (T_BLOB16, (n as u16).to_le_bytes().to_vec(), 2),
            n => (T_BLOB32, (n as u32).to_le_bytes().to_vec(), 4),
        };
        bytes.extend_from_slice(b);
        Some((typ, bytes, align))
    }

    /// adb_w_blob: an empty blob is NULL.
    pub fn blob(&mut self, b: &[u8]) -> Result<Val, Error> {
        match Self::blob_bytes(b) {
            None => Ok(NULL),
            Some((typ, bytes, align)) => {
                let offs = self.data(&bytes, align);
                Self::val(typ, offs)
            }
        }
    }

    /// adb_w_blob_raw: never shared with another value, so it can be patched
    /// later (mkpkg's unique id). Returns the value and the offset of the
    /// blob's bytes.
    pub fn blob_unshared(&mut self, b: &[u8]) -> Result<(Val, usize), Error> {
        let (typ, bytes, align) =
            Self::blob_bytes(b).ok_or_else(|| Error::msg("empty unshared blob"))?;
        let offs = self.raw(&bytes, align);
        Ok((Self::val(typ, offs)?, offs + (bytes.len() - b.len())))
    }

    /// adb_w_int
    pub fn int(&mut self, v: u64) -> Result<Val, Error> {
        if v >= 0x1_0000_0000 {
            let offs = self.data(&v.to_le_bytes(), 4);
            Self::val(T_INT64, offs)
        } else if v >= 0x1000_0000 {
            let offs = self.data(&(v as u32).to_le_bytes(), 4);
            Self::val(T_INT32, offs)
        } else {
            Ok(T_INT | v as u32)
        }
    }

    /// adb_w_obj / adb_w_arr: `fields[0]` is slot 1. Trailing NULLs are
    /// dropped; with nothing left the value is NULL and nothing is written.
    pub fn obj(&mut self, typ: u32, fields: &[Val]) -> Result<Val, Error> {
        let n = fields.iter().rposition(|&v| v != NULL).map_or(0, |i| i + 1);
        if n == 0 {
            return Ok(NULL);
        }
        let mut bytes = Vec::with_capacity(4 * (n + 1));
        bytes.extend_from_slice(&(n as u32 + 1).to_le_bytes());
        for v in &fields[..n] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let offs = self.data(&bytes, 4);
        Self::val(typ, offs)
    }

    /// An object or array already encoded (count and slots), as adb_w_copy
    /// writes one.
    pub fn raw_obj(&mut self, typ: u32, bytes: &[u8]) -> Result<Val, Error> {
        let offs = self.data(bytes, 4);
        Self::val(typ, offs)
    }

    /// A 64-bit integer copied as adb_w_copy does (8-byte alignment).
    pub fn copy_int64(&mut self, v: u64) -> Result<Val, Error> {
        let offs = self.data(&v.to_le_bytes(), 8);
        Self::val(T_INT64, offs)
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }

    pub fn set_root(&mut self, root: Val) {
        self.buf[4..8].copy_from_slice(&root.to_le_bytes());
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// One block: header, payload, zero padding to 8 bytes.
pub fn block(out: &mut Vec<u8>, typ: u32, payload: &[u8]) -> Result<(), Error> {
    let raw = 4 + payload.len();
    if raw > 0x3fff_ffff {
        return Err(Error::msg("ADB block of 1 GiB or more"));
    }
    out.extend_from_slice(&((typ << 30) | raw as u32).to_le_bytes());
    out.extend_from_slice(payload);
    out.resize(out.len() + (raw.next_multiple_of(BLOCK_ALIGN) - raw), 0);
    Ok(())
}

pub fn file_header(out: &mut Vec<u8>, schema: u32) {
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&schema.to_le_bytes());
}

/// `ADBd` + raw deflate at zlib level 9, as apk compresses by default
/// (apk_ostream_deflate with level 0 -> 9, window bits -15).
pub fn deflate(plain: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = b"ADBd".to_vec();
    let mut enc = flate2::write::DeflateEncoder::new(&mut out, flate2::Compression::best());
    enc.write_all(plain)
        .map_err(|e| Error::msg(format!("deflate: {e}")))?;
    enc.finish()
        .map_err(|e| Error::msg(format!("deflate: {e}")))?;
    Ok(out)
}

// --- reader --------------------------------------------------------------------

pub struct Block {
    pub typ: u32,
    pub payload: std::ops::Range<usize>,
}

/// A whole ADB file, decompressed, with its blocks located and checked for
/// apk's order (ADB, then SIG, then DATA) and bounds.
pub struct File {
    pub plain: Vec<u8>,
    pub schema: u32,
    pub blocks: Vec<Block>,
}

impl File {
    pub fn parse(bytes: &[u8]) -> Result<File, Error> {
        let plain = if bytes.starts_with(b"ADBd") {
            let mut out = Vec::new();
            flate2::read::DeflateDecoder::new(&bytes[4..])
                .take(1 << 30)
                .read_to_end(&mut out)
                .map_err(|e| Error::msg(format!("ADB deflate stream: {e}")))?;
            out
        } else if bytes.starts_with(b"ADBc") {
            return Err(Error::msg("ADB file uses 'ADBc' compression (zstd?): OpenWrt's apk reads only deflate or none"));
        } else {
            bytes.to_vec()
        };
        if plain.len() < 8 || &plain[..4] != MAGIC {
            return Err(Error::msg("not an ADB file (no 'ADB.' magic)"));
        }
        let schema = u32::from_le_bytes([plain[4], plain[5], plain[6], plain[7]]);
        let mut blocks: Vec<Block> = Vec::new();
        let mut pos = 8;
        while pos < plain.len() {
            let left = plain.len() - pos;
            if left < 4 {
                return Err(Error::msg(format!("truncated block header at byte {pos}")));
            }
            let ts =
                u32::from_le_bytes([plain[pos], plain[pos + 1], plain[pos + 2], plain[pos + 3]]);
            let typ = ts >> 30;
            if typ == BLOCK_EXT {
                return Err(Error::msg(
                    "extended (>= 1 GiB) ADB blocks are not supported",
                ));
            }
            let raw = (ts & 0x3fff_ffff) as usize;
            if raw < 4 || raw.next_multiple_of(BLOCK_ALIGN) > left {
                return Err(Error::msg(format!(
                    "block at byte {pos} runs past the end of the file"
                )));
            }
            let allowed = match blocks.last().map(|b| b.typ) {
                None => typ == BLOCK_ADB,
                Some(BLOCK_ADB) | Some(BLOCK_SIG) => typ == BLOCK_SIG || typ == BLOCK_DATA,
                Some(_) => typ == BLOCK_DATA,
            };
            if !allowed {
                return Err(Error::msg(format!(
                    "block of type {typ} at byte {pos} is out of order"
                )));
            }
            if typ == BLOCK_ADB && raw - 4 < 8 {
                return Err(Error::msg("ADB block shorter than its header"));
            }
            blocks.push(Block {
                typ,
                payload: pos + 4..pos + raw,
            });
            pos += raw.next_multiple_of(BLOCK_ALIGN);
        }
        if blocks.is_empty() {
            return Err(Error::msg("ADB file without blocks"));
        }
        Ok(File {
            plain,
            schema,
            blocks,
        })
    }

    pub fn adb(&self) -> Adb<'_> {
        Adb {
            buf: &self.plain[self.blocks[0].payload.clone()],
        }
    }

    pub fn payload(&self, b: &Block) -> &[u8] {
        &self.plain[b.payload.clone()]
    }

    pub fn sigs(&self) -> impl Iterator<Item = &[u8]> {
        self.blocks
            .iter()
            .filter(|b| b.typ == BLOCK_SIG)
            .map(|b| &self.plain[b.payload.clone()])
    }

    pub fn data_blocks(&self) -> impl Iterator<Item = &[u8]> {
        self.blocks
            .iter()
            .filter(|b| b.typ == BLOCK_DATA)
            .map(|b| &self.plain[b.payload.clone()])
    }
}

/// The ADB payload, read with every offset checked.
#[derive(Clone, Copy)]
pub struct Adb<'a> {
    pub buf: &'a [u8],
}

impl<'a> Adb<'a> {
    pub fn compat(&self) -> u8 {
        self.buf[0]
    }

    pub fn ver(&self) -> u8 {
        self.buf[1]
    }

    pub fn root(&self) -> Val {
        u32::from_le_bytes([self.buf[4], self.buf[5], self.buf[6], self.buf[7]])
    }

    fn at(&self, offs: usize, len: usize) -> Result<&'a [u8], Error> {
        self.buf
            .get(
                offs..offs
                    .checked_add(len)
                    .ok_or_else(|| Error::msg("ADB offset overflow"))?,
            )
            .ok_or_else(|| Error::msg(format!("ADB value at {offs} (+{len}) is outside the block")))
    }

    pub fn int(&self, v: Val) -> Result<u64, Error> {
        let offs = (v & VALUE_MASK) as usize;
        match v & TYPE_MASK {
            _ if v == NULL => Ok(0),
            T_INT => Ok(u64::from(v & VALUE_MASK)),
            T_INT32 => {
                let b = self.at(offs, 4)?;
                Ok(u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])))
            }
            T_INT64 => {
                let b = self.at(offs, 8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                Ok(u64::from_le_bytes(a))
            }
            _ => Err(Error::msg(format!("ADB value {v:#010x} is not an integer"))),
        }
    }

    /// A blob; NULL reads as None.
    pub fn blob(&self, v: Val) -> Result<Option<&'a [u8]>, Error> {
        if v == NULL {
            return Ok(None);
        }
        let offs = (v & VALUE_MASK) as usize;
        let (hdr, len) = match v & TYPE_MASK {
            T_BLOB8 => (1, usize::from(self.at(offs, 1)?[0])),
            T_BLOB16 => {
                let b = self.at(offs, 2)?;
                (2, usize::from(u16::from_le_bytes([b[0], b[1]])))
            }
            T_BLOB32 => {
                let b = self.at(offs, 4)?;
                (4, u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            }
            _ => return Err(Error::msg(format!("ADB value {v:#010x} is not a blob"))),
        };
        Ok(Some(self.at(offs + hdr, len)?))
    }

    /// Slots of an object or array, slot 0 (the count) included; NULL reads
    /// as no slots beyond the count.
    pub fn obj(&self, v: Val) -> Result<Vec<Val>, Error> {
        if v == NULL {
            return Ok(vec![1]);
        }
        let t = v & TYPE_MASK;
        if t != T_ARRAY && t != T_OBJECT {
            return Err(Error::msg(format!(
                "ADB value {v:#010x} is not an object or array"
            )));
        }
        let offs = (v & VALUE_MASK) as usize;
        let n = self.at(offs, 4)?;
        let n = u32::from_le_bytes([n[0], n[1], n[2], n[3]]) as usize;
        if n == 0 {
            return Err(Error::msg("ADB object with a zero slot count"));
        }
        let b = self.at(
            offs,
            n.checked_mul(4)
                .ok_or_else(|| Error::msg("ADB slot count overflow"))?,
        )?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    /// Slot `i` (1-based) of an object, NULL when absent.
    pub fn field(&self, obj: Val, i: usize) -> Result<Val, Error> {
        Ok(self.obj(obj)?.get(i).copied().unwrap_or(NULL))
    }

    /// The items of an array (slots 1..).
    pub fn items(&self, arr: Val) -> Result<Vec<Val>, Error> {
        Ok(self.obj(arr)?.split_off(1))
    }
}

// --- schemas (src/apk_adb.c) ------------------------------------------------------

#[derive(Clone, Copy)]
pub enum Kind {
    Str,
    MultiStr,
    Hex,
    Int,
    Oct,
    Xattr,
    Dependency,
    Object(&'static [(&'static str, Kind)]),
    Array(&'static Kind),
}

pub const ACL: &[(&str, Kind)] = &[
    ("mode", Kind::Oct),
    ("user", Kind::Str),
    ("group", Kind::Str),
    ("xattrs", Kind::Array(&Kind::Xattr)),
];
pub const FILE: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("acl", Kind::Object(ACL)),
    ("size", Kind::Int),
    ("mtime", Kind::Int),
    ("hash", Kind::Hex),
    ("target", Kind::Hex),
];
pub const DIR: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("acl", Kind::Object(ACL)),
    ("files", Kind::Array(&Kind::Object(FILE))),
];
const DEPS: Kind = Kind::Array(&Kind::Dependency);
pub const PKGINFO: &[(&str, Kind)] = &[
    ("name", Kind::Str),
    ("version", Kind::Str),
    ("hashes", Kind::Hex),
    ("description", Kind::Str),
    ("arch", Kind::Str),
    ("license", Kind::Str),
    ("origin", Kind::Str),
    ("maintainer", Kind::Str),
    ("url", Kind::Str),
    ("repo-commit", Kind::Hex),
    ("build-time", Kind::Int),
    ("installed-size", Kind::Int),
    ("file-size", Kind::Int),
    ("provider-priority", Kind::Int),
    ("depends", DEPS),
    ("provides", DEPS),
    ("replaces", DEPS),
    ("install-if", DEPS),
    ("recommends", DEPS),
    ("layer", Kind::Int),
    ("tags", Kind::Array(&Kind::Str)),
];
pub const SCRIPTS: &[(&str, Kind)] = &[
    ("trigger", Kind::MultiStr),
    ("pre-install", Kind::MultiStr),
    ("post-install", Kind::MultiStr),
    ("pre-deinstall", Kind::MultiStr),
    ("post-deinstall", Kind::MultiStr),
    ("pre-upgrade", Kind::MultiStr),
    ("post-upgrade", Kind::MultiStr),
];
pub const PACKAGE: &[(&str, Kind)] = &[
    ("info", Kind::Object(PKGINFO)),
    ("paths", Kind::Array(&Kind::Object(DIR))),
    ("scripts", Kind::Object(SCRIPTS)),
    ("triggers", Kind::Array(&Kind::Str)),
    ("replaces-priority", Kind::Int),
];
pub const INDEX: &[(&str, Kind)] = &[
    ("description", Kind::Str),
    ("packages", Kind::Array(&Kind::Object(PKGINFO))),
    ("pkgname-spec", Kind::Str),
];

/// Field number (1-based) of `name` in `schema`.
pub fn field_no(schema: &[(&str, Kind)], name: &str) -> usize {
    schema
        .iter()
        .position(|(n, _)| *n == name)
        .map_or(0, |i| i + 1)
}

// --- `apk adbdump` text (src/adb_walk_adb.c, src/serialize_yaml.c) ----------------

struct Yaml {
    out: String,
    nest: usize,
    indent: usize,
    line_started: bool,
    key_printed: bool,
    array: Vec<bool>,
}

impl Yaml {
    fn new() -> Self {
        Yaml {
            out: String::new(),
            nest: 0,
            indent: 0,
            line_started: false,
            key_printed: false,
            array: vec![false; 34],
        }
    }

    fn pad(&mut self, item: bool, continue_line: bool) {
        if !self.line_started {
            for _ in 0..self.indent {
                self.out.push_str("  ");
            }
            if item && self.array[self.nest] {
                self.out.push_str("- ");
            }
        } else if self.key_printed && continue_line {
            self.out.push(' ');
        }
        self.line_started = true;
    }

    fn start_indent(&mut self, array: bool) {
        if self.nest > 0 {
            self.indent += 1;
        }
        self.nest += 1;
        if self.nest < self.array.len() {
            self.array[self.nest] = array;
        }
    }

    fn newline(&mut self) {
        self.out.push('\n');
        self.line_started = false;
        self.key_printed = false;
    }

    fn start_object(&mut self, schema: u32) {
        self.pad(true, false);
        self.start_indent(false);
        if schema != 0 {
            self.out.push_str(&format!("#%SCHEMA: {schema:08X}"));
            self.newline();
        }
    }

    fn start_array(&mut self, n: usize) {
        self.pad(true, true);
        self.out.push_str(&format!("# {n} items"));
        self.newline();
        self.start_indent(true);
    }

    fn end(&mut self) {
        if self.line_started {
            self.pad(false, true);
            self.out.push_str("# empty object");
            self.newline();
        }
        self.nest = self.nest.saturating_sub(1);
        if self.nest > 0 {
            self.indent -= 1;
        }
    }

    fn comment(&mut self, c: &str) {
        self.pad(false, true);
        self.out.push_str("# ");
        self.out.push_str(c);
        self.newline();
    }

    fn key(&mut self, k: &str) {
        if self.key_printed {
            self.newline();
        }
        self.pad(true, true);
        self.out.push_str(k);
        self.out.push(':');
        self.key_printed = true;
    }

    fn string(&mut self, s: &[u8], multiline: bool) {
        self.pad(true, true);
        let text = String::from_utf8_lossy(s);
        match need_quoting(s, multiline) {
            Quote::None => {
                self.out.push_str(&text);
                self.newline();
            }
            Quote::Single => {
                self.out.push('\'');
                self.out.push_str(&text);
                self.out.push('\'');
                self.newline();
            }
            Quote::Block => {
                self.out.push('|');
                self.newline();
                self.indent += 1;
                for line in text.split('\n').filter(|l| !l.is_empty()) {
                    self.pad(false, true);
                    self.out.push_str(line);
                    self.newline();
                }
                self.indent -= 1;
            }
        }
    }

    fn numeric(&mut self, s: &str) {
        self.pad(true, true);
        self.out.push_str(s);
        self.newline();
    }
}

enum Quote {
    None,
    Single,
    Block,
}

fn need_quoting(b: &[u8], multiline: bool) -> Quote {
    if b.is_empty() {
        return Quote::None;
    }
    if b.len() >= 80 || multiline {
        return Quote::Block;
    }
    let mut style = Quote::None;
    if b"-?:,[]{}#&*!|>'\"%@`".contains(&b[0]) {
        style = Quote::Single;
    }
    let mut prev = 0u8;
    for &c in b {
        match c {
            b'\r' | b'\n' | b'\'' => return Quote::Block,
            b' ' if prev == b':' => style = Quote::Single,
            b'#' => {
                if prev == b' ' {
                    return Quote::Block;
                }
                style = Quote::Single;
            }
            _ => {}
        }
        prev = c;
    }
    style
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn dep_string(adb: &Adb, v: Val) -> Result<Vec<u8>, Error> {
    let name = adb.blob(adb.field(v, 1)?)?.unwrap_or_default();
    let ver = adb.blob(adb.field(v, 2)?)?;
    let op = match adb.int(adb.field(v, 3)?)? {
        0 => 1,
        n => n,
    };
    let mut out = Vec::new();
    if op & 16 != 0 {
        out.push(b'!');
    }
    out.extend_from_slice(name);
    if let Some(ver) = ver {
        let ops = match op & !16 {
            2 => "<",
            3 => "<=",
            11 => "<~",
            9 | 8 => "~",
            1 => "=",
            5 => ">=",
            13 => ">~",
            4 => ">",
            6 => "><",
            _ => "?",
        };
        out.extend_from_slice(ops.as_bytes());
        out.extend_from_slice(ver);
    }
    Ok(out)
}

fn dump_item(y: &mut Yaml, adb: &Adb, name: Option<&str>, kind: Kind, v: Val) -> Result<(), Error> {
    if v == NULL {
        return Ok(());
    }
    if let Some(n) = name {
        y.key(n);
    }
    match kind {
        Kind::Array(item) => {
            let items = adb.items(v)?;
            y.start_array(items.len());
            for it in items {
                dump_item(y, adb, None, *item, it)?;
            }
            y.end();
        }
        Kind::Object(fields) => {
            y.start_object(0);
            dump_object(y, adb, fields, v)?;
            y.end();
        }
        Kind::Dependency => {
            let s = dep_string(adb, v)?;
            y.string(&s, false);
        }
        Kind::Str | Kind::MultiStr => {
            let b = adb.blob(v)?.unwrap_or_default();
            y.string(b, matches!(kind, Kind::MultiStr));
        }
        Kind::Hex => {
            let b = adb.blob(v)?.unwrap_or_default();
            let s = if b.len() * 2 < 256 {
                hex(b)
            } else {
                format!("({} bytes)", b.len())
            };
            y.string(s.as_bytes(), false);
        }
        Kind::Xattr => {
            let b = adb.blob(v)?.unwrap_or_default();
            let s = match b.iter().position(|&c| c == 0) {
                Some(i) => format!("{}={}", String::from_utf8_lossy(&b[..i]), hex(&b[i + 1..])),
                None => String::from("(bad xattr)"),
            };
            y.string(s.as_bytes(), false);
        }
        Kind::Int => y.numeric(&adb.int(v)?.to_string()),
        Kind::Oct => {
            let n = adb.int(v)?;
            y.numeric(&if n == 0 {
                "0".to_string()
            } else {
                format!("0{n:o}")
            })
        }
    }
    Ok(())
}

fn dump_object(y: &mut Yaml, adb: &Adb, fields: &[(&str, Kind)], v: Val) -> Result<(), Error> {
    let slots = adb.obj(v)?;
    for (i, &val) in slots.iter().enumerate().skip(1) {
        if val == NULL {
            continue;
        }
        if let Some((name, kind)) = fields.get(i - 1) {
            dump_item(y, adb, Some(name), *kind, val)?;
        }
    }
    Ok(())
}

/// What `apk adbdump` prints for `file`; `sig_status` gives, for each SIG
/// block payload, the word after the colon ("OK", "UNTRUSTED signature").
pub fn dump(file: &File, sig_status: &dyn Fn(&[u8]) -> String) -> Result<String, Error> {
    let mut y = Yaml::new();
    for b in &file.blocks {
        let payload = file.payload(b);
        match b.typ {
            BLOCK_ADB => {
                let adb = Adb { buf: payload };
                y.start_object(file.schema);
                y.comment(&format!(
                    "ADB block, size: {}, compat: {}, ver: {}",
                    payload.len(),
                    adb.compat(),
                    adb.ver()
                ));
                let root = match file.schema {
                    SCHEMA_PACKAGE => Some(PACKAGE),
                    SCHEMA_INDEX => Some(INDEX),
                    _ => None,
                };
                if let (Some(root), 0) = (root, adb.compat()) {
                    dump_object(&mut y, &adb, root, adb.root())?;
                }
                y.end();
            }
            BLOCK_SIG => {
                if payload.len() < 2 {
                    return Err(Error::msg("SIG block shorter than its header"));
                }
                // apk prints into a 160-byte buffer and stops the hex when
                // 40 bytes are left.
                let mut c = format!("sig v{:02x} h{:02x} ", payload[0], payload[1]);
                for x in &payload[2..] {
                    if 160 - c.len() <= 40 {
                        break;
                    }
                    c.push_str(&format!("{x:02x}"));
                }
                if 160 - c.len() <= 40 {
                    c.push_str("..");
                }
                c.push_str(": ");
                c.push_str(&sig_status(payload));
                y.comment(&c);
            }
            _ => y.comment(&format!("data block, size: {}", payload.len())),
        }
    }
    Ok(y.out)
}
