//! Small helpers every mallee crate shares, one of each: IPv4 CIDR blocks,
//! durable atomic file writes and a subprocess runner.

pub mod cidr;
pub mod durable;
pub mod proc_id;
pub mod process;
