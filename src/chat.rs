//! Chat requests of the OpenAI-compatible endpoint (`POST
//! /v1/chat/completions`), without any I/O: the request's fields checked
//! with the parameter they concern, messages rendered into the prompt a chat
//! tool reads, the tool's stdout lines turned into reply text (cut at
//! `max_tokens`), and the token estimate of `usage`.
//!
//! The prompt format (README, *OpenAI-compatible endpoint*): a conversation
//! of one user message is that message's text alone; otherwise every
//! message becomes a `role:` line followed by its text, messages separated
//! by a blank line. Content is a string or an array of `{"type": "text",
//! "text": …}` parts (joined with newlines).
//!
//! Tokens are estimated, not counted: one token per 4 characters, rounded up.

use serde_json::{Map, Value};

use crate::manifest::ChatOutput;

/// Roles a message may have (`developer` is OpenAI's newer `system`).
pub const ROLES: [&str; 5] = ["system", "developer", "user", "assistant", "tool"];

/// Most messages in one request.
pub const MAX_MESSAGES: usize = 4096;

/// A request refused: what is wrong and the parameter it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The message for the client.
    pub message: String,
    /// The offending parameter (`messages[2].role`), if one.
    pub param: Option<String>,
}

fn invalid(message: impl Into<String>, param: impl Into<String>) -> Invalid {
    Invalid {
        message: message.into(),
        param: Some(param.into()),
    }
}

/// One message with its content as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// One of [`ROLES`].
    pub role: String,
    /// The text.
    pub content: String,
}

/// A checked request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The model asked for.
    pub model: String,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Answer as server-sent events.
    pub stream: bool,
    /// `max_completion_tokens` or `max_tokens` (estimated tokens).
    pub max_tokens: Option<u64>,
}

/// Check a request body (a JSON object). Fields gathm does not use
/// (`temperature`, `tools`, …) are ignored, as with any OpenAI backend
/// that does not support them; `n` other than 1 is refused.
pub fn parse(o: &Map<String, Value>) -> Result<Request, Invalid> {
    let model = match o.get("model") {
        Some(Value::String(m)) if !m.is_empty() => m.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(invalid("you must provide a model parameter", "model"));
        }
        Some(_) => return Err(invalid("model must be a string", "model")),
    };
    let stream = match o.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(invalid("stream must be a boolean", "stream")),
    };
    let mut max_tokens = None;
    for key in ["max_tokens", "max_completion_tokens"] {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(v) => match v.as_u64().filter(|n| *n >= 1) {
                Some(n) => max_tokens = Some(max_tokens.map_or(n, |m: u64| m.min(n))),
                None => {
                    return Err(invalid(format!("{key} must be a positive integer"), key));
                }
            },
        }
    }
    match o.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(_) => return Err(invalid("only n = 1 is supported", "n")),
    }
    let messages = match o.get("messages") {
        Some(Value::Array(a)) if a.is_empty() => {
            return Err(invalid("messages must not be empty", "messages"));
        }
        Some(Value::Array(a)) if a.len() > MAX_MESSAGES => {
            return Err(invalid(
                format!("at most {MAX_MESSAGES} messages"),
                "messages",
            ));
        }
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(i, m)| message(i, m))
            .collect::<Result<Vec<_>, _>>()?,
        None | Some(Value::Null) => {
            return Err(invalid("you must provide messages", "messages"));
        }
        Some(_) => return Err(invalid("messages must be an array", "messages")),
    };
    Ok(Request {
        model,
        messages,
        stream,
        max_tokens,
    })
}

fn message(i: usize, m: &Value) -> Result<Message, Invalid> {
    let at = |k: &str| format!("messages[{i}].{k}");
    let Value::Object(m) = m else {
        return Err(invalid(
            "a message must be an object",
            format!("messages[{i}]"),
        ));
    };
    let role = match m.get("role") {
        Some(Value::String(r)) if ROLES.contains(&r.as_str()) => r.clone(),
        Some(Value::String(r)) => {
            return Err(invalid(
                format!("invalid role {r:?}: one of {}", ROLES.join(", ")),
                at("role"),
            ));
        }
        _ => return Err(invalid("role is required (a string)", at("role"))),
    };
    let content = match m.get("content") {
        Some(Value::String(s)) => s.clone(),
        // An assistant message that only called tools has no content.
        None | Some(Value::Null) if role == "assistant" => String::new(),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::with_capacity(parts.len());
            for (j, p) in parts.iter().enumerate() {
                let here = format!("messages[{i}].content[{j}]");
                match (p.get("type").and_then(Value::as_str), p.get("text")) {
                    (Some("text"), Some(Value::String(t))) => texts.push(t.as_str()),
                    (Some("text"), _) => {
                        return Err(invalid("a text part needs a string text", here));
                    }
                    (Some(other), _) => {
                        return Err(invalid(
                            format!(
                                "content parts of type {other:?} are not supported (text only)"
                            ),
                            format!("{here}.type"),
                        ));
                    }
                    (None, _) => return Err(invalid("a content part needs a type", here)),
                }
            }
            texts.join("\n")
        }
        None | Some(Value::Null) => {
            return Err(invalid("content is required", at("content")));
        }
        Some(_) => {
            return Err(invalid(
                "content must be a string or an array of text parts",
                at("content"),
            ));
        }
    };
    if content.contains('\0') {
        return Err(invalid("content must not contain NUL bytes", at("content")));
    }
    Ok(Message { role, content })
}

/// The prompt a chat tool reads (see the module documentation).
pub fn render(messages: &[Message]) -> String {
    if let [only] = messages
        && only.role == "user"
    {
        return only.content.clone();
    }
    let mut out = String::new();
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push_str("\n\n");
        }
        out.push_str(&m.role);
        out.push_str(":\n");
        out.push_str(&m.content);
    }
    out
}

/// Estimated tokens of a text: one per 4 characters, rounded up.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Builds the reply from the tool's stdout lines, in order: text lines are
/// joined with newlines; a `jsonl` line adds its `content` string (lines
/// that are not such objects are skipped). The reply stops at `max_tokens`
/// (4 characters a token).
#[derive(Debug, Clone)]
pub struct Assembler {
    output: ChatOutput,
    limit: Option<usize>,
    chars: usize,
    lines: u64,
    cut: bool,
}

impl Assembler {
    /// For a tool's output mode and the request's `max_tokens`.
    pub fn new(output: ChatOutput, max_tokens: Option<u64>) -> Assembler {
        Assembler {
            output,
            limit: max_tokens.map(|n| usize::try_from(n.saturating_mul(4)).unwrap_or(usize::MAX)),
            chars: 0,
            lines: 0,
            cut: false,
        }
    }

    /// The text one stdout line adds (None: nothing, or the limit was reached).
    pub fn line(&mut self, line: &str) -> Option<String> {
        if self.cut {
            return None;
        }
        let delta = match self.output {
            ChatOutput::Text => {
                let d = if self.lines == 0 {
                    line.to_string()
                } else {
                    format!("\n{line}")
                };
                self.lines += 1;
                d
            }
            ChatOutput::Jsonl => match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(o)) => match o.get("content") {
                    Some(Value::String(s)) if !s.is_empty() => s.clone(),
                    _ => return None,
                },
                _ => return None,
            },
        };
        let n = delta.chars().count();
        if let Some(limit) = self.limit
            && self.chars + n >= limit
        {
            // Reaching the limit ends the reply, as a model's last token does.
            let keep = limit - self.chars;
            self.chars = limit;
            self.cut = true;
            let d: String = delta.chars().take(keep).collect();
            return (!d.is_empty()).then_some(d);
        }
        self.chars += n;
        Some(delta)
    }

    /// Whether the reply reached `max_tokens` (`finish_reason: "length"`).
    pub fn cut(&self) -> bool {
        self.cut
    }

    /// Estimated tokens of the reply so far.
    pub fn tokens(&self) -> u64 {
        (self.chars as u64).div_ceil(4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(v: Value) -> Result<Request, Invalid> {
        parse(v.as_object().unwrap())
    }

    #[test]
    fn parses_string_and_part_contents() {
        let r = req(json!({
            "model": "m",
            "stream": true,
            "max_tokens": 10,
            "max_completion_tokens": 7,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "assistant", "content": null, "tool_calls": []},
            ]
        }))
        .unwrap();
        assert_eq!(r.model, "m");
        assert!(r.stream);
        assert_eq!(r.max_tokens, Some(7));
        assert_eq!(r.messages[1].content, "a\nb");
        assert_eq!(r.messages[2].content, "");
    }

    #[test]
    fn refusals_name_the_parameter() {
        let cases = [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "model",
            ),
            (json!({"model": 3, "messages": []}), "model"),
            (json!({"model": "m"}), "messages"),
            (json!({"model": "m", "messages": []}), "messages"),
            (json!({"model": "m", "messages": {}}), "messages"),
            (json!({"model": "m", "messages": [3]}), "messages[0]"),
            (
                json!({"model": "m", "messages": [{"role": "robot", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user"}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": 5}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"model": "m", "messages": [{"role": "user", "content": "a\u{0}"}]}),
                "messages[0].content",
            ),
            (
                json!({"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}),
                "stream",
            ),
            (
                json!({"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}),
                "n",
            ),
        ];
        for (body, param) in cases {
            let e = req(body.clone()).unwrap_err();
            assert_eq!(e.param.as_deref(), Some(param), "{body}: {e:?}");
            assert!(!e.message.is_empty());
        }
    }

    fn m(role: &str, content: &str) -> Message {
        Message {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn renders_the_documented_format() {
        assert_eq!(render(&[m("user", "hi\nthere")]), "hi\nthere");
        assert_eq!(
            render(&[
                m("system", "S"),
                m("user", "U"),
                m("assistant", "A"),
                m("user", "V")
            ]),
            "system:\nS\n\nuser:\nU\n\nassistant:\nA\n\nuser:\nV"
        );
        assert_eq!(render(&[m("system", "S")]), "system:\nS");
    }

    #[test]
    fn tokens_are_estimated_by_characters() {
        assert_eq!(tokens(""), 0);
        assert_eq!(tokens("abcd"), 1);
        assert_eq!(tokens("abcde"), 2);
        assert_eq!(tokens("éééé"), 1);
    }

    #[test]
    fn text_lines_join_with_newlines() {
        let mut a = Assembler::new(ChatOutput::Text, None);
        let text: String = ["one", "", "two"]
            .iter()
            .filter_map(|l| a.line(l))
            .collect();
        assert_eq!(text, "one\n\ntwo");
        assert!(!a.cut());
        assert_eq!(a.tokens(), 2);
    }

    #[test]
    fn jsonl_lines_add_their_content() {
        let mut a = Assembler::new(ChatOutput::Jsonl, None);
        let text: String = [
            r#"{"content": "Hel"}"#,
            r#"{"type": "progress"}"#,
            "not json",
            r#"{"content": "lo\n"}"#,
            r#"[1]"#,
        ]
        .iter()
        .filter_map(|l| a.line(l))
        .collect();
        assert_eq!(text, "Hello\n");
    }

    #[test]
    fn max_tokens_cuts_the_reply() {
        let mut a = Assembler::new(ChatOutput::Text, Some(2));
        let text: String = ["abcde", "fgh", "ijk"]
            .iter()
            .filter_map(|l| a.line(l))
            .collect();
        assert_eq!(text, "abcde\nfg");
        assert!(a.cut());
        assert_eq!(a.tokens(), 2);
        // Exactly at the limit with nothing after it is still a cut reply:
        // the tool's further output is not read.
        let mut a = Assembler::new(ChatOutput::Text, Some(1));
        assert_eq!(a.line("abcd").as_deref(), Some("abcd"));
        assert!(a.cut());
        assert_eq!(a.line("e"), None);
        let mut a = Assembler::new(ChatOutput::Text, Some(100));
        assert_eq!(a.line("abcd").as_deref(), Some("abcd"));
        assert!(!a.cut());
    }
}
