//! IMEX channels (NVIDIA's inter-node memory export, multi-node NVLink):
//! character nodes `/dev/nvidia-caps-imex-channels/channel<N>` the host
//! makes for the channels an IMEX domain uses. A container is given a
//! channel's node at the same path, with an allow rule; vessel never
//! invents one (a channel the host lacks is an error naming its path).

use super::edits::DeviceNode;
use super::hostfs::HostRoot;
use super::request::ImexChannels;
use crate::error::{Error, Result};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Where the host has its channel nodes, below the dev root.
pub const CHANNEL_DIR: &str = "dev/nvidia-caps-imex-channels";

/// The device nodes of `channels`, from the host under `dev`.
pub fn channel_nodes(dev: &HostRoot, channels: &ImexChannels) -> Result<Vec<DeviceNode>> {
    let numbers = match channels {
        ImexChannels::List(list) => list.clone(),
        ImexChannels::All => host_channels(dev)?,
    };
    numbers.iter().map(|&n| channel_node(dev, n)).collect()
}

/// Every channel number the host has a node for, in order; none when it
/// has no channel directory.
pub fn host_channels(dev: &HostRoot) -> Result<Vec<u32>> {
    let listing = match dev.read_dir(Path::new(CHANNEL_DIR)) {
        Ok(l) => l,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("listing", dev.path().join(CHANNEL_DIR), e)),
    };
    let mut numbers: Vec<u32> = listing
        .entries()
        .iter()
        .filter_map(|e| e.name.to_str()?.strip_prefix("channel")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

/// Channel `n`'s node, with the host's numbers and mode.
fn channel_node(dev: &HostRoot, n: u32) -> Result<DeviceNode> {
    let rel = format!("{CHANNEL_DIR}/channel{n}");
    let host_path = dev.path().join(&rel);
    let missing = |why: String| {
        Error::invalid(format!(
            "IMEX channel {n}: {}: {why} (the host makes a channel's node when its IMEX domain uses it; ask for a channel that exists, or none)",
            host_path.display()
        ))
    };
    let meta = dev
        .metadata(Path::new(&rel))
        .map_err(|e| missing(e.to_string()))?;
    host_char_node(&rel, &meta).ok_or_else(|| missing("not a character device".into()))
}

/// The container's node for the host's character device at `rel` (below
/// the dev root, given at the same path) with its numbers and mode; None
/// when it is not a character device.
pub(super) fn host_char_node(rel: &str, meta: &std::fs::Metadata) -> Option<DeviceNode> {
    meta.file_type().is_char_device().then(|| DeviceNode {
        path: format!("/{rel}"),
        typ: Some("c".into()),
        major: Some(libc::major(meta.rdev()) as i64),
        minor: Some(libc::minor(meta.rdev()) as i64),
        file_mode: Some(meta.mode() & 0o777),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_the_hosts_nodes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(CHANNEL_DIR);
        std::fs::create_dir_all(&dir).unwrap();
        // A plain file where a node should be.
        std::fs::write(dir.join("channel5"), "").unwrap();
        let dev = HostRoot::open(tmp.path()).unwrap();
        let e = channel_nodes(&dev, &ImexChannels::List(vec![1]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&dir.join("channel1").display().to_string()),
            "{e}"
        );
        let e = channel_nodes(&dev, &ImexChannels::List(vec![5]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a character device"), "{e}");
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        for n in [0, 1] {
            nix::sys::stat::mknod(
                &dir.join(format!("channel{n}")),
                nix::sys::stat::SFlag::S_IFCHR,
                nix::sys::stat::Mode::from_bits_truncate(0o666),
                libc::makedev(509, n),
            )
            .unwrap();
        }
        std::fs::remove_file(dir.join("channel5")).unwrap();
        let one = channel_nodes(&dev, &ImexChannels::List(vec![1])).unwrap();
        assert_eq!(one[0].path, "/dev/nvidia-caps-imex-channels/channel1");
        assert_eq!((one[0].major, one[0].minor), (Some(509), Some(1)));
        let all = channel_nodes(&dev, &ImexChannels::All).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].minor, Some(0));
        let none = HostRoot::open(&tmp.path().join("dev")).unwrap();
        assert!(channel_nodes(&none, &ImexChannels::All).unwrap().is_empty());
    }
}
