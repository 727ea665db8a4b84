//! `quiver group create|describe|list|alter|drop`.

use quiver_engine::feature::{Alter, Compression, FeatureRules, GroupSpec, QualitySlo};
use quiver_engine::history::HistoryPolicy;
use serde_json::json;

use super::backend::Backend;
use super::command::{GroupAlterArgs, GroupCommand, GroupCreateArgs, RuleArg};
use super::error::{CliError, CliResult};
use super::json::schema_to_json;
use super::output::{print_group_list, print_schema, Out};

/// zstd level used by `--compression zstd`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 3;

pub fn run(cmd: &GroupCommand, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    match cmd {
        GroupCommand::Create(args) => {
            let schema = backend.create_group(group_spec(args)?)?;
            out.emit(schema_to_json(&schema), || {
                println!("created feature group '{}'", schema.name);
                print_schema(&schema);
            });
        }
        GroupCommand::Describe { name } => {
            let schema = backend.describe_group(name)?;
            out.emit(schema_to_json(&schema), || print_schema(&schema));
        }
        GroupCommand::List { tag } => {
            let groups = backend.list_groups(tag.as_deref())?;
            let doc =
                json!({ "groups": groups.iter().map(|g| schema_to_json(g)).collect::<Vec<_>>() });
            out.emit(doc, || print_group_list(&groups));
        }
        GroupCommand::Alter(args) => alter(args, backend, out)?,
        GroupCommand::Drop { name } => {
            backend.drop_group(name)?;
            out.emit(json!({ "dropped": name }), || {
                println!("dropped feature group '{name}'")
            });
        }
    }
    Ok(())
}

fn group_spec(args: &GroupCreateArgs) -> CliResult<GroupSpec> {
    let mut spec = GroupSpec::new(
        args.name.clone(),
        args.key_type.into(),
        args.features.clone(),
    );
    spec.ttl_s = args.ttl;
    spec.compression = parse_compression(&args.compression)?;
    spec.allow_non_finite = args.allow_non_finite;
    spec.description = args.description.clone();
    spec.owner = args.owner.clone();
    spec.tags = args.tags.clone();
    spec.history = match (args.history, args.max_versions) {
        (None, None) => None,
        (retention_s, max_versions) => Some(HistoryPolicy {
            retention_s,
            max_versions,
        }),
    };
    spec.on_violation = args.on_violation.into();
    spec.quality = QualitySlo {
        max_staleness_s: args.max_staleness,
        drift_psi: args.drift_psi,
        drift_distance: args.drift_distance,
    };
    for (feature, rules) in rules_by_feature(&args.rules)? {
        let spec_feature = spec
            .features
            .iter_mut()
            .find(|f| f.name == feature)
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--rule names feature '{feature}', which is not among the --feature options"
                ))
            })?;
        spec_feature.rules = rules;
    }
    Ok(spec)
}

/// The `--rule FEATURE:RULE` options gathered per feature, in order of first mention.
fn rules_by_feature(args: &[RuleArg]) -> CliResult<Vec<(String, FeatureRules)>> {
    let mut out: Vec<(String, FeatureRules)> = Vec::new();
    for arg in args {
        let index = match out.iter().position(|(f, _)| *f == arg.feature) {
            Some(i) => i,
            None => {
                out.push((arg.feature.clone(), FeatureRules::default()));
                out.len() - 1
            }
        };
        out[index]
            .1
            .parse_rule(&arg.rule)
            .map_err(|e| CliError::usage(format!("feature '{}': {e}", arg.feature)))?;
    }
    Ok(out)
}

/// `none`, `zstd` or `zstd:LEVEL`.
pub fn parse_compression(text: &str) -> CliResult<Compression> {
    let bad = || {
        CliError::usage(format!(
            "invalid compression '{text}': expected none, zstd or zstd:LEVEL"
        ))
    };
    match text {
        "none" => Ok(Compression::None),
        "zstd" => Ok(Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }),
        _ => {
            let level = text.strip_prefix("zstd:").ok_or_else(bad)?;
            let level: i32 = level.parse().map_err(|_| bad())?;
            Ok(Compression::Zstd { level })
        }
    }
}

/// Applies each requested change in turn; the printed schema is the one after the last.
fn alter(args: &GroupAlterArgs, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let mut changes: Vec<Alter> = Vec::new();
    changes.extend(args.add_features.iter().cloned().map(Alter::AddFeature));
    changes.extend(args.deprecate.iter().cloned().map(Alter::DeprecateFeature));
    if let Some(ttl) = args.ttl {
        changes.push(Alter::SetTtl(ttl.0));
    }
    if let Some(description) = &args.description {
        changes.push(Alter::SetDescription(description.clone()));
    }
    if let Some(owner) = &args.owner {
        changes.push(Alter::SetOwner(owner.clone()));
    }
    if let Some(history) = args.history {
        changes.push(Alter::SetHistoryRetention(history.0));
    }
    if let Some(max_versions) = args.max_versions {
        changes.push(Alter::SetHistoryMaxVersions(max_versions.0));
    }
    for (feature, rules) in rules_by_feature(&args.rules)? {
        changes.push(Alter::SetRules(feature, rules));
    }
    for feature in &args.clear_rules {
        changes.push(Alter::SetRules(feature.clone(), FeatureRules::default()));
    }
    if let Some(mode) = args.on_violation {
        changes.push(Alter::SetViolationMode(mode.into()));
    }
    if let Some(s) = args.max_staleness {
        changes.push(Alter::SetMaxStaleness(s.0));
    }
    if let Some(v) = args.drift_psi {
        changes.push(Alter::SetDriftPsi(v.0));
    }
    if let Some(v) = args.drift_distance {
        changes.push(Alter::SetDriftDistance(v.0));
    }
    let mut schema = None;
    for change in changes {
        schema = Some(backend.alter_group(&args.name, change)?);
    }
    let schema = schema.ok_or_else(|| CliError::usage("group alter needs at least one change"))?;
    out.emit(schema_to_json(&schema), || {
        println!("altered feature group '{}'", schema.name);
        print_schema(&schema);
    });
    Ok(())
}
