//! The tar archives inside an .ipk, as ipkg-build makes them with GNU tar
//! (`--format=gnu --numeric-owner --owner=0 --group=0 --sort=name
//! --mtime=@EPOCH`), and a reader for checking them.

use crate::Error;

pub struct Entry {
    /// `./`, `./etc/`, `./etc/config/entropyservice`: the names ipkg-build's
    /// `tar -C DIR .` gives, directories with a trailing slash.
    pub name: String,
    pub mode: u32,
    pub data: Option<Vec<u8>>,
}

fn octal(field: &mut [u8], value: u64) {
    // NUL-terminated, zero-padded octal, as GNU tar writes numeric fields.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// A GNU-format tar of `entries` (already in the order wanted), owner 0/0,
/// every mtime `mtime`, padded to GNU tar's 10240-byte record.
pub fn write(entries: &[Entry], mtime: u64) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for e in entries {
        let name = e.name.as_bytes();
        if name.len() > 99 {
            return Err(Error::msg(format!(
                "tar: path {} is longer than 99 bytes",
                e.name
            )));
        }
        let mut h = [0u8; 512];
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], u64::from(e.mode & 0o7777));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        let size = e.data.as_ref().map_or(0, |d| d.len() as u64);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = if e.data.is_some() { b'0' } else { b'5' };
        h[257..265].copy_from_slice(b"ustar  \0");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        out.extend_from_slice(&h);
        if let Some(d) = &e.data {
            out.extend_from_slice(d);
            out.resize(out.len().div_ceil(512) * 512, 0);
        }
    }
    out.resize(out.len() + 1024, 0);
    out.resize(out.len().div_ceil(10240) * 10240, 0);
    Ok(out)
}

fn parse_octal(field: &[u8]) -> Result<u64, Error> {
    let s: Vec<u8> = field
        .iter()
        .copied()
        .take_while(|&b| b != 0 && b != b' ')
        .collect();
    let s = std::str::from_utf8(&s).map_err(|_| Error::msg("tar: bad number field"))?;
    let s = s.trim_start_matches(' ');
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| Error::msg(format!("tar: bad octal field '{s}'")))
}

pub struct ReadEntry {
    pub name: String,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub kind: u8,
    pub data: Vec<u8>,
}

/// Reads a plain (uncompressed) tar: regular files and directories only.
pub fn read(tar: &[u8]) -> Result<Vec<ReadEntry>, Error> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 512 <= tar.len() {
        let h = &tar[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            return Ok(out);
        }
        let stored = parse_octal(&h[148..156])?;
        let sum: u64 = h
            .iter()
            .enumerate()
            .map(|(i, &b)| {
                if (148..156).contains(&i) {
                    32
                } else {
                    u64::from(b)
                }
            })
            .sum();
        if stored != sum {
            return Err(Error::msg(format!(
                "tar: header checksum mismatch at byte {pos}"
            )));
        }
        let name_len = h[..100].iter().position(|&b| b == 0).unwrap_or(100);
        let name = String::from_utf8_lossy(&h[..name_len]).into_owned();
        let size = usize::try_from(parse_octal(&h[124..136])?)
            .map_err(|_| Error::msg("tar: entry too large"))?;
        let kind = h[156];
        let start = pos + 512;
        let end = start
            .checked_add(size)
            .filter(|&e| e <= tar.len())
            .ok_or_else(|| Error::msg(format!("tar: {name} runs past the end of the archive")))?;
        out.push(ReadEntry {
            mode: u32::try_from(parse_octal(&h[100..108])?).unwrap_or(u32::MAX),
            uid: parse_octal(&h[108..116])?,
            gid: parse_octal(&h[116..124])?,
            mtime: parse_octal(&h[136..148])?,
            kind,
            data: tar[start..end].to_vec(),
            name,
        });
        pos = start + size.div_ceil(512) * 512;
    }
    Err(Error::msg("tar: no end-of-archive marker"))
}
