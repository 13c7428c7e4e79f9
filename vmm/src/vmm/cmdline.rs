//! Builds the guest kernel command line: the configured base plus what the machine adds
//! (root device, virtio-mmio device announcements, the host workaround). Additions go
//! before a `--` so they never reach init's arguments.

/// One virtio-mmio device as announced to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MmioAnnouncement {
    /// Base address of the 4 KiB window.
    pub addr: u64,
    /// Its interrupt line.
    pub irq: u32,
}

/// What the machine adds to the base command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CmdlineAdditions {
    /// `Some(read_only)` when /dev/vda is the root file system.
    pub root: Option<bool>,
    /// virtio-mmio devices in probe order.
    pub devices: Vec<MmioAnnouncement>,
    /// Extra words (the host workaround).
    pub extra: Option<String>,
}

/// `base` with `add` inserted before any `--` separator.
pub fn compose(base: &str, add: &CmdlineAdditions) -> String {
    let mut words = Vec::new();
    if let Some(read_only) = add.root {
        words.push(format!(
            "root=/dev/vda {}",
            if read_only { "ro" } else { "rw" }
        ));
    }
    for dev in &add.devices {
        words.push(format!("virtio_mmio.device=4K@{:#x}:{}", dev.addr, dev.irq));
    }
    if let Some(extra) = &add.extra {
        words.push(extra.clone());
    }
    let ours = words.join(" ");
    let base = base.trim();
    if ours.is_empty() {
        return base.to_string();
    }
    let (kernel_part, init_part) = match base.find(" -- ") {
        Some(at) => (&base[..at], Some(&base[at + 1..])),
        None if base == "--" || base.starts_with("-- ") => ("", Some(base)),
        None => (base, None),
    };
    let mut out = kernel_part.trim().to_string();
    if !out.is_empty() {
        out.push(' ');
    }
    out.push_str(&ours);
    if let Some(rest) = init_part {
        out.push(' ');
        out.push_str(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adds() -> CmdlineAdditions {
        CmdlineAdditions {
            root: Some(true),
            devices: vec![
                MmioAnnouncement {
                    addr: 0xd000_1000,
                    irq: 5,
                },
                MmioAnnouncement {
                    addr: 0xd000_2000,
                    irq: 6,
                },
            ],
            extra: Some("noxsave".into()),
        }
    }

    #[test]
    fn appends_root_devices_and_extra_in_order() {
        assert_eq!(
            compose("console=ttyS0", &adds()),
            "console=ttyS0 root=/dev/vda ro virtio_mmio.device=4K@0xd0001000:5 \
             virtio_mmio.device=4K@0xd0002000:6 noxsave"
        );
    }

    #[test]
    fn keeps_init_arguments_last() {
        let add = CmdlineAdditions {
            root: Some(false),
            ..Default::default()
        };
        assert_eq!(
            compose("quiet -- -v x", &add),
            "quiet root=/dev/vda rw -- -v x"
        );
        assert_eq!(compose("-- -v", &add), "root=/dev/vda rw -- -v");
    }

    #[test]
    fn nothing_added_leaves_the_base() {
        assert_eq!(compose(" a b ", &CmdlineAdditions::default()), "a b");
    }
}
