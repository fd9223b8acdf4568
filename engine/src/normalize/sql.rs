//! SQL normalization (spec 02 §1): one left-to-right scan that replaces string,
//! number and dollar-quoted literals with `?`, turns positional `$N`
//! placeholders into `$?`, and collapses `IN (?, ?, …)` lists to `IN (?)`.

use super::ParamSink;

/// How much of a statement is looked at; the rest is dropped.
pub const MAX_SQL_BYTES: usize = 65_536;

/// Normalizes `sql` and returns its template; removed literals go to `params`.
pub fn normalize_sql(sql: &str, params: &mut impl ParamSink) -> String {
    let sql = cut(sql, MAX_SQL_BYTES);
    let b = sql.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut value = String::new();
    let mut saw_in = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\'' => {
                // String literal; `''` is an escaped quote.
                value.clear();
                let mut j = i + 1;
                let mut start = j;
                loop {
                    if j >= b.len() {
                        value.push_str(&sql[start..]);
                        break;
                    }
                    if b[j] == b'\'' {
                        value.push_str(&sql[start..j]);
                        if b.get(j + 1) == Some(&b'\'') {
                            value.push('\'');
                            j += 2;
                            start = j;
                            continue;
                        }
                        j += 1;
                        break;
                    }
                    j += 1;
                }
                params.push(&value);
                out.push(b'?');
                i = j;
            }
            b'"' => {
                // Quoted identifier: copied verbatim up to and including the closing quote.
                let end = b[i + 1..]
                    .iter()
                    .position(|&x| x == b'"')
                    .map_or(b.len(), |p| i + 1 + p + 1);
                out.extend_from_slice(&b[i..end]);
                i = end;
            }
            b'$' => {
                if b.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    let mut j = i + 1;
                    while j < b.len() && b[j].is_ascii_digit() {
                        j += 1;
                    }
                    out.extend_from_slice(b"$?");
                    i = j;
                } else if let Some(tag_end) = dollar_tag_end(b, i) {
                    let tag = &b[i..=tag_end];
                    let body_start = tag_end + 1;
                    let (body_end, next) = match find(&b[body_start..], tag) {
                        Some(p) => (body_start + p, body_start + p + tag.len()),
                        None => (b.len(), b.len()),
                    };
                    params.push(&sql[body_start..body_end]);
                    out.push(b'?');
                    i = next;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            b'0'..=b'9' if i == 0 || !is_word_byte(b[i - 1]) => {
                let mut j = i;
                let mut seen_dot = false;
                while j < b.len() {
                    if b[j].is_ascii_digit() {
                        j += 1;
                    } else if b[j] == b'.' && !seen_dot {
                        seen_dot = true;
                        j += 1;
                    } else {
                        break;
                    }
                }
                params.push(&sql[i..j]);
                out.push(b'?');
                i = j;
            }
            b'I' | b'i' => {
                if !saw_in
                    && matches!(b.get(i + 1), Some(b'N' | b'n'))
                    && (i == 0 || b[i - 1].is_ascii_whitespace())
                    && !b.get(i + 2).is_some_and(u8::is_ascii_alphanumeric)
                {
                    saw_in = true;
                }
                out.push(c);
                i += 1;
            }
            _ => {
                // Up to the next byte that may start a literal or an `IN`,
                // everything is copied as it is.
                let run_end = b[i + 1..]
                    .iter()
                    .position(|&x| STARTS_TOKEN[usize::from(x)])
                    .map_or(b.len(), |p| i + 1 + p);
                out.extend_from_slice(&b[i..run_end]);
                i = run_end;
            }
        }
    }
    // Only ASCII bytes were replaced, and only by ASCII: `out` stays UTF-8.
    let template = String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
    if saw_in { collapse_in_lists(&template) } else { template }
}

/// The bytes the scan of [`normalize_sql`] stops at: those with an arm of
/// their own (quotes, `$`, digits, `I` and `i`).
const STARTS_TOKEN: [bool; 256] = {
    let mut table = [false; 256];
    let mut c = 0;
    while c < 256 {
        table[c] = matches!(c as u8, b'\'' | b'"' | b'$' | b'0'..=b'9' | b'I' | b'i');
        c += 1;
    }
    table
};

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// If a dollar-quote opener (`$$` or `$tag$`) starts at `i`, the index of its closing `$`.
fn dollar_tag_end(b: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while j < b.len() && is_word_byte(b[j]) {
        j += 1;
    }
    (b.get(j) == Some(&b'$')).then_some(j)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Replaces every `IN`, optional spaces, `(`, one or more `?` separated by
/// commas, `)` with `IN (?)`, case-insensitively and not word-bounded, as the
/// reference's regular expression does.
fn collapse_in_lists(t: &str) -> String {
    let b = t.as_bytes();
    let mut out = String::with_capacity(t.len());
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i].eq_ignore_ascii_case(&b'i') && b[i + 1].eq_ignore_ascii_case(&b'n') {
            if let Some(end) = match_in_list(b, i + 2) {
                out.push_str(&t[copied..i]);
                out.push_str("IN (?)");
                copied = end;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    out.push_str(&t[copied..]);
    out
}

/// Matches `\s*\(\s*\?(\s*,\s*\?)*\s*\)` at `i`; returns the end index.
fn match_in_list(b: &[u8], mut i: usize) -> Option<usize> {
    let ws = |b: &[u8], mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    i = ws(b, i);
    if b.get(i) != Some(&b'(') {
        return None;
    }
    i = ws(b, i + 1);
    if b.get(i) != Some(&b'?') {
        return None;
    }
    i += 1;
    loop {
        let j = ws(b, i);
        match b.get(j) {
            Some(b',') => {
                let k = ws(b, j + 1);
                if b.get(k) != Some(&b'?') {
                    return None;
                }
                i = k + 1;
            }
            Some(b')') => return Some(j + 1),
            _ => return None,
        }
    }
}

/// Statement keywords that [`statement_verb`] reports, in byte order, at
/// most 16 bytes each.
const VERBS: &[&str] = &[
    "ALTER",
    "BEGIN",
    "CALL",
    "COMMIT",
    "COPY",
    "CREATE",
    "DELETE",
    "DROP",
    "EXEC",
    "EXECUTE",
    "EXPLAIN",
    "GRANT",
    "INSERT",
    "MERGE",
    "REPLACE",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SELECT",
    "SET",
    "SHOW",
    "START",
    "TRUNCATE",
    "UPDATE",
    "UPSERT",
    "VALUES",
    "WITH",
];

/// The statement's first whitespace-separated word, upper-cased, when it is
/// a known statement keyword (`SELECT`, `INSERT`, `UPDATE`, `DELETE`, `WITH`,
/// ...). Anything else, a literal included, gives `None`.
pub fn statement_verb(sql: &str) -> Option<&'static str> {
    // The common case without decoding characters: ASCII letters after ASCII
    // white space, up to ASCII white space or the end. Anything else (a
    // non-ASCII byte may be Unicode white space) takes the general path.
    let b = sql.as_bytes();
    let is_space = |c: u8| matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = b.iter().position(|&c| !is_space(c)).unwrap_or(b.len());
    let end = start + b[start..].iter().take_while(|c| c.is_ascii_alphabetic()).count();
    let word = if end == b.len() || is_space(b[end]) {
        &sql[start..end]
    } else {
        sql.split_whitespace().next()?
    };
    if word.is_empty() || word.len() > 16 {
        return None;
    }
    let mut upper = [0u8; 16];
    for (to, from) in upper.iter_mut().zip(word.bytes()) {
        *to = from.to_ascii_uppercase();
    }
    // Compared as one number each (with the length, since a word may hold
    // NUL bytes that the zero padding would hide), not byte by byte.
    let key = u128::from_le_bytes(upper);
    PACKED_VERBS
        .iter()
        .zip(VERBS)
        .find(|&(&packed, verb)| packed == key && verb.len() == word.len())
        .map(|(_, verb)| *verb)
}

/// [`VERBS`], each packed into a `u128` as [`statement_verb`] packs a word.
const PACKED_VERBS: [u128; VERBS.len()] = {
    let mut out = [0u128; VERBS.len()];
    let mut i = 0;
    while i < VERBS.len() {
        let bytes = VERBS[i].as_bytes();
        let mut j = 0;
        while j < bytes.len() {
            out[i] |= (bytes[j] as u128) << (8 * j);
            j += 1;
        }
        i += 1;
    }
    out
};

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> (String, Vec<String>) {
        let mut p = Vec::new();
        let t = normalize_sql(s, &mut p);
        (t, p)
    }

    #[test]
    fn statement_verb_reads_the_first_word_as_split_whitespace_does() {
        let general = |sql: &str| {
            let word = sql.split_whitespace().next()?;
            if word.len() > 16 {
                return None;
            }
            VERBS.iter().copied().find(|v| v.eq_ignore_ascii_case(word))
        };
        let words = [
            "select", "SELECT", "With", "insert", "x", "", "selectx", "SELECT1", "sélect", "VACUUM", "SELECT\0",
        ];
        let gaps = [
            "", " ", "\t", "\n\r ", "\u{0b}", "\u{0c}", "\u{a0}", "\u{2003}", "\u{85}", "(", ";", "\u{1c}", "*",
        ];
        let mut n = 0;
        for lead in gaps {
            for word in words {
                for tail in gaps {
                    let sql = format!("{lead}{word}{tail}* FROM t");
                    assert_eq!(statement_verb(&sql), general(&sql), "{sql:?}");
                    let bare = format!("{lead}{word}{tail}");
                    assert_eq!(statement_verb(&bare), general(&bare), "{bare:?}");
                    n += 2;
                }
            }
        }
        assert_eq!(n, 2 * 13 * 11 * 13);
        assert!(VERBS.windows(2).all(|w| w[0] < w[1]), "VERBS must stay sorted");
        for v in VERBS {
            assert_eq!(statement_verb(&v.to_lowercase()), Some(*v));
        }
        assert_eq!(statement_verb("  select * from t"), Some("SELECT"));
        assert_eq!(statement_verb("\u{a0}select * from t"), Some("SELECT"));
        assert_eq!(statement_verb("select\u{2003}* from t"), Some("SELECT"));
    }

    #[test]
    fn spec_examples() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "select * from t where a = 7 and b = 'x'",
                "select * from t where a = ? and b = ?",
                &["7", "x"],
            ),
            (
                "SELECT col_2 FROM \"T9\" WHERE v > 2.50",
                "SELECT col_2 FROM \"T9\" WHERE v > ?",
                &["2.50"],
            ),
            (
                "UPDATE t SET s = 'it''s' WHERE id IN ( 4 ,5 )",
                "UPDATE t SET s = ? WHERE id IN (?)",
                &["it's", "4", "5"],
            ),
            (
                "SELECT * FROM t WHERE id = $1 LIMIT 10",
                "SELECT * FROM t WHERE id = $? LIMIT ?",
                &["10"],
            ),
            ("SELECT * FROM t WHERE id = ?", "SELECT * FROM t WHERE id = ?", &[]),
            ("SELECT   1", "SELECT   ?", &["1"]),
        ];
        for (input, template, params) in cases {
            let (t, p) = norm(input);
            assert_eq!(&t, template, "{input}");
            assert_eq!(p, *params, "{input}");
        }
    }

    #[test]
    fn dollar_quotes_and_placeholders() {
        assert_eq!(
            norm("SELECT $$a'b$$, $x$1$x$"),
            ("SELECT ?, ?".into(), vec!["a'b".into(), "1".into()])
        );
        assert_eq!(norm("SELECT $12, $abc"), ("SELECT $?, $abc".into(), vec![]));
        assert_eq!(norm("SELECT $t$open"), ("SELECT ?".into(), vec!["open".into()]));
    }

    #[test]
    fn edge_rules() {
        assert_eq!(norm("x = 'open").0, "x = ?");
        assert_eq!(norm("a = -5").1, vec!["5"]);
        assert_eq!(norm("t1 = 0x1F").0, "t1 = ?x1F");
        assert_eq!(norm("v = 1.2.3"), ("v = ?.?".into(), vec!["1.2".into(), "3".into()]));
        assert_eq!(norm("SELECT \"a 1").0, "SELECT \"a 1");
        // The IN gate opens the regex for MIN(...) too.
        assert_eq!(
            norm("SELECT MIN(1, 2) FROM t WHERE a IN (3)").0,
            "SELECT MIN (?) FROM t WHERE a IN (?)"
        );
        // No IN keyword, no collapse.
        assert_eq!(norm("SELECT MIN(1, 2)").0, "SELECT MIN(?, ?)");
        assert_eq!(norm("where id in(1,2)").0, "where id IN (?)");
        assert_eq!(norm("where x_in (1,2)").0, "where x_in (?,?)");
        assert_eq!(norm("where id in (1,2)").0, "where id IN (?)");
        assert_eq!(norm("where é1 = 2").0, "where é? = ?");
    }

    #[test]
    fn long_input_is_cut_on_a_char_boundary() {
        let s = format!("{}é", "a".repeat(MAX_SQL_BYTES - 1));
        assert_eq!(norm(&s).0.len(), MAX_SQL_BYTES - 1);
    }

    #[test]
    fn verbs() {
        assert_eq!(statement_verb("  select * from t"), Some("SELECT"));
        assert_eq!(statement_verb("Insert into t values (1)"), Some("INSERT"));
        assert_eq!(statement_verb("SELECT/* c */ 1"), None);
        assert_eq!(statement_verb("'secret' AS x"), None);
        assert_eq!(statement_verb(""), None);
    }
}
