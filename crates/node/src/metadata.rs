//! The instance metadata service: being written.
