//! From a manifest to an MCP tool: the `inputSchema`, the mapping of a
//! call's JSON arguments to the tool's argv, the annotations, and the
//! `outputSchema` of the run envelope (the call's `structuredContent`).
//!
//! Argument mapping (README, "MCP"):
//! - a tool without `input_schema` (or with neither arguments nor flags)
//!   takes `{"args": [strings]}`, passed as its argv untouched;
//! - otherwise each manifest argument is a property (type, description,
//!   `required`), each flag an optional property named after the flag
//!   without its dashes (`-t` → `t`, `--format` → `format`; a name taken by
//!   an argument keeps its dashes). `args` (an array of strings) is always
//!   accepted too;
//! - argv = flags in manifest order (`FLAG VALUE` for a flag with an
//!   argument; `FLAG` for a flag without one whose value is `true`), then
//!   the named arguments in manifest order, then the `args` items. A missing
//!   optional argument may not be followed by a given one (positions would
//!   shift). Strings pass as they are, numbers and booleans in their JSON
//!   spelling, an array as one argv item per element, an object as compact
//!   JSON.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::manifest::{Argument, Flag};
use crate::registry::Tool;

/// A JSON object (an MCP schema).
pub type JsonObject = Map<String, Value>;

/// The `args` property: argv items passed as they are.
fn args_property(described: &str) -> Value {
    json!({
        "type": "array",
        "items": {"type": "string"},
        "description": described,
    })
}

/// Whether the manifest describes arguments or flags.
fn described(tool: &Tool) -> bool {
    tool.manifest
        .input_schema
        .as_ref()
        .is_some_and(|s| !s.arguments.is_empty() || !s.flags.is_empty())
}

/// The property name of a flag: the longest `-`-led token of its text
/// without the dashes (`"-t, --timeout"` → `timeout`).
pub fn flag_name(flag: &Flag, arguments: &[Argument]) -> String {
    let token = flag_token(flag);
    let bare = token.trim_start_matches('-');
    if bare.is_empty() || bare == "args" || arguments.iter().any(|a| a.name == bare) {
        token.to_string()
    } else {
        bare.to_string()
    }
}

/// The token put on the command line for a flag.
fn flag_token(flag: &Flag) -> &str {
    flag.flag
        .split(|c: char| c == ',' || c.is_whitespace() || c == '=')
        .filter(|t| t.starts_with('-'))
        .max_by_key(|t| t.len())
        .unwrap_or(flag.flag.trim())
}

fn value_type(kind: &str) -> &str {
    match kind {
        "integer" | "number" | "boolean" | "array" | "object" => kind,
        _ => "string",
    }
}

/// The tool's `inputSchema`.
pub fn input_schema(tool: &Tool) -> Arc<JsonObject> {
    let mut props = Map::new();
    let mut required = Vec::new();
    match tool
        .manifest
        .input_schema
        .as_ref()
        .filter(|_| described(tool))
    {
        None => {
            props.insert(
                "args".into(),
                args_property("Arguments passed to the tool as its argv, in order"),
            );
        }
        Some(s) => {
            for f in &s.flags {
                let mut p = Map::new();
                if f.has_argument {
                    p.insert("type".into(), json!(["string", "number", "integer"]));
                } else {
                    p.insert("type".into(), "boolean".into());
                }
                let mut d = format!("Flag {}", flag_token(f));
                if !f.description.is_empty() {
                    d = format!("{d}: {}", f.description);
                }
                p.insert("description".into(), d.into());
                props.insert(flag_name(f, &s.arguments), Value::Object(p));
            }
            for a in &s.arguments {
                let mut p = Map::new();
                let t = value_type(&a.kind);
                p.insert("type".into(), t.into());
                if t == "array" {
                    p.insert(
                        "items".into(),
                        json!({"type": ["string", "number", "integer", "boolean"]}),
                    );
                }
                if !a.description.is_empty() {
                    p.insert("description".into(), a.description.clone().into());
                }
                if a.required {
                    required.push(Value::from(a.name.clone()));
                }
                props.insert(a.name.clone(), Value::Object(p));
            }
            props.insert(
                "args".into(),
                args_property("Extra arguments appended to the argv after the named ones"),
            );
        }
    }
    let mut o = Map::new();
    o.insert("type".into(), "object".into());
    o.insert("properties".into(), Value::Object(props));
    if !required.is_empty() {
        o.insert("required".into(), Value::Array(required));
    }
    o.insert("additionalProperties".into(), false.into());
    Arc::new(o)
}

fn scalar(name: &str, v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(format!("argument {name:?} is null")),
        other => Ok(other.to_string()),
    }
}

fn push_value(argv: &mut Vec<String>, name: &str, v: &Value) -> Result<(), String> {
    match v {
        Value::Array(items) => {
            for i in items {
                argv.push(scalar(name, i)?);
            }
            Ok(())
        }
        other => {
            argv.push(scalar(name, other)?);
            Ok(())
        }
    }
}

fn extra_args(args: Option<&Value>) -> Result<Vec<String>, String> {
    match args {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                Value::Number(_) | Value::Bool(_) => Ok(i.to_string()),
                _ => Err("\"args\" must be an array of strings".to_string()),
            })
            .collect(),
        Some(_) => Err("\"args\" must be an array of strings".to_string()),
    }
}

/// The argv of a call (see the module documentation); an error is a
/// sentence for the caller.
pub fn argv(tool: &Tool, arguments: Option<&JsonObject>) -> Result<Vec<String>, String> {
    let empty = Map::new();
    let arguments = arguments.unwrap_or(&empty);
    let Some(s) = tool
        .manifest
        .input_schema
        .as_ref()
        .filter(|_| described(tool))
    else {
        if let Some(k) = arguments.keys().find(|k| *k != "args") {
            return Err(format!(
                "{} takes {{\"args\": [strings]}} only; unknown argument {k:?}",
                tool.name
            ));
        }
        return extra_args(arguments.get("args"));
    };
    let flag_names: Vec<String> = s.flags.iter().map(|f| flag_name(f, &s.arguments)).collect();
    if let Some(k) = arguments.keys().find(|k| {
        *k != "args" && !flag_names.contains(k) && !s.arguments.iter().any(|a| &a.name == *k)
    }) {
        let mut known: Vec<&str> = s.arguments.iter().map(|a| a.name.as_str()).collect();
        known.extend(flag_names.iter().map(String::as_str));
        known.push("args");
        return Err(format!(
            "unknown argument {k:?} for {} (known: {})",
            tool.name,
            known.join(", ")
        ));
    }
    let mut argv = Vec::new();
    for (f, name) in s.flags.iter().zip(&flag_names) {
        let Some(v) = arguments.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let token = flag_token(f).to_string();
        if f.has_argument {
            argv.push(token);
            argv.push(scalar(name, v)?);
        } else {
            match v {
                Value::Bool(true) => argv.push(token),
                Value::Bool(false) => {}
                _ => return Err(format!("flag {name:?} takes true or false")),
            }
        }
    }
    let mut skipped: Option<&str> = None;
    for a in &s.arguments {
        match arguments.get(&a.name).filter(|v| !v.is_null()) {
            Some(v) => {
                if let Some(gap) = skipped {
                    return Err(format!(
                        "argument {:?} is given but the earlier optional argument {gap:?} is not (arguments are positional)",
                        a.name
                    ));
                }
                push_value(&mut argv, &a.name, v)?;
            }
            None if a.required => {
                return Err(format!(
                    "missing required argument {:?} for {}",
                    a.name, tool.name
                ));
            }
            None => skipped = Some(&a.name),
        }
    }
    argv.extend(extra_args(arguments.get("args"))?);
    Ok(argv)
}

/// The tool's annotations: `readOnlyHint` from a `read-only`/`readonly` tag
/// (else a conservative `false`), `destructiveHint` from a `destructive`
/// tag or when the tool needs approval, `openWorldHint` from
/// `requires_internet`.
pub fn annotations(tool: &Tool, needs_approval: bool) -> rmcp::model::ToolAnnotations {
    let tagged = |names: &[&str]| {
        tool.manifest
            .tags
            .iter()
            .any(|t| names.contains(&t.to_ascii_lowercase().as_str()))
    };
    let read_only = tagged(&["read-only", "readonly", "read_only"]);
    let destructive = tagged(&["destructive"]) || (needs_approval && !read_only);
    rmcp::model::ToolAnnotations::with_title(title(tool))
        .read_only(read_only)
        .destructive(destructive)
        .open_world(tool.manifest.requires_internet)
}

/// A title: the name with `-`/`_` as spaces, first letter up.
pub fn title(tool: &Tool) -> String {
    let spaced: String = tool
        .name
        .chars()
        .map(|c| if c == '-' || c == '_' { ' ' } else { c })
        .collect();
    let mut c = spaced.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => spaced,
    }
}

/// The `outputSchema`: the run envelope (`crate::api::Envelope`).
pub fn output_schema() -> Arc<JsonObject> {
    let v = json!({
        "type": "object",
        "description": "The run envelope, as `gathm run --json` prints it",
        "properties": {
            "tool": {"type": "string"},
            "run_id": {"type": "string", "description": "UUID v7 of the run"},
            "status": {"enum": ["success", "error"]},
            "reason": {
                "type": ["string", "null"],
                "description": "timeout, circuit_open, rate_limited, denied, approval_required, not_found, fallback_exhausted, interrupted, not_executable, concurrency_limit, or null"
            },
            "exit_code": {"type": "integer"},
            "output": {"type": "string", "description": "stdout"},
            "error": {"type": "string", "description": "stderr"},
            "duration_ms": {"type": "integer"},
            "cached": {"type": "boolean"},
            "attempts": {"type": "array", "items": {"type": "object"}},
            "timestamp": {"type": "string"},
            "served_by": {"type": "string"},
            "message": {"type": "string"},
            "rule": {"type": "string"},
            "retry_after": {"type": "number"}
        },
        "required": ["tool", "run_id", "status", "reason", "exit_code", "output", "error",
                     "duration_ms", "cached", "attempts", "timestamp"]
    });
    match v {
        Value::Object(o) => Arc::new(o),
        _ => Arc::new(Map::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{InputSchema, Manifest};

    fn tool(schema: Option<InputSchema>) -> Tool {
        Tool {
            name: "t".into(),
            dir: ".".into(),
            manifest_path: "t/tool.yaml".into(),
            manifest: Manifest {
                input_schema: schema,
                ..Manifest::default()
            },
            digest: [0; 32],
        }
    }

    fn arg(name: &str, kind: &str, required: bool) -> Argument {
        Argument {
            name: name.into(),
            kind: kind.into(),
            required,
            description: String::new(),
        }
    }

    fn obj(v: Value) -> JsonObject {
        match v {
            Value::Object(o) => o,
            _ => Map::new(),
        }
    }

    #[test]
    fn without_input_schema_takes_args() {
        let t = tool(None);
        let s = input_schema(&t);
        assert_eq!(s["properties"]["args"]["type"], "array");
        assert_eq!(
            argv(&t, Some(&obj(json!({"args": ["a", "-b"]})))).unwrap(),
            ["a", "-b"]
        );
        assert_eq!(argv(&t, None).unwrap(), Vec::<String>::new());
        assert!(argv(&t, Some(&obj(json!({"x": 1})))).is_err());
    }

    #[test]
    fn named_arguments_and_flags() {
        let t = tool(Some(InputSchema {
            arguments: vec![arg("host", "string", true), arg("port", "integer", false)],
            flags: vec![
                Flag {
                    flag: "-t, --timeout".into(),
                    description: "secs".into(),
                    has_argument: true,
                },
                Flag {
                    flag: "-v".into(),
                    description: String::new(),
                    has_argument: false,
                },
            ],
        }));
        let s = input_schema(&t);
        assert_eq!(s["required"], json!(["host"]));
        assert_eq!(s["properties"]["port"]["type"], "integer");
        assert_eq!(s["properties"]["v"]["type"], "boolean");
        assert!(s["properties"]["timeout"].is_object());
        let a = argv(
            &t,
            Some(&obj(
                json!({"port": 443, "host": "x", "v": true, "timeout": 5, "args": ["z"]}),
            )),
        )
        .unwrap();
        assert_eq!(a, ["--timeout", "5", "-v", "x", "443", "z"]);
        assert!(argv(&t, Some(&obj(json!({"port": 1})))).is_err());
        assert!(argv(&t, Some(&obj(json!({"host": "x", "nope": 1})))).is_err());
    }

    #[test]
    fn a_gap_in_positions_is_refused() {
        let t = tool(Some(InputSchema {
            arguments: vec![arg("a", "string", false), arg("b", "string", false)],
            flags: vec![],
        }));
        assert!(argv(&t, Some(&obj(json!({"b": "x"})))).is_err());
        assert_eq!(argv(&t, Some(&obj(json!({"a": "x"})))).unwrap(), ["x"]);
    }
}
