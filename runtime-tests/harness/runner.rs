//! The test runner (the `runtime` target has `harness = false`): every test
//! listed in a module's `harness::tests![...]` is collected (inventory) and
//! run in a thread of its own named after it, as libtest does, and a test
//! that returns a `Skip` is reported and counted as ignored, with its reason:
//!
//! ```text
//! test systemd::the_container_runs_in_a_transient_scope_with_its_properties ... ignored, SKIPPED: the systemd cgroup driver needs systemd as PID 1
//! test result: ok. 237 passed; 0 failed; 3 ignored; 0 measured; 0 filtered out; finished in 147.29s
//! ```
//!
//! The command line and the output are libtest's (what CI tools parse):
//! name filters, any number of them (a test runs when its name contains
//! one; `runtime-tests/vm/cgroup-layouts.sh` passes several), `--exact`,
//! `--skip`, `--test-threads` (or RUST_TEST_THREADS), `--list`, `-q`; the
//! exit status is 101 when a test failed. No libtest-mimic: its clap, with
//! clap's default features, would also give the vessel binary built for
//! these tests clap's suggestions and colours, so that the binary under test
//! would not be the one `cargo build` makes.

use super::{Skip, TestResult};
use std::io::Write;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One test: the module that lists it (`module_path!()`), its name and its
/// function.
pub struct Test {
    pub module: &'static str,
    pub name: &'static str,
    pub run: fn() -> TestResult,
}

inventory::collect!(Test);

impl Test {
    /// `module::name` as libtest names it (without the crate's name).
    pub fn path(&self) -> String {
        let module = self.module.split_once("::").map_or("", |(_, m)| m);
        if module.is_empty() {
            self.name.to_string()
        } else {
            format!("{module}::{}", self.name)
        }
    }
}

/// Registers the test functions named, in the module where it stands. A
/// test function left out is dead code, which `main.rs` denies.
macro_rules! tests {
    ($($name:ident),+ $(,)?) => {
        $(::inventory::submit! {
            $crate::harness::runner::Test {
                module: module_path!(),
                name: stringify!($name),
                run: $name,
            }
        })+
    };
}
pub(crate) use tests;

/// How one test ended.
enum Outcome {
    Passed,
    Skipped(Skip),
    Failed(String),
}

/// True when `VESSEL_TEST_NO_SKIP=1`: a skip whose reason CI does not allow
/// fails (see `skip.rs`).
fn no_skip() -> bool {
    std::env::var_os("VESSEL_TEST_NO_SKIP").is_some_and(|v| v == "1")
}

/// Runs one test in a thread named after it: a panic is a failure, a skip
/// is a skip (or, under VESSEL_TEST_NO_SKIP, a failure unless allowed).
fn run_one(name: String, f: fn() -> TestResult) -> Outcome {
    let joined = std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn the test's thread")
        .join();
    match joined {
        Ok(Ok(())) => Outcome::Passed,
        Ok(Err(skip)) if no_skip() && !skip.why.allowed_in_ci() => Outcome::Failed(format!(
            "{skip} ({:?}), which VESSEL_TEST_NO_SKIP=1 does not allow",
            skip.why
        )),
        Ok(Err(skip)) => Outcome::Skipped(skip),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Outcome::Failed(format!("test panicked: {msg}"))
        }
    }
}

/// The command line, as far as libtest's is used here.
#[derive(Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
    quiet: bool,
    /// `--ignored`: only the tests marked ignored, of which there are none.
    ignored_only: bool,
    threads: Option<usize>,
}

const USAGE: &str = "usage: runtime [OPTIONS] [FILTER...]
  FILTER                run the tests whose names contain any FILTER
  --exact               a FILTER (and --skip) must be the whole name
  --skip PATTERN        leave out the tests whose names contain PATTERN
  --test-threads N      run N tests at a time (default: RUST_TEST_THREADS or the CPUs)
  --list                list the tests
  -q, --quiet           one character a test
  --nocapture, --show-output, --color WHEN, --format pretty, --include-ignored: accepted, no effect";

fn parse_args(argv: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut a = Args::default();
    let mut argv = argv.into_iter();
    while let Some(arg) = argv.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |what: &str| {
            inline
                .clone()
                .or_else(|| argv.next())
                .ok_or(format!("{what} needs a value"))
        };
        match opt.as_str() {
            "--" => a.filters.extend(argv.by_ref()),
            "--exact" => a.exact = true,
            "--list" => a.list = true,
            "-q" | "--quiet" => a.quiet = true,
            "--ignored" => a.ignored_only = true,
            "--include-ignored" | "--nocapture" | "--show-output" => {}
            "--skip" => a.skip.push(value("--skip")?),
            "--color" => drop(value("--color")?),
            "--format" => match value("--format")?.as_str() {
                "pretty" => {}
                "terse" => a.quiet = true,
                f => return Err(format!("--format {f}: only pretty and terse")),
            },
            "--test-threads" => {
                let n = value("--test-threads")?;
                a.threads = Some(
                    n.parse()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or(format!("--test-threads {n}: not a positive number"))?,
                );
            }
            "-h" | "--help" => return Err(String::new()),
            o if o.starts_with('-') => return Err(format!("unknown option {o}")),
            _ => a.filters.push(arg),
        }
    }
    Ok(a)
}

impl Args {
    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    /// Whether the test named NAME runs, by the filters and --skip.
    fn selects(&self, name: &str) -> bool {
        (self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, name)))
            && !self.skip.iter().any(|s| self.matches(s, name))
            && !self.ignored_only
    }
}

pub fn main() {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(if e.is_empty() { 0 } else { 101 });
        }
    };
    let mut all: Vec<(String, fn() -> TestResult)> = inventory::iter::<Test>
        .into_iter()
        .map(|t| (t.path(), t.run))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let total = all.len();
    let tests: Vec<_> = all.into_iter().filter(|(n, _)| args.selects(n)).collect();
    let filtered_out = total - tests.len();
    if args.list {
        for (name, _) in &tests {
            println!("{name}: test");
        }
        println!("\n{} tests, 0 benchmarks", tests.len());
        return;
    }
    let threads = args
        .threads
        .or_else(|| std::env::var("RUST_TEST_THREADS").ok()?.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(Into::into))
        .unwrap_or(1)
        .max(1);

    let started = Instant::now();
    let n = tests.len();
    println!("\nrunning {n} test{}", if n == 1 { "" } else { "s" });
    let queue = Arc::new(Mutex::new(tests.into_iter()));
    let (done, results) = mpsc::channel();
    let workers: Vec<_> = (0..threads.min(n.max(1)))
        .map(|_| {
            let (queue, done) = (Arc::clone(&queue), done.clone());
            std::thread::spawn(move || loop {
                let Some((name, f)) = queue.lock().unwrap().next() else {
                    break;
                };
                let outcome = run_one(name.clone(), f);
                if done.send((name, outcome)).is_err() {
                    break;
                }
            })
        })
        .collect();
    drop(done);

    let (mut passed, mut skipped, mut failed) = (0, 0, Vec::new());
    let mut out = std::io::stdout();
    let mut column = 0;
    for (name, outcome) in results {
        let (word, mark) = match &outcome {
            Outcome::Passed => ("ok".to_string(), '.'),
            Outcome::Skipped(s) => (format!("ignored, {s}"), 'i'),
            Outcome::Failed(_) => ("FAILED".to_string(), 'F'),
        };
        if args.quiet {
            column += 1;
            let _ = write!(out, "{mark}");
            if column % 88 == 0 {
                let _ = writeln!(out, " {column}/{n}");
            }
        } else {
            let _ = writeln!(out, "test {name} ... {word}");
        }
        let _ = out.flush();
        match outcome {
            Outcome::Passed => passed += 1,
            Outcome::Skipped(_) => skipped += 1,
            Outcome::Failed(msg) => failed.push((name, msg)),
        }
    }
    for w in workers {
        let _ = w.join();
    }
    if args.quiet {
        println!();
    }
    if !failed.is_empty() {
        failed.sort();
        println!("\nfailures:\n");
        for (name, msg) in &failed {
            println!("---- {name} ----\n{msg}\n");
        }
        println!("\nfailures:");
        for (name, _) in &failed {
            println!("    {name}");
        }
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; {skipped} ignored; 0 measured; {filtered_out} filtered out; finished in {:.2}s\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 101 });
}

/// A plain `#[test]` is not run under `harness = false`: it would compile to
/// nothing and pass unnoticed, so none may stand in runtime-tests/.
fn every_test_is_registered_with_the_runner() -> TestResult {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("runtime-tests");
    let mut stack = vec![dir];
    let mut plain = Vec::new();
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (n, line) in text.lines().enumerate() {
                    if line.trim() == "#[test]" {
                        plain.push(format!("{}:{}", p.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        plain.is_empty(),
        "#[test] functions that this runner never runs (list them in harness::tests![...] and return TestResult): {plain:#?}"
    );
    Ok(())
}

tests![every_test_is_registered_with_the_runner];
