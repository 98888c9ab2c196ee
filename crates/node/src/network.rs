//! The instance network of a node: being written.
