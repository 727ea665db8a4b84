//! Named limits of the feature model. Every one is checked where data enters, with a typed
//! error that names it.

/// Longest group, feature or tag name, in bytes.
pub const MAX_NAME_BYTES: usize = 63;
/// Most features a group may ever hold, deprecated ones included (feature ids are never reused).
pub const MAX_FEATURES_PER_GROUP: usize = 4096;
/// Most groups a store may hold at once.
pub const MAX_GROUPS: usize = 10_000;
/// Largest dimension of an `f32[N]` vector.
pub const MAX_VECTOR_DIM: u32 = 65_536;
/// Largest `string` or `bytes` value (and each element of a `list<string>`), in bytes.
pub const MAX_VALUE_BYTES: usize = 256 * 1024;
/// Most elements in a `list<...>` value.
pub const MAX_LIST_LEN: usize = 65_536;
/// Most tags on a group or a feature.
pub const MAX_TAGS: usize = 32;
/// Longest description of a group or a feature, in bytes.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Longest owner of a group or a feature, in bytes.
pub const MAX_OWNER_BYTES: usize = 255;
/// Largest encoded group schema, in bytes (it is one engine record).
pub const MAX_SCHEMA_BYTES: usize = 512 * 1024;
/// Largest encoded row before compression, in bytes. The engine's own `max_record_bytes`
/// (1 MiB by default) is checked as well, after compression.
pub const MAX_ROW_BYTES: usize = 8 * 1024 * 1024;
/// Shortest and longest entity key, in bytes (the engine's key limit).
pub const MIN_KEY_BYTES: usize = 1;
pub const MAX_KEY_BYTES: usize = 1024;
/// Most feature references in one get.
pub const MAX_FEATURE_REFS: usize = 4096;
/// Most entities in one get_many.
pub const MAX_ENTITIES_PER_GET: usize = 10_000;
/// Most rows one scan call may return.
pub const MAX_SCAN_ITEMS: usize = 100_000;
/// Longest TTL / max age, in seconds (10 years).
pub const MAX_TTL_S: u32 = 10 * 365 * 24 * 3600;
/// zstd levels a group may ask for.
pub const MIN_ZSTD_LEVEL: i32 = 1;
pub const MAX_ZSTD_LEVEL: i32 = 22;
/// Rows shorter than this are never compressed: zstd's frame overhead would eat the gain.
pub const MIN_COMPRESS_BYTES: usize = 64;
/// Most values in one feature's allowed set (rule `in=`).
pub const MAX_ALLOWED_VALUES: usize = 1024;
/// Longest value of an allowed set, in bytes.
pub const MAX_ALLOWED_VALUE_BYTES: usize = 1024;
/// Longest regular expression of a rule, in bytes.
pub const MAX_PATTERN_BYTES: usize = 1024;
/// Longest freshness objective (`max staleness`) of a group, in seconds (10 years).
pub const MAX_STALENESS_S: u32 = 10 * 365 * 24 * 3600;
/// Largest drift threshold (PSI or quantile distance) a group may set.
pub const MAX_DRIFT_THRESHOLD: f64 = 1000.0;
