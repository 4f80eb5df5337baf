//! `idempo-sim sweep` as a library call: the grid, the table and CSV, the statistics that
//! show what idempotence buys, reproducibility, and errors that name their flag.

use idempo_sim::sweep::{
    CSV_HEADER, MergeError, Shard, SweepArgs, SweepError, SweepOutput, merge, run_shard, run_sweep,
};

/// A grid small enough for a debug build: 2 seeds, 100 records per producer.
fn small(extra: &[&str]) -> SweepArgs {
    let mut flags = vec!["--seeds", "2", "--records", "100", "--no-progress"];
    flags.extend_from_slice(extra);
    SweepArgs::from_flags(&flags).expect("the flags parse")
}

fn sweep(extra: &[&str]) -> SweepOutput {
    run_sweep(&small(extra)).expect("the sweep runs")
}

/// The CSV lines of one setting, split into fields (the settings used here hold no comma).
fn csv_rows<'a>(out: &'a SweepOutput, setting: &str) -> Vec<Vec<&'a str>> {
    out.csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|f| f[0] == setting)
        .collect()
}

#[test]
fn small_grid_gives_one_row_per_cell_and_the_documented_header() {
    let out = sweep(&["--ack-loss", "0,0.2", "--request-loss", "0,0.05"]);
    let cells = 3 * 2 * 2; // default settings x ack loss x request loss
    assert_eq!(out.cells.len(), cells);
    let lines: Vec<&str> = out.csv.lines().collect();
    assert_eq!(lines[0], CSV_HEADER);
    assert_eq!(lines.len(), 1 + cells, "a header and one line per cell");
    let columns = CSV_HEADER.split(',').count();
    assert_eq!(columns, 18);
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), columns, "{line}");
        assert!(
            line.split(',')
                .skip(1)
                .all(|f| f.parse::<f64>().is_ok() && !f.contains('e')),
            "plain decimal numbers: {line}"
        );
    }
    assert_eq!(
        lines[1].split(',').take(6).collect::<Vec<_>>(),
        ["idempotence=on", "0", "0", "0", "2", "0"],
        "grid order: setting, then ack loss, request loss, duplicate"
    );
    for setting in ["idempotence=on", "idempotence=off", "dedup-window=1"] {
        assert_eq!(csv_rows(&out, setting).len(), 4, "{setting}");
        assert!(
            out.table.contains(&format!("setting {setting}\n")),
            "the table groups rows by setting:\n{}",
            out.table
        );
    }
    let data_rows = out
        .table
        .lines()
        .skip(2) // the title and the legend
        .filter(|l| l.trim_start().starts_with(|c: char| c.is_ascii_digit()))
        .count();
    assert_eq!(data_rows, cells, "one table row per cell:\n{}", out.table);
    assert!(out.table.contains("95% interval") && out.table.contains("p99_ms"));
}

#[test]
fn table_columns_line_up_across_groups() {
    let out = sweep(&["--ack-loss", "0,0.3"]);
    let widths: Vec<usize> = out
        .table
        .lines()
        .skip(2)
        .filter(|l| !l.starts_with("setting "))
        .map(str::len)
        .collect();
    assert!(widths.len() > 3);
    assert!(
        widths.iter().all(|w| *w == widths[0]),
        "every header and row has the same width:\n{}",
        out.table
    );
}

#[test]
fn idempotence_off_with_ack_loss_duplicates_while_on_does_not() {
    // Small batches: many requests per run, so many chances to lose an ack.
    let out = sweep(&["--ack-loss", "0.3", "--batch-records", "2"]);
    let runs_with_duplicates = |setting: &str| -> u64 {
        csv_rows(&out, setting)[0][7]
            .parse()
            .expect("runs_with_duplicates is an integer")
    };
    assert!(
        runs_with_duplicates("idempotence=off") > 0,
        "every lost ack of a written batch is a duplicate without idempotence:\n{}",
        out.table
    );
    assert_eq!(
        runs_with_duplicates("idempotence=on"),
        0,
        "the broker drops every retry:\n{}",
        out.table
    );
    let on = &out.cells[0];
    assert_eq!(on.cell.setting, "idempotence=on");
    assert_eq!(on.stats.duplicates_per_run, 0.0);
    assert_eq!(on.stats.failed, 0);
    assert!(
        on.stats.duplicates_dropped_per_run > 0.0,
        "and the broker's dedup is what saved it"
    );
    let off = &out.cells[1];
    assert!(off.stats.duplicates_per_run > 0.0);
    assert!(off.stats.duplicate_run_rate.rate > 0.0);
}

#[test]
fn zero_duplicates_in_n_runs_still_has_a_wilson_upper_bound() {
    let out = sweep(&["--ack-loss", "0.2", "--set", "idempotence=on"]);
    let p = out.cells[0].stats.duplicate_run_rate;
    assert_eq!((p.rate, p.low), (0.0, 0.0));
    // z^2 / (n + z^2) with n = 2 runs.
    assert!((p.high - 0.6576).abs() < 1e-3, "{p:?}");
}

#[test]
fn same_arguments_give_identical_output_with_any_thread_count() {
    let flags = ["--ack-loss", "0,0.2", "--duplicate", "0,0.1"];
    let a = sweep(&flags);
    let b = sweep(&flags);
    assert_eq!(a.table, b.table);
    assert_eq!(a.csv, b.csv);
    let threaded = sweep(&[&flags[..], &["--threads", "3"]].concat());
    assert_eq!(a.table, threaded.table, "threads change only the wall time");
    assert_eq!(a.csv, threaded.csv);
    let other_seeds = sweep(&[&flags[..], &["--first-seed", "50"]].concat());
    assert_ne!(a.csv, other_seeds.csv, "other seeds, other numbers");
}

#[test]
fn settings_with_commas_are_one_quoted_csv_field() {
    let out = sweep(&[
        "--ack-loss",
        "0.1",
        "--set",
        "network=proxy,first-batch-alone=on",
    ]);
    let line = out.csv.lines().nth(1).expect("one cell");
    assert!(
        line.starts_with("\"network=proxy,first-batch-alone=on\",0.1,"),
        "{line}"
    );
    assert_eq!(out.cells[0].cell.config.network.name(), "proxy");
}

#[test]
fn a_rate_above_one_is_an_error_naming_the_flag() {
    for flag in ["--ack-loss", "--request-loss", "--duplicate"] {
        let e = run_sweep(&small(&[flag, "0,2"]))
            .expect_err("2 is not a probability")
            .to_string();
        assert!(e.starts_with(flag), "{e}");
        assert!(e.contains("between 0 and 1"), "{e}");
    }
    let e = run_sweep(&small(&["--ack-loss", "0,lots"]))
        .expect_err("not a number")
        .to_string();
    assert!(
        e.starts_with("--ack-loss") && e.contains("`lots` is not a number"),
        "{e}"
    );
}

#[test]
fn an_unknown_setting_is_an_error_naming_the_flag() {
    let e = run_sweep(&small(&["--set", "colour=red"]))
        .expect_err("no such setting")
        .to_string();
    assert!(e.starts_with("--set `colour=red`"), "{e}");
    assert!(e.contains("unknown setting `colour`"), "{e}");
    let e = run_sweep(&small(&["--set", "ack-loss=0.5"]))
        .expect_err("an axis")
        .to_string();
    assert!(e.contains("--set") && e.contains("--ack-loss"), "{e}");
}

#[test]
fn out_of_range_counts_are_refused_by_the_parser() {
    let e = SweepArgs::from_flags(&["--seeds", "0"])
        .expect_err("at least one seed")
        .to_string();
    assert!(e.contains("--seeds"), "{e}");
    let e = SweepArgs::from_flags(&["--network", "pigeon"])
        .expect_err("no such network")
        .to_string();
    assert!(e.contains("--network"), "{e}");
}

/// Runs every shard of `flags` split `n` ways and returns the files' names and texts.
fn shards(flags: &[&str], n: u64) -> Vec<(String, String)> {
    let args = small(flags);
    (1..=n)
        .map(|index| {
            let shard = Shard { index, count: n };
            let text =
                run_shard(&args, shard, &indicatif::ProgressBar::hidden()).expect("the shard runs");
            (format!("shard-{index}.csv"), text)
        })
        .collect()
}

#[test]
fn merged_shards_print_exactly_the_unsharded_table_and_csv() {
    let flags = ["--ack-loss", "0,0.1,0.2"];
    let whole = sweep(&flags);
    for n in [1, 2, 5] {
        let mut files = shards(&flags, n);
        files.reverse(); // any order
        let (_, merged) = merge(&files).expect("the shards merge");
        assert_eq!(merged.table, whole.table, "{n} shards: the table");
        assert_eq!(merged.csv, whole.csv, "{n} shards: the CSV");
    }
}

#[test]
fn a_shard_owns_a_share_of_every_cell_and_each_run_once() {
    let owners = |job| {
        (1..=4)
            .filter(|k| {
                Shard {
                    index: *k,
                    count: 4,
                }
                .owns(job)
            })
            .count()
    };
    assert!((0..100).all(|job| owners(job) == 1));
}

#[test]
fn merge_refuses_a_missing_shard_a_repeated_one_and_another_sweep() {
    let flags = ["--ack-loss", "0,0.2"];
    let files = shards(&flags, 3);
    let missing = merge(&files[..2]).expect_err("shard 3 missing");
    assert!(
        matches!(
            missing,
            SweepError::Merge(MergeError::ShardMissing(Shard { index: 3, count: 3 }))
        ),
        "{missing}"
    );
    let twice = merge(&[files[0].clone(), files[0].clone()]).expect_err("shard 1 twice");
    assert!(
        twice.to_string().contains("shard 1/3 is given twice"),
        "{twice}"
    );
    let other = shards(&["--ack-loss", "0,0.3"], 3);
    let mixed =
        merge(&[files[0].clone(), other[1].clone(), files[2].clone()]).expect_err("another sweep");
    assert!(mixed.to_string().contains("shard-2.csv"), "{mixed}");
    let truncated = (
        files[1].0.clone(),
        files[1].1.lines().take(4).collect::<Vec<_>>().join("\n"),
    );
    let e = merge(&[files[0].clone(), truncated, files[2].clone()]).expect_err("a run missing");
    assert!(e.to_string().contains("in no file"), "{e}");
    let garbage =
        merge(&[("notes.txt".to_string(), "hello\n".to_string())]).expect_err("not a shard file");
    assert!(
        garbage.to_string().contains("notes.txt: line 1"),
        "{garbage}"
    );
}

#[test]
fn a_bad_shard_is_refused_naming_the_flag() {
    for bad in ["0/4", "5/4", "x", "1/0", "2/"] {
        let e = SweepArgs::from_flags(&["--shard", bad])
            .expect_err("refused")
            .to_string();
        assert!(e.contains("--shard"), "{bad}: {e}");
    }
    let args = SweepArgs::from_flags(&["--shard", "2/4"]).expect("a valid shard");
    assert_eq!(args.shard, Some(Shard { index: 2, count: 4 }));
}
