//! `when` expressions of pipeline steps: a tiny, safe language parsed into a
//! tree and evaluated against the results of earlier steps (nothing is ever
//! handed to a shell or an interpreter).
//!
//! ```text
//! expr    := or
//! or      := and ("||" and)*
//! and     := unary ("&&" unary)*
//! unary   := "!" unary | primary
//! primary := "(" expr ")" | "true" | "false"
//!          | "success()" | "failure()" | "always()"
//!          | operand OP operand          OP: == != < <= > >=
//! operand := steps.ID.status | steps.ID.exit_code | steps.ID.output
//!          | 'string' | "string" | number | null
//! ```
//!
//! A comparison with a value that does not exist (the exit code of a step
//! that did not run) is false, whatever the operator; `<`, `<=`, `>` and
//! `>=` compare numbers only.

use super::StepStatus;

/// A field of a step that an expression or template can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `success`, `failed`, `skipped` or `cancelled`.
    Status,
    /// The exit code (absent when the step did not run).
    ExitCode,
    /// The trimmed stdout.
    Output,
}

impl Field {
    /// Parse a field name.
    pub fn parse(s: &str) -> Option<Field> {
        match s {
            "status" => Some(Field::Status),
            "exit_code" => Some(Field::ExitCode),
            "output" => Some(Field::Output),
            _ => None,
        }
    }
}

/// Parse `steps.ID.FIELD`; `Err` explains what is wrong.
pub fn parse_ref(path: &str) -> Result<(String, Field), String> {
    let Some(rest) = path.strip_prefix("steps.") else {
        return Err(format!(
            "{path:?} is not a step reference (expected steps.ID.status, steps.ID.exit_code or steps.ID.output)"
        ));
    };
    let Some((id, field)) = rest.rsplit_once('.') else {
        return Err(format!(
            "{path:?} names no field (expected steps.ID.status, steps.ID.exit_code or steps.ID.output)"
        ));
    };
    if id.is_empty() {
        return Err(format!("{path:?} names no step"));
    }
    let field = Field::parse(field).ok_or_else(|| {
        format!("unknown field {field:?} in {path:?} (expected status, exit_code or output)")
    })?;
    Ok((id.to_string(), field))
}

/// A value in a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A field of a step.
    Ref(String, Field),
    /// A string literal.
    Str(String),
    /// A number literal.
    Num(f64),
    /// `null`.
    Null,
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// `true` / `false`.
    Bool(bool),
    /// `!e`
    Not(Box<Expr>),
    /// `a && b`
    And(Box<Expr>, Box<Expr>),
    /// `a || b`
    Or(Box<Expr>, Box<Expr>),
    /// `a OP b`
    Compare(Operand, Cmp, Operand),
    /// `success()`: every step named in `needs` succeeded (or failed with `continue_on_error`).
    Success,
    /// `failure()`: some step this one depends on, directly or not, failed.
    Failure,
    /// `always()`: true.
    Always,
}

/// A parse error at a character offset (0-based) of the expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Character offset.
    pub pos: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Str(String),
    Num(f64),
    Op(&'static str),
    LParen,
    RParen,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let err = |pos, message: String| Err(ParseError { pos, message });
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let op2 = ["==", "!=", "<=", ">=", "&&", "||"]
            .into_iter()
            .find(|o| *o == two);
        if let Some(o) = op2 {
            out.push((start, Tok::Op(o)));
            i += 2;
            continue;
        }
        match c {
            '(' => out.push((start, Tok::LParen)),
            ')' => out.push((start, Tok::RParen)),
            '!' => out.push((start, Tok::Op("!"))),
            '<' => out.push((start, Tok::Op("<"))),
            '>' => out.push((start, Tok::Op(">"))),
            '=' => return err(start, "`=` is not an operator; use `==`".into()),
            '&' | '|' => return err(start, format!("`{c}` is not an operator; use `{c}{c}`")),
            '\'' | '"' => {
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return err(start, "unterminated string".into()),
                        Some(&q) if q == c => break,
                        Some('\\') => {
                            match chars.get(i + 1) {
                                Some(&n) => s.push(n),
                                None => return err(start, "unterminated string".into()),
                            }
                            i += 1;
                        }
                        Some(&ch) => s.push(ch),
                    }
                    i += 1;
                }
                out.push((start, Tok::Str(s)));
            }
            c if c.is_ascii_digit()
                || (c == '-' && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                let s: String = chars[i..j].iter().collect();
                match s.parse::<f64>() {
                    Ok(n) => out.push((start, Tok::Num(n))),
                    Err(_) => return err(start, format!("bad number {s:?}")),
                }
                i = j;
                continue;
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
                {
                    j += 1;
                }
                out.push((start, Tok::Word(chars[i..j].iter().collect())));
                i = j;
                continue;
            }
            c => return err(start, format!("unexpected character {c:?}")),
        }
        i += 1;
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
    /// Open `(` and `!` around the current position (bounded: the parser,
    /// evaluation and drop recurse, and bodies come from HTTP clients).
    depth: usize,
}

/// The longest `when` expression, in characters. With the nesting bound it
/// keeps every expression tree a few hundred levels deep at most.
pub const MAX_LEN: usize = 4096;
/// The deepest nesting of parentheses and `!`.
pub const MAX_DEPTH: usize = 64;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.0)
    }
    fn fail<T>(&self, message: impl Into<String>) -> Result<T, ParseError> {
        Err(ParseError {
            pos: self.pos(),
            message: message.into(),
        })
    }
    fn eat_op(&mut self, op: &str) -> bool {
        if matches!(self.peek(), Some(Tok::Op(o)) if *o == op) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.and()?;
        while self.eat_op("||") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut e = self.unary()?;
        while self.eat_op("&&") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn nest(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.fail(format!("nested more than {MAX_DEPTH} levels deep"));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if matches!(self.peek(), Some(Tok::Op("!"))) {
            self.nest()?;
            self.i += 1;
            let e = Expr::Not(Box::new(self.unary()?));
            self.depth -= 1;
            return Ok(e);
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Tok::LParen) => {
                self.nest()?;
                self.i += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail("expected `)`");
                }
                self.i += 1;
                self.depth -= 1;
                Ok(e)
            }
            Some(Tok::Word(w)) if matches!(w.as_str(), "success" | "failure" | "always") => {
                self.i += 1;
                if self.peek() != Some(&Tok::LParen) {
                    return self.fail(format!("expected `(` after {w}"));
                }
                self.i += 1;
                if self.peek() != Some(&Tok::RParen) {
                    return self.fail(format!("{w}() takes no arguments"));
                }
                self.i += 1;
                Ok(match w.as_str() {
                    "success" => Expr::Success,
                    "failure" => Expr::Failure,
                    _ => Expr::Always,
                })
            }
            Some(Tok::Word(w)) if w == "true" || w == "false" => {
                self.i += 1;
                Ok(Expr::Bool(w == "true"))
            }
            Some(_) => {
                let lhs_pos = self.pos();
                let lhs = self.operand()?;
                let op = match self.peek() {
                    Some(Tok::Op("==")) => Cmp::Eq,
                    Some(Tok::Op("!=")) => Cmp::Ne,
                    Some(Tok::Op("<")) => Cmp::Lt,
                    Some(Tok::Op("<=")) => Cmp::Le,
                    Some(Tok::Op(">")) => Cmp::Gt,
                    Some(Tok::Op(">=")) => Cmp::Ge,
                    _ => {
                        return Err(ParseError {
                            pos: lhs_pos,
                            message: "a value must be compared (==, !=, <, <=, >, >=)".into(),
                        });
                    }
                };
                self.i += 1;
                let rhs = self.operand()?;
                Ok(Expr::Compare(lhs, op, rhs))
            }
            None => self.fail("expected an expression"),
        }
    }

    fn operand(&mut self) -> Result<Operand, ParseError> {
        let pos = self.pos();
        let t = self.peek().cloned();
        let o = match t {
            Some(Tok::Str(s)) => Operand::Str(s),
            Some(Tok::Num(n)) => Operand::Num(n),
            Some(Tok::Word(w)) if w == "null" => Operand::Null,
            Some(Tok::Word(w)) if w.starts_with("steps.") => {
                let (id, f) = parse_ref(&w).map_err(|message| ParseError { pos, message })?;
                Operand::Ref(id, f)
            }
            Some(Tok::Word(w)) => {
                return self.fail(format!(
                    "unknown word {w:?}: quote strings ('{w}') and refer to steps as steps.ID.FIELD"
                ));
            }
            _ => return self.fail("expected a value"),
        };
        self.i += 1;
        Ok(o)
    }
}

/// Parse an expression.
pub fn parse(text: &str) -> Result<Expr, ParseError> {
    let end = text.chars().count();
    if end > MAX_LEN {
        return Err(ParseError {
            pos: MAX_LEN,
            message: format!("longer than {MAX_LEN} characters"),
        });
    }
    let toks = lex(text)?;
    let mut p = Parser {
        toks,
        i: 0,
        end,
        depth: 0,
    };
    let e = p.or()?;
    if p.i < p.toks.len() {
        return p.fail("unexpected text after the expression");
    }
    check_types(&e).map_err(|message| ParseError { pos: 0, message })?;
    Ok(e)
}

fn check_types(e: &Expr) -> Result<(), String> {
    match e {
        Expr::Not(a) => check_types(a),
        Expr::And(a, b) | Expr::Or(a, b) => check_types(a).and_then(|()| check_types(b)),
        Expr::Compare(a, _, b) => {
            for (x, y) in [(a, b), (b, a)] {
                match (x, y) {
                    (Operand::Ref(id, Field::Status), Operand::Str(s))
                        if StepStatus::parse(s).is_none() =>
                    {
                        return Err(format!(
                            "steps.{id}.status is never {s:?} (it is success, failed, skipped or cancelled)"
                        ));
                    }
                    (Operand::Ref(id, Field::Status), Operand::Num(_)) => {
                        return Err(format!(
                            "steps.{id}.status is a word; compare it with 'success', 'failed', 'skipped' or 'cancelled'"
                        ));
                    }
                    (Operand::Ref(id, Field::ExitCode), Operand::Str(_)) => {
                        return Err(format!(
                            "steps.{id}.exit_code is a number; compare it without quotes"
                        ));
                    }
                    _ => {}
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Every step id an expression reads.
pub fn refs(e: &Expr) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(e: &Expr, out: &mut Vec<String>) {
        match e {
            Expr::Not(a) => walk(a, out),
            Expr::And(a, b) | Expr::Or(a, b) => {
                walk(a, out);
                walk(b, out);
            }
            Expr::Compare(a, _, b) => {
                for o in [a, b] {
                    if let Operand::Ref(id, _) = o
                        && !out.contains(id)
                    {
                        out.push(id.clone());
                    }
                }
            }
            _ => {}
        }
    }
    walk(e, &mut out);
    out
}

/// What an expression can know about earlier steps.
pub trait Facts {
    /// A step's status (None: it has not finished).
    fn status(&self, id: &str) -> Option<StepStatus>;
    /// A step's exit code (None: it did not run).
    fn exit_code(&self, id: &str) -> Option<i32>;
    /// A step's trimmed stdout.
    fn output(&self, id: &str) -> String;
    /// `success()` for the step being decided.
    fn success(&self) -> bool;
    /// `failure()` for the step being decided.
    fn failure(&self) -> bool;
}

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    Null,
}

fn value(o: &Operand, f: &dyn Facts) -> Val {
    match o {
        Operand::Str(s) => Val::Str(s.clone()),
        Operand::Num(n) => Val::Num(*n),
        Operand::Null => Val::Null,
        Operand::Ref(id, Field::Status) => f
            .status(id)
            .map_or(Val::Null, |s| Val::Str(s.as_str().into())),
        Operand::Ref(id, Field::ExitCode) => f
            .exit_code(id)
            .map_or(Val::Null, |c| Val::Num(f64::from(c))),
        Operand::Ref(id, Field::Output) => Val::Str(f.output(id)),
    }
}

/// Evaluate an expression.
pub fn eval(e: &Expr, f: &dyn Facts) -> bool {
    match e {
        Expr::Bool(b) => *b,
        Expr::Not(a) => !eval(a, f),
        Expr::And(a, b) => eval(a, f) && eval(b, f),
        Expr::Or(a, b) => eval(a, f) || eval(b, f),
        Expr::Success => f.success(),
        Expr::Failure => f.failure(),
        Expr::Always => true,
        Expr::Compare(a, op, b) => {
            let (x, y) = (value(a, f), value(b, f));
            match (&x, &y) {
                // `== null` / `!= null` test for a missing value.
                (Val::Null, Val::Null) => matches!(op, Cmp::Eq | Cmp::Le | Cmp::Ge),
                (Val::Null, _) | (_, Val::Null) => {
                    let explicit_null = matches!(a, Operand::Null) || matches!(b, Operand::Null);
                    explicit_null && *op == Cmp::Ne
                }
                (Val::Num(x), Val::Num(y)) => match op {
                    Cmp::Eq => x == y,
                    Cmp::Ne => x != y,
                    Cmp::Lt => x < y,
                    Cmp::Le => x <= y,
                    Cmp::Gt => x > y,
                    Cmp::Ge => x >= y,
                },
                (Val::Str(x), Val::Str(y)) => match op {
                    Cmp::Eq => x == y,
                    Cmp::Ne => x != y,
                    _ => false,
                },
                // A number compared with a string: compare the string's number, if any.
                (Val::Num(n), Val::Str(s)) | (Val::Str(s), Val::Num(n)) => {
                    match s.trim().parse::<f64>() {
                        Ok(m) => match op {
                            Cmp::Eq => *n == m,
                            Cmp::Ne => *n != m,
                            _ => {
                                let (l, r) = if matches!(x, Val::Num(_)) {
                                    (*n, m)
                                } else {
                                    (m, *n)
                                };
                                match op {
                                    Cmp::Lt => l < r,
                                    Cmp::Le => l <= r,
                                    Cmp::Gt => l > r,
                                    _ => l >= r,
                                }
                            }
                        },
                        Err(_) => *op == Cmp::Ne,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct F(HashMap<&'static str, (StepStatus, Option<i32>, &'static str)>);

    impl Facts for F {
        fn status(&self, id: &str) -> Option<StepStatus> {
            self.0.get(id).map(|s| s.0)
        }
        fn exit_code(&self, id: &str) -> Option<i32> {
            self.0.get(id).and_then(|s| s.1)
        }
        fn output(&self, id: &str) -> String {
            self.0.get(id).map(|s| s.2.to_string()).unwrap_or_default()
        }
        fn success(&self) -> bool {
            true
        }
        fn failure(&self) -> bool {
            false
        }
    }

    fn facts() -> F {
        F(HashMap::from([
            ("a", (StepStatus::Success, Some(0), "hello")),
            ("b", (StepStatus::Failed, Some(3), "")),
            ("c", (StepStatus::Skipped, None, "")),
            ("my-step", (StepStatus::Success, Some(0), "42")),
        ]))
    }

    fn ev(s: &str) -> bool {
        eval(&parse(s).unwrap_or_else(|e| panic!("{s}: {e:?}")), &facts())
    }

    #[test]
    fn comparisons() {
        assert!(ev("steps.a.status == 'success'"));
        assert!(ev("steps.b.status != \"success\""));
        assert!(ev("steps.b.exit_code != 0"));
        assert!(ev("steps.b.exit_code >= 3 && steps.b.exit_code < 4"));
        assert!(ev("steps.a.output == 'hello'"));
        assert!(ev("steps.my-step.output == 42"));
        assert!(ev("steps.my-step.output > 41.5"));
        assert!(!ev("steps.a.output < 'z'"));
    }

    #[test]
    fn logic_and_precedence() {
        assert!(ev(
            "steps.a.exit_code == 0 || steps.b.exit_code == 0 && false"
        ));
        assert!(!ev("(steps.a.exit_code == 0 || true) && false"));
        assert!(ev("!(steps.b.status == 'success')"));
        assert!(ev("!!true"));
        assert!(ev("success() && !failure() && always()"));
    }

    #[test]
    fn missing_values_compare_false() {
        assert!(!ev("steps.c.exit_code == 0"));
        assert!(!ev("steps.c.exit_code != 0"));
        assert!(ev("steps.c.exit_code == null"));
        assert!(!ev("steps.a.exit_code == null"));
        assert!(ev("steps.a.exit_code != null"));
        assert!(ev("steps.c.status == 'skipped'"));
    }

    #[test]
    fn refs_are_collected() {
        let e = parse(
            "steps.a.status == 'success' && (steps.b.exit_code == 1 || steps.a.output == 'x')",
        )
        .unwrap();
        assert_eq!(refs(&e), ["a", "b"]);
    }

    #[test]
    fn deep_or_long_expressions_are_refused_not_a_stack_overflow() {
        let deep = format!("{}true{}", "(".repeat(100_000), ")".repeat(100_000));
        assert!(parse(&deep).unwrap_err().message.contains("longer than"));
        let nots = format!("{}true", "!".repeat(MAX_LEN - 4));
        let e = parse(&nots).unwrap_err();
        assert!(e.message.contains("nested more than"), "{}", e.message);
        assert_eq!(e.pos, MAX_DEPTH);
        let ok = format!("{}true{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let parens = format!(
            "{}true{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert!(parse(&parens).is_err());
        // The longest chain allowed still parses (and drops) fine.
        let chain = vec!["true"; MAX_LEN / 8].join(" && ");
        assert!(chain.len() <= MAX_LEN);
        assert!(parse(&chain).is_ok());
    }

    #[test]
    fn errors_have_positions() {
        let e = parse("steps.a.status = 'success'").unwrap_err();
        assert_eq!(e.pos, 15);
        assert!(
            parse("steps.a.status == success")
                .unwrap_err()
                .message
                .contains("quote")
        );
        assert!(parse("steps.a.stat == 'x'").is_err());
        assert!(
            parse("steps.a.status == 'ok'")
                .unwrap_err()
                .message
                .contains("never")
        );
        assert!(parse("steps.a.exit_code == '0'").is_err());
        assert!(parse("(true").is_err());
        assert!(parse("true)").is_err());
        assert!(parse("").is_err());
        assert!(parse("steps.a.output").is_err());
        assert!(parse("success(1)").is_err());
        assert!(parse("a & b").is_err());
        assert!(parse("'abc").is_err());
        assert!(parse("os.system('x') == 1").is_err());
    }
}
