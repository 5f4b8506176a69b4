//! Field ownership for the Kubernetes API test server: the leaf field paths of an
//! object, who manages which (the `managedFields` entries), server-side apply's merge and
//! conflicts, and an update's takeover. A simplified structured-merge-diff: maps are
//! merged key by key, lists and scalars are atomic leaves (a CRD's lists are atomic unless
//! its schema says otherwise), nulls in an applied configuration are pruned.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// A field's path: the object keys from the root, e.g. `["spec", "replicas"]`.
pub type Path = Vec<String>;

/// `.spec.replicas`, as the API server prints a path in a conflict.
pub fn render_path(path: &Path) -> String {
    path.iter().map(|k| format!(".{k}")).collect()
}

/// Which part of an object a request writes: the main resource or the status subresource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

impl Part {
    pub fn subresource(self) -> Option<&'static str> {
        match self {
            Part::Main => None,
            Part::Status => Some("status"),
        }
    }
}

/// `Apply` (server-side apply) or `Update` (PUT, POST, other patches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Manager {
    pub manager: String,
    pub operation: Operation,
    pub part: Part,
    pub api_version: String,
    pub time: String,
    pub fields: BTreeSet<Path>,
}

impl Manager {
    fn same_identity(&self, manager: &str, operation: Operation, part: Part) -> bool {
        self.manager == manager && self.operation == operation && self.part == part
    }

    /// As the API server names a manager in a conflict: `"x"` for an applier,
    /// `"x" using v1` for an updater.
    pub fn display(&self) -> String {
        match self.operation {
            Operation::Apply => format!("{:?}", self.manager),
            Operation::Update => format!("{:?} using {}", self.manager, self.api_version),
        }
    }

    /// The entry as it appears in `metadata.managedFields`.
    pub fn render(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), self.manager.clone().into());
        entry.insert(
            "operation".into(),
            match self.operation {
                Operation::Apply => "Apply",
                Operation::Update => "Update",
            }
            .into(),
        );
        entry.insert("apiVersion".into(), self.api_version.clone().into());
        entry.insert("time".into(), self.time.clone().into());
        entry.insert("fieldsType".into(), "FieldsV1".into());
        entry.insert("fieldsV1".into(), fields_v1(&self.fields));
        if let Some(sub) = self.part.subresource() {
            entry.insert("subresource".into(), sub.into());
        }
        Value::Object(entry)
    }
}

/// The `fieldsV1` form of a set of leaf paths: `{"f:spec":{"f:replicas":{}}}`.
pub fn fields_v1(fields: &BTreeSet<Path>) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for key in path {
            let child = node
                .entry(format!("f:{key}"))
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = match child {
                Value::Object(map) => map,
                _ => unreachable!("made an object just above"),
            };
        }
    }
    Value::Object(root)
}

/// metadata fields the server owns; never a manager's.
const SYSTEM_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// The part of `object` that a write to `part` may change and managers own: for the main
/// resource everything but `apiVersion`, `kind`, server-owned metadata and `status`; for
/// the status subresource only `status`.
pub fn owned_view(object: &Value, part: Part) -> Value {
    let mut view = Map::new();
    let Some(map) = object.as_object() else {
        return Value::Object(view);
    };
    for (key, value) in map {
        match (part, key.as_str()) {
            (Part::Status, "status") => {
                view.insert(key.clone(), value.clone());
            }
            (Part::Status, _) | (Part::Main, "apiVersion" | "kind" | "status") => {}
            (Part::Main, "metadata") => {
                let mut meta = Map::new();
                for (k, v) in value.as_object().into_iter().flatten() {
                    if !SYSTEM_METADATA.contains(&k.as_str()) {
                        meta.insert(k.clone(), v.clone());
                    }
                }
                if !meta.is_empty() {
                    view.insert(key.clone(), Value::Object(meta));
                }
            }
            (Part::Main, _) => {
                view.insert(key.clone(), value.clone());
            }
        }
    }
    Value::Object(view)
}

/// Removes nulls from maps, recursively: the API server prunes them from an applied
/// configuration.
pub fn prune_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
        for v in map.values_mut() {
            prune_nulls(v);
        }
    }
}

/// Every leaf path of `value`: scalars, lists and empty maps.
pub fn leaves(value: &Value) -> BTreeSet<Path> {
    let mut out = BTreeSet::new();
    collect_leaves(value, &mut Vec::new(), &mut out);
    out
}

fn collect_leaves(value: &Value, prefix: &mut Path, out: &mut BTreeSet<Path>) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                prefix.push(key.clone());
                collect_leaves(child, prefix, out);
                prefix.pop();
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.clone());
        }
        _ => {}
    }
}

/// The value at `path`, if there is one.
pub fn get<'a>(value: &'a Value, path: &Path) -> Option<&'a Value> {
    path.iter().try_fold(value, |node, key| node.get(key))
}

/// Whether one path is the other or lies under it.
pub fn overlaps(a: &Path, b: &Path) -> bool {
    a.starts_with(b) || b.starts_with(a)
}

/// Removes the field at `path` and any maps it leaves empty.
pub fn remove(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let Value::Object(map) = value else {
        return;
    };
    if rest.is_empty() {
        map.remove(first);
        return;
    }
    if let Some(child) = map.get_mut(first) {
        remove(child, rest);
        if child.as_object().is_some_and(Map::is_empty) {
            map.remove(first);
        }
    }
}

/// `patch` merged into `base`: maps key by key, anything else replaced.
pub fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(key) {
                    Some(existing) if existing.is_object() && value.is_object() => {
                        merge(existing, value)
                    }
                    _ => {
                        base.insert(key.clone(), value.clone());
                    }
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// RFC 7386 JSON merge patch: a null removes the key.
pub fn merge_patch(base: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *base = patch.clone();
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    if let Value::Object(base) = base {
        for (key, value) in patch {
            if value.is_null() {
                base.remove(key);
            } else {
                let slot = base.entry(key.clone()).or_insert(Value::Null);
                merge_patch(slot, value);
            }
        }
    }
}

/// One field another manager owns that an apply would change.
#[derive(Debug, Clone)]
pub struct Conflict {
    pub manager: String,
    pub path: Path,
}

/// What an apply computes: the merged owned view, or the conflicts that stop it.
pub struct Applied {
    pub view: Value,
    pub conflicts: Vec<Conflict>,
}

/// Server-side apply of `config` (already the owned view of `part`, nulls pruned) by
/// `manager` onto `current` (the owned view). With `force` conflicting fields change hands;
/// otherwise any conflict leaves `managers` untouched.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    current: &Value,
    config: &Value,
    managers: &mut Vec<Manager>,
    manager: &str,
    part: Part,
    force: bool,
    api_version: &str,
    now: &str,
) -> Applied {
    let applied = leaves(config);
    let previous: BTreeSet<Path> = managers
        .iter()
        .find(|m| m.same_identity(manager, Operation::Apply, part))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    let others: Vec<&Manager> = managers
        .iter()
        .filter(|m| m.part == part && !m.same_identity(manager, Operation::Apply, part))
        .collect();

    // Fields this manager applied before and now leaves out go, unless someone else
    // holds them too.
    let mut view = current.clone();
    for path in previous.difference(&applied) {
        let shared = others
            .iter()
            .any(|m| m.fields.iter().any(|p| overlaps(p, path)));
        if !shared {
            remove(&mut view, path);
        }
    }
    merge(&mut view, config);

    let mut conflicts = Vec::new();
    for other in &others {
        for path in &other.fields {
            let touched = applied.iter().any(|a| overlaps(a, path));
            if touched && get(current, path) != get(&view, path) {
                conflicts.push(Conflict {
                    manager: other.display(),
                    path: path.clone(),
                });
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Applied { view, conflicts };
    }

    // Forced: the conflicting fields change hands.
    for other in managers.iter_mut() {
        if other.part != part || other.same_identity(manager, Operation::Apply, part) {
            continue;
        }
        other.fields.retain(|path| {
            let touched = applied.iter().any(|a| overlaps(a, path));
            !(touched && get(current, path) != get(&view, path))
        });
    }
    set_fields(
        managers,
        manager,
        Operation::Apply,
        part,
        applied,
        api_version,
        now,
    );
    Applied {
        view,
        conflicts: Vec::new(),
    }
}

/// An update by `manager` from `old` to `new` (owned views of `part`): the fields it
/// changed become its own and no one else's, the fields it removed no one's. Updates never
/// conflict.
pub fn update(
    old: &Value,
    new: &Value,
    managers: &mut Vec<Manager>,
    manager: &str,
    part: Part,
    api_version: &str,
    now: &str,
) {
    let before = leaves(old);
    let after = leaves(new);
    let changed: BTreeSet<Path> = after
        .iter()
        .filter(|p| get(old, p) != get(new, p))
        .cloned()
        .collect();
    let removed: BTreeSet<Path> = before.difference(&after).cloned().collect();
    for m in managers.iter_mut().filter(|m| m.part == part) {
        m.fields.retain(|path| {
            !changed.iter().any(|c| overlaps(c, path)) && !removed.iter().any(|r| overlaps(r, path))
        });
    }
    let mut mine: BTreeSet<Path> = managers
        .iter()
        .find(|m| m.same_identity(manager, Operation::Update, part))
        .map(|m| m.fields.clone())
        .unwrap_or_default();
    mine.extend(changed);
    set_fields(
        managers,
        manager,
        Operation::Update,
        part,
        mine,
        api_version,
        now,
    );
}

/// Replaces one manager's field set (its time changes only when the set does), and drops
/// entries that own nothing.
fn set_fields(
    managers: &mut Vec<Manager>,
    manager: &str,
    operation: Operation,
    part: Part,
    fields: BTreeSet<Path>,
    api_version: &str,
    now: &str,
) {
    match managers
        .iter_mut()
        .find(|m| m.same_identity(manager, operation, part))
    {
        Some(entry) => {
            if entry.fields != fields {
                entry.fields = fields;
                entry.time = now.to_string();
            }
        }
        None => managers.push(Manager {
            manager: manager.to_string(),
            operation,
            part,
            api_version: api_version.to_string(),
            time: now.to_string(),
            fields,
        }),
    }
    managers.retain(|m| !m.fields.is_empty());
}

/// The message of a 409 for `conflicts`, worded as the API server words it.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [one] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            one.manager,
            render_path(&one.path)
        );
    }
    let mut managers: Vec<&str> = conflicts.iter().map(|c| c.manager.as_str()).collect();
    managers.sort_unstable();
    managers.dedup();
    let mut lines = Vec::new();
    for manager in managers {
        lines.push(format!("conflicts with {manager}:"));
        for c in conflicts.iter().filter(|c| c.manager == manager) {
            lines.push(format!("- {}", render_path(&c.path)));
        }
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}
