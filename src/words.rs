//! A small shell-words style splitter for the string forms of `parallel` and
//! `chain`: items separated by an unquoted separator character, each split
//! into words. It understands single quotes, double quotes (with `\"`, `\\`
//! and `\$` escapes) and backslash escapes outside quotes, and nothing else:
//! no variables, globs, substitutions or redirections are ever evaluated.

use crate::error::{Error, Result};

/// Split `text` into items at every unquoted `sep`, and each item into words.
///
/// Empty items are errors (a trailing separator is allowed and ignored), so
/// `"a, ,b"` is refused rather than silently dropping an item.
pub fn split_items(text: &str, sep: char) -> Result<Vec<Vec<String>>> {
    let mut items: Vec<Vec<String>> = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut cur = String::new();
    // Whether `cur` holds a word (an empty quoted word `''` counts).
    let mut in_word = false;
    let mut chars = text.chars().peekable();
    let mut item_no = 1usize;
    let mut saw_sep = false;
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => {
                            return Err(Error::Usage(format!(
                                "unterminated single quote in item {item_no}"
                            )));
                        }
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some(&n @ ('"' | '\\' | '$' | '`')) => {
                                cur.push(n);
                                chars.next();
                            }
                            _ => cur.push('\\'),
                        },
                        Some(ch) => cur.push(ch),
                        None => {
                            return Err(Error::Usage(format!(
                                "unterminated double quote in item {item_no}"
                            )));
                        }
                    }
                }
            }
            '\\' => match chars.next() {
                Some(n) => {
                    in_word = true;
                    cur.push(n);
                }
                None => {
                    return Err(Error::Usage(format!(
                        "trailing backslash in item {item_no}"
                    )));
                }
            },
            c if c == sep => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                if words.is_empty() {
                    return Err(Error::Usage(format!(
                        "item {item_no} is empty (two {sep:?} in a row?)"
                    )));
                }
                items.push(std::mem::take(&mut words));
                item_no += 1;
                saw_sep = true;
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    if !words.is_empty() {
        items.push(words);
    } else if !saw_sep {
        return Err(Error::Usage("nothing to run: the list is empty".into()));
    }
    Ok(items)
}

/// Quote one word for display so that [`split_items`] would read it back
/// (plain words are left alone).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '-' | '_' | '.' | '/' | ':' | '=' | '@' | '+' | '%')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line for display: the words quoted where needed, space-joined.
pub fn display(tool: &str, args: &[String]) -> String {
    std::iter::once(quote(tool))
        .chain(args.iter().map(|a| quote(a)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_round_trips() {
        let words = ["a", "a b", "it's", "", "x,y", "https://b.com/?q=1"];
        let line = words.iter().map(|w| quote(w)).collect::<Vec<_>>().join(" ");
        assert_eq!(split_items(&line, '|').unwrap()[0], words);
        assert_eq!(display("ok", &["a b".into()]), "ok 'a b'");
    }

    fn s(items: &[&[&str]]) -> Vec<Vec<String>> {
        items
            .iter()
            .map(|i| i.iter().map(|w| w.to_string()).collect())
            .collect()
    }

    #[test]
    fn splits_items_and_words() {
        assert_eq!(
            split_items("dns a.com, httpprobe https://b.com", ',').unwrap(),
            s(&[&["dns", "a.com"], &["httpprobe", "https://b.com"]])
        );
        assert_eq!(
            split_items("  geo -w |ipinfo  ", '|').unwrap(),
            s(&[&["geo", "-w"], &["ipinfo"]])
        );
    }

    #[test]
    fn quotes_protect_separators_and_spaces() {
        assert_eq!(
            split_items(r#"ok 'a, b' "c d" e\,f, ok ''"#, ',').unwrap(),
            s(&[&["ok", "a, b", "c d", "e,f"], &["ok", ""]])
        );
        assert_eq!(
            split_items(r#"ok "say \"hi\" \n" 'it'\''s'"#, ',').unwrap(),
            s(&[&["ok", "say \"hi\" \\n", "it's"]])
        );
    }

    #[test]
    fn nothing_is_evaluated() {
        assert_eq!(
            split_items("ok $HOME $(id) `id` * ~ >x", ',').unwrap(),
            s(&[&["ok", "$HOME", "$(id)", "`id`", "*", "~", ">x"]])
        );
    }

    #[test]
    fn errors() {
        assert!(split_items("ok 'a", ',').is_err());
        assert!(split_items("ok \"a", ',').is_err());
        assert!(split_items("ok a\\", ',').is_err());
        assert!(split_items("ok, , ok", ',').is_err());
        assert!(split_items("", ',').is_err());
        assert!(split_items("   ", ',').is_err());
        assert!(split_items(",", ',').is_err());
        // A trailing separator is fine.
        assert_eq!(split_items("ok a,", ',').unwrap(), s(&[&["ok", "a"]]));
    }
}
