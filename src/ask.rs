//! `gathm ask QUERY…` and `POST /api/v1/agent/ask`: route a plain-language
//! request to a tool by deterministic keyword scoring over each tool's name,
//! tags, categories and description (no model, no network).
//!
//! The query is lower-cased and split on anything but `[a-z0-9]`; common
//! words are dropped; each remaining word is compared, after a light
//! stemming, with the tool's fields, plus a small table of synonyms
//! ("location" → "geolocation"). A word scores the best of:
//!
//! | where it matches | points |
//! |---|---|
//! | the whole tool name | 8 |
//! | one part of a hyphenated name | 4 |
//! | a tag | 3 |
//! | a synonym of a tag or of the name | 2 |
//! | a word of the description | 1 |
//! | a category | 1 |
//!
//! The tool with the highest total wins; ties go to the name that sorts
//! first, so the same tools and query always give the same answer.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::api::ToolSummary;
use crate::config::Context;
use crate::error::Result;

/// The request body of `POST /api/v1/agent/ask` (the reference's shape).
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
pub struct AskRequest {
    /// The plain-language request (1 to 16000 characters).
    pub query: String,
}

impl AskRequest {
    /// The reference's bounds: a query of 1 to 16000 characters, not blank.
    /// The HTTP route answers 422 with this message otherwise.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let n = self.query.chars().count();
        if self.query.trim().is_empty() || n > 16000 {
            return Err(format!(
                "query must be 1 to 16000 characters and not blank (got {n})"
            ));
        }
        Ok(())
    }
}

/// One scored tool.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Candidate {
    /// Tool name.
    pub tool: String,
    /// Total points.
    pub score: u32,
    /// The manifest description.
    pub description: String,
    /// Why: one entry per query word that scored.
    pub reasons: Vec<String>,
}

/// The answer of `ask` (the reference's fields, plus alternatives).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AskAnswer {
    /// The query as given.
    pub query: String,
    /// The best tool, or null when no word matched anything.
    pub matched_tool: Option<String>,
    /// The best tool's score (0: no match).
    pub confidence: u32,
    /// The best tool's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// How to run it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// Why it scored (the best tool's reasons).
    pub reasons: Vec<String>,
    /// Up to three other tools that scored, best first.
    pub alternatives: Vec<Candidate>,
    /// "No matching tool found" when nothing matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

const STOPWORDS: &[&str] = &[
    "a", "about", "all", "am", "an", "and", "any", "are", "as", "at", "be", "by", "can", "could",
    "do", "does", "for", "from", "get", "give", "have", "how", "i", "in", "into", "is", "it",
    "its", "let", "like", "me", "my", "need", "new", "of", "on", "one", "or", "our", "please",
    "run", "say", "see", "should", "show", "so", "some", "tell", "than", "that", "the", "their",
    "them", "then", "there", "these", "this", "to", "tool", "up", "us", "use", "using", "want",
    "was", "we", "what", "when", "where", "which", "who", "whose", "why", "will", "with", "would",
    "you", "your",
];

/// Words people use for a tag or a name that the manifests do not carry.
const SYNONYMS: &[(&str, &[&str])] = &[
    (
        "geolocation",
        &[
            "location",
            "locate",
            "geolocate",
            "country",
            "city",
            "located",
        ],
    ),
    ("certificate", &["cert", "certs"]),
    (
        "vulnerability",
        &["vuln", "vulns", "exploit", "advisory", "cvss"],
    ),
    ("password", &["passphrase", "passwd", "pwd"]),
    (
        "weather",
        &["rain", "snow", "sunny", "wind", "climate", "umbrella"],
    ),
    (
        "currency",
        &[
            "money", "dollar", "dollars", "euro", "euros", "usd", "eur", "gbp", "yen",
        ],
    ),
    ("headlines", &["headline"]),
    ("disk", &["space", "filesystem", "full", "mount", "mounts"]),
    ("system", &["machine", "host", "kernel", "uptime", "ram"]),
    ("time", &["epoch", "unix", "timestamp", "date"]),
    ("timezone", &["tz", "zone", "zones"]),
    (
        "todo",
        &["task", "tasks", "reminder", "remind", "checklist"],
    ),
    ("uuid", &["guid", "identifier", "unique"]),
    ("ports", &["port", "open", "nmap"]),
    ("hash", &["digest", "checksum", "fingerprint"]),
    ("json", &["pretty", "prettify", "minify", "indent"]),
    (
        "registrar",
        &["registered", "registration", "owner", "owns"],
    ),
    ("mx", &["mail", "email"]),
    ("url", &["link", "querystring"]),
    ("http", &["website", "site", "web", "reachable", "online"]),
    ("news", &["rss", "feed", "feeds", "latest"]),
    ("ip", &["ipv4", "ipv6", "public"]),
    ("encode", &["base64", "base32"]),
    ("headers", &["hsts", "csp", "security-headers"]),
    ("random", &["generate", "generator"]),
];

/// Lower-case, split on anything but `[a-z0-9]`, drop common words and single letters.
pub fn words(query: &str) -> Vec<String> {
    let lower = query.to_lowercase();
    let mut seen = BTreeSet::new();
    lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.len() > 1 && !STOPWORDS.contains(w))
        .filter(|w| seen.insert(w.to_string()))
        .map(String::from)
        .collect()
}

/// A light stemmer: plural and verb endings, so "headers" meets "header".
pub fn stem(w: &str) -> &str {
    for suffix in ["ing", "es", "ed", "s"] {
        if let Some(s) = w.strip_suffix(suffix)
            && s.len() >= 3
            && !w.ends_with("ss")
        {
            return s;
        }
    }
    w
}

fn same(a: &str, b: &str) -> bool {
    a == b || stem(a) == stem(b)
}

fn synonym_of(word: &str) -> Vec<&'static str> {
    SYNONYMS
        .iter()
        .filter(|(_, alts)| alts.iter().any(|a| same(a, word)))
        .map(|(k, _)| *k)
        .collect()
}

/// Score one tool against the query words.
pub fn score(t: &ToolSummary, query: &[String]) -> (u32, Vec<String>) {
    let desc: Vec<String> = words(&t.description);
    let parts: Vec<&str> = t.name.split(['-', '_', '.']).collect();
    let mut total = 0;
    let mut reasons = Vec::new();
    for w in query {
        let syns = synonym_of(w);
        let mut best: (u32, String) = (0, String::new());
        let mut consider = |pts: u32, why: String| {
            if pts > best.0 {
                best = (pts, why);
            }
        };
        if same(w, &t.name) {
            consider(8, "the tool's name".into());
        }
        if parts.len() > 1 && parts.iter().any(|p| same(w, p)) {
            consider(4, "part of the tool's name".into());
        }
        if let Some(tag) = t.tags.iter().find(|g| same(w, g)) {
            consider(3, format!("tag {tag:?}"));
        }
        for s in &syns {
            if same(s, &t.name) || t.tags.iter().any(|g| same(s, g)) {
                consider(2, format!("a synonym of {s:?}"));
            }
        }
        if desc.iter().any(|d| same(w, d)) {
            consider(1, "a word of the description".into());
        }
        if t.category.to_vec().iter().any(|c| same(w, c)) {
            consider(1, "the category".into());
        }
        if best.0 > 0 {
            total += best.0;
            reasons.push(format!("{w:?}: {} (+{})", best.1, best.0));
        }
    }
    (total, reasons)
}

/// Route a query over the given tools.
pub fn route(tools: &[ToolSummary], query: &str) -> AskAnswer {
    let q = words(query);
    let mut scored: Vec<Candidate> = tools
        .iter()
        .map(|t| {
            let (score, reasons) = score(t, &q);
            Candidate {
                tool: t.name.clone(),
                score,
                description: t.description.clone(),
                reasons,
            }
        })
        .filter(|c| c.score > 0)
        .collect();
    scored.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.tool.cmp(&b.tool)));
    let mut it = scored.into_iter();
    match it.next() {
        Some(best) => AskAnswer {
            query: query.to_string(),
            action: Some(format!("Use: gathm run {}", best.tool)),
            matched_tool: Some(best.tool),
            confidence: best.score,
            description: Some(best.description),
            reasons: best.reasons,
            alternatives: it.take(3).collect(),
            error: None,
        },
        None => AskAnswer {
            query: query.to_string(),
            matched_tool: None,
            confidence: 0,
            description: None,
            action: None,
            reasons: Vec::new(),
            alternatives: Vec::new(),
            error: Some("No matching tool found".into()),
        },
    }
}

/// The operation both front-ends call: route over the tools the role may
/// discover. `POST /api/v1/agent/ask` answers `ask(ctx, role, &body.query)`
/// as JSON (a query of 1 to 16000 characters; anything else is a 422/400).
pub fn ask(ctx: &Context, role: &str, query: &str) -> Result<AskAnswer> {
    let (list, _) = crate::ops::list(ctx, role, None)?;
    Ok(route(&list.tools, query))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, desc: &str, tags: &[&str]) -> ToolSummary {
        ToolSummary {
            name: name.into(),
            description: desc.into(),
            version: "1.0.0".into(),
            category: crate::manifest::OneOrMany::Many(vec!["utility".into()]),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            requires_internet: false,
            fallback_tool: Vec::new(),
            path: String::new(),
        }
    }

    #[test]
    fn name_beats_tag_and_ties_are_stable() {
        let tools = [
            t("dns", "DNS lookup", &["dns", "mx"]),
            t("dns-getent", "resolve names", &["dns"]),
            t("zeta", "mx things", &["mx"]),
        ];
        let a = route(&tools, "Resolve the MX records of example.com with DNS");
        assert_eq!(a.matched_tool.as_deref(), Some("dns"));
        assert!(!a.alternatives.is_empty());
        let a = route(&tools, "nothing relevant here");
        assert_eq!(a.matched_tool, None);
        assert_eq!(a.error.as_deref(), Some("No matching tool found"));
    }

    #[test]
    fn request_bounds() {
        let r = |q: &str| AskRequest { query: q.into() }.validate();
        assert!(r("weather").is_ok());
        assert!(r("  ").is_err());
        assert!(r(&"x".repeat(16001)).is_err());
    }

    #[test]
    fn words_and_stems() {
        assert_eq!(words("What's the IP, please?"), ["ip"]);
        assert_eq!(stem("headers"), "header");
        assert_eq!(stem("address"), "address");
    }
}
