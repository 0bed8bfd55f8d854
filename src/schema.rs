//! JSON Schemas (draft 2020-12) of `tool.yaml` and `policies.yaml`, printed by
//! `gathm schema tool|policies` so editors can complete and check the files.

use serde_json::{Value, json};

use crate::manifest::CATEGORIES;
use crate::policy::PERMISSIONS;

fn value_type() -> Value {
    json!({"enum": ["string", "integer", "number", "boolean", "array", "object"]})
}

fn string_or_list() -> Value {
    json!({"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]})
}

/// The schema of `tool.yaml`.
pub fn tool() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gathm.dev/schema/tool.json",
        "title": "gathm tool.yaml",
        "type": "object",
        "required": ["name", "version", "description", "category"],
        "additionalProperties": false,
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
            "version": {"type": "string", "pattern": "^\\d+\\.\\d+\\.\\d+$"},
            "description": {"type": "string", "minLength": 5},
            "category": {"oneOf": [
                {"enum": CATEGORIES},
                {"type": "array", "minItems": 1, "items": {"enum": CATEGORIES}}
            ]},
            "dependencies": {"type": "object", "properties": {
                "system": {"type": "array", "items": {"type": "string"}},
                "python": {"type": "array", "items": {"type": "string"}},
                "optional": {"type": "array", "items": {"type": "string"}}
            }},
            "apis": {"type": "array", "items": {"type": "object", "required": ["name", "base_url"], "properties": {
                "name": {"type": "string"},
                "base_url": {"type": "string"},
                "health_endpoint": {"type": ["string", "null"]},
                "auth_required": {"type": "boolean"},
                "auth_type": {"type": "string"}
            }}},
            "requires_internet": {"type": "boolean", "default": true},
            "input_schema": {"type": ["object", "null"], "properties": {
                "arguments": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "type": value_type(),
                    "required": {"type": "boolean"}, "description": {"type": "string"}
                }}},
                "flags": {"type": "array", "items": {"type": "object", "required": ["flag"], "properties": {
                    "flag": {"type": "string"}, "description": {"type": "string"},
                    "has_argument": {"type": "boolean"}
                }}}
            }},
            "output_schema": {"type": ["object", "null"], "properties": {
                "text": {"type": "string"},
                "json_fields": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string"}, "type": value_type(), "items": {}
                }}}
            }},
            "fallback_tool": {"oneOf": [{"type": "null"}, {"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "author": {"type": "string"},
            "install_hints": {"type": "object"},
            "command": string_or_list(),
            "timeout": {"type": "number", "exclusiveMinimum": 0, "default": 120},
            "cache": {"oneOf": [{"type": "boolean"}, {"type": "object", "required": ["ttl"], "properties": {"ttl": {"type": "integer", "minimum": 0}}}]},
            "breaker": {"type": "object", "properties": {
                "failure_threshold": {"type": "integer", "minimum": 1, "default": 3},
                "recovery_timeout": {"type": "number", "minimum": 0, "default": 60}
            }},
            "retry": {"type": "object", "properties": {
                "attempts": {"type": "integer", "minimum": 1, "default": 1},
                "delay": {"type": "number", "minimum": 0, "default": 1},
                "backoff": {"type": "number", "minimum": 1, "default": 2},
                "max_delay": {"type": "number", "minimum": 0, "default": 30},
                "on_exit_codes": {"type": "array", "items": {"type": "integer"}}
            }},
            "env": {"type": "object", "additionalProperties": {"type": "string"}},
            "max_concurrency": {"type": "integer", "minimum": 1},
            "schema_version": {"type": "integer"}
        }
    })
}

/// The schema of `policies.yaml`.
pub fn policies() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://gathm.dev/schema/policies.json",
        "title": "gathm policies.yaml",
        "type": "object",
        "properties": {
            "roles": {"type": "object", "additionalProperties": {"type": "object", "properties": {
                "description": {"type": "string"},
                "permissions": {"type": "array", "items": {"enum": PERMISSIONS}},
                "blocked_tools": {"type": "array", "items": {"type": "string"}, "description": "tool names or globs (* ?)"},
                "requires_approval": {"type": "array", "items": {"type": "string"}},
                "rate_limit": {"type": "integer", "minimum": 0, "description": "calls per window; 0 = unlimited"}
            }}},
            "rate_limiting": {"type": "object", "properties": {
                "enabled": {"type": "boolean"},
                "window_seconds": {"type": "integer", "minimum": 1},
                "default_limit": {"type": "integer", "minimum": 0},
                "per_tool_limits": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                "burst_allowance": {"type": "integer", "minimum": 0}
            }},
            "validation": {"type": "object", "properties": {
                "max_argument_length": {"type": "integer", "minimum": 0},
                "blocked_patterns": {"type": "array", "items": {"type": "string"}},
                "sanitize_input": {"type": "boolean"}
            }},
            "audit": {"type": "object", "properties": {
                "log_all_executions": {"type": "boolean"},
                "log_failures": {"type": "boolean"},
                "log_agent_decisions": {"type": "boolean"},
                "retention_days": {"type": "integer", "minimum": 0}
            }}
        }
    })
}
