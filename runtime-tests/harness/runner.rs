//! The test runner (the `runtime` target has `harness = false`): every
//! test listed in a module's `harness::tests![...]` becomes a libtest-mimic
//! trial, run in a thread of its own named after it, as libtest does.
//!
//! The command line is libtest's: `--test-threads=N`, `--exact`, `--skip`,
//! `--list`, and name filters, any number of them (a test runs when its
//! name contains one; `runtime-tests/vm/cgroup-layouts.sh` passes several).
//! The last line is libtest's `test result: ok. N passed; N failed; N
//! ignored; ...`, where the skipped tests are the ignored ones.

use super::{Skip, TestResult};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

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

/// True when `VESSEL_TEST_NO_SKIP=1`: a skip whose reason CI does not allow
/// fails (see `skip.rs`).
fn no_skip() -> bool {
    std::env::var_os("VESSEL_TEST_NO_SKIP").is_some_and(|v| v == "1")
}

/// Runs one test in a thread named after it: a panic is a failure, a skip is
/// an ignored trial with its reason (or a failure under VESSEL_TEST_NO_SKIP).
fn run_one(name: String, f: fn() -> TestResult) -> Result<Completion, Failed> {
    let joined = std::thread::Builder::new()
        .name(name)
        .spawn(f)
        .expect("spawn the test's thread")
        .join();
    match joined {
        Ok(Ok(())) => Ok(Completion::Completed),
        Ok(Err(skip)) => outcome_of_skip(skip, no_skip()),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            Err(format!("test panicked: {msg}").into())
        }
    }
}

fn outcome_of_skip(skip: Skip, no_skip: bool) -> Result<Completion, Failed> {
    if no_skip && !skip.why.allowed_in_ci() {
        Err(format!(
            "{skip} ({:?}), which VESSEL_TEST_NO_SKIP=1 does not allow",
            skip.why
        )
        .into())
    } else {
        Ok(Completion::ignored_with(skip))
    }
}

/// libtest's options that take a value (`--opt VALUE` as well as `--opt=VALUE`).
const VALUE_OPTIONS: &[&str] = &[
    "--test-threads",
    "--logfile",
    "--skip",
    "--color",
    "--format",
    "-Z",
];

/// The command line split into libtest-mimic's options and the name filters.
fn split_args(args: impl IntoIterator<Item = String>) -> (Vec<String>, Vec<String>) {
    let mut options = Vec::new();
    let mut filters = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        if a == "--" {
            filters.extend(args.by_ref());
        } else if VALUE_OPTIONS.contains(&a.as_str()) {
            options.push(a);
            options.extend(args.next());
        } else if a.starts_with('-') {
            options.push(a);
        } else {
            filters.push(a);
        }
    }
    (options, filters)
}

pub fn main() {
    let mut argv = std::env::args();
    let program = argv.next().unwrap_or_else(|| "runtime".into());
    let (options, filters) = split_args(argv);
    let mut args = Arguments::from_iter(std::iter::once(program).chain(options));
    let mut tests: Vec<&'static Test> = inventory::iter::<Test>.into_iter().collect();
    tests.sort_by_key(|t| t.path());
    // One filter goes to libtest-mimic (which counts what it filters out);
    // several are applied here, as libtest does: any of them matches.
    match filters.as_slice() {
        [] => {}
        [one] => args.filter = Some(one.clone()),
        many => {
            let before = tests.len();
            tests.retain(|t| {
                let path = t.path();
                many.iter().any(|f| {
                    if args.exact {
                        path == *f
                    } else {
                        path.contains(f.as_str())
                    }
                })
            });
            if !args.list {
                println!(
                    "filters {}: {} filtered out",
                    many.join(" "),
                    before - tests.len()
                );
            }
        }
    }
    let trials = tests
        .into_iter()
        .map(|t| {
            let (path, run) = (t.path(), t.run);
            Trial::ignorable_test(path.clone(), move || run_one(path, run))
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
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
