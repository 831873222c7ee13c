//! Picks qemu's accelerator.
//!
//! KVM is much faster than TCG (software emulation), but `/dev/kvm` being
//! there is not enough: the machines here have a paravirtual KVM
//! (`/sys/module/kvm_pvm`, no `kvm_intel`/`kvm_amd`) under which an
//! ordinary kernel spins forever (seen with qemu 7.2 `-enable-kvm` and
//! Debian's 6.1 kernel on firecracker VMs). So `auto` takes KVM only
//! where `/dev/kvm` opens read-write, is not `kvm_pvm`, and (on x86) a
//! hardware module stands behind it; otherwise TCG, with a note.

use std::fs::OpenOptions;
use std::path::Path;

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Choice {
    Auto,
    Kvm,
    Tcg,
}

/// What qemu gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    /// The name for `-accel`.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The facts about this host that decide.
#[derive(Clone, Debug)]
pub struct Probe {
    /// Why `/dev/kvm` cannot be opened read-write, if it cannot.
    pub dev_kvm_error: Option<String>,
    /// `/sys/module/kvm_pvm` exists.
    pub paravirtual: bool,
    /// `kvm_intel` or `kvm_amd` is loaded (or built in).
    pub hardware_module: bool,
    /// Whether this architecture needs such a module (x86 only; elsewhere
    /// KVM is part of `kvm` itself).
    pub needs_hardware_module: bool,
}

impl Probe {
    /// Looks at this host.
    pub fn host() -> Probe {
        let dev_kvm_error = OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .err()
            .map(|e| e.to_string());
        let module = |m: &str| Path::new("/sys/module").join(m).exists();
        Probe {
            dev_kvm_error,
            paravirtual: module("kvm_pvm"),
            hardware_module: module("kvm_intel") || module("kvm_amd"),
            needs_hardware_module: cfg!(any(target_arch = "x86_64", target_arch = "x86")),
        }
    }
}

/// The accelerator and a one-line note to print, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub accel: Accel,
    pub note: Option<String>,
}

/// Decides from what was asked and what the host has.
pub fn decide(choice: Choice, probe: &Probe) -> Decision {
    const PVM: &str =
        "/dev/kvm is a paravirtual KVM (kvm_pvm), under which an ordinary kernel hangs";
    match choice {
        Choice::Tcg => Decision {
            accel: Accel::Tcg,
            note: None,
        },
        Choice::Kvm => Decision {
            accel: Accel::Kvm,
            note: probe.paravirtual.then(|| {
                format!("{PVM}; the VM will be stopped by the boot watchdog or --timeout")
            }),
        },
        Choice::Auto => {
            let why_not = if let Some(e) = &probe.dev_kvm_error {
                Some(format!("no usable /dev/kvm ({e})"))
            } else if probe.paravirtual {
                Some(PVM.to_string())
            } else if probe.needs_hardware_module && !probe.hardware_module {
                Some("/dev/kvm has neither kvm_intel nor kvm_amd behind it".to_string())
            } else {
                None
            };
            match why_not {
                None => Decision {
                    accel: Accel::Kvm,
                    note: None,
                },
                Some(why) => Decision {
                    accel: Accel::Tcg,
                    note: Some(format!("{why}; using TCG software emulation (slower)")),
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe() -> Probe {
        Probe {
            dev_kvm_error: None,
            paravirtual: false,
            hardware_module: true,
            needs_hardware_module: true,
        }
    }

    #[test]
    fn auto_takes_hardware_kvm() {
        let d = decide(Choice::Auto, &probe());
        assert_eq!(
            d,
            Decision {
                accel: Accel::Kvm,
                note: None
            }
        );
    }

    #[test]
    fn auto_refuses_paravirtual_kvm() {
        // A firecracker VM's /dev/kvm: kvm + kvm_pvm, no kvm_intel/kvm_amd.
        let p = Probe {
            paravirtual: true,
            hardware_module: false,
            ..probe()
        };
        let d = decide(Choice::Auto, &p);
        assert_eq!(d.accel, Accel::Tcg);
        let note = d.note.unwrap();
        assert!(note.contains("kvm_pvm") && note.contains("TCG"), "{note}");
        assert!(!note.contains('\n'));
    }

    #[test]
    fn auto_without_dev_kvm_or_module() {
        let p = Probe {
            dev_kvm_error: Some("No such file or directory".into()),
            ..probe()
        };
        assert_eq!(decide(Choice::Auto, &p).accel, Accel::Tcg);
        let p = Probe {
            hardware_module: false,
            ..probe()
        };
        assert_eq!(decide(Choice::Auto, &p).accel, Accel::Tcg);
        let p = Probe {
            hardware_module: false,
            needs_hardware_module: false,
            ..probe()
        };
        assert_eq!(decide(Choice::Auto, &p).accel, Accel::Kvm);
    }

    #[test]
    fn explicit_choices_are_obeyed() {
        let p = Probe {
            paravirtual: true,
            ..probe()
        };
        let d = decide(Choice::Kvm, &p);
        assert_eq!(d.accel, Accel::Kvm);
        assert!(d.note.is_some());
        assert_eq!(decide(Choice::Tcg, &probe()).accel, Accel::Tcg);
    }
}
