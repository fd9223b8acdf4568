//! Bad input: one clear line on stderr naming the file, the position and what
//! was expected, exit code 2, never a panic.

use perf_sentinel_tests::{TempDir, run, run_in, stderr};

struct Case {
    name: &'static str,
    bytes: &'static [u8],
    /// Substrings the error line must contain (besides the file name).
    expect: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case { name: "truncated.json", bytes: b"[{\"timestamp\": \"2025-07-10T14:32:01.000Z\", \"trace_id\": \"t\"", expect: &["line 1", "truncated"] },
    Case {
        name: "wrong_type.json",
        bytes: b"[\n {\"timestamp\": \"2025-07-10T14:32:01.000Z\", \"trace_id\": \"t\", \"span_id\": \"s\", \"service\": \"a\", \"type\": \"sql\", \"operation\": \"x\", \"target\": \"SELECT 1\", \"duration_us\": \"slow\", \"source\": {\"endpoint\": \"e\", \"method\": \"m\"}}\n]",
        expect: &["line 2", "invalid type", "duration_us"],
    },
    Case { name: "empty.json", bytes: b"", expect: &["empty input"] },
    Case { name: "blank.json", bytes: b"  \n\t\n", expect: &["empty input"] },
    Case { name: "garbage.bin", bytes: b"\x00\x01\x02\xff\xfe binary", expect: &["byte 0", "not a trace file"] },
    Case { name: "object.json", bytes: b"{\"events\": []}", expect: &["line 1", "neither a Jaeger export", "JSON arrays"] },
    Case { name: "bad_utf8.json", bytes: b"[\n{\"trace_id\": \"\xff\xfe\"}]", expect: &["line 2", "UTF-8"] },
    Case { name: "bad_kind.json", bytes: b"[{\"timestamp\": \"x\", \"trace_id\": \"t\", \"span_id\": \"s\", \"service\": \"a\", \"type\": \"grpc\", \"operation\": \"x\", \"target\": \"y\", \"duration_us\": 1, \"source\": {\"endpoint\": \"e\", \"method\": \"m\"}}]", expect: &["unknown variant `grpc`", "sql"] },
    // Found by the native_stream fuzz target: form feed is not JSON whitespace.
    Case { name: "form_feed.json", bytes: b"\x0c[]", expect: &["line 1, column 1", "expected `[`"] },
    // Also found by fuzzing: invalid UTF-8 in a field that parsing skips.
    Case { name: "bad_utf8_unknown_field.json", bytes: b"[\n{\"x\": \"\xff\"}]", expect: &["line 2", "UTF-8"] },
    Case { name: "deep.json", bytes: b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]", expect: &["nested deeper than 32"] },
    Case { name: "bad_protobuf.pb", bytes: b"\x0a\xff\xff\xff\xff\x0f\x01", expect: &["invalid OTLP protobuf"] },
    // Found by fuzzing: an unknown field that claims 2^63 bytes.
    Case { name: "huge_length.pb", bytes: b"\x0a\x00\x1a\xfe\xff\xfb\xff\xff\xff\xff\xff\xff\x01re\x1a", expect: &["byte 2", "invalid OTLP protobuf", "runs past the end"] },
    Case { name: "bad_otlp.json", bytes: b"{\"resourceSpans\": [{\"scopeSpans\": [{\"spans\": [{\"traceId\": \"zz\"}]}]}]}", expect: &["OTLP/JSON", "line 1"] },
    Case { name: "zipkin_tags.json", bytes: b"[{\"traceId\": \"a\", \"id\": \"b\", \"localEndpoint\": {}, \"tags\": {\"http.status_code\": 200}}]", expect: &["Zipkin", "line 1"] },
];

#[test]
fn every_bad_input_exits_2_with_file_position_and_expectation() {
    let dir = TempDir::new("bad-input");
    for case in CASES {
        let path = dir.join(case.name);
        std::fs::write(&path, case.bytes).unwrap();
        let out = run_in(Some(dir.path()), &["analyze", "--input", path.to_str().unwrap()], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{}: exit code; stderr: {err}", case.name);
        assert!(!err.contains("panicked"), "{}: panicked: {err}", case.name);
        assert!(out.stdout.is_empty(), "{}: wrote to stdout", case.name);
        let line = err
            .lines()
            .find(|l| l.starts_with("error:"))
            .unwrap_or_else(|| panic!("{}: no error line: {err}", case.name));
        assert!(
            line.contains(case.name),
            "{}: error does not name the file: {line}",
            case.name
        );
        for want in case.expect {
            assert!(line.contains(want), "{}: error lacks `{want}`: {line}", case.name);
        }
    }
}

#[test]
fn a_missing_file_exits_2() {
    let out = run(&["analyze", "--input", "/nonexistent/traces.json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/traces.json") && err.contains("cannot read"),
        "{err}"
    );
}

#[test]
fn bad_stdin_names_stdin() {
    let out = run_in(None, &["analyze"], Some(b"[1, 2"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("<stdin>"), "{}", stderr(&out));
}

#[test]
fn an_oversized_input_is_refused_with_the_key_to_raise() {
    let dir = TempDir::new("oversize");
    std::fs::write(dir.join(".perf-sentinel.toml"), "[daemon]\nmax_payload_size = 1024\n").unwrap();
    let big = format!("[{}]", " ".repeat(2000));
    std::fs::write(dir.join("big.json"), big).unwrap();
    let out = run_in(Some(dir.path()), &["analyze", "--input", "big.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("max_payload_size"), "{}", stderr(&out));
}

#[test]
fn unknown_flags_exit_2() {
    let out = run(&["analyze", "--no-such-flag"]);
    assert_eq!(out.status.code(), Some(2));
}
