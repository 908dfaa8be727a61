//! The `vessel` binary: runc's CLI over `vessel::container::Runtime`.

use clap::Parser;
use std::io::Write;
use vessel::cli::{
    CdiClass, CdiFormat, Cli, Command, CreateArgs, ExecArgs, GpuCommand, ListFormat, LogFormat,
};
use vessel::console::OwnConsole;
use vessel::container::{CreateOptions, Runtime};
use vessel::error::{Error, Result};
use vessel::exec::{ExecFlags, ExecOptions};
use vessel::state::Status;

fn main() {
    // Installed under this name so dockerd accepts --gpus without NVIDIA's
    // toolkit; vessel removes that hook from every spec it runs, so there
    // is nothing to do when something calls it.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if std::path::Path::new(&argv0).file_name()
        == Some(std::ffi::OsStr::new("nvidia-container-runtime-hook"))
    {
        std::process::exit(0);
    }
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let format = if cli.log_format == LogFormat::Json {
        vessel::log::Format::Json
    } else {
        vessel::log::Format::Text
    };
    vessel::log::init(cli.log.clone(), format, cli.debug);
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            vessel::log::error(&e.to_string());
            1
        }
    };
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn create_options(a: &CreateArgs) -> CreateOptions {
    CreateOptions {
        bundle: a.bundle.clone(),
        pid_file: a.pid_file.clone(),
        console_socket: a.console_socket.clone(),
        no_pivot: a.no_pivot,
        no_new_keyring: a.no_new_keyring,
        preserve_fds: a.preserve_fds as i32,
    }
}

fn dispatch(cli: Cli) -> Result<i32> {
    if cli.version {
        println!("vessel version {}\nspec: 1.2.0", env!("CARGO_PKG_VERSION"));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        // Like runc: no command prints the help.
        let _ = <Cli as clap::CommandFactory>::command().print_help();
        return Ok(0);
    };
    let mut rt = Runtime::new(
        cli.root
            .clone()
            .unwrap_or_else(vessel::container::default_root),
    );
    rt.gpu = vessel::gpu::options::GpuOptions::new(cli.gpu_root.clone());
    rt.systemd_cgroup = cli.systemd_cgroup;
    match command {
        Command::Create(a) => {
            rt.create(&a.id, &create_options(&a))?;
            Ok(0)
        }
        Command::Start { id } => {
            rt.start(&id)?;
            Ok(0)
        }
        Command::Run { create, detach, .. } => run(&rt, &create, detach),
        Command::Exec(a) => exec(&rt, &a),
        Command::Update(a) => {
            rt.update(&a.id, &vessel::update::resources(&a)?)?;
            Ok(0)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => {
            rt.events(&id, stats, vessel::events::parse_interval(&interval)?)?;
            Ok(0)
        }
        Command::Pause { id } => rt.pause(&id).map(|_| 0),
        Command::Resume { id } => rt.resume(&id).map(|_| 0),
        Command::Ps {
            format,
            id,
            ps_args,
        } => ps(&rt, &id, format, &ps_args),
        Command::State { id } => {
            let (state, status) = rt.state(&id)?;
            print_json(&state.oci(status))?;
            Ok(0)
        }
        Command::Kill { all, id, signal } => {
            let sig = vessel::signals::parse(signal.as_deref().unwrap_or("TERM"))?;
            rt.kill(&id, sig, all)?;
            Ok(0)
        }
        Command::Delete { force, id } => {
            rt.delete(&id, force)?;
            Ok(0)
        }
        Command::List { format, quiet } => list(&rt, format, quiet),
        Command::Spec { bundle, rootless } => spec(&bundle, rootless),
        Command::Gpu(g) => gpu(&rt, g),
        Command::Features => {
            print_json(&vessel::specgen::features())?;
            Ok(0)
        }
    }
}

/// `spec`: runc's default config.json (or its rootless form) in BUNDLE.
fn spec(bundle: &std::path::Path, rootless: bool) -> Result<i32> {
    let path = bundle.join("config.json");
    if path.exists() {
        return Err(Error::invalid(format!(
            "{}: file exists; remove it first",
            path.display()
        )));
    }
    let text =
        serde_json::to_string_pretty(&vessel::specgen::default_spec(rootless)).unwrap_or_default();
    std::fs::write(&path, text + "\n").map_err(|e| Error::io("writing", &path, e))?;
    Ok(0)
}

fn gpu(rt: &Runtime, cmd: GpuCommand) -> Result<i32> {
    use vessel::gpu::doctor;
    match cmd {
        GpuCommand::Info => print!("{}", doctor::info(&rt.gpu.resolve()?)?),
        GpuCommand::Cdi {
            format,
            cdi_version,
            output,
            class,
        } => {
            use vessel::gpu::cdi_cmd::{self, Class, Format};
            let opts = cdi_cmd::Options {
                class: match class {
                    CdiClass::Gpu => Class::Gpu,
                    CdiClass::ImexChannel => Class::ImexChannel,
                },
                format: format.map(|f| match f {
                    CdiFormat::Json => Format::Json,
                    CdiFormat::Yaml => Format::Yaml,
                }),
                version: cdi_version,
                output,
            };
            cdi_cmd::run(&rt.gpu.resolve()?, &opts)?;
        }
        GpuCommand::Doctor { id } => {
            let state = match id {
                Some(id) => Some(rt.state(&id)?.0),
                None => None,
            };
            let report = doctor::doctor(&rt.gpu, state.as_ref());
            print!("{}", report.text);
            return Ok(if report.failed { 1 } else { 0 });
        }
    }
    Ok(0)
}

fn run(rt: &Runtime, a: &CreateArgs, detach: bool) -> Result<i32> {
    let bundle = vessel::bundle::Bundle::load(&a.bundle)?;
    let mut opts = create_options(a);
    let terminal = vessel::container::cfg_terminal(&bundle);
    let own_console = OwnConsole::when_needed(
        &rt.root.dir,
        &a.id,
        terminal && !detach,
        &mut opts.console_socket,
    )?;
    let created = rt.create_bundle(&a.id, &opts, bundle)?;
    // Signals are ours to forward from before the container's process runs.
    let set = (!detach).then(vessel::signals::block_all);
    let started = own_console
        .map(|c| c.receive())
        .transpose()
        .and_then(|m| rt.start(&a.id).map(|_| m));
    let master = match started {
        Ok(m) => m,
        Err(e) => {
            let _ = rt.delete(&a.id, true);
            return Err(e);
        }
    };
    let Some(set) = set else { return Ok(0) };
    let code = match master {
        Some(m) => vessel::console::relay_until_exit(m, created.pid, &set),
        None => vessel::signals::forward_until_exit(created.pid, &set),
    };
    rt.delete(&a.id, true)?;
    Ok(code)
}

fn exec(rt: &Runtime, a: &ExecArgs) -> Result<i32> {
    let (state, spec) = rt.exec_target(&a.id)?;
    let flags = ExecFlags {
        args: a.args.clone(),
        env: a.env.clone(),
        cwd: a.cwd.clone(),
        user: a.user.clone(),
        additional_gids: a.additional_gids.clone(),
        caps: a.cap.clone(),
        no_new_privs: a.no_new_privs,
        tty: a.tty,
    };
    let process = vessel::exec::build_process(&spec, a.process.as_deref(), &flags)?;
    let mut opts = ExecOptions {
        console_socket: a.console_socket.clone(),
        detach: a.detach,
        pid_file: a.pid_file.clone(),
        preserve_fds: a.preserve_fds as i32,
    };
    let terminal = process.terminal().unwrap_or(false);
    let own_console = OwnConsole::when_needed(
        &rt.root.dir,
        &a.id,
        terminal && !a.detach,
        &mut opts.console_socket,
    )?;
    let set = (!a.detach).then(vessel::signals::block_all);
    let execed = rt.exec_in(&state, &spec, process, &opts)?;
    let Some(set) = set else { return Ok(0) };
    Ok(match own_console {
        Some(c) => vessel::console::relay_until_exit(c.receive()?, execed.pid, &set),
        None => vessel::signals::forward_until_exit(execed.pid, &set),
    })
}

/// `ps`: JSON is the pid list Docker's `top` reads; a table is ps(1)'s
/// output cut down to the container's processes.
fn ps(rt: &Runtime, id: &str, format: ListFormat, args: &[String]) -> Result<i32> {
    let pids = rt.pids(id)?;
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&pids).unwrap_or_default());
        return Ok(0);
    }
    let args: Vec<String> = if args.is_empty() {
        vec!["-ef".into()]
    } else {
        args.to_vec()
    };
    // ps(1) runs on the host: a clean environment, not the caller's.
    let out = std::process::Command::new("ps")
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .output()
        .map_err(|e| Error::invalid(format!("running ps: {e}")))?;
    if !out.status.success() {
        return Err(Error::invalid(format!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or("");
    let col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| Error::invalid("ps output has no PID column"))?;
    println!("{header}");
    for line in lines {
        if line
            .split_whitespace()
            .nth(col)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
        {
            println!("{line}");
        }
    }
    Ok(0)
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::invalid(format!("serialising: {e}")))?;
    println!("{text}");
    Ok(())
}

fn list(rt: &Runtime, format: ListFormat, quiet: bool) -> Result<i32> {
    let all = rt.list()?;
    if quiet {
        for (s, _) in &all {
            println!("{}", s.id);
        }
        return Ok(0);
    }
    match format {
        ListFormat::Json => {
            let items: Vec<_> = all.iter().map(|(s, st)| s.oci(*st)).collect();
            if items.is_empty() {
                println!("null");
            } else {
                println!("{}", serde_json::to_string(&items).unwrap_or_default());
            }
        }
        ListFormat::Table => {
            let rows: Vec<[String; 6]> = all
                .iter()
                .map(|(s, st)| {
                    let pid = if *st == Status::Stopped { 0 } else { s.pid };
                    [
                        s.id.clone(),
                        pid.to_string(),
                        st.to_string(),
                        s.bundle.display().to_string(),
                        s.created.clone(),
                        "root".into(),
                    ]
                })
                .collect();
            let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
            let mut widths = header.clone().map(|h| h.len());
            for r in &rows {
                for (w, c) in widths.iter_mut().zip(r) {
                    *w = (*w).max(c.len());
                }
            }
            for r in std::iter::once(&header).chain(rows.iter()) {
                let line: Vec<String> = r
                    .iter()
                    .zip(widths)
                    .map(|(c, w)| format!("{c:<w$}"))
                    .collect();
                println!("{}", line.join("   ").trim_end());
            }
        }
    }
    Ok(0)
}
