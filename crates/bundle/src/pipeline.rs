//! The bundle pipeline, streamed both ways.
//!
//! Bundling: the image file as the one member of a tar stream (its SHA-1
//! is the manifest's `digest`) → gzip → AES-128-CBC with PKCS#7 padding
//! (what `openssl enc` writes) → parts of [`PART_SIZE`], each with its
//! SHA-1. Unbundling is [`Unbundler`], push-based so that a caller
//! reading parts from anywhere (files, object-store streams) feeds it
//! chunk by chunk: it checks each part's digest, decrypts, gunzips,
//! hashes the tar stream and yields the member's bytes. Input is fed in
//! small slices so one slice can never inflate to more than a few MiB.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use aes::Aes128;
use cbc::cipher::generic_array::GenericArray;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use flate2::Compression;
use flate2::write::{GzDecoder, GzEncoder};
use sha1::{Digest, Sha1};

use crate::BundleError;
use crate::keys::BundleKey;
use crate::manifest::Part;

/// Size of every part but the last (euca2ools' and ec2-ami-tools'
/// default).
pub const PART_SIZE: u64 = 10 * 1024 * 1024;
/// Tar block and record sizes (Python's tarfile and GNU tar pad the
/// archive to a record of 20 blocks).
const BLOCK: usize = 512;
const RECORD: u64 = 10240;
/// Largest slice of ciphertext handed to gunzip at once: at gzip's
/// maximum ratio (about 1:1032) it inflates to about 4 MiB.
const FEED: usize = 4096;

/// What bundling produced.
#[derive(Debug, Clone)]
pub struct Bundled {
    /// SHA-1 of the tar stream, hex.
    pub digest: String,
    /// The parts written, with their sizes.
    pub parts: Vec<(Part, u64)>,
}

/// Bundles `size` bytes of `input` as the tar member `name` into parts
/// `PREFIX.part.NN` in `dir`; `progress` is told the bytes read so far.
pub fn bundle(
    input: impl Read,
    name: &str,
    size: u64,
    key: &BundleKey,
    dir: &Path,
    prefix: &str,
    mut progress: impl FnMut(u64),
) -> Result<Bundled, BundleError> {
    let splitter = Splitter::new(dir, prefix);
    let encrypt = Encrypt::new(key, splitter);
    let gzip = GzEncoder::new(encrypt, Compression::default());
    let mut tar = HashTap::new(gzip);
    tar.write_all(&tar_header(name, size))?;
    let mut input = input.take(size);
    let mut buf = vec![0u8; 256 * 1024];
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tar.write_all(&buf[..n])?;
        done += n as u64;
        progress(done);
    }
    if done != size {
        return Err(BundleError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the image ended after {done} of {size} bytes"),
        )));
    }
    tar.write_all(&vec![0u8; tar_trailer(size)])?;
    let (gzip, digest) = tar.finish();
    let encrypt = gzip.finish()?;
    let splitter = encrypt.finish()?;
    Ok(Bundled {
        digest,
        parts: splitter.finish()?,
    })
}

/// A ustar header for one regular file; sizes past 8 GiB in GNU's
/// base-256 form.
fn tar_header(name: &str, size: u64) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    let name = name.as_bytes();
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    h[100..108].copy_from_slice(b"0000644\0");
    h[108..116].copy_from_slice(b"0000000\0");
    h[116..124].copy_from_slice(b"0000000\0");
    if size < 0o77777777777 {
        h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    } else {
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
    }
    h[136..148].copy_from_slice(b"00000000000\0");
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// Zero bytes after a member of `size`: its padding, the two end blocks,
/// and the rest of the record.
fn tar_trailer(size: u64) -> usize {
    let data = size.div_ceil(BLOCK as u64) * BLOCK as u64;
    let used = BLOCK as u64 + data + 2 * BLOCK as u64;
    let total = used.div_ceil(RECORD) * RECORD;
    usize::try_from(total - BLOCK as u64 - size).unwrap_or(0)
}

/// A writer that hashes what passes through.
struct HashTap<W> {
    inner: W,
    sha: Sha1,
}

impl<W: Write> HashTap<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha1::new(),
        }
    }

    fn finish(self) -> (W, String) {
        (self.inner, hex::encode(self.sha.finalize()))
    }
}

impl<W: Write> Write for HashTap<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// AES-128-CBC with PKCS#7 padding, as a writer.
struct Encrypt<W> {
    cipher: cbc::Encryptor<Aes128>,
    pending: Vec<u8>,
    inner: W,
}

impl<W: Write> Encrypt<W> {
    fn new(key: &BundleKey, inner: W) -> Self {
        Self {
            cipher: cbc::Encryptor::<Aes128>::new(&key.key.into(), &key.iv.into()),
            pending: Vec::with_capacity(64 * 1024),
            inner,
        }
    }

    fn encrypt_full_blocks(&mut self) -> io::Result<()> {
        let full = self.pending.len() / 16 * 16;
        for block in self.pending[..full].chunks_exact_mut(16) {
            self.cipher
                .encrypt_block_mut(GenericArray::from_mut_slice(block));
        }
        self.inner.write_all(&self.pending[..full])?;
        self.pending.drain(..full);
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        let pad = 16 - self.pending.len() % 16;
        self.pending
            .extend(std::iter::repeat_n(u8::try_from(pad).unwrap_or(16), pad));
        self.encrypt_full_blocks()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encrypt<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= 32 * 1024 {
            self.encrypt_full_blocks()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes parts of [`PART_SIZE`] into a directory, hashing each.
struct Splitter {
    dir: PathBuf,
    prefix: String,
    current: Option<(BufWriter<File>, Sha1, u64)>,
    parts: Vec<(Part, u64)>,
}

impl Splitter {
    fn new(dir: &Path, prefix: &str) -> Self {
        Self {
            dir: dir.to_owned(),
            prefix: prefix.to_owned(),
            current: None,
            parts: Vec::new(),
        }
    }

    fn filename(&self, index: usize) -> String {
        format!("{}.part.{index:02}", self.prefix)
    }

    fn close_current(&mut self) -> io::Result<()> {
        if let Some((mut file, sha, size)) = self.current.take() {
            file.flush()?;
            file.get_ref().sync_all()?;
            let filename = self.filename(self.parts.len());
            self.parts.push((
                Part {
                    filename,
                    digest: hex::encode(sha.finalize()),
                },
                size,
            ));
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<Vec<(Part, u64)>> {
        self.close_current()?;
        Ok(self.parts)
    }
}

impl Write for Splitter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self
            .current
            .as_ref()
            .is_some_and(|(_, _, n)| *n >= PART_SIZE)
        {
            self.close_current()?;
        }
        if self.current.is_none() {
            let path = self.dir.join(self.filename(self.parts.len()));
            self.current = Some((BufWriter::new(File::create(path)?), Sha1::new(), 0));
        }
        let Some((file, sha, size)) = self.current.as_mut() else {
            return Ok(0);
        };
        let room = usize::try_from(PART_SIZE - *size).unwrap_or(usize::MAX);
        let n = buf.len().min(room);
        file.write_all(&buf[..n])?;
        sha.update(&buf[..n]);
        *size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Unbundles pushed ciphertext: part digests, AES-128-CBC, gunzip, the
/// tar stream's SHA-1, and the tar member's bytes as output.
pub struct Unbundler {
    parts: Vec<Part>,
    next_part: usize,
    part_sha: Option<Sha1>,
    cipher: cbc::Decryptor<Aes128>,
    pending: Vec<u8>,
    last_plain: Option<[u8; 16]>,
    gunzip: GzDecoder<TarReader>,
    /// The first decoding error: later input of the part is only hashed,
    /// so a damaged part is reported as such rather than as the gunzip
    /// error its damage caused.
    failed: Option<BundleError>,
}

impl std::fmt::Debug for Unbundler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unbundler")
            .field("next_part", &self.next_part)
            .finish_non_exhaustive()
    }
}

impl Unbundler {
    /// An unbundler of a bundle of `parts` encrypted with `key`.
    pub fn new(key: &BundleKey, parts: &[Part]) -> Self {
        Self {
            parts: parts.to_vec(),
            next_part: 0,
            part_sha: None,
            cipher: cbc::Decryptor::<Aes128>::new(&key.key.into(), &key.iv.into()),
            pending: Vec::new(),
            last_plain: None,
            gunzip: GzDecoder::new(TarReader::default()),
            failed: None,
        }
    }

    /// The part to push next, if any is left.
    pub fn next_part(&self) -> Option<&Part> {
        self.parts.get(self.next_part)
    }

    /// Starts the next part.
    pub fn begin_part(&mut self) {
        self.part_sha = Some(Sha1::new());
    }

    /// Pushes ciphertext of the current part; the image bytes it yields
    /// are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BundleError> {
        if let Some(sha) = self.part_sha.as_mut() {
            sha.update(data);
        }
        if self.failed.is_some() {
            return Ok(());
        }
        if let Err(e) = self.decode(data, out) {
            self.failed = Some(e);
        }
        Ok(())
    }

    fn decode(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BundleError> {
        for slice in data.chunks(FEED) {
            self.pending.extend_from_slice(slice);
            let full = self.pending.len() / 16 * 16;
            let mut plain = Vec::with_capacity(full);
            for block in self.pending[..full].chunks_exact_mut(16) {
                let mut b = [0u8; 16];
                b.copy_from_slice(block);
                self.cipher
                    .decrypt_block_mut(GenericArray::from_mut_slice(&mut b));
                // The last block carries the padding: hold it back until
                // the next one shows it was not the last.
                if let Some(prev) = self.last_plain.replace(b) {
                    plain.extend_from_slice(&prev);
                }
            }
            self.pending.drain(..full);
            self.feed(&plain, out)?;
        }
        Ok(())
    }

    fn feed(&mut self, plain: &[u8], out: &mut Vec<u8>) -> Result<(), BundleError> {
        self.gunzip
            .write_all(plain)
            .map_err(|e| BundleError::Corrupt(format!("gunzip: {e}")))?;
        out.append(&mut self.gunzip.get_mut().out);
        if let Some(e) = self.gunzip.get_ref().error.clone() {
            return Err(BundleError::Corrupt(e));
        }
        Ok(())
    }

    /// Ends the current part, checking its digest.
    pub fn end_part(&mut self) -> Result<(), BundleError> {
        let part = self
            .parts
            .get(self.next_part)
            .ok_or_else(|| BundleError::Corrupt("more parts than the manifest lists".into()))?;
        let actual = self
            .part_sha
            .take()
            .map(|s| hex::encode(s.finalize()))
            .unwrap_or_default();
        if !actual.eq_ignore_ascii_case(&part.digest) {
            return Err(BundleError::PartDigest {
                filename: part.filename.clone(),
            });
        }
        self.next_part += 1;
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Ends the stream: padding, gzip trailer, the tar member complete
    /// with `size` bytes, and the tar stream's digest equal to `digest`.
    pub fn finish(mut self, digest: &str, size: u64, out: &mut Vec<u8>) -> Result<(), BundleError> {
        if self.next_part != self.parts.len() {
            return Err(BundleError::Corrupt("not every part was read".into()));
        }
        let last = self
            .last_plain
            .take()
            .filter(|_| self.pending.is_empty())
            .ok_or_else(|| BundleError::Corrupt("the ciphertext is not whole AES blocks".into()))?;
        let pad = usize::from(last[15]);
        if !(1..=16).contains(&pad) || last[16 - pad..].iter().any(|b| usize::from(*b) != pad) {
            return Err(BundleError::Corrupt(
                "bad AES padding (wrong key, or a damaged last part)".into(),
            ));
        }
        self.feed(&last[..16 - pad], out)?;
        let tar = self
            .gunzip
            .finish()
            .map_err(|e| BundleError::Corrupt(format!("gunzip: {e}")))?;
        out.extend_from_slice(&tar.out);
        if let Some(e) = tar.error {
            return Err(BundleError::Corrupt(e));
        }
        let actual = hex::encode(tar.sha.finalize());
        if !actual.eq_ignore_ascii_case(digest) {
            return Err(BundleError::ImageDigest {
                expected: digest.to_owned(),
                actual,
            });
        }
        match tar.member {
            Some(n) if tar.emitted == n && n == size => Ok(()),
            Some(n) if tar.emitted == n => Err(BundleError::Corrupt(format!(
                "the image has {n} bytes, the manifest says {size}"
            ))),
            _ => Err(BundleError::Corrupt(
                "the tar stream holds no complete file".into(),
            )),
        }
    }
}

/// A push-based reader of a tar stream that hashes every byte and yields
/// the data of its first regular file (pax and GNU long-name headers
/// before it are skipped).
#[derive(Default)]
struct TarReader {
    sha: Sha1,
    header: Vec<u8>,
    skip: u64,
    /// Size of the member being yielded, once its header is read.
    member: Option<u64>,
    emitted: u64,
    done: bool,
    out: Vec<u8>,
    error: Option<String>,
}

impl TarReader {
    fn on_header(&mut self) {
        let h = std::mem::take(&mut self.header);
        if h.iter().all(|b| *b == 0) {
            self.done = true;
            self.error = Some("the tar stream holds no file".into());
            return;
        }
        let size = if h[124] & 0x80 != 0 {
            u64::from_be_bytes(h[128..136].try_into().unwrap_or_default())
        } else {
            let text = String::from_utf8_lossy(&h[124..136]);
            match u64::from_str_radix(text.trim_matches(|c: char| c == '\0' || c == ' '), 8) {
                Ok(n) => n,
                Err(_) => {
                    self.done = true;
                    self.error = Some("a tar header has a bad size".into());
                    return;
                }
            }
        };
        match h[156] {
            b'0' | 0 | b'7' => self.member = Some(size),
            _ => self.skip = size.div_ceil(BLOCK as u64) * BLOCK as u64,
        }
    }
}

impl Write for TarReader {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sha.update(buf);
        let mut rest = buf;
        while !rest.is_empty() && !self.done {
            if let Some(size) = self.member {
                let n = usize::try_from(size - self.emitted)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.out.extend_from_slice(&rest[..n]);
                self.emitted += n as u64;
                rest = &rest[n..];
                if self.emitted == size {
                    // The rest (padding, end blocks) is only hashed.
                    self.done = true;
                }
            } else if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                self.skip -= n as u64;
                rest = &rest[n..];
            } else {
                let n = (BLOCK - self.header.len()).min(rest.len());
                self.header.extend_from_slice(&rest[..n]);
                rest = &rest[n..];
                if self.header.len() == BLOCK {
                    self.on_header();
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Unbundles the parts in `dir` into `out` (ec2-unbundle): returns the
/// bytes written.
pub fn unbundle_files(
    manifest: &crate::Manifest,
    key: &BundleKey,
    dir: &Path,
    out: &mut impl Write,
    mut progress: impl FnMut(u64),
) -> Result<u64, BundleError> {
    let mut unbundler = Unbundler::new(key, &manifest.parts);
    let mut buf = vec![0u8; 256 * 1024];
    let mut image = Vec::new();
    let mut written = 0u64;
    let mut read = 0u64;
    for part in &manifest.parts {
        let mut file = File::open(dir.join(&part.filename))?;
        unbundler.begin_part();
        loop {
            let n = file.read(&mut buf)?;
            if n == 0 {
                break;
            }
            read += n as u64;
            unbundler.push(&buf[..n], &mut image)?;
            out.write_all(&image)?;
            written += image.len() as u64;
            image.clear();
            progress(read);
        }
        unbundler.end_part()?;
    }
    unbundler.finish(&manifest.digest, manifest.size, &mut image)?;
    out.write_all(&image)?;
    written += image.len() as u64;
    out.flush()?;
    Ok(written)
}

#[cfg(test)]
mod tests;
