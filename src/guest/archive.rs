//! Unpacking a template (`T.tar`, `T.tar.gz`, `T.tar.zst`) into a guest
//! tree, without running tar: ustar, GNU long names and PAX headers, with
//! every entry written through [`crate::guest::tree`], so an archive's symlinks
//! and `..` names cannot reach outside the tree. Device nodes are left
//! out: a running guest gets its own minimal /dev.

use crate::error::{Context, Error, Result};
use crate::guest::tree::{Meta, Tree};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Opens an archive file, decompressing by its magic number.
pub fn open(path: &Path) -> Result<Box<dyn Read>> {
    let f = std::fs::File::open(path).ctx(|| format!("open {}", path.display()))?;
    let mut r = BufReader::with_capacity(1 << 16, f);
    let head = r.fill_buf().ctx(|| format!("read {}", path.display()))?.to_vec();
    Ok(if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(Gzip::new(r))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(
            ruzstd::decoding::StreamingDecoder::new(r)
                .map_err(|e| Error::failed(format!("read {}", path.display()), format!("bad zstd data: {e}")))?,
        )
    } else {
        Box::new(r)
    })
}

/// CRC-32 (IEEE), as gzip's trailer has it.
const CRC_TABLE: [u32; 256] = {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
};

fn crc32(mut crc: u32, data: &[u8]) -> u32 {
    crc = !crc;
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xff) as usize] ^ (crc >> 8);
    }
    !crc
}

/// A gzip stream (RFC 1952), members one after another, each checked
/// against its CRC-32 and length.
struct Gzip<R: BufRead> {
    inner: R,
    state: Box<miniz_oxide::inflate::stream::InflateState>,
    in_member: bool,
    crc: u32,
    len: u32,
    done: bool,
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("bad gzip data: {msg}"))
}

impl<R: BufRead> Gzip<R> {
    fn new(inner: R) -> Self {
        let state = miniz_oxide::inflate::stream::InflateState::new_boxed(miniz_oxide::DataFormat::Raw);
        Gzip {
            inner,
            state,
            in_member: false,
            crc: 0,
            len: 0,
            done: false,
        }
    }

    fn byte(&mut self) -> std::io::Result<u8> {
        let mut b = [0u8; 1];
        self.inner.read_exact(&mut b).map_err(|_| bad("truncated header"))?;
        Ok(b[0])
    }

    fn header(&mut self) -> std::io::Result<()> {
        let mut h = [0u8; 10];
        self.inner.read_exact(&mut h).map_err(|_| bad("truncated header"))?;
        if h[0..3] != [0x1f, 0x8b, 8] {
            return Err(bad("not a deflate member"));
        }
        let flags = h[3];
        if flags & 4 != 0 {
            let n = usize::from(self.byte()?) | (usize::from(self.byte()?) << 8);
            std::io::copy(&mut (&mut self.inner).take(n as u64), &mut std::io::sink())?;
        }
        for bit in [8, 16] {
            if flags & bit != 0 {
                while self.byte()? != 0 {}
            }
        }
        if flags & 2 != 0 {
            self.byte()?;
            self.byte()?;
        }
        self.state.reset(miniz_oxide::DataFormat::Raw);
        (self.in_member, self.crc, self.len) = (true, 0, 0);
        Ok(())
    }
}

impl<R: BufRead> Read for Gzip<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use miniz_oxide::inflate::stream::inflate;
        use miniz_oxide::{MZError, MZFlush, MZStatus};
        loop {
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if !self.in_member {
                if self.inner.fill_buf()?.is_empty() {
                    self.done = true;
                    return Ok(0);
                }
                self.header()?;
            }
            let input = self.inner.fill_buf()?;
            let eof = input.is_empty();
            let r = inflate(&mut self.state, input, out, MZFlush::None);
            self.inner.consume(r.bytes_consumed);
            self.crc = crc32(self.crc, &out[..r.bytes_written]);
            self.len = self.len.wrapping_add(r.bytes_written as u32);
            match r.status {
                Ok(MZStatus::StreamEnd) => {
                    let mut t = [0u8; 8];
                    self.inner.read_exact(&mut t).map_err(|_| bad("truncated trailer"))?;
                    if u32::from_le_bytes([t[0], t[1], t[2], t[3]]) != self.crc || u32::from_le_bytes([t[4], t[5], t[6], t[7]]) != self.len
                    {
                        return Err(bad("checksum mismatch"));
                    }
                    self.in_member = false;
                }
                Ok(_) | Err(MZError::Buf) if r.bytes_written == 0 && eof => return Err(bad("truncated data")),
                Ok(_) | Err(MZError::Buf) => {}
                Err(_) => return Err(bad("corrupt data")),
            }
            if r.bytes_written > 0 {
                return Ok(r.bytes_written);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub bytes: u64,
    pub skipped: u64,
}

/// A field of a header: NUL-terminated text.
fn text(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    &b[..end]
}

/// A numeric field: octal text, or base-256 when the top bit is set.
fn number(b: &[u8]) -> Result<u64> {
    if b.first().is_some_and(|c| c & 0x80 != 0) {
        return Ok(b[1..].iter().fold(u64::from(b[0] & 0x7f), |n, &c| (n << 8) | u64::from(c)));
    }
    let t = std::str::from_utf8(text(b))
        .map_err(|_| Error::failed("read the archive", "a bad number in a header"))?
        .trim();
    if t.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(t, 8).map_err(|_| Error::failed("read the archive", format!("a bad number '{t}' in a header")))
}

fn path_of(b: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    PathBuf::from(std::ffi::OsStr::from_bytes(b))
}

fn read_exact_or_end(r: &mut dyn Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(Error::failed("read the archive", "it ends in the middle of an entry")),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("read the archive", &e)),
        }
    }
    Ok(true)
}

fn skip(r: &mut dyn Read, n: u64) -> Result<()> {
    let copied = std::io::copy(&mut r.take(n), &mut std::io::sink()).map_err(|e| Error::io("read the archive", &e))?;
    if copied != n {
        return Err(Error::failed("read the archive", "it ends in the middle of an entry"));
    }
    Ok(())
}

fn padding(size: u64) -> u64 {
    (512 - size % 512) % 512
}

/// PAX records: "LEN key=value\n".
fn pax(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(sp) = rest.iter().position(|&c| c == b' ') {
        let Some(len) = std::str::from_utf8(&rest[..sp]).ok().and_then(|s| s.parse::<usize>().ok()) else {
            break;
        };
        if len == 0 || len > rest.len() {
            break;
        }
        let rec = &rest[sp + 1..len];
        if let Some(eq) = rec.iter().position(|&c| c == b'=') {
            let value = rec[eq + 1..].strip_suffix(b"\n").unwrap_or(&rec[eq + 1..]);
            out.push((String::from_utf8_lossy(&rec[..eq]).into_owned(), value.to_vec()));
        }
        rest = &rest[len..];
    }
    out
}

/// Unpacks the archive into `tree`; `progress` is called now and then.
pub fn unpack(r: &mut dyn Read, tree: &Tree, mut progress: impl FnMut(&Stats)) -> Result<Stats> {
    let mut stats = Stats::default();
    let mut header = [0u8; 512];
    let (mut long_name, mut long_link): (Option<PathBuf>, Option<PathBuf>) = (None, None);
    let mut pax_over: Vec<(String, Vec<u8>)> = Vec::new();
    loop {
        if !read_exact_or_end(r, &mut header)? || header.iter().all(|&b| b == 0) {
            break; // end of archive (two zero blocks, or just the end)
        }
        let sum: u64 = header
            .iter()
            .enumerate()
            .map(|(i, &b)| if (148..156).contains(&i) { 32 } else { u64::from(b) })
            .sum();
        if number(&header[148..156]).ok() != Some(sum) {
            return Err(Error::failed(
                "read the archive",
                "a header's checksum is wrong (not a tar archive?)",
            ));
        }
        let size = number(&header[124..136])?;
        let kind = header[156];
        // Meta-entries that describe the next one.
        if matches!(kind, b'L' | b'K' | b'x' | b'g') {
            if size > 1 << 20 {
                return Err(Error::failed("read the archive", "an extended header is too large"));
            }
            let mut data = vec![0u8; size as usize];
            if !read_exact_or_end(r, &mut data)? {
                return Err(Error::failed("read the archive", "it ends in an extended header"));
            }
            skip(r, padding(size))?;
            match kind {
                b'L' => long_name = Some(path_of(text(&data))),
                b'K' => long_link = Some(path_of(text(&data))),
                b'x' => pax_over = pax(&data),
                _ => {}
            }
            continue;
        }
        let mut name = if &header[257..262] == b"ustar" && header[345] != 0 {
            let mut p = path_of(text(&header[345..500]));
            p.push(path_of(text(&header[..100])));
            p
        } else {
            path_of(text(&header[..100]))
        };
        let mut link = path_of(text(&header[157..257]));
        let mut meta = Meta {
            mode: number(&header[100..108])? as u32,
            uid: number(&header[108..116])? as u32,
            gid: number(&header[116..124])? as u32,
            mtime: number(&header[136..148])? as i64,
        };
        let mut size = size;
        if let Some(n) = long_name.take() {
            name = n;
        }
        if let Some(l) = long_link.take() {
            link = l;
        }
        for (k, v) in std::mem::take(&mut pax_over) {
            let num = || {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.split('.').next().and_then(|i| i.parse::<u64>().ok()))
            };
            match k.as_str() {
                "path" => name = path_of(&v),
                "linkpath" => link = path_of(&v),
                "size" => size = num().unwrap_or(size),
                "uid" => meta.uid = num().unwrap_or(u64::from(meta.uid)) as u32,
                "gid" => meta.gid = num().unwrap_or(u64::from(meta.gid)) as u32,
                "mtime" => meta.mtime = num().unwrap_or(meta.mtime as u64) as i64,
                _ => {}
            }
        }
        let at = || format!("archive entry '{}'", name.display());
        match kind {
            b'0' | 0 | b'7' => {
                tree.create_file(&name, meta, |f| {
                    let n = std::io::copy(&mut r.take(size), f).map_err(|e| Error::io(at(), &e))?;
                    if n != size {
                        return Err(Error::failed(at(), "the archive ends inside it"));
                    }
                    Ok(())
                })?;
                stats.files += 1;
                stats.bytes += size;
                skip(r, padding(size))?;
            }
            b'5' => tree.create_dir(&name, meta)?,
            b'2' => tree.symlink(&link, &name, meta)?,
            b'1' => tree.hard_link(&link, &name)?,
            b'6' => tree.fifo(&name, meta)?,
            _ => {
                // Devices and unknown kinds: left out.
                stats.skipped += 1;
                skip(r, size + padding(size))?;
            }
        }
        if stats.files % 500 == 1 {
            progress(&stats);
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_the_check_string() {
        assert_eq!(crc32(0, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn gzip_members_and_corruption() {
        // `printf 'hello ' | gzip -n` and `printf 'world' | gzip -n`, concatenated.
        let one: &[u8] = &[
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xcb, 0x48, 0xcd, 0xc9, 0xc9, 0x57, 0, 0, 0xf6, 0xf9, 0x81, 0xed, 6, 0, 0, 0,
        ];
        let two: &[u8] = &[
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0x2b, 0xcf, 0x2f, 0xca, 0x49, 1, 0, 0x43, 0x11, 0x77, 0x3a, 5, 0, 0, 0,
        ];
        let mut out = String::new();
        Gzip::new([one, two].concat().as_slice()).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello world");
        let mut broken = one.to_vec();
        broken[20] ^= 1;
        assert!(Gzip::new(broken.as_slice()).read_to_end(&mut Vec::new()).is_err());
        assert!(Gzip::new(&one[..15]).read_to_end(&mut Vec::new()).is_err());
    }

    #[test]
    fn numbers() {
        assert_eq!(number(b"0000644\0").unwrap(), 0o644);
        assert_eq!(number(b"        ").unwrap(), 0);
        assert_eq!(number(&[0x80, 0, 0, 0, 0, 0, 1, 0]).unwrap(), 256);
        assert!(number(b"12x4\0").is_err());
    }

    #[test]
    fn pax_records() {
        let r = pax(b"28 path=some/very/long/name\n19 linkpath=a/b/cd\n");
        assert_eq!(r[0], ("path".to_owned(), b"some/very/long/name".to_vec()));
        assert_eq!(r[1].0, "linkpath");
        assert!(pax(b"999 path=x\n").is_empty());
    }
}
