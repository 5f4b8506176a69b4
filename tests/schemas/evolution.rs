//! The rules a schema in `schemas/` must keep to evolve safely against the released ones
//! in `tests/data/schemas/vX.Y.Z/`: documented fields, defaults for optional fields and
//! for the enums that grow, and compatibility in both directions (apache-avro's
//! `SchemaCompatibility`), plus exemplar values to round-trip through schema resolution.
//!
//! Every check returns its problems as messages naming the schema file and the field, so
//! that the tests can show a bad variant is caught and say exactly where.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use apache_avro::error::CompatibilityError;
use apache_avro::schema::{EnumSchema, RecordSchema};
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use apache_avro::types::Value;
use apache_avro::Schema;

/// Enums whose symbols grow with the service (stages, error codes): each must have a
/// default, the symbol a reader that does not know a newer one reads instead. The other
/// enums are closed sets: a new symbol there is a breaking change, which the forward
/// check refuses.
pub const GROWING_ENUMS: &[&str] = &["Stage", "ErrorCode"];

/// Symbols a release's readers may not know although its enum has no default, by
/// release: v0.1.0 gave no enum a default, and published no Avro (its outcomes were
/// JSON only), so no reader of it exists to break. From v0.2.0 on the growing enums have
/// defaults and this list stays as it is.
const KNOWN_GAPS: &[(&str, &str)] = &[("v0.1.0", "Stage"), ("v0.1.0", "ErrorCode")];

/// A schema as released (or as it is now), with the label messages call it by.
pub struct Version<'a> {
    pub label: &'a str,
    pub schema: &'a Schema,
}

/// A released version of the schemas: its directory under `tests/data/schemas/`.
pub struct Release {
    pub label: String,
    pub dir: PathBuf,
}

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/schemas")
}

/// Every release under `tests/data/schemas/`, oldest first. A directory not named
/// `vMAJOR.MINOR.PATCH` is an error: the order of releases must be unambiguous.
pub fn releases() -> Vec<Release> {
    let dir = data_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut releases = Vec::new();
    for entry in entries {
        let entry = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        if !entry.path().is_dir() {
            continue;
        }
        let label = entry.file_name().to_string_lossy().into_owned();
        let version = parse_version(&label).unwrap_or_else(|| {
            panic!(
                "{}: a release directory is named vMAJOR.MINOR.PATCH, not {label:?}",
                dir.display()
            )
        });
        releases.push((
            version,
            Release {
                label,
                dir: entry.path(),
            },
        ));
    }
    releases.sort_by_key(|(version, _)| *version);
    releases.into_iter().map(|(_, release)| release).collect()
}

fn parse_version(label: &str) -> Option<(u64, u64, u64)> {
    let mut parts = label.strip_prefix('v')?.split('.');
    let version = (
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
        parts.next()?.parse().ok()?,
    );
    parts.next().is_none().then_some(version)
}

/// The `.avsc` files of a directory, by file name.
pub fn schemas_in(dir: &Path) -> BTreeMap<String, Schema> {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut schemas = BTreeMap::new();
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.extension().is_some_and(|ext| ext == "avsc") {
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let schema =
                Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            schemas.insert(name, schema);
        }
    }
    schemas
}

/// The schemas as they are now, in `schemas/`.
pub fn current() -> BTreeMap<String, Schema> {
    schemas_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas"))
}

/// Documentation and defaults: every field has a doc, every optional field (a union
/// with null) has null first and the default null, and every enum in [`GROWING_ENUMS`]
/// has a default.
pub fn lint(file: &str, schema: &Schema) -> Vec<String> {
    let mut problems = Vec::new();
    lint_schema(file, schema, "", &mut problems);
    problems
}

fn lint_schema(file: &str, schema: &Schema, path: &str, problems: &mut Vec<String>) {
    match schema {
        Schema::Record(record) => lint_record(file, record, path, problems),
        Schema::Enum(e) => {
            let name = e.name.name();
            if GROWING_ENUMS.contains(&name) && e.default.is_none() {
                problems.push(format!(
                    "{file}: enum {name} (at `{path}`) grows but has no default: a reader \
                     meeting a symbol it does not know could not read the event"
                ));
            }
        }
        Schema::Union(union) => {
            for variant in union.variants() {
                lint_schema(file, variant, path, problems);
            }
        }
        Schema::Array(array) => lint_schema(file, &array.items, path, problems),
        Schema::Map(map) => lint_schema(file, &map.types, path, problems),
        _ => {}
    }
}

fn lint_record(file: &str, record: &RecordSchema, prefix: &str, problems: &mut Vec<String>) {
    for field in &record.fields {
        let path = format!("{prefix}{}", field.name);
        if field.doc.as_deref().is_none_or(|d| d.trim().is_empty()) {
            problems.push(format!("{file}: field `{path}` has no doc"));
        }
        if let Schema::Union(union) = &field.schema {
            if union.is_nullable() {
                if !matches!(union.variants().first(), Some(Schema::Null)) {
                    problems.push(format!(
                        "{file}: optional field `{path}` must list null first, so that its \
                         default can be null"
                    ));
                }
                if field.default != Some(serde_json::Value::Null) {
                    problems.push(format!(
                        "{file}: optional field `{path}` has no default null: a reader of \
                         data without it could not fill it in"
                    ));
                }
            }
        }
        lint_schema(file, &field.schema, &format!("{path}."), problems);
    }
}

/// Whether a reader of `reader` reads everything written with `writer`, fully:
/// `SchemaCompatibility::can_read`, and for a partial answer, which enum symbols the
/// reader would not know. Gaps listed in [`KNOWN_GAPS`] for `gaps_allowed_for` pass.
fn can_read(
    file: &str,
    writer: &Version,
    reader: &Version,
    gaps_allowed_for: Option<&str>,
) -> Vec<String> {
    let what = format!(
        "{file}: a reader with {} cannot read what {} writes",
        reader.label, writer.label
    );
    match SchemaCompatibility::can_read(writer.schema, reader.schema) {
        Err(e) => vec![format!("{what}: {}", explain(&e))],
        Ok(compatibility) => {
            let gaps = enum_gaps(writer.schema, reader.schema);
            let mut problems: Vec<String> = gaps
                .iter()
                .filter(|(name, _)| {
                    !gaps_allowed_for
                        .is_some_and(|release| KNOWN_GAPS.contains(&(release, name.as_str())))
                })
                .map(|(name, symbols)| {
                    format!(
                        "{what}: enum {name}: {} writes {symbols:?}, which {} does not know, \
                         and its enum has no default",
                        writer.label, reader.label
                    )
                })
                .collect();
            if compatibility == Compatibility::Partial && gaps.is_empty() {
                problems.push(format!(
                    "{what} in every case: a union's branches no longer all match"
                ));
            }
            problems
        }
    }
}

/// The rule: every schema is compatible with every released version of it in both
/// directions. Backward: the service (and a subscriber that upgraded) reads, with the
/// current schema, data written with an older one. Forward: a worker not yet upgraded
/// reads a producer's newer data, and a subscriber holding an older schema reads the
/// outcomes published now.
pub fn compatible(file: &str, released: &Version, current: &Version) -> Vec<String> {
    let mut problems = can_read(file, released, current, None);
    problems.extend(can_read(file, current, released, Some(released.label)));
    problems
}

/// The error as a field path (`error.code`) and what is wrong there.
fn explain(error: &CompatibilityError) -> String {
    let mut path = Vec::new();
    let mut error = error;
    while let CompatibilityError::FieldTypeMismatch(field, inner) = error {
        path.push(field.as_str());
        error = inner;
    }
    let detail = match error {
        CompatibilityError::MissingDefaultValue(field) => {
            path.push(field.as_str());
            "the reader has this field, without a default, and the writer does not".to_string()
        }
        CompatibilityError::WrongType {
            writer_schema_type,
            reader_schema_type,
        } => format!(
            "the types differ (writer {}, reader {})",
            kind(writer_schema_type),
            kind(reader_schema_type)
        ),
        other => other.to_string(),
    };
    if path.is_empty() {
        detail
    } else {
        format!("field `{}`: {detail}", path.join("."))
    }
}

/// The kind at the head of a schema's debug form: `Long`, `Record`, ...
fn kind(debug: &str) -> &str {
    let end = debug
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(debug.len());
    &debug[..end]
}

/// Enums (by name) in which the writer has symbols the reader lacks while the reader's
/// enum has no default: what makes `can_read` answer `Partial`.
fn enum_gaps(writer: &Schema, reader: &Schema) -> Vec<(String, Vec<String>)> {
    let readers = enums(reader);
    let mut gaps = Vec::new();
    for (name, w) in enums(writer) {
        let Some(r) = readers.get(&name) else {
            continue;
        };
        let unknown: Vec<String> = w
            .symbols
            .iter()
            .filter(|s| !r.symbols.contains(s))
            .cloned()
            .collect();
        if !unknown.is_empty() && r.default.is_none() {
            gaps.push((name, unknown));
        }
    }
    gaps
}

fn enums(schema: &Schema) -> BTreeMap<String, &EnumSchema> {
    fn walk<'a>(schema: &'a Schema, out: &mut BTreeMap<String, &'a EnumSchema>) {
        match schema {
            Schema::Enum(e) => {
                out.insert(e.name.name().to_string(), e);
            }
            Schema::Record(r) => r.fields.iter().for_each(|f| walk(&f.schema, out)),
            Schema::Union(u) => u.variants().iter().for_each(|v| walk(v, out)),
            Schema::Array(a) => walk(&a.items, out),
            Schema::Map(m) => walk(&m.types, out),
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk(schema, &mut out);
    out
}

/// Which value an exemplar takes where the schema leaves a choice.
#[derive(Clone, Copy)]
pub enum Fill {
    /// Optional fields set, maps with an entry per value type.
    Full,
    /// Optional fields null: the least a writer may send.
    Least,
}

/// What an exemplar is built with: the named types of its schema, the enums of the
/// schema it will be read with, and the fill.
struct Exemplar<'a> {
    named: HashMap<String, &'a Schema>,
    readers_enums: BTreeMap<String, &'a EnumSchema>,
    fill: Fill,
}

/// A value of `schema` with every field given, for writing with it and reading it with
/// `reader`. Each enum takes its newest (last) symbol that `reader` also knows, so that
/// the value tests what both versions share, not a symbol the check already refused or
/// let through (an enum's default is tested on its own).
pub fn exemplar(schema: &Schema, fill: Fill, reader: &Schema) -> Value {
    let mut named = HashMap::new();
    collect_named(schema, &mut named);
    let context = Exemplar {
        named,
        readers_enums: enums(reader),
        fill,
    };
    exemplar_of(schema, "", &context)
}

fn collect_named<'a>(schema: &'a Schema, out: &mut HashMap<String, &'a Schema>) {
    match schema {
        Schema::Record(r) => {
            out.insert(r.name.fullname(None), schema);
            r.fields.iter().for_each(|f| collect_named(&f.schema, out));
        }
        Schema::Enum(e) => {
            out.insert(e.name.fullname(None), schema);
        }
        Schema::Union(u) => u.variants().iter().for_each(|v| collect_named(v, out)),
        Schema::Array(a) => collect_named(&a.items, out),
        Schema::Map(m) => collect_named(&m.types, out),
        _ => {}
    }
}

fn exemplar_of(schema: &Schema, path: &str, context: &Exemplar) -> Value {
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(true),
        Schema::Int => Value::Int(7),
        Schema::Long => Value::Long(42),
        Schema::Float => Value::Float(0.5),
        Schema::Double => Value::Double(1.5),
        Schema::Bytes => Value::Bytes(path.as_bytes().to_vec()),
        Schema::String => Value::String(format!("{path}-value")),
        Schema::Enum(e) => {
            let known = context.readers_enums.get(e.name.name());
            let index = e
                .symbols
                .iter()
                .rposition(|s| known.is_none_or(|k| k.symbols.contains(s)))
                .unwrap_or(e.symbols.len().saturating_sub(1));
            let symbol = e.symbols.get(index).cloned().unwrap_or_default();
            Value::Enum(u32::try_from(index).unwrap_or(0), symbol)
        }
        Schema::Union(union) => {
            let variants = union.variants();
            let index = match context.fill {
                Fill::Least if union.is_nullable() => variants
                    .iter()
                    .position(|v| matches!(v, Schema::Null))
                    .unwrap_or(0),
                _ => variants
                    .iter()
                    .position(|v| !matches!(v, Schema::Null))
                    .unwrap_or(0),
            };
            let value = exemplar_of(&variants[index], path, context);
            Value::Union(u32::try_from(index).unwrap_or(0), Box::new(value))
        }
        Schema::Record(record) => Value::Record(
            record
                .fields
                .iter()
                .map(|f| {
                    let path = if path.is_empty() {
                        f.name.clone()
                    } else {
                        format!("{path}.{}", f.name)
                    };
                    (f.name.clone(), exemplar_of(&f.schema, &path, context))
                })
                .collect(),
        ),
        Schema::Array(array) => Value::Array(vec![exemplar_of(&array.items, path, context)]),
        Schema::Map(map) => {
            // One entry per branch of a union of value types, so each is exercised.
            let entries = match map.types.as_ref() {
                Schema::Union(union) => (0..union.variants().len())
                    .map(|i| {
                        let value = exemplar_of(&union.variants()[i], path, context);
                        (
                            format!("k{i}"),
                            Value::Union(u32::try_from(i).unwrap_or(0), Box::new(value)),
                        )
                    })
                    .collect(),
                other => HashMap::from([("k0".to_string(), exemplar_of(other, path, context))]),
            };
            Value::Map(entries)
        }
        Schema::Ref { name } => {
            let target = context
                .named
                .get(&name.fullname(None))
                .unwrap_or_else(|| panic!("exemplar: `{path}` refers to unknown type {name:?}"));
            exemplar_of(target, path, context)
        }
        other => panic!("exemplar: `{path}`: no exemplar for {other:?}; add one"),
    }
}

/// Writes `value` with `writer` and reads it back through schema resolution with
/// `reader`, as a consumer holding `reader` would.
pub fn write_then_read(writer: &Schema, reader: &Schema, value: Value) -> Result<Value, String> {
    let bytes = apache_avro::writer::datum::GenericDatumWriter::builder(writer)
        .build()
        .map_err(|e| format!("writer: {e}"))?
        .write_value_to_vec(value)
        .map_err(|e| format!("write: {e}"))?;
    apache_avro::reader::datum::GenericDatumReader::builder(writer)
        .reader_schema(reader)
        .build()
        .map_err(|e| format!("reader: {e}"))?
        .read_value(&mut bytes.as_slice())
        .map_err(|e| format!("read: {e}"))
}

/// Every value the writer wrote that the reader also has (same path) came through
/// unchanged; fields only the reader has were filled in. Compared in JSON form, so union
/// branch and enum indexes (which may differ between versions) do not count.
pub fn carried_over(written: &Value, read: &Value) -> Vec<String> {
    let (Ok(written), Ok(read)) = (
        serde_json::Value::try_from(written.clone()),
        serde_json::Value::try_from(read.clone()),
    ) else {
        return vec!["a value has no JSON form".to_string()];
    };
    let mut problems = Vec::new();
    compare("", &written, &read, &mut problems);
    problems
}

fn compare(
    path: &str,
    written: &serde_json::Value,
    read: &serde_json::Value,
    out: &mut Vec<String>,
) {
    match (written, read) {
        (serde_json::Value::Object(w), serde_json::Value::Object(r)) => {
            for (key, r_value) in r {
                if let Some(w_value) = w.get(key) {
                    let path = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    compare(&path, w_value, r_value, out);
                }
            }
        }
        (w, r) if w != r => out.push(format!("`{path}`: wrote {w}, read {r}")),
        _ => {}
    }
}
