//! Reading objects: blobs opened up front, streamed lazily in bounded chunks.

use std::collections::VecDeque;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::Stream;

use crate::BlobError;

/// Largest chunk an [`ObjectReader`] stream yields.
const CHUNK: u64 = 256 * 1024;

/// A blob [`crate::BlobStore::open_object`] needs, and the part of it to read.
pub(crate) struct Wanted {
    pub(crate) blob_id: String,
    pub(crate) path: PathBuf,
    pub(crate) size: u64,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    pub(crate) cipher: Option<crate::BlobCipher>,
}

/// An open blob and the part of it still to read.
#[derive(Debug)]
struct Piece {
    file: Arc<std::fs::File>,
    offset: u64,
    len: u64,
    cipher: Option<crate::BlobCipher>,
}

/// A consistent snapshot of (part of) an object, ready to stream.
///
/// Holds every blob it reads from open, so deleting or overwriting the object
/// afterwards does not change what it yields. Returned by
/// [`crate::BlobStore::open_object`].
#[derive(Debug)]
pub struct ObjectReader {
    pieces: VecDeque<Piece>,
    len: u64,
}

impl ObjectReader {
    /// Number of bytes this reader yields.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether this reader yields no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The data as a stream of chunks of at most 256 KiB, read lazily from
    /// the already-open files; memory stays bounded by one chunk.
    pub fn into_stream(self) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        futures_util::stream::try_unfold(self.pieces, |mut pieces| async move {
            let Some(mut piece) = pieces.pop_front() else {
                return Ok(None);
            };
            let n = piece.len.min(CHUNK);
            let file = Arc::clone(&piece.file);
            let offset = piece.offset;
            let cipher = piece.cipher.clone();
            let chunk = tokio::task::spawn_blocking(move || -> io::Result<Bytes> {
                let len = usize::try_from(n).map_err(io::Error::other)?;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, offset)?;
                if let Some(cipher) = cipher {
                    cipher.apply(offset, &mut buf);
                }
                Ok(Bytes::from(buf))
            })
            .await
            .map_err(io::Error::other)??;
            piece.offset += n;
            piece.len -= n;
            if piece.len > 0 {
                pieces.push_front(piece);
            }
            Ok(Some((chunk, pieces)))
        })
    }
}

/// Opens every wanted blob and checks its size (blocking).
pub(crate) fn open_pieces(wanted: Vec<Wanted>, len: u64) -> Result<ObjectReader, BlobError> {
    let mut pieces = VecDeque::with_capacity(wanted.len());
    for w in wanted {
        let file = match std::fs::File::open(&w.path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(w.blob_id));
            }
            Err(e) => return Err(e.into()),
        };
        let actual = file.metadata()?.len();
        if actual != w.size {
            return Err(BlobError::BlobSizeMismatch {
                blob_id: w.blob_id,
                expected: w.size,
                actual,
            });
        }
        pieces.push_back(Piece {
            file: Arc::new(file),
            offset: w.offset,
            len: w.len,
            cipher: w.cipher,
        });
    }
    Ok(ObjectReader { pieces, len })
}
