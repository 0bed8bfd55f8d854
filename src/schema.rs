//! JSON Schemas (draft 2020-12) of `tool.yaml` and `policies.yaml`, printed by
//! `gathm schema tool|policies` so editors can complete and check the files.
//! Both are derived from the serde types that `validate` and `run` parse
//! (`schemars`), so the schema cannot disagree with what gathm accepts.

use serde_json::Value;

use crate::manifest::Manifest;
use crate::policy::Policies;

fn finish(schema: schemars::Schema, id: &str, title: &str) -> Value {
    let mut v = schema.to_value();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "$id".into(),
            format!("https://gathm.dev/schema/{id}.json").into(),
        );
        o.insert("title".into(), title.into());
    }
    v
}

/// The schema of `tool.yaml`.
pub fn tool() -> Value {
    finish(schemars::schema_for!(Manifest), "tool", "gathm tool.yaml")
}

/// The schema of `policies.yaml`.
pub fn policies() -> Value {
    finish(
        schemars::schema_for!(Policies),
        "policies",
        "gathm policies.yaml",
    )
}

/// The schema of `gathm.yaml` (schedules and groups).
pub fn config() -> Value {
    finish(
        schemars::schema_for!(crate::schedule::file::ConfigFile),
        "config",
        "gathm gathm.yaml",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::KNOWN_KEYS;

    #[test]
    fn tool_schema_has_exactly_the_known_keys() {
        let s = tool();
        let props = s["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut known = KNOWN_KEYS.to_vec();
        known.sort_unstable();
        assert_eq!(keys, known);
        // Unknown keys are a warning in `validate`, so the schema allows them.
        assert_ne!(s.get("additionalProperties"), Some(&Value::Bool(false)));
        let mut req: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        req.sort_unstable();
        assert_eq!(req, ["category", "description", "name", "version"]);
        // `version: 1.0` is accepted by validate, so by the schema too.
        let vt = &props["version"]["type"];
        assert!(vt.as_array().unwrap().contains(&"number".into()), "{vt}");
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
    }

    #[test]
    fn nested_settings_come_from_the_types() {
        let s = tool().to_string();
        // The one retry type: a typo in it is rejected by serde and the schema alike.
        assert!(s.contains("on_exit_codes"), "{s}");
        assert!(s.contains("\"additionalProperties\":false"), "{s}");
        let p = policies();
        let props = p["properties"].as_object().unwrap();
        let mut keys: Vec<&str> = props.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["audit", "rate_limiting", "roles", "validation"]);
        assert!(p.to_string().contains("tool:execute"));
    }
}
