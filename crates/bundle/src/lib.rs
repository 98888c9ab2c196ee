//! AMI bundles as euca2ools and ec2-ami-tools write them, for both the
//! cloud (RegisterImage of a manifest) and the `mallee bundle` commands.
//!
//! A bundle is an image file put through `tar | gzip | openssl enc
//! -aes-128-cbc` and split into parts of 10 MiB named `PREFIX.part.NN`,
//! with a manifest ([`manifest`]) that records the SHA-1 of the tar
//! stream and of each part, the AES key and IV wrapped with RSA for the
//! cloud's and the user's certificates ([`keys`]), and the user's
//! signature. [`pipeline`] runs the image through it in both directions
//! as a stream: memory stays bounded whatever the image's size.
//!
//! The crate knows files, keys and the manifest document; it knows
//! nothing of the cloud's state or of any API's wire format, so the
//! controller and the CLI share it.

pub mod keys;
pub mod manifest;
pub mod pipeline;

pub use keys::BundleKey;
pub use manifest::{Manifest, ManifestFields, Part};
pub use pipeline::{PART_SIZE, Unbundler};

/// Why a bundle cannot be made, read or unbundled. Each says what is
/// wrong in words a user can act on (RegisterImage's `StateReason`).
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// The manifest is not a 2007-10-10 bundle manifest.
    #[error("invalid manifest: {0}")]
    Manifest(String),
    /// A key or certificate is unusable.
    #[error("{0}")]
    Key(String),
    /// The wrapped key does not open with this private key: it was
    /// wrapped for another certificate.
    #[error("the bundle key was not encrypted for this cloud's certificate")]
    Unwrap,
    /// No known certificate verifies the manifest's signature.
    #[error("the manifest signature does not verify with any signing certificate of its user")]
    Signature,
    /// A part's SHA-1 differs from the manifest's.
    #[error("part {filename} does not match its digest in the manifest")]
    PartDigest {
        /// The part.
        filename: String,
    },
    /// The unbundled tar stream's SHA-1 differs from the manifest's.
    #[error("the image digest does not match the manifest (expected {expected}, got {actual})")]
    ImageDigest {
        /// The manifest's.
        expected: String,
        /// The stream's.
        actual: String,
    },
    /// Decryption, decompression or the tar stream failed.
    #[error("the bundle data is corrupt: {0}")]
    Corrupt(String),
    /// Reading or writing a file failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
