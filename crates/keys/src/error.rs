//! The one error type of this crate, carrying the AWS error code to answer with.

/// Why a key could not be created or imported.
///
/// Each variant maps to the AWS error code EC2 returns for the same mistake
/// (see [`KeyError::aws_code`]); the `Display` text is the message AWS sends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The public key material is not in a format EC2 accepts, or holds a key
    /// EC2 does not accept (DSA, ECDSA, security-key types, RSA of an
    /// unsupported size, a malformed key).
    #[error("Key is not in valid OpenSSH public key format")]
    InvalidKeyFormat,
    /// The public key material is longer than the 2048 bytes EC2 accepts.
    #[error("Value for parameter PublicKeyMaterial is invalid. Length exceeds maximum of 2048.")]
    MaterialTooLong,
    /// The public key material holds bytes that are not ASCII.
    #[error(
        "Value for parameter PublicKeyMaterial is invalid. Character sets beyond ASCII are not supported."
    )]
    MaterialNotAscii,
    /// A request parameter (`KeyType`, `KeyFormat`) has a value outside the
    /// set AWS allows.
    #[error("Value ({value}) for parameter {parameter} is invalid. Valid values are: {valid}")]
    InvalidParameterValue {
        /// The AWS parameter name, e.g. `KeyType`.
        parameter: &'static str,
        /// The value the caller sent.
        value: String,
        /// The allowed values, comma-separated.
        valid: &'static str,
    },
    /// Key generation or encoding failed inside this crate; not the caller's
    /// fault.
    #[error("An internal error has occurred: {0}")]
    Internal(String),
}

impl KeyError {
    /// The AWS error `Code` to return for this error.
    pub fn aws_code(&self) -> &'static str {
        match self {
            Self::InvalidKeyFormat => "InvalidKey.Format",
            Self::MaterialTooLong | Self::MaterialNotAscii | Self::InvalidParameterValue { .. } => {
                "InvalidParameterValue"
            }
            Self::Internal(_) => "InternalError",
        }
    }

    /// Wraps a failure of a cryptographic library as [`KeyError::Internal`].
    pub(crate) fn internal(err: impl std::fmt::Display) -> Self {
        Self::Internal(err.to_string())
    }
}
