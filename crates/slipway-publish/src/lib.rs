//! Publishing artifact trees to buckets so that clients never see a half-written tree: objects go
//! up in the safe order of their format (apt: pool, by-hash, indices, signatures, `InRelease`
//! last; simplestreams: image files, products, `index.json` last), each written atomically.

mod bucket;
mod order;

pub use bucket::{Bucket, ObjectEntry, PublishError, PublishReport, publish_tree};
pub use order::{publish_rank, sort_for_publish};
