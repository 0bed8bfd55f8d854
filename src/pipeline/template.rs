//! Argument templates of pipeline steps: `${steps.ID.output}`,
//! `${steps.ID.exit_code}` and `${steps.ID.status}` inside one argument.
//! Substitution is plain text replacement into that one argv element; the
//! result never passes through a shell. `$${` writes a literal `${`.

use super::when::{Field, parse_ref};

/// A piece of a parsed argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A reference to a field of an earlier step.
    Ref(String, Field),
}

/// Parse one argument into pieces; `Err` explains the first problem.
pub fn parse(arg: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = arg;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('$') {
            // `$${` is an escaped `${`.
            text.push_str(&rest[..i - 1]);
            text.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        text.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("unterminated ${{ in {arg:?}"));
        };
        let inner = after[..end].trim();
        let (id, field) = parse_ref(inner)?;
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(Piece::Ref(id, field));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(out)
}

/// Render pieces with a lookup for step fields.
pub fn render(pieces: &[Piece], lookup: &dyn Fn(&str, Field) -> String) -> String {
    let mut s = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => s.push_str(t),
            Piece::Ref(id, f) => s.push_str(&lookup(id, *f)),
        }
    }
    s
}

/// Step ids referenced by pieces.
pub fn refs(pieces: &[Piece]) -> impl Iterator<Item = &str> {
    pieces.iter().filter_map(|p| match p {
        Piece::Ref(id, _) => Some(id.as_str()),
        Piece::Text(_) => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> String {
        let p = parse(s).unwrap();
        render(&p, &|id, f| match f {
            Field::Output => format!("<{id} out; rm -rf $x>"),
            Field::ExitCode => "3".into(),
            Field::Status => "failed".into(),
        })
    }

    #[test]
    fn substitutes_inside_one_argument() {
        assert_eq!(r("plain"), "plain");
        assert_eq!(r("${steps.a.output}"), "<a out; rm -rf $x>");
        assert_eq!(
            r("--ip=${ steps.a.output }:${steps.b.exit_code}"),
            "--ip=<a out; rm -rf $x>:3"
        );
        assert_eq!(r("${steps.my-step.status}!"), "failed!");
        assert_eq!(
            r("$${steps.a.output} and $HOME"),
            "${steps.a.output} and $HOME"
        );
        assert_eq!(r(""), "");
    }

    #[test]
    fn refs_and_errors() {
        let p = parse("${steps.a.output}-${steps.b.exit_code}").unwrap();
        assert_eq!(refs(&p).collect::<Vec<_>>(), ["a", "b"]);
        assert!(parse("${steps.a.output").is_err());
        assert!(parse("${env.HOME}").is_err());
        assert!(parse("${steps.a.stdout}").is_err());
        assert!(parse("${steps..output}").is_err());
    }
}
