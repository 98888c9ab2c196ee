//! The node agent: being written.
