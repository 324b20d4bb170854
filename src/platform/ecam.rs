//! Validation of an ECAM window (from the MCFG, or a host bridge's `_CBA` when there is no MCFG) before
//! configuration space is reached through it, as Linux does (`arch/x86/pci/mmconfig-shared.c`:
//! `pci_mmcfg_check_reserved`, `is_mmconf_reserved`, `pci_mmcfg_reject_broken`): a window that lies over
//! memory something else owns is never touched, and one whose first bus does not answer as port access does
//! is not used. The caller then falls back to configuration mechanism #1 (ports 0xCF8/0xCFC).
//!
//! Pure logic: the caller gathers the claimed ranges (memory map, firmware image, interrupt controllers,
//! HPET) and the two probes.

#![warn(missing_docs)]

use core::fmt;

/// Where an ECAM window came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcamSource {
    /// The MCFG entry of segment 0.
    Mcfg,
    /// The `_CBA` of the named host bridge (PCI Firmware 3.3 §4.1.3; QEMU's microvm has no MCFG).
    Cba([u8; 4]),
}

impl EcamSource {
    /// Report name.
    pub fn name(&self) -> &'static str {
        match self {
            EcamSource::Mcfg => "mcfg",
            EcamSource::Cba(_) => "dsdt-cba",
        }
    }
}

/// A candidate ECAM window: `base` is the address bus 0 would have; buses `bus_start..=bus_end` decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcamWindow {
    /// Base (bus 0's address).
    pub base: u64,
    /// First bus decoded.
    pub bus_start: u8,
    /// Last bus decoded.
    pub bus_end: u8,
    /// Where it came from.
    pub source: EcamSource,
}

impl EcamWindow {
    /// The bytes it decodes, `[start, end)`; `None` if that overflows.
    pub fn range(&self) -> Option<(u64, u64)> {
        let start = self.base.checked_add(u64::from(self.bus_start) << 20)?;
        let end = self.base.checked_add((u64::from(self.bus_end) + 1) << 20)?;
        Some((start, end))
    }
}

/// What owns a range of physical addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// Memory per the memory map (E820 type: 1 RAM, 3 ACPI tables, 4 ACPI NVS, 7 persistent memory).
    Memory(u32),
    /// msifw's own image.
    FirmwareImage,
    /// The local APIC's registers.
    LocalApic,
    /// An I/O APIC's registers (its ID).
    IoApic(u8),
    /// The HPET's registers.
    Hpet,
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Owner::Memory(1) => f.write_str("RAM (memory map)"),
            Owner::Memory(3) => f.write_str("ACPI tables (memory map)"),
            Owner::Memory(4) => f.write_str("ACPI NVS memory (memory map)"),
            Owner::Memory(k) => write!(f, "memory of type {k} (memory map)"),
            Owner::FirmwareImage => f.write_str("msifw's own image"),
            Owner::LocalApic => f.write_str("the local APIC"),
            Owner::IoApic(id) => write!(f, "I/O APIC {id}"),
            Owner::Hpet => f.write_str("the HPET"),
        }
    }
}

/// A claimed range `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Its owner.
    pub owner: Owner,
}

/// Memory-map types that are memory (not holes or reserved device ranges).
pub fn is_memory(kind: u32) -> bool {
    matches!(kind, 1 | 3 | 4 | 7)
}

/// Why an ECAM window is not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcamRejection {
    /// Its address range overflows 64 bits.
    Overflow,
    /// It lies over a range something else owns.
    Overlaps {
        /// The owner.
        owner: Owner,
        /// The owner's range `[start, end)`.
        start: u64,
        /// End of the owner's range.
        end: u64,
    },
    /// It could not be mapped.
    Unmappable,
    /// Its first bus's function 0 of device 0 does not answer (Vendor ID all-ones or 0) while port access
    /// reads a function there.
    NotAnswering {
        /// The ID register (device << 16 | vendor) read through the ports.
        port_id: u32,
        /// The ID register read through the window.
        ecam_id: u32,
    },
    /// Port access and the window read different functions at the same address.
    Mismatch {
        /// Through the ports.
        port_id: u32,
        /// Through the window.
        ecam_id: u32,
    },
}

impl fmt::Display for EcamRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Overflow => f.write_str("its address range overflows"),
            Self::Overlaps { owner, start, end } => write!(f, "it lies over {owner} at {start:#x}-{:#x}", end.saturating_sub(1)),
            Self::Unmappable => f.write_str("it cannot be mapped"),
            Self::NotAnswering { port_id, ecam_id } => write!(
                f,
                "its first bus's 00.0 reads {ecam_id:#010x} through it but {port_id:#010x} through ports 0xCF8/0xCFC"
            ),
            Self::Mismatch { port_id, ecam_id } => {
                write!(f, "its first bus's 00.0 reads {ecam_id:#010x} through it but {port_id:#010x} through ports 0xCF8/0xCFC")
            }
        }
    }
}

/// Checks the window's addresses against every claimed range (before anything is read through it).
pub fn check_window(w: &EcamWindow, claims: &[Claim]) -> Result<(u64, u64), EcamRejection> {
    let (start, end) = w.range().ok_or(EcamRejection::Overflow)?;
    for c in claims {
        if c.start < end && start < c.end {
            return Err(EcamRejection::Overlaps {
                owner: c.owner,
                start: c.start,
                end: c.end,
            });
        }
    }
    Ok((start, end))
}

/// Whether an ID register read means a function answered (Vendor ID neither all-ones nor 0).
pub fn answers(id: u32) -> bool {
    !matches!(id & 0xFFFF, 0xFFFF | 0)
}

/// Compares the ID register of the window's first bus, device 0, function 0, read through the window and
/// through the ports. When the ports read nothing there (no port mechanism, as on microvm, or no function
/// 00.0) the window is not contradicted.
pub fn check_probe(ecam_id: u32, port_id: u32) -> Result<(), EcamRejection> {
    match (answers(port_id), answers(ecam_id)) {
        (true, false) => Err(EcamRejection::NotAnswering { port_id, ecam_id }),
        (true, true) if port_id != ecam_id => Err(EcamRejection::Mismatch { port_id, ecam_id }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const Q35: EcamWindow = EcamWindow {
        base: 0xB000_0000,
        bus_start: 0,
        bus_end: 255,
        source: EcamSource::Mcfg,
    };

    fn claims() -> [Claim; 6] {
        [
            Claim {
                start: 0,
                end: 0x9_FC00,
                owner: Owner::Memory(1),
            },
            Claim {
                start: 0x10_0000,
                end: 0x0FFE_0000,
                owner: Owner::Memory(1),
            },
            Claim {
                start: 0x10_0000,
                end: 0x20_0000,
                owner: Owner::FirmwareImage,
            },
            Claim {
                start: 0xFEC0_0000,
                end: 0xFEC0_1000,
                owner: Owner::IoApic(0),
            },
            Claim {
                start: 0xFED0_0000,
                end: 0xFED0_0400,
                owner: Owner::Hpet,
            },
            Claim {
                start: 0xFEE0_0000,
                end: 0xFEE0_1000,
                owner: Owner::LocalApic,
            },
        ]
    }

    #[test]
    fn qemu_windows_pass() {
        assert_eq!(
            check_window(&Q35, &claims()),
            Ok((0xB000_0000, 0xC000_0000))
        );
        let microvm = EcamWindow {
            base: 0xE000_0000,
            bus_start: 0,
            bus_end: 255,
            source: EcamSource::Cba(*b"PCI0"),
        };
        assert_eq!(
            check_window(&microvm, &claims()),
            Ok((0xE000_0000, 0xF000_0000))
        );
        // A window starting above bus 0 decodes only from its first bus on.
        let high = EcamWindow {
            base: 0x0F00_0000,
            bus_start: 0x20,
            bus_end: 0x2F,
            source: EcamSource::Mcfg,
        };
        assert_eq!(
            check_window(&high, &claims()),
            Ok((0x1100_0000, 0x1200_0000))
        );
    }

    #[test]
    fn windows_over_owned_ranges_are_rejected() {
        let over = |base: u64, bus_end: u8| {
            check_window(
                &EcamWindow {
                    base,
                    bus_start: 0,
                    bus_end,
                    source: EcamSource::Mcfg,
                },
                &claims(),
            )
        };
        assert_eq!(
            over(0x0100_0000, 0),
            Err(EcamRejection::Overlaps {
                owner: Owner::Memory(1),
                start: 0x10_0000,
                end: 0x0FFE_0000
            })
        );
        assert!(matches!(
            over(0xFEC0_0000, 0),
            Err(EcamRejection::Overlaps {
                owner: Owner::IoApic(0),
                ..
            })
        ));
        assert!(matches!(
            over(0xFED0_0000, 0),
            Err(EcamRejection::Overlaps {
                owner: Owner::Hpet,
                ..
            })
        ));
        assert!(matches!(
            over(0xFEE0_0000, 0),
            Err(EcamRejection::Overlaps {
                owner: Owner::LocalApic,
                ..
            })
        ));
        // 256 buses from 0xF0000000 reach the interrupt controllers.
        assert!(matches!(
            over(0xF000_0000, 255),
            Err(EcamRejection::Overlaps {
                owner: Owner::IoApic(0),
                ..
            })
        ));
        // The firmware image listed first wins over the RAM around it.
        let image_first = [claims()[2], claims()[1]];
        let w = EcamWindow {
            base: 0,
            bus_start: 1,
            bus_end: 1,
            source: EcamSource::Mcfg,
        };
        assert!(matches!(
            check_window(&w, &image_first),
            Err(EcamRejection::Overlaps {
                owner: Owner::FirmwareImage,
                ..
            })
        ));
        let w = EcamWindow {
            base: u64::MAX - 0xFFFFF,
            bus_start: 0,
            bus_end: 1,
            source: EcamSource::Mcfg,
        };
        assert_eq!(check_window(&w, &[]), Err(EcamRejection::Overflow));
    }

    #[test]
    fn probe_must_agree_with_ports() {
        let q35_host = 0x29C0_8086;
        assert_eq!(check_probe(q35_host, q35_host), Ok(()));
        // Over RAM the window reads 0; over nothing, all-ones.
        assert_eq!(
            check_probe(0, q35_host),
            Err(EcamRejection::NotAnswering {
                port_id: q35_host,
                ecam_id: 0
            })
        );
        assert_eq!(
            check_probe(u32::MAX, q35_host),
            Err(EcamRejection::NotAnswering {
                port_id: q35_host,
                ecam_id: u32::MAX
            })
        );
        assert_eq!(
            check_probe(0x1237_8086, q35_host),
            Err(EcamRejection::Mismatch {
                port_id: q35_host,
                ecam_id: 0x1237_8086
            })
        );
        // No ports (microvm): the window is not contradicted.
        assert_eq!(check_probe(0x0008_1B36, u32::MAX), Ok(()));
        assert_eq!(check_probe(u32::MAX, u32::MAX), Ok(()));
        assert!(!answers(0x1234_0000) && !answers(0xFFFF_FFFF) && answers(0x11E8_1234));
    }
}
