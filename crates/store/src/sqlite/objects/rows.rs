//! Row decoding and value conversions for the object index's operations:
//! shared with the other backend (`crate::shared::objects`) but for what
//! the dialect changes.

pub(super) use crate::shared::objects::{
    bucket_from_row, from_json, object_from_row, part_from_row, prefix_upper_bound, to_i64,
    to_json, to_u64, upload_from_row,
};

pub(super) const UPLOAD_EXISTS: &str = "SELECT 1 FROM multipart_uploads WHERE upload_id = ?";
