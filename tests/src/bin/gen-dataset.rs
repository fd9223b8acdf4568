//! Reproducible benchmark datasets: copies of the demo traces with unique
//! trace and span ids, as a native JSON event array.
//!
//! Usage: `gen-dataset EVENTS [demo|varied-sql] > FILE`
//!
//! `demo` repeats the bundled demo traces (78 events, all ten finding
//! types); `varied-sql` also makes every copy's SQL text distinct (a new
//! table name per copy), so templates do not repeat across traces.

use std::io::Write;

const DEMO: &str = include_str!("../../../examples/demo-traces.json");

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(events) = args.next().and_then(|n| n.parse::<usize>().ok()) else {
        eprintln!("usage: gen-dataset EVENTS [demo|varied-sql] > FILE");
        std::process::exit(2);
    };
    let varied = match args.next().as_deref() {
        None | Some("demo") => false,
        Some("varied-sql") => true,
        Some(other) => {
            eprintln!("unknown variant {other}: demo or varied-sql");
            std::process::exit(2);
        }
    };
    let demo: Vec<serde_json::Value> = serde_json::from_str(DEMO).expect("the bundled demo parses");
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let _ = out.write_all(b"[\n");
    let mut written = 0usize;
    let mut copy = 0usize;
    while written < events {
        for e in &demo {
            if written == events {
                break;
            }
            let mut e = e.clone();
            for key in ["trace_id", "span_id", "parent_span_id"] {
                if let Some(v) = e.get(key).and_then(|v| v.as_str()).map(|s| format!("{s}-{copy}")) {
                    e[key] = serde_json::Value::String(v);
                }
            }
            if varied && e["type"] == "sql" {
                let t = e["target"]
                    .as_str()
                    .unwrap_or("")
                    .replacen(" FROM ", &format!(" FROM t{copy}_"), 1);
                e["target"] = serde_json::Value::String(t);
            }
            if written > 0 {
                let _ = out.write_all(b",\n");
            }
            let _ = serde_json::to_writer(&mut out, &e);
            written += 1;
        }
        copy += 1;
    }
    let _ = out.write_all(b"\n]\n");
    let _ = out.flush();
}
