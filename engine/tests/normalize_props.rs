//! Property tests of the normalizers: they never panic, they are
//! idempotent, and no literal of the input survives into the template.

use perf_sentinel_engine::normalize::{normalize_http, normalize_sql, url_host};
use proptest::prelude::*;

fn sql(s: &str) -> (String, Vec<String>) {
    let mut p = Vec::new();
    let t = normalize_sql(s, &mut p);
    (t, p)
}

fn http(m: &str, s: &str) -> (String, Vec<String>) {
    let mut p = Vec::new();
    let t = normalize_http(m, s, &mut p);
    (t, p)
}

/// The host found with `str` splits, as `url_host` used to find it: its
/// byte scanner must give the same answer.
fn host_by_splits(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    let host = if host.starts_with('[') {
        host.split(']').next().map(|h| h.trim_start_matches('['))
    } else {
        host.split(':').next()
    }?;
    (!host.is_empty()).then_some(host)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn url_host_agrees_with_plain_splits(
        scheme in "(http://|https://|http:/|ftp://|)",
        rest in "[a-zA-Z0-9.:@\\[\\]/?#é%-]{0,40}",
    ) {
        let target = format!("{scheme}{rest}");
        prop_assert_eq!(url_host(&target), host_by_splits(&target));
    }

    #[test]
    fn sql_never_panics_and_is_idempotent(s in "\\PC{0,200}") {
        let (t, _) = sql(&s);
        let (t2, p2) = sql(&t);
        prop_assert_eq!(&t2, &t, "normalizing a template changed it");
        prop_assert!(p2.is_empty(), "a template still held literals: {:?}", p2);
    }

    #[test]
    fn sql_with_sql_like_bytes_is_idempotent(s in "[a-zA-Z0-9_ '\"$().,=?INin-]{0,120}") {
        let (t, _) = sql(&s);
        prop_assert_eq!(sql(&t).0, t);
    }

    #[test]
    fn sql_literals_never_reach_the_template(
        n in 100_000u64..u64::MAX,
        word in "zq[a-z]{6,12}",
        quote in "zq[a-z ]{4,10}'[a-z]{2,4}",
    ) {
        let escaped = quote.replace('\'', "''");
        let input = format!("SELECT * FROM users WHERE id = {n} AND name = '{word}' AND note = '{escaped}' AND x IN ({n}, {n})");
        let (t, p) = sql(&input);
        prop_assert!(!t.contains(&n.to_string()), "{}", t);
        prop_assert!(!t.contains(&word), "{}", t);
        prop_assert!(!t.contains("zq"), "{}", t);
        prop_assert!(p.contains(&word) && p.contains(&quote), "{:?}", p);
        prop_assert!(t.ends_with("IN (?)"), "{}", t);
    }

    #[test]
    fn http_never_panics_and_is_idempotent(m in "[A-Z]{3,7}", s in "\\PC{0,200}") {
        let (t, _) = http(&m, &s);
        let path = t.split_once(' ').map_or("", |x| x.1);
        let (t2, p2) = http(&m, path);
        prop_assert_eq!(&t2, &t);
        prop_assert!(p2.is_empty(), "{:?}", p2);
    }

    #[test]
    fn http_ids_and_query_values_never_reach_the_template(
        id in 1u64..u64::MAX,
        token in "zq[A-Za-z0-9]{10,20}",
        uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    ) {
        let url = format!("https://api.internal:8443/v2/users/{id}/carts/{uuid}?token={token}&page=2");
        let (t, p) = http("GET", &url);
        prop_assert_eq!(&t, "GET /v2/users/{id}/carts/{uuid}");
        let pair = format!("token={}", token);
        prop_assert!(p.contains(&pair) && p.contains(&id.to_string()) && p.contains(&uuid));
    }
}
