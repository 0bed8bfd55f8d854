//! Aligned text tables with a header, for the text mode of `list`, `cache
//! stats`, `breaker status` and `health`; colours only on a terminal and
//! never under `NO_COLOR`.

use std::io::IsTerminal;

/// A colour for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    /// Good.
    Green,
    /// Attention.
    Yellow,
    /// Bad.
    Red,
    /// Headers.
    Bold,
}

/// Whether stdout gets colours: a terminal, and `NO_COLOR` unset or empty.
pub fn colour_on() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

fn paint(s: &str, c: Colour) -> String {
    let code = match c {
        Colour::Green => "32",
        Colour::Yellow => "33",
        Colour::Red => "31",
        Colour::Bold => "1",
    };
    format!("\x1b[{code}m{s}\x1b[0m")
}

/// A table: a header and rows of cells, each optionally coloured.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<(String, Option<Colour>)>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Add a row of plain cells.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows
            .push(cells.into_iter().map(|c| (c, None)).collect());
    }

    /// Add a row whose cells may carry a colour.
    pub fn row_coloured(&mut self, cells: Vec<(String, Option<Colour>)>) {
        self.rows.push(cells);
    }

    /// Rows added.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The text, columns separated by two spaces, no trailing blanks.
    pub fn render(&self, colour: bool) -> String {
        let n = self.header.len();
        let mut w = vec![0usize; n];
        for (i, h) in self.header.iter().enumerate() {
            w[i] = h.chars().count();
        }
        for r in &self.rows {
            for (i, (c, _)) in r.iter().enumerate().take(n) {
                w[i] = w[i].max(c.chars().count());
            }
        }
        let line = |cells: Vec<(String, Option<Colour>)>| -> String {
            let mut s = String::new();
            let last = cells.len().saturating_sub(1);
            for (i, (c, col)) in cells.into_iter().enumerate().take(n) {
                let pad = if i == last {
                    0
                } else {
                    w[i].saturating_sub(c.chars().count()) + 2
                };
                match col {
                    Some(col) if colour => s.push_str(&paint(&c, col)),
                    _ => s.push_str(&c),
                }
                s.push_str(&" ".repeat(pad));
            }
            s.trim_end().to_string() + "\n"
        };
        let mut out = line(
            self.header
                .iter()
                .map(|h| (h.clone(), Some(Colour::Bold)))
                .collect(),
        );
        for r in &self.rows {
            out.push_str(&line(r.clone()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_and_trims() {
        let mut t = Table::new(&["NAME", "STATE"]);
        t.row(vec!["a".into(), "closed".into()]);
        t.row(vec!["longer".into(), "".into()]);
        assert_eq!(t.render(false), "NAME    STATE\na       closed\nlonger\n");
        assert!(t.render(true).contains("\x1b[1mNAME\x1b[0m"));
    }
}
