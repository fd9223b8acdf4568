//! Property tests of the text helpers the reports use: their fast paths for
//! printable ASCII must answer exactly as the character-by-character rules.

use perf_sentinel_engine::finding::is_invisible;
use perf_sentinel_engine::render::{clean, safe_sarif_path, wrap};
use proptest::prelude::*;

/// `clean` as a filter over every character.
fn clean_by_chars(s: &str) -> String {
    s.chars().filter(|&c| !c.is_control() && !is_invisible(c)).collect()
}

/// `wrap` with words cut by `split_whitespace` and measured in characters.
fn wrap_by_chars(text: &str, indent: usize, width: usize) -> String {
    let avail = width.saturating_sub(indent).max(20);
    let mut out = String::new();
    let mut col = 0;
    for word in text.split_whitespace() {
        let len = word.chars().count();
        if col > 0 && col + 1 + len > avail {
            out.push('\n');
            out.push_str(&" ".repeat(indent));
            col = 0;
        } else if col > 0 {
            out.push(' ');
            col += 1;
        }
        out.push_str(word);
        col += len;
    }
    out
}

/// `safe_sarif_path` with every check made on every path.
fn safe_by_chars(p: &str) -> bool {
    if p.is_empty() || p.starts_with('/') || p.starts_with('\\') || p.contains(':') {
        return false;
    }
    if p.split(['/', '\\']).any(|seg| seg == "..") {
        return false;
    }
    let lower = p.to_ascii_lowercase();
    if ["%2e%2e", ".%2e", "%2e.", "%25", "%c0", "%c1", "%e0%80"]
        .iter()
        .any(|t| lower.contains(t))
    {
        return false;
    }
    !p.chars().any(|c| c.is_control() || is_invisible(c))
}

/// Text mixing printable ASCII with controls, every ASCII white space
/// (vertical tab included), Unicode spaces and invisible characters.
const MIXED: &str =
    "[ -~\t\n\u{0B}\u{0C}\r\u{1B}\u{7F}\u{85}\u{A0}\u{AD}\u{200B}\u{202E}\u{2003}\u{3000}\u{FEFF}é中]{0,200}";

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn clean_agrees_with_a_filter_over_characters(s in MIXED) {
        prop_assert_eq!(clean(&s), clean_by_chars(&s));
    }

    #[test]
    fn clean_of_printable_ascii_is_the_text_itself(s in "[ -~]{0,200}") {
        prop_assert!(matches!(clean(&s), std::borrow::Cow::Borrowed(t) if t == s));
    }

    #[test]
    fn wrap_agrees_with_words_measured_in_characters(
        s in MIXED,
        ascii in "[ -~\t\n\u{0B}\u{0C}\r]{0,200}",
        indent in 0usize..40,
        width in 0usize..100,
    ) {
        prop_assert_eq!(wrap(&s, indent, width), wrap_by_chars(&s, indent, width));
        prop_assert_eq!(wrap(&ascii, indent, width), wrap_by_chars(&ascii, indent, width));
    }

    #[test]
    fn sarif_path_check_agrees_with_every_check_on_every_path(
        p in "[a-zA-Z0-9./\\\\:%25eEcC80\u{0}\u{1F}\u{7F}\u{85}\u{202E}é]{0,40}",
    ) {
        prop_assert_eq!(safe_sarif_path(&p), safe_by_chars(&p));
    }
}
