//! `vessel gpu cdi`: discovers the driver, asks NVML for the MIG UUIDs
//! (through `vessel-nvml`; without it, or when NVML fails, a warning and
//! the rest of the spec), sets the CDI version, and prints the spec or
//! writes it atomically, so a unit can refresh it under running engines.

use super::cdi::CdiSpec;
use super::cdi_gen::{gpu_spec, imex_spec};
use super::discover::Driver;
use super::hostfs::HostRoot;
use super::nvml::{self, MigUuid};
use super::options::GpuSettings;
use crate::error::{Error, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// GPUs and MIG devices, kind `nvidia.com/gpu`.
    Gpu,
    /// IMEX channels, kind `nvidia.com/imex-channel`.
    ImexChannel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

/// The command's flags.
#[derive(Debug, Clone)]
pub struct Options {
    pub class: Class,
    /// None: from `output`'s extension, else JSON.
    pub format: Option<Format>,
    /// A released version, or `minimum`.
    pub version: String,
    /// None: stdout.
    pub output: Option<PathBuf>,
}

/// Runs the command.
pub fn run(settings: &GpuSettings, opts: &Options) -> Result<()> {
    let format = output_format(opts)?;
    let mut spec = match opts.class {
        Class::Gpu => {
            let driver = Driver::discover(&settings.driver_root, &settings.dev_root)?;
            gpu_spec(&driver, &mig_uuids(&driver))
        }
        Class::ImexChannel => {
            let dev = HostRoot::open(&settings.dev_root)
                .map_err(|e| Error::io("opening the GPU dev root", &settings.dev_root, e))?;
            imex_spec(&dev)?
        }
    };
    spec.cdi_version = super::cdi_version::choose(&spec, &opts.version)?;
    let text = render(&spec, format)?;
    match &opts.output {
        Some(path) => write_atomic(path, &text),
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .map_err(|e| Error::os("writing the spec to stdout", e))
        }
    }
}

/// The MIG UUIDs NVML gives, where the driver has MIG devices at all; a
/// warning (not an error) when they cannot be had.
fn mig_uuids(driver: &Driver) -> Vec<MigUuid> {
    if driver.gpus.iter().all(|g| g.migs.is_empty()) {
        return Vec::new();
    }
    match nvml::query(driver) {
        Ok(report) => {
            let (placed, notes) = nvml::place(&driver.gpus, &report);
            for n in notes {
                crate::log::warn(&format!("gpu cdi: {n}"));
            }
            placed
        }
        Err(e) => {
            crate::log::warn(&format!(
                "gpu cdi: MIG UUIDs left out (the MIG devices are named <gpu>:<mig> only; a container asking for MIG-<uuid> will fail): {e}"
            ));
            Vec::new()
        }
    }
}

/// The format of the spec written: `--format`, else the output file's
/// extension, else JSON. CDI readers pick the parser by the extension and
/// skip other files, so the two must agree and the extension must be one.
fn output_format(opts: &Options) -> Result<Format> {
    let by_ext = match &opts.output {
        None => None,
        Some(p) => Some(match p.extension().and_then(|e| e.to_str()) {
            Some("json") => Format::Json,
            Some("yaml" | "yml") => Format::Yaml,
            _ => {
                return Err(Error::invalid(format!(
                    "--output {}: the name must end in .json, .yaml or .yml (CDI readers skip other files)",
                    p.display()
                )))
            }
        }),
    };
    match (opts.format, by_ext) {
        (Some(f), Some(e)) if f != e => Err(Error::invalid(format!(
            "--format {} but --output ends in .{}: CDI readers parse a file by its extension; make them agree",
            f.name(),
            e.name()
        ))),
        (Some(f), _) | (None, Some(f)) => Ok(f),
        (None, None) => Ok(Format::Json),
    }
}

fn render(spec: &CdiSpec, format: Format) -> Result<String> {
    let text = match format {
        Format::Json => {
            serde_json::to_string_pretty(spec).map_err(|e| Error::invalid(e.to_string()))
        }
        Format::Yaml => serde_yaml_ng::to_string(spec)
            .map(|t| quote_mig_names(&t))
            .map_err(|e| Error::invalid(e.to_string())),
    }?;
    Ok(format!("{}\n", text.trim_end()))
}

/// `name: 1:0` quoted: the emitter leaves it plain, and a YAML 1.1 reader
/// (PyYAML, for one) reads a plain `1:30` as the base-60 number 90.
fn quote_mig_names(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len() + 16);
    for line in yaml.lines() {
        let quoted = line.split_once("name: ").and_then(|(head, value)| {
            let plain = head
                .trim_start_matches(' ')
                .trim_start_matches("- ")
                .is_empty()
                && value.contains(':')
                && value.chars().all(|c| c.is_ascii_digit() || c == ':');
            plain.then(|| format!("{head}name: '{value}'"))
        });
        out.push_str(quoted.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// Writes `text` to `path` so that a reader sees the old file or the new
/// one, never a part: a temporary file in the same directory (named so no
/// CDI reader takes it: a dot, and `.tmp` last), synced, mode 0644, then
/// renamed over `path`. The directory is made when missing (`/var/run/cdi`
/// is on a tmpfs).
pub fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid(format!("--output {}: not a file name", path.display())))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io("making", dir, e))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io("writing", path, e));
    }
    // The rename itself survives a crash once the directory is synced.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(format: Option<Format>, output: Option<&str>) -> Options {
        Options {
            class: Class::Gpu,
            format,
            version: super::super::cdi_version::DEFAULT.into(),
            output: output.map(PathBuf::from),
        }
    }

    #[test]
    fn the_format_follows_the_file_name() {
        assert_eq!(output_format(&opts(None, None)).unwrap(), Format::Json);
        assert_eq!(
            output_format(&opts(Some(Format::Yaml), None)).unwrap(),
            Format::Yaml
        );
        assert_eq!(
            output_format(&opts(None, Some("/x/n.yml"))).unwrap(),
            Format::Yaml
        );
        assert_eq!(
            output_format(&opts(None, Some("n.json"))).unwrap(),
            Format::Json
        );
        let e = output_format(&opts(None, Some("/x/nvidia.spec"))).unwrap_err();
        assert!(e.to_string().contains(".json, .yaml or .yml"), "{e}");
        let e = output_format(&opts(Some(Format::Json), Some("/x/n.yaml"))).unwrap_err();
        assert!(e.to_string().contains("--format json"), "{e}");
    }

    #[test]
    fn mig_names_are_quoted_in_yaml() {
        let y = "devices:\n- name: 1:0\n  containerEdits: {}\n- name: '0'\n- name: all\n  x: 1:2\n";
        assert_eq!(
            quote_mig_names(y),
            "devices:\n- name: '1:0'\n  containerEdits: {}\n- name: '0'\n- name: all\n  x: 1:2\n"
        );
    }

    #[test]
    fn the_output_is_replaced_whole_with_mode_0644() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run/cdi/nvidia.yaml");
        write_atomic(&path, "old\n").unwrap();
        let before = std::fs::File::open(&path).unwrap();
        write_atomic(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        // A reader that had the old file open still reads the old one whole.
        let mut old = String::new();
        std::io::Read::read_to_string(&mut &before, &mut old).unwrap();
        assert_eq!(old, "old\n");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["nvidia.yaml"], "no temporary file is left");
        // A directory where the file should be: an error naming the path.
        let e = write_atomic(tmp.path(), "x").unwrap_err().to_string();
        assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    }
}
