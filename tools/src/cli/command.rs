//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use quiver_engine::feature::{FeatureSpec, KeyType};

use super::error::EXIT_CODES_HELP;
use super::parse;

/// The server address used when neither `--addr` nor `--data` is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:7878";
/// Most rows a load sends per pipelined batch.
pub const MAX_BATCH_ROWS: usize = 100_000;
/// Most entities the demo writes.
pub const MAX_DEMO_ENTITIES: u64 = 10_000_000;

const ABOUT: &str = "quiver: talk to a Quiver feature store (quiverd, or a local data file)";

const LONG_ABOUT: &str = "\
quiver: talk to a Quiver feature store.

By default every command goes to quiverd at 127.0.0.1:7878 (--addr). With --data PATH the
command opens the store in this process over a data file instead (created, 1GiB by default, if
missing): no server needed. Try:

    quiver --data ./quiver-data/demo.db demo

Values on the command line are typed by the group's schema: 31, 0.5, true, text, null,
[0.1,0.2] for vectors and lists, hex for bytes. Durations: 45s, 30m, 12h, 7d. Sizes: 4GiB.";

#[derive(Debug, Parser)]
#[command(name = "quiver", version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// quiverd address, host:port [default: 127.0.0.1:7878]
    #[arg(long, global = true, value_name = "HOST:PORT", conflicts_with = "data")]
    pub addr: Option<String>,
    /// Open the store in-process over this data file instead of talking to quiverd
    #[arg(long, global = true, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Size of the data file when --data creates it
    #[arg(long, global = true, value_name = "SIZE", default_value = "1GiB", value_parser = parse::parse_size_bytes)]
    pub data_size: u64,
    /// Machine-readable output: one JSON document on stdout, no progress bars
    #[arg(long, global = true)]
    pub json: bool,
    /// Token for quiverd's handshake
    #[arg(
        long,
        global = true,
        env = "QUIVER_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub auth_token: Option<String>,
    /// User to log in as (with --password); instead of --auth-token
    #[arg(long = "user", global = true, env = "QUIVER_USER", value_name = "NAME")]
    pub login_user: Option<String>,
    /// Password of --user
    #[arg(
        long,
        global = true,
        env = "QUIVER_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,
    /// Speak TLS to quiverd (with --ca)
    #[arg(long, global = true)]
    pub tls: bool,
    /// PEM CA certificate that signed quiverd's certificate
    #[arg(long = "ca", global = true, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// PEM client certificate, for a quiverd that asks for one (with --key)
    #[arg(long = "cert", global = true, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --cert
    #[arg(long = "key", global = true, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check that quiverd answers, and how fast
    Ping,
    /// Store and server statistics, or with --group the live statistics of a group's features
    Stats(StatsArgs),
    /// Check groups against their freshness and drift objectives; exits 12 when one fails
    /// (for cron and CI)
    Check(CheckArgs),
    /// Save, show and drop the baselines of features that drift is measured against
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Create, describe, list, alter and drop feature groups
    #[command(subcommand)]
    Group(GroupCommand),
    /// Write feature values of one entity: put GROUP KEY NAME=VALUE ...
    Put(PutArgs),
    /// Read features: get GROUP KEY [NAME ...], get --entity KEY GROUP:FEATURE ..., or
    /// get --keys FILE GROUP [NAME ...]; --as-of TIME reads a past time
    Get(GetArgs),
    /// Every version of one entity's features between two times: history GROUP KEY [--feature NAME ...]
    History(HistoryArgs),
    /// Delete one entity's row of a group
    Delete(DeleteArgs),
    /// Bulk-load a CSV, JSON Lines or Parquet file into a group
    Load(LoadArgs),
    /// Write every row of a group (or, with --history, every version) to a JSON Lines or Parquet file
    Export(ExportArgs),
    /// Build a point-in-time correct training set: a spine file joined with feature history, to Parquet
    TrainingSet(TrainingSetArgs),
    /// Users of quiverd: create, drop, passwd (new password from QUIVER_NEW_PASSWORD or stdin), list
    #[command(subcommand)]
    User(UserCommand),
    /// Roles of quiverd: create, drop, grant/revoke PERMISSION SCOPE, assign/unassign USER, list
    #[command(subcommand)]
    Role(RoleCommand),
    /// Who quiverd takes this connection for, and what it may do
    Whoami,
    /// The partition map of a cluster: status, nodes, partitions (ask any node with --addr)
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Check a data file or device directly (with the server stopped)
    Inspect(InspectArgs),
    /// Create a demo group, write synthetic users, read some back (works best with --data)
    Demo(DemoArgs),
    /// Latency-SLO benchmark harness: open-loop load at a fixed rate, HdrHistogram percentiles
    /// (see `quiver bench --help`; its flags follow `bench`)
    #[command(disable_help_flag = true)]
    Bench(BenchPlaceholder),
}

/// `quiver bench` is parsed by its own parser (see [`parse_bench`]): its flags (`--json PATH`,
/// `--auth-token`) differ from the global ones. This variant only lists it in `quiver --help`.
#[derive(Debug, Args)]
pub struct BenchPlaceholder {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

/// The command line of `quiver bench ...`.
#[derive(Debug, Parser)]
#[command(
    name = "quiver bench",
    bin_name = "quiver bench",
    about = "Latency-SLO benchmark harness"
)]
pub struct BenchCli {
    #[command(flatten)]
    pub args: crate::bench::BenchArgs,
}

/// `Some` when the command line is `quiver bench ...`: the benchmark's own flags follow.
pub fn parse_bench(argv: &[std::ffi::OsString]) -> Option<BenchCli> {
    if argv.get(1).and_then(|a| a.to_str()) != Some("bench") {
        return None;
    }
    Some(BenchCli::parse_from(argv.iter().skip(1)))
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user (password from QUIVER_NEW_PASSWORD or the first line of stdin)
    Create {
        name: String,
        /// Role the user holds (repeatable)
        #[arg(long = "role", value_name = "ROLE")]
        roles: Vec<String>,
    },
    /// Drop a user
    Drop { name: String },
    /// Set a user's password (from QUIVER_NEW_PASSWORD or the first line of stdin)
    Passwd { name: String },
    /// List users and their roles
    List,
}

#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Create a role with no grant
    Create { name: String },
    /// Drop a role no user holds
    Drop { name: String },
    /// Grant PERMISSION (read, write, admin) on SCOPE ('*', group:NAME, tag:NAME) to a role
    Grant {
        role: String,
        permission: String,
        scope: String,
    },
    /// Revoke a grant from a role
    Revoke {
        role: String,
        permission: String,
        scope: String,
    },
    /// Give a role to a user
    Assign {
        role: String,
        #[arg(value_name = "USER")]
        member: String,
    },
    /// Take a role from a user
    Unassign {
        role: String,
        #[arg(value_name = "USER")]
        member: String,
    },
    /// List roles and their grants
    List,
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Map version, replication factor, live nodes, partitions without a master or a replica,
    /// migrations under way, draining nodes, and the answering node's replication lag
    Status,
    /// Each node: address, whether it is live, partitions it masters and replicates
    Nodes,
    /// Each partition's master and replicas
    Partitions {
        /// Only the partitions this node masters or replicates
        #[arg(long)]
        node: Option<u32>,
    },
    /// Tell a node to leave (drain it): its partitions migrate to the other nodes in the
    /// background; stop it once `cluster nodes` shows it holding nothing
    Leave {
        /// The node id
        node: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a feature group
    Create(GroupCreateArgs),
    /// Show a group's schema
    Describe { name: String },
    /// List groups
    List {
        /// Only groups carrying this tag
        #[arg(long)]
        tag: Option<String>,
    },
    /// Change a group: add or deprecate features, set its TTL, history, description or owner
    Alter(GroupAlterArgs),
    /// Drop a group and all its data
    Drop { name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyTypeArg {
    String,
    I64,
    Bytes,
}

impl From<KeyTypeArg> for KeyType {
    fn from(arg: KeyTypeArg) -> KeyType {
        match arg {
            KeyTypeArg::String => KeyType::String,
            KeyTypeArg::I64 => KeyType::I64,
            KeyTypeArg::Bytes => KeyType::Bytes,
        }
    }
}

#[derive(Debug, Args)]
pub struct GroupCreateArgs {
    pub name: String,
    /// Type of the entity key
    #[arg(long, value_enum)]
    pub key_type: KeyTypeArg,
    /// A feature, NAME:TYPE (bool, i64, f32, f64, string, bytes, f32[N], list<i64>, list<f32>, list<string>)
    #[arg(long = "feature", value_name = "NAME:TYPE", required = true, value_parser = parse::parse_feature_spec)]
    pub features: Vec<FeatureSpec>,
    /// Max age of values (7d, 12h, 30m, 45s); none by default
    #[arg(long, value_name = "DURATION", value_parser = parse::parse_duration_s)]
    pub ttl: Option<u32>,
    /// none, zstd (level 3) or zstd:LEVEL
    #[arg(long, default_value = "none")]
    pub compression: String,
    #[arg(long, default_value = "")]
    pub description: String,
    #[arg(long, default_value = "")]
    pub owner: String,
    /// A tag (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Accept NaN and infinities in float features
    #[arg(long)]
    pub allow_non_finite: bool,
    /// Keep every version for this long (90d, 12h, ...) for as-of reads, history and training sets; none by default
    #[arg(long, value_name = "DURATION", value_parser = parse::parse_duration_s)]
    pub history: Option<u32>,
    /// Keep at most N superseded versions per feature and entity (1 to 100000), alone or with --history (a version either bound removes is removed); trimmed in the background
    #[arg(long, value_name = "N", value_parser = parse::parse_max_versions)]
    pub max_versions: Option<u32>,
    /// A validation rule of a feature, FEATURE:RULE (repeatable): not-null, finite, range=[A,B), norm=[A,B], len=[A,B], in=V,V,..., regex=PATTERN, lag=DURATION, future=DURATION
    #[arg(long = "rule", value_name = "FEATURE:RULE", value_parser = parse_rule_arg)]
    pub rules: Vec<RuleArg>,
    /// What a put that breaks a rule does: reject refuses the whole put, drop leaves out the offending values and counts them
    #[arg(long, value_enum, default_value = "reject")]
    pub on_violation: ViolationArg,
    /// Freshness objective: the newest write may be at most this old (15m, 2h, 1d); `quiver check` fails past it
    #[arg(long, value_name = "DURATION", value_parser = parse::parse_duration_s)]
    pub max_staleness: Option<u32>,
    /// Drift threshold on the population stability index of a feature against its baseline (e.g. 0.2)
    #[arg(long, value_name = "X", value_parser = parse::parse_threshold)]
    pub drift_psi: Option<f64>,
    /// Drift threshold on the quantile distance of a feature against its baseline (e.g. 0.1)
    #[arg(long, value_name = "X", value_parser = parse::parse_threshold)]
    pub drift_distance: Option<f64>,
}

/// One `--rule FEATURE:RULE`.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleArg {
    pub feature: String,
    pub rule: String,
}

fn parse_rule_arg(text: &str) -> Result<RuleArg, String> {
    let (feature, rule) = text
        .split_once(':')
        .ok_or_else(|| format!("invalid rule '{text}': expected FEATURE:RULE"))?;
    quiver_engine::feature::FeatureRules::default().parse_rule(rule)?;
    Ok(RuleArg {
        feature: feature.to_string(),
        rule: rule.to_string(),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViolationArg {
    /// Refuse the whole put
    Reject,
    /// Leave out the offending values and count them
    Drop,
}

impl From<ViolationArg> for quiver_engine::feature::ViolationMode {
    fn from(arg: ViolationArg) -> Self {
        match arg {
            ViolationArg::Reject => quiver_engine::feature::ViolationMode::Reject,
            ViolationArg::Drop => quiver_engine::feature::ViolationMode::Drop,
        }
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
pub struct GroupAlterArgs {
    pub name: String,
    /// Add a feature, NAME:TYPE (repeatable)
    #[arg(long = "add-feature", value_name = "NAME:TYPE", group = "change", value_parser = parse::parse_feature_spec)]
    pub add_features: Vec<FeatureSpec>,
    /// Deprecate a feature: it keeps its data but accepts no writes (repeatable)
    #[arg(long = "deprecate", value_name = "NAME", group = "change")]
    pub deprecate: Vec<String>,
    /// New max age (7d, 12h, ...) or none
    #[arg(long, value_name = "DURATION|none", group = "change", value_parser = parse_ttl_arg)]
    pub ttl: Option<TtlArg>,
    #[arg(long, group = "change")]
    pub description: Option<String>,
    #[arg(long, group = "change")]
    pub owner: Option<String>,
    /// Keep versions for this long (90d, ...), from now on; or off
    #[arg(long, value_name = "DURATION|off", group = "change", value_parser = parse_history_arg)]
    pub history: Option<HistoryArg>,
    /// Keep at most N superseded versions per feature and entity (1 to 100000), turning history on if it is off; or off to remove the count (the window stays)
    #[arg(long, value_name = "N|off", group = "change", value_parser = parse_max_versions_arg)]
    pub max_versions: Option<MaxVersionsArg>,
    /// Set a feature's rules, FEATURE:RULE (repeatable): the rules given for a feature replace all of its rules
    #[arg(long = "rule", value_name = "FEATURE:RULE", group = "change", value_parser = parse_rule_arg)]
    pub rules: Vec<RuleArg>,
    /// Remove all the rules of a feature (repeatable)
    #[arg(long = "clear-rules", value_name = "FEATURE", group = "change")]
    pub clear_rules: Vec<String>,
    /// What a put that breaks a rule does from now on
    #[arg(long, value_enum, group = "change")]
    pub on_violation: Option<ViolationArg>,
    /// Freshness objective (15m, 2h, ...), or none
    #[arg(long, value_name = "DURATION|none", group = "change", value_parser = parse_staleness_arg)]
    pub max_staleness: Option<TtlArg>,
    /// Drift threshold on the population stability index, or none
    #[arg(long, value_name = "X|none", group = "change", value_parser = parse_threshold_arg)]
    pub drift_psi: Option<ThresholdArg>,
    /// Drift threshold on the quantile distance, or none
    #[arg(long, value_name = "X|none", group = "change", value_parser = parse_threshold_arg)]
    pub drift_distance: Option<ThresholdArg>,
}

fn parse_staleness_arg(text: &str) -> Result<TtlArg, String> {
    if text == "none" {
        return Ok(TtlArg(None));
    }
    parse::parse_duration_s(text).map(|s| TtlArg(Some(s)))
}

/// A drift threshold, or `none` (a newtype for the same reason as [`TtlArg`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdArg(pub Option<f64>);

fn parse_threshold_arg(text: &str) -> Result<ThresholdArg, String> {
    if text == "none" {
        return Ok(ThresholdArg(None));
    }
    parse::parse_threshold(text).map(|v| ThresholdArg(Some(v)))
}

/// A history version count, or `off` (a newtype for the same reason as [`TtlArg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxVersionsArg(pub Option<u32>);

fn parse_max_versions_arg(text: &str) -> Result<MaxVersionsArg, String> {
    parse::parse_max_versions_or_off(text).map(MaxVersionsArg)
}

/// A TTL or `none` (a newtype: clap reads `Option<Option<_>>` as "flag with optional value").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlArg(pub Option<u32>);

fn parse_ttl_arg(text: &str) -> Result<TtlArg, String> {
    parse::parse_ttl(text).map(TtlArg)
}

/// A history retention in seconds, or `off` (a newtype for the same reason as [`TtlArg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryArg(pub Option<u32>);

fn parse_history_arg(text: &str) -> Result<HistoryArg, String> {
    parse::parse_history(text).map(HistoryArg)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Per feature, the newest event time wins
    Merge,
    /// The row becomes exactly these values
    Replace,
    /// Only if the entity has no row yet
    Create,
    /// Only if the entity already has a row
    Update,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub group: String,
    pub key: String,
    /// NAME=VALUE pairs
    #[arg(required = true, value_name = "NAME=VALUE")]
    pub values: Vec<String>,
    /// Event time of the values, ms since the Unix epoch [default: now]
    #[arg(long, value_name = "UNIX_MS")]
    pub ts: Option<u64>,
    #[arg(long, value_enum, default_value = "merge")]
    pub mode: ModeArg,
    /// Acknowledge only once durable
    #[arg(long)]
    pub sync: bool,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// Read across groups: the entity key; the arguments are then GROUP:FEATURE references
    #[arg(long, value_name = "KEY", conflicts_with = "keys")]
    pub entity: Option<String>,
    /// Read many entities of one group: a file of entity keys, one per line; the arguments are
    /// then GROUP [NAME ...] (current values only: not with --as-of)
    #[arg(long, value_name = "FILE", conflicts_with = "as_of")]
    pub keys: Option<std::path::PathBuf>,
    /// GROUP KEY [NAME ...], GROUP:FEATURE ... with --entity, or GROUP [NAME ...] with --keys
    #[arg(required = true, value_name = "ARGS")]
    pub args: Vec<String>,
    /// Read the values as of this time (ms since the epoch, or RFC 3339) from the groups' history
    #[arg(long, value_name = "TIME", value_parser = parse::parse_time_ms)]
    pub as_of: Option<u64>,
    /// With --as-of: only versions the store had been written by this time (ms or RFC 3339)
    #[arg(long, value_name = "TIME", requires = "as_of", value_parser = parse::parse_time_ms)]
    pub known_at: Option<u64>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub group: String,
    pub key: String,
    /// A feature to list (repeatable) [default: every live feature of the group]
    #[arg(long = "feature", value_name = "NAME")]
    pub features: Vec<String>,
    /// Oldest event time (ms since the epoch, or RFC 3339) [default: the start of the group's history window]
    #[arg(long, value_name = "TIME", value_parser = parse::parse_time_ms)]
    pub from: Option<u64>,
    /// Newest event time, inclusive [default: no limit]
    #[arg(long, value_name = "TIME", value_parser = parse::parse_time_ms)]
    pub to: Option<u64>,
    /// Only versions the store had been written by this time
    #[arg(long, value_name = "TIME", value_parser = parse::parse_time_ms)]
    pub known_at: Option<u64>,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Show the live statistics of this group's features
    #[arg(long)]
    pub group: Option<String>,
    /// Only this feature of the group
    #[arg(long, requires = "group")]
    pub feature: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// Save the distribution of a live window (--window 1h|24h, or hour|day) or of a Parquet
    /// file's columns (--parquet FILE) as the baseline of a group's features
    Save(BaselineSaveArgs),
    /// The saved baselines of a group (of one feature)
    Show {
        #[arg(long)]
        group: String,
        #[arg(long)]
        feature: Option<String>,
    },
    /// Drop the baselines of a group (of one feature)
    Drop {
        #[arg(long)]
        group: String,
        #[arg(long)]
        feature: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["window", "parquet"])))]
pub struct BaselineSaveArgs {
    #[arg(long)]
    pub group: String,
    /// Only this feature [default: every feature with values and a distribution]
    #[arg(long)]
    pub feature: Option<String>,
    /// A live window of the store's statistics: 1h (or hour), 24h (or day)
    #[arg(long, value_name = "NAME")]
    pub window: Option<String>,
    /// A Parquet file (a training set): columns named after the group's features
    #[arg(long, value_name = "FILE")]
    pub parquet: Option<PathBuf>,
    /// With --parquet and --feature: the column to read [default: the feature's name]
    #[arg(long, value_name = "NAME", requires = "parquet")]
    pub column: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Check only this group (repeatable) [default: every group]
    #[arg(long = "group", value_name = "NAME")]
    pub groups: Vec<String>,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    pub group: String,
    pub key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    Csv,
    Jsonl,
    Parquet,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    pub group: String,
    pub file: PathBuf,
    /// File format [default: from the extension: .csv, .jsonl/.ndjson, .parquet]
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Column holding the entity key [default: "entity", else "key"]
    #[arg(long, value_name = "NAME")]
    pub key_column: Option<String>,
    /// Column holding the event time (ms since the epoch, or RFC 3339); rows without one use the load's start time
    #[arg(long, value_name = "NAME", default_value = "event_time")]
    pub ts_column: String,
    /// Column holding when each row was written (ms since the epoch, or RFC 3339), recorded as the write time of its versions: imports history whose arrival times are known (groups with history only)
    #[arg(long, value_name = "NAME")]
    pub write_time_column: Option<String>,
    /// Rejected rows tolerated; one more aborts the load (exit 8)
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub max_errors: u64,
    /// Rows per pipelined batch
    #[arg(long, value_name = "N", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=MAX_BATCH_ROWS as u64))]
    pub batch_rows: u64,
    #[arg(long, value_enum, default_value = "merge")]
    pub mode: ModeArg,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub group: String,
    pub file: PathBuf,
    /// jsonl or parquet [default: from the extension]
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Overwrite FILE if it exists
    #[arg(long)]
    pub force: bool,
    /// Export every version kept in the group's history (one row per entity and version) instead of the online rows
    #[arg(long)]
    pub history: bool,
    /// With --history: oldest event time (ms since the epoch, or RFC 3339) [default: the start of the history window]
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse::parse_time_ms)]
    pub from: Option<u64>,
    /// With --history: newest event time, inclusive [default: no limit]
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse::parse_time_ms)]
    pub to: Option<u64>,
    /// With --history: only versions the store had been written by this time
    #[arg(long, value_name = "TIME", requires = "history", value_parser = parse::parse_time_ms)]
    pub known_at: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TrainingSetArgs {
    /// The spine: a Parquet or CSV file of entity keys, a timestamp and any other columns (labels ...), all passed through
    #[arg(long, value_name = "FILE")]
    pub spine: PathBuf,
    /// Spine format [default: from the extension: .parquet or .csv]
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// The spine column holding each row's time (a timestamp, ms since the epoch, a date, or RFC 3339)
    #[arg(long, value_name = "COLUMN")]
    pub timestamp_column: String,
    /// GROUP=COLUMN: the spine column holding GROUP's entity keys (one per group of the features)
    #[arg(long = "key-column", value_name = "GROUP=COLUMN", required = true)]
    pub key_columns: Vec<String>,
    /// A feature to add, GROUP:FEATURE (repeatable; its group must keep history)
    #[arg(long = "feature", value_name = "GROUP:FEATURE", required = true)]
    pub features: Vec<String>,
    /// The Parquet file to write
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// event: by event time only (late data is seen); as-served: what the online store served at the row's time; known-at:COLUMN: by event time among versions written by the column's time
    #[arg(long, value_name = "MODE", default_value = "event", value_parser = crate::cli::training::parse_mode)]
    pub mode: crate::cli::training::ModeSpec,
    /// Add a FEATURE__status column per feature: present, null, not_found or expired
    #[arg(long)]
    pub status_columns: bool,
    /// Name feature columns GROUP__FEATURE instead of FEATURE
    #[arg(long)]
    pub full_feature_names: bool,
    /// Spine rows read, joined and written per step (one output row group each); rows of one entity in a step share its reads
    #[arg(long, value_name = "N", default_value_t = quiver_engine::training::MAX_SPINE_BATCH_ROWS as u64, value_parser = clap::value_parser!(u64).range(1..=quiver_engine::training::MAX_SPINE_BATCH_ROWS as u64))]
    pub batch_rows: u64,
    /// MiB of entity histories kept between batches (local store): an entity's history is read from the device once per spine while this holds it
    #[arg(long, value_name = "MIB", default_value_t = 256, value_parser = clap::value_parser!(u64).range(0..=65_536))]
    pub cache_mib: u64,
    /// Overwrite --out if it exists
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Data file or block device
    pub path: PathBuf,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Synthetic users to write
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u64).range(1..=MAX_DEMO_ENTITIES))]
    pub entities: u64,
    /// Name of the demo group
    #[arg(long, default_value = "demo_users")]
    pub group: String,
}
