//! HTTP normalization (spec 02 §2): `METHOD /path/{id}/{uuid}`, with the query
//! and the replaced path segments as parameters. Host and port are not part of
//! the template.

use super::ParamSink;

/// How many `&`-separated query pairs are kept as parameters.
pub const MAX_QUERY_PARAMS: usize = 100;

/// Normalizes an HTTP call and returns its template; literals go to `params`.
///
/// Path segments that are all digits become `{id}` and UUIDs `{uuid}`; the
/// rest of the path is copied in runs between them, so a path without
/// identifiers is one copy.
pub fn normalize_http(method: &str, target: &str, params: &mut impl ParamSink) -> String {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"));
    let path_and_query = match rest {
        Some(after_scheme) => match memchr::memchr(b'/', after_scheme.as_bytes()) {
            Some(p) => &after_scheme[p..],
            None => "/",
        },
        None => target,
    };
    let (path, query) = match memchr::memchr(b'?', path_and_query.as_bytes()) {
        Some(q) => (&path_and_query[..q], Some(&path_and_query[q + 1..])),
        None => (path_and_query, None),
    };
    if let Some(q) = query {
        for pair in q.split('&').take(MAX_QUERY_PARAMS) {
            params.push(pair);
        }
    }
    let mut out = String::with_capacity(method.len() + 1 + path.len());
    out.push_str(method);
    out.push(' ');
    if path.is_empty() || path == "/" {
        out.push('/');
        return out;
    }
    // Every cut is next to a `/`, so each falls on a character boundary.
    let bytes = path.as_bytes();
    let mut copied = 0;
    let mut start = 0;
    loop {
        let end = bytes[start..]
            .iter()
            .position(|&b| b == b'/')
            .map_or(bytes.len(), |i| start + i);
        let seg = &bytes[start..end];
        let placeholder = if seg.len() == 36 && is_uuid(seg) {
            Some("{uuid}")
        } else if seg.first().is_some_and(u8::is_ascii_digit) && seg.iter().all(u8::is_ascii_digit) {
            Some("{id}")
        } else {
            None
        };
        if let Some(placeholder) = placeholder {
            out.push_str(&path[copied..start]);
            out.push_str(placeholder);
            params.push(&path[start..end]);
            copied = end;
        }
        if end == bytes.len() {
            break;
        }
        start = end + 1;
    }
    out.push_str(&path[copied..]);
    out
}

fn is_uuid(s: &[u8]) -> bool {
    s.len() == 36
        && s.iter().enumerate().all(|(i, &b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// Host of an `http://` or `https://` URL, without userinfo and port, as it
/// was written (callers lower-case it).
pub fn url_host(target: &str) -> Option<&str> {
    let rest = target
        .strip_prefix("http://")
        .or_else(|| target.strip_prefix("https://"))?;
    // Every delimiter is ASCII, so each cut falls on a character boundary.
    let authority = &rest[..memchr::memchr3(b'/', b'?', b'#', rest.as_bytes()).unwrap_or(rest.len())];
    let host = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(at) => &authority[at + 1..],
        None => authority,
    };
    let until = |stop: u8| memchr::memchr(stop, host.as_bytes()).unwrap_or(host.len());
    let host = if host.starts_with('[') {
        host[..until(b']')].trim_start_matches('[')
    } else {
        &host[..until(b':')]
    };
    (!host.is_empty()).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(m: &str, t: &str) -> (String, Vec<String>) {
        let mut p = Vec::new();
        let s = normalize_http(m, t, &mut p);
        (s, p)
    }

    #[test]
    fn spec_examples() {
        assert_eq!(
            norm("GET", "http://ledger:8080/v2/accounts/1187/balance?currency=EUR"),
            (
                "GET /v2/accounts/{id}/balance".into(),
                vec!["currency=EUR".into(), "1187".into()]
            )
        );
        assert_eq!(
            norm("DELETE", "/carts/0f8fad5b-d9cb-469f-a165-70867728950e/"),
            (
                "DELETE /carts/{uuid}/".into(),
                vec!["0f8fad5b-d9cb-469f-a165-70867728950e".into()]
            )
        );
        assert_eq!(norm("GET", "https://cdn.example.com"), ("GET /".into(), vec![]));
        assert_eq!(norm("GET", "https://cdn.example.com?x=1"), ("GET /".into(), vec![]));
    }

    #[test]
    fn keeps_empty_segments_and_mixed_ids() {
        assert_eq!(norm("GET", "//a//12/").0, "GET //a//{id}/");
        assert_eq!(norm("GET", "/users/user-123/v2").0, "GET /users/user-123/v2");
        assert_eq!(norm("GET", "").0, "GET /");
        assert_eq!(norm("GET", "HTTP://h/1").0, "GET HTTP://h/{id}");
    }

    #[test]
    fn caps_query_pairs() {
        let q: Vec<String> = (0..150).map(|i| format!("k{i}=v")).collect();
        let (_, p) = norm("GET", &format!("/x?{}", q.join("&")));
        assert_eq!(p.len(), MAX_QUERY_PARAMS);
    }

    /// The segment-by-segment rule the run-copying `normalize_http` replaced.
    fn normalize_by_segments(method: &str, target: &str, params: &mut Vec<String>) -> String {
        let rest = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"));
        let path_and_query = match rest {
            Some(after_scheme) => after_scheme.find('/').map_or("/", |p| &after_scheme[p..]),
            None => target,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (path_and_query, None),
        };
        for pair in query.into_iter().flat_map(|q| q.split('&')).take(MAX_QUERY_PARAMS) {
            params.push(pair.to_owned());
        }
        if path.is_empty() || path == "/" {
            return format!("{method} /");
        }
        let segments: Vec<&str> = path
            .split('/')
            .map(|seg| {
                if is_uuid(seg.as_bytes()) {
                    params.push(seg.to_owned());
                    "{uuid}"
                } else if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                    params.push(seg.to_owned());
                    "{id}"
                } else {
                    seg
                }
            })
            .collect();
        format!("{method} {}", segments.join("/"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        #[test]
        fn copies_runs_as_the_segment_rule(
            scheme in "(|http://|https://|HTTP://)",
            host in "[a-z:@.]{0,6}",
            parts in proptest::collection::vec(
                "(|[0-9]{1,4}|[a-z0-9-]{1,5}|0f8fad5b-d9cb-469f-a165-70867728950e|[0-9a-f-]{36}|é1|[?&=/]{1,2})",
                0..8,
            ),
        ) {
            let target = format!("{scheme}{host}/{}", parts.join("/"));
            let mut fast = Vec::new();
            let mut slow = Vec::new();
            let template = normalize_http("GET", &target, &mut fast);
            proptest::prop_assert_eq!(template, normalize_by_segments("GET", &target, &mut slow));
            proptest::prop_assert_eq!(fast, slow);
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(url_host("http://user@Ledger:8080/x"), Some("Ledger"));
        assert_eq!(url_host("https://[::1]:4318/v1"), Some("::1"));
        assert_eq!(url_host("https://pay.example?q=1"), Some("pay.example"));
        assert_eq!(url_host("http:///x"), None);
        assert_eq!(url_host("/relative"), None);
    }
}
