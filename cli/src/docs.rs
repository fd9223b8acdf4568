//! Help, manual pages and the configuration reference, generated from the
//! same tunable declarations the config loader validates against, so that
//! `--help`, `man` and the file always agree. A plugin's tunables show up
//! here with no edit to the CLI.

use std::fmt::Write as _;

use clap::CommandFactory;
use perf_sentinel_engine::Engine;
use perf_sentinel_engine::config::Schema;
use perf_sentinel_engine::registry::Tunable;

use crate::cli::Cli;

/// Tables documented by `analyze --help`.
pub const BATCH_SECTIONS: &[&str] = &["thresholds", "detection", "green"];
/// Tables documented by `watch --help`.
pub const DAEMON_SECTIONS: &[&str] = &[
    "daemon",
    "daemon.correlation",
    "daemon.ack",
    "daemon.cors",
    "daemon.archive",
];

/// Environment variables of the commands that read trace files (`analyze`,
/// `explain`, `diff`).
pub const BATCH_ENVIRONMENT: &str = "Environment:\n  \
    PERF_SENTINEL_SPILL_SPANS  spans held in memory before they are sorted by trace id\n  \
    \x20                          into a temporary file and merged back later (default\n  \
    \x20                          262144, about 100 MB; 0 holds every span). Same output.\n  \
    PERF_SENTINEL_SPILL_FINDINGS\n  \
    \x20                          findings `analyze` and `diff` hold before they sort them\n  \
    \x20                          into a temporary file and read them back merged (default\n  \
    \x20                          32768, about 50 MB; 0 holds every finding). Same output.\n  \
    TMPDIR                     where those files go (unlinked once open: nothing is\n  \
    \x20                          left behind, even by a killed run).\n  \
    CI                         when set, `analyze` draws no progress line (otherwise\n  \
    \x20                          drawn on stderr when it is a terminal, past half a second).\n  \
    MIMALLOC_PURGE_DELAY       milliseconds before freed memory goes back to the\n  \
    \x20                          system (default 5 for batch commands).\n\n";

const EXAMPLES: &[(&str, &str)] = &[
    (
        "analyze",
        "Examples:\n  perf-sentinel analyze --input traces.json\n  perf-sentinel analyze --ci --input traces.json > report.json\n  perf-sentinel analyze --input traces.json --format sarif > perf.sarif\n  otel-cli export | perf-sentinel analyze --config ci/.perf-sentinel.toml",
    ),
    (
        "watch",
        "Examples:\n  perf-sentinel watch\n  perf-sentinel watch --config /etc/perf-sentinel.toml\n  perf-sentinel watch --listen-address 0.0.0.0 --listen-port-grpc 14317",
    ),
    (
        "explain",
        "Examples:\n  perf-sentinel explain --input traces.json --trace-id 4bf92f3577b34da6a3ce929d0e0e4736",
    ),
    (
        "diff",
        "Examples:\n  perf-sentinel diff --before main.json --after branch.json\n  perf-sentinel diff --before main.json --after branch.json --format sarif --output new.sarif",
    ),
    (
        "rules",
        "Examples:\n  perf-sentinel rules\n  perf-sentinel rules --format json",
    ),
    (
        "explain-rule",
        "Examples:\n  perf-sentinel explain-rule n_plus_one_sql\n  perf-sentinel explain-rule carbon",
    ),
    (
        "completions",
        "Examples:\n  perf-sentinel completions bash > /etc/bash_completion.d/perf-sentinel\n  perf-sentinel completions zsh > \"${fpath[1]}/_perf-sentinel\"",
    ),
    (
        "man",
        "Examples:\n  perf-sentinel man --out-dir /usr/local/share/man/man1\n  perf-sentinel man | man -l -",
    ),
    (
        "config-reference",
        "Examples:\n  perf-sentinel config-reference > CONFIGURATION.md",
    ),
];

/// The tunables of these tables, grouped by table, each with default, range and doc.
pub fn tunables_help(schema: &Schema, sections: &[&str]) -> String {
    let mut o = String::new();
    for section in sections {
        let ts: Vec<&Tunable> = schema.tunables.iter().filter(|t| t.section == *section).collect();
        if ts.is_empty() {
            continue;
        }
        let _ = writeln!(o, "[{section}]");
        for t in ts {
            let _ = writeln!(o, "  {} = {}  ({})", t.key, t.default_text(), t.range_text());
            let _ = writeln!(o, "      {}", perf_sentinel_engine::render::wrap(t.doc, 6, 80));
        }
        o.push('\n');
    }
    o
}

/// The whole command tree, with generated help.
pub fn command() -> clap::Command {
    let schema = Engine::schema().ok();
    let mut cmd = Cli::command();
    for (name, examples) in EXAMPLES {
        let name = *name;
        let examples = *examples;
        cmd = cmd.mut_subcommand(name, |c| c.after_help(examples));
    }
    if let Some(schema) = schema {
        let batch = format!(
            "Tuning comes from .perf-sentinel.toml (--config, else ./.perf-sentinel.toml, else\n\
             the defaults), never from flags. Cross-trace correlations exist only in the\n\
             daemon. Batch keys, with defaults and ranges:\n\n{}{}{}",
            tunables_help(&schema, BATCH_SECTIONS),
            BATCH_ENVIRONMENT,
            EXAMPLES[0].1
        );
        let daemon = format!(
            "Every [daemon] key, with defaults and ranges:\n\n{}{}",
            tunables_help(&schema, DAEMON_SECTIONS),
            EXAMPLES[1].1
        );
        let explain = format!("{BATCH_ENVIRONMENT}{}", EXAMPLES[2].1);
        let diff = format!("{BATCH_ENVIRONMENT}{}", EXAMPLES[3].1);
        cmd = cmd
            .mut_subcommand("analyze", |c| c.after_long_help(batch))
            .mut_subcommand("explain", |c| c.after_long_help(explain))
            .mut_subcommand("diff", |c| c.after_long_help(diff))
            .mut_subcommand("watch", |c| c.after_long_help(daemon));
    }
    cmd
}

/// `perf-sentinel config-reference`: Markdown with every key.
pub fn config_reference(schema: &Schema) -> String {
    let mut o = String::from(
        "# Configuration reference\n\n\
         Generated by `perf-sentinel config-reference` from the declarations the\n\
         config loader validates against; `cargo test` fails when this file is stale\n\
         (`BLESS=1 cargo test` rewrites it).\n\n\
         perf-sentinel reads `.perf-sentinel.toml`: the file given with `--config`,\n\
         else `./.perf-sentinel.toml` in the working directory, else the defaults.\n\
         A wrong type, an out-of-range value or an unknown key is an error naming the\n\
         file, line and key. Keys of detectors and scorers come from their crates,\n\
         so plugins add their own.\n",
    );
    let mut sections: Vec<&str> = Vec::new();
    for t in &schema.tunables {
        if !sections.contains(&t.section) {
            sections.push(t.section);
        }
    }
    for section in sections {
        let _ = write!(
            o,
            "\n## `[{section}]`\n\n| key | default | accepted | meaning |\n|---|---|---|---|\n"
        );
        for t in schema.tunables.iter().filter(|t| t.section == section) {
            let advised = t
                .advised
                .map_or(String::new(), |(lo, hi)| format!(" (advised {lo} to {hi})"));
            let _ = writeln!(
                o,
                "| `{}` | `{}` | {}{} | {} |",
                t.key,
                t.default_text().replace('|', "\\|"),
                t.range_text(),
                advised,
                t.doc.replace('|', "\\|")
            );
        }
    }
    o
}

/// Every page of the manual as `(file name, roff)`: the root page, then one
/// per subcommand (nested ones too), each titled `perf-sentinel-<name>` so
/// that the cross-references in SUBCOMMANDS and SEE ALSO resolve to files.
pub fn man_pages(root: &clap::Command) -> Result<Vec<(String, Vec<u8>)>, std::io::Error> {
    let mut pages = Vec::new();
    let mut root = root.clone().name("perf-sentinel").bin_name("perf-sentinel");
    // Building adds the `help` subcommand, which gets a page like the others.
    root.build();
    collect(&root, "perf-sentinel", "perf-sentinel", None, &mut pages)?;
    Ok(pages)
}

fn collect(
    cmd: &clap::Command,
    page: &str,
    invocation: &str,
    parent: Option<&str>,
    pages: &mut Vec<(String, Vec<u8>)>,
) -> Result<(), std::io::Error> {
    // Subcommand pages are rendered from the bare subcommand; give it the full
    // invocation for the synopsis.
    let leaf = invocation.ends_with(" help");
    let base = if leaf {
        // `help` lists every command again; its page stands alone.
        clap::Command::new(page.to_owned())
            .about(cmd.get_about().cloned().unwrap_or_default())
            .arg(
                clap::Arg::new("COMMAND")
                    .num_args(0..)
                    .help("The command whose help to print"),
            )
    } else {
        cmd.clone()
    };
    let renamed = base.name(page.to_owned()).bin_name(invocation.to_owned());
    let man = clap_mangen::Man::new(renamed)
        .section("1")
        .manual("perf-sentinel manual");
    let mut out = Vec::new();
    man.render(&mut out)?;
    let mut see_also: Vec<String> = Vec::new();
    if let Some(p) = parent {
        see_also.push(p.to_owned());
    }
    let mut subs: Vec<&clap::Command> = cmd.get_subcommands().filter(|s| !leaf && !s.is_hide_set()).collect();
    subs.sort_by_key(|s| s.get_display_order());
    see_also.extend(subs.iter().map(|s| format!("{page}-{}", s.get_name())));
    if !see_also.is_empty() {
        // Left-adjusted and unhyphenated: long page names cannot be justified.
        out.extend_from_slice(b".SH \"SEE ALSO\"\n.ad l\n.nh\n");
        let n = see_also.len();
        for (i, p) in see_also.iter().enumerate() {
            let sep = if i + 1 < n { "(1)," } else { "(1)" };
            out.extend_from_slice(format!(".BR {} {sep}\n", p.replace('-', "\\-")).as_bytes());
        }
    }
    pages.push((format!("{page}.1"), out));
    for sub in subs {
        let name = sub.get_name();
        collect(
            sub,
            &format!("{page}-{name}"),
            &format!("{invocation} {name}"),
            Some(page),
            pages,
        )?;
    }
    Ok(())
}
