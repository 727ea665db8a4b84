//! `quiver baseline save|show|drop`: the saved distributions that drift is measured against.
//! A baseline comes from a live window of the store's statistics (computed by the store) or
//! from a Parquet file such as a training set (computed here, from the same summaries, and
//! sent to the store).

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::Field;
use parquet::schema::types::Type as SchemaType;
use quiver_engine::feature::{Feature, FeatureType, Value};
use quiver_engine::quality::baseline::{self, Baseline, Builder};
use quiver_server::protocol::BaselineRequest;
use serde_json::Value as Json;

use super::backend::Backend;
use super::command::{BaselineCommand, BaselineSaveArgs};
use super::error::{CliError, CliResult};
use super::output::{time_text, Out};

pub fn run(cmd: &BaselineCommand, backend: &mut dyn Backend, out: Out) -> CliResult<()> {
    let doc = match cmd {
        BaselineCommand::Save(args) => save(args, backend)?,
        BaselineCommand::Show { group, feature } => backend.baseline(BaselineRequest::Show {
            group: group.clone(),
            feature: feature.clone(),
        })?,
        BaselineCommand::Drop { group, feature } => {
            let doc = backend.baseline(BaselineRequest::Drop {
                group: group.clone(),
                feature: feature.clone(),
            })?;
            out.emit(doc.clone(), || {
                println!(
                    "dropped {} baseline(s) of group '{group}'",
                    doc["dropped"].as_u64().unwrap_or(0)
                )
            });
            return Ok(());
        }
    };
    out.emit(doc.clone(), || print_baselines(&doc));
    Ok(())
}

/// `hour`/`day` as the window names the store keeps (`1h`, `24h`); others pass through.
fn window_name(text: &str) -> &str {
    match text {
        "hour" => "1h",
        "day" => "24h",
        other => other,
    }
}

fn save(args: &BaselineSaveArgs, backend: &mut dyn Backend) -> CliResult<Json> {
    if let Some(window) = &args.window {
        return backend.baseline(BaselineRequest::SaveWindow {
            group: args.group.clone(),
            feature: args.feature.clone(),
            window: window_name(window).to_string(),
        });
    }
    let path = args
        .parquet
        .as_deref()
        .ok_or_else(|| CliError::usage("baseline save needs --window NAME or --parquet FILE"))?;
    let schema = backend.describe_group(&args.group)?;
    let baselines = from_parquet(&schema, args, path)?;
    let mut saved: Vec<Json> = Vec::new();
    for b in baselines {
        let record = baseline::encode(0, &[b]);
        let doc = backend.baseline(BaselineRequest::Put {
            group: args.group.clone(),
            record,
        })?;
        saved.extend(doc["baselines"].as_array().cloned().unwrap_or_default());
    }
    Ok(serde_json::json!({ "group": args.group, "baselines": saved }))
}

/// The features a Parquet baseline covers, with their columns: the named feature (its
/// column is `--column` or its name), or every live feature with a distribution whose name is
/// a column of the file.
fn plan<'a>(
    schema: &'a quiver_engine::feature::GroupSchema,
    args: &BaselineSaveArgs,
    columns: &[String],
    path: &Path,
) -> CliResult<Vec<(&'a Feature, usize)>> {
    let column_of = |name: &str| columns.iter().position(|c| c == name);
    if let Some(name) = &args.feature {
        let feature = schema.feature(name).ok_or_else(|| {
            CliError::NotFound(format!(
                "unknown feature '{name}' in feature group '{}'",
                schema.name
            ))
        })?;
        if baseline::kind_of(feature.ty).is_none() {
            return Err(CliError::Rejected(format!(
                "feature '{name}' is of type {}: only numbers, vectors (their norms), strings and bools have a distribution to compare",
                feature.ty
            )));
        }
        let column = args.column.as_deref().unwrap_or(name);
        let at = column_of(column).ok_or_else(|| {
            CliError::file(
                path,
                format!(
                    "no column '{column}' (columns: {}); name it with --column",
                    columns.join(", ")
                ),
            )
        })?;
        return Ok(vec![(feature, at)]);
    }
    if args.column.is_some() {
        return Err(CliError::usage("--column needs --feature"));
    }
    let planned: Vec<(&Feature, usize)> = schema
        .features
        .iter()
        .filter(|f| !f.deprecated && baseline::kind_of(f.ty).is_some())
        .filter_map(|f| column_of(&f.name).map(|at| (f, at)))
        .collect();
    if planned.is_empty() {
        return Err(CliError::file(
            path,
            format!(
                "no column is named after a feature of group '{}' with a distribution (columns: {})",
                schema.name,
                columns.join(", ")
            ),
        ));
    }
    Ok(planned)
}

fn from_parquet(
    schema: &Arc<quiver_engine::feature::GroupSchema>,
    args: &BaselineSaveArgs,
    path: &Path,
) -> CliResult<Vec<Baseline>> {
    let file = File::open(path).map_err(|e| CliError::file(path, format!("cannot open: {e}")))?;
    let reader = SerializedFileReader::new(file)
        .map_err(|e| CliError::file(path, format!("not a readable Parquet file: {e}")))?;
    let root = reader
        .metadata()
        .file_metadata()
        .schema_descr()
        .root_schema()
        .clone();
    let fields = root.get_fields().to_vec();
    let columns: Vec<String> = fields.iter().map(|f| f.name().to_string()).collect();
    let planned = plan(schema, args, &columns, path)?;
    // Only the planned columns are read.
    let projection = SchemaType::group_type_builder(root.name())
        .with_fields(planned.iter().map(|(_, at)| fields[*at].clone()).collect())
        .build()
        .map_err(|e| CliError::file(path, format!("cannot select columns: {e}")))?;
    let rows = reader
        .get_row_iter(Some(projection))
        .map_err(|e| CliError::file(path, format!("cannot read rows: {e}")))?;
    let mut builders: Vec<Builder> = planned.iter().map(|_| Builder::default()).collect();
    for (line, row) in rows.enumerate() {
        let row = row.map_err(|e| CliError::file(path, format!("row {}: {e}", line + 1)))?;
        for (i, (_, field)) in row.into_columns().into_iter().enumerate() {
            let (feature, _) = planned[i];
            let value = to_value(feature, &field).map_err(|reason| {
                CliError::file(
                    path,
                    format!(
                        "row {}, column '{}': {reason}",
                        line + 1,
                        columns[planned[i].1]
                    ),
                )
            })?;
            builders[i].add(&value);
        }
    }
    let source = format!(
        "parquet {}",
        path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        )
    );
    let now = super::now_ms();
    planned
        .iter()
        .zip(builders)
        .map(|((feature, _), b)| {
            Baseline::from_bucket(feature, &b.finish(), source.clone(), now)
                .map_err(|reason| CliError::file(path, reason))
        })
        .collect()
}

/// A Parquet value as a value of `feature` (only what its distribution needs).
fn to_value(feature: &Feature, field: &Field) -> Result<Value, String> {
    let number = |f: &Field| -> Option<f64> {
        Some(match *f {
            Field::Byte(v) => v as f64,
            Field::Short(v) => v as f64,
            Field::Int(v) => v as f64,
            Field::Long(v) => v as f64,
            Field::UByte(v) => v as f64,
            Field::UShort(v) => v as f64,
            Field::UInt(v) => v as f64,
            Field::ULong(v) => v as f64,
            Field::Float(v) => v as f64,
            Field::Double(v) => v,
            _ => return None,
        })
    };
    if matches!(field, Field::Null) {
        return Ok(Value::Null);
    }
    let wrong = || {
        format!(
            "holds {}, feature '{}' is of type {}",
            field_kind(field),
            feature.name,
            feature.ty
        )
    };
    Ok(match feature.ty {
        FeatureType::I64 | FeatureType::F32 | FeatureType::F64 => {
            Value::F64(number(field).ok_or_else(wrong)?)
        }
        FeatureType::Vector(_) => match field {
            Field::ListInternal(list) => Value::Vector(
                list.elements()
                    .iter()
                    .map(|e| number(e).map(|v| v as f32))
                    .collect::<Option<Vec<f32>>>()
                    .ok_or_else(wrong)?,
            ),
            _ => return Err(wrong()),
        },
        FeatureType::String => match field {
            Field::Str(s) => Value::String(s.clone()),
            _ => return Err(wrong()),
        },
        FeatureType::Bool => match field {
            Field::Bool(b) => Value::Bool(*b),
            _ => return Err(wrong()),
        },
        _ => return Err(wrong()),
    })
}

fn field_kind(f: &Field) -> &'static str {
    match f {
        Field::Bool(_) => "booleans",
        Field::Str(_) => "strings",
        Field::Bytes(_) => "binary values",
        Field::ListInternal(_) => "lists",
        Field::Group(_) | Field::MapInternal(_) => "nested values",
        Field::Date(_)
        | Field::TimeMillis(_)
        | Field::TimeMicros(_)
        | Field::TimestampMillis(_)
        | Field::TimestampMicros(_) => "dates or times",
        _ => "numbers",
    }
}

fn print_baselines(doc: &Json) {
    let group = doc["group"].as_str().unwrap_or("?");
    let list = doc["baselines"].as_array().cloned().unwrap_or_default();
    if list.is_empty() {
        println!("group {group} has no baseline");
    }
    for b in &list {
        println!(
            "baseline of {group}.{} ({}): {} values from {}, saved {}",
            b["feature"].as_str().unwrap_or("?"),
            b["kind"].as_str().unwrap_or("?"),
            b["count"],
            b["source"].as_str().unwrap_or("?"),
            b["created_ms"]
                .as_u64()
                .map_or_else(|| "?".into(), time_text),
        );
        if let Some(deciles) = b["deciles"].as_array() {
            let d: Vec<String> = deciles
                .iter()
                .map(|v| format!("{:.6}", v.as_f64().unwrap_or(f64::NAN)))
                .collect();
            println!("  deciles: {}", d.join(" "));
        }
        if let Some(values) = b["values"].as_array() {
            let v: Vec<String> = values
                .iter()
                .map(|v| {
                    format!(
                        "{} {:.1}%",
                        v["value"].as_str().unwrap_or("?"),
                        v["share"].as_f64().unwrap_or(0.0) * 100.0
                    )
                })
                .collect();
            println!(
                "  values: {}, other {:.1}%",
                v.join(", "),
                b["other"].as_f64().unwrap_or(0.0) * 100.0
            );
        }
    }
}
