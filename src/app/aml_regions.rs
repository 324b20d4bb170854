//! The firmware's answers to the AML evaluator's operation-region accesses (`msifw_aml::Regions`), for
//! `platform::namespace::load`.
//!
//! Linux executes the firmware's AML against the hardware; msifw reads only where a read cannot change
//! the machine, and never writes:
//! - **PCI_Config** reads (the PIRQ route registers of a chipset's LPC/ISA bridge, a root port's
//!   registers): through configuration mechanism #1 (ports 0xCF8/0xCFC; the ECAM window is chosen later,
//!   and may need `_CBA`, which this evaluation gives), segment 0 only, the 256 bytes mechanism #1
//!   reaches. Configuration reads have no side effects (PCI 3.0 §6.1; the few read-to-clear registers are
//!   device-specific and not in the header or capabilities AML reads).
//! - **SystemMemory** reads of memory the boot memory map lists as RAM, ACPI reclaimable or ACPI NVS
//!   (E820 types 1, 3, 4: ordinary memory, where the firmware keeps its NVS variables, the `PICM`/`OSYS`
//!   fields `_PRT` methods test), below the end of the identity-mapped table memory. Memory-mapped chipset
//!   registers (anything else) are not read: a read there may have side effects.
//! - **SystemIO** reads: from the port, as Linux's interpreter makes them. Real firmware needs them where
//!   routing depends on them: on AMD machines `\_PIC(1)` itself reads ports (0xC00/0xC01 PIC/IOAPIC index
//!   and data, 0x64, 0x72/0x73), and a `\_PIC` that fails leaves `_PRT` on its PIC-mode branch. The
//!   side effect a port read can have (a status bit cleared) is the one the firmware's author wrote into
//!   the method. A port the AML wrote earlier in the run reads back what it wrote (the overlay), since
//!   the write never reached the hardware.
//! - Every other space (EmbeddedControl, SMBus, ...): not read.
//!
//! A read no rule answers ends that evaluation with a typed region error naming the region (a problem
//! line or a per-function "undescribed" route), never a guess. Writes (`\_PIC(1)`'s flag, an index
//! register) are kept in an [`Overlay`] and answer later reads of the same bytes; none reaches hardware.

use crate::boot::MemRegion;
use crate::bus::pci::config::{Bdf, ConfigRegion};
use crate::physmem::PhysMemory;
use crate::platform::namespace::{split_pci_config_address, SPACE_PCI_CONFIG, SPACE_SYSTEM_IO, SPACE_SYSTEM_MEMORY};
use msifw_aml::{NodeId, Overlay, Regions};

/// Reads the hardware where that is safe; keeps writes in an overlay.
pub(super) struct HardwareRegions<'a> {
    overlay: Overlay,
    /// Configuration mechanism #1.
    pub ports: &'a dyn ConfigRegion,
    /// Identity-mapped memory (the ACPI table memory).
    pub mem: &'a dyn PhysMemory,
    /// The boot memory map.
    pub memmap: &'a [MemRegion],
    /// Reads answered from the hardware (PCI_Config, SystemMemory, SystemIO), for the log.
    pub hardware_reads: u32,
    /// The port reader (`arch::pio::read_for_aml`; a simulated one in host tests).
    pub io: fn(u16, u8) -> Option<u32>,
}

impl<'a> HardwareRegions<'a> {
    pub(super) fn new(
        ports: &'a dyn ConfigRegion,
        mem: &'a dyn PhysMemory,
        memmap: &'a [MemRegion],
    ) -> Self {
        Self {
            overlay: Overlay::new(),
            ports,
            mem,
            memmap,
            hardware_reads: 0,
            io: crate::arch::pio::read_for_aml,
        }
    }

    fn hardware(&mut self, space: u8, addr: u64, width: u8) -> Option<u64> {
        let v = match space {
            SPACE_PCI_CONFIG => {
                let (seg, bus, dev, func, offset) = split_pci_config_address(addr);
                if seg != 0 || usize::from(offset) + usize::from(width) > 0x100 {
                    return None;
                }
                let bdf = Bdf::new(bus, dev, func);
                // Naturally aligned accesses of the field's width (each is two port accesses); bytes else.
                match width {
                    4 if offset % 4 == 0 => u64::from(self.ports.read32(bdf, offset)),
                    8 if offset % 4 == 0 => {
                        u64::from(self.ports.read32(bdf, offset))
                            | u64::from(self.ports.read32(bdf, offset + 4)) << 32
                    }
                    2 if offset % 2 == 0 => u64::from(self.ports.read16(bdf, offset)),
                    _ => (0..u16::from(width)).fold(0u64, |v, i| {
                        v | u64::from(self.ports.read8(bdf, offset + i)) << (8 * i)
                    }),
                }
            }
            SPACE_SYSTEM_MEMORY => {
                let end = addr.checked_add(u64::from(width))?;
                let ordinary = self.memmap.iter().any(|r| {
                    matches!(r.kind, 1 | 3 | 4)
                        && r.addr <= addr
                        && end <= r.addr.saturating_add(r.size)
                });
                if !ordinary {
                    return None;
                }
                let b = self.mem.bytes(addr, usize::from(width))?;
                b.iter()
                    .enumerate()
                    .fold(0u64, |v, (i, &x)| v | u64::from(x) << (8 * i))
            }
            SPACE_SYSTEM_IO => {
                let port = u16::try_from(addr).ok()?;
                // A field wider than 4 bytes is read as 4-byte units (ACPICA `AcpiHwReadPort` does the same).
                let mut v = 0u64;
                let mut done = 0u8;
                while done < width {
                    let w = match width - done {
                        4.. if (port + u16::from(done)) % 4 == 0 => 4,
                        2.. if (port + u16::from(done)) % 2 == 0 => 2,
                        _ => 1,
                    };
                    let part = (self.io)(port.checked_add(u16::from(done))?, w)?;
                    v |= u64::from(part) << (8 * u32::from(done));
                    done += w;
                }
                v
            }
            _ => return None,
        };
        self.hardware_reads = self.hardware_reads.saturating_add(1);
        Some(v)
    }
}

impl Regions for HardwareRegions<'_> {
    fn read(&mut self, region: NodeId, space: u8, addr: u64, width: u8) -> Option<u64> {
        if let Some(v) = self.overlay.read(region, space, addr, width) {
            return Some(v);
        }
        let mut v = self.hardware(space, addr, width)?;
        // Bytes AML wrote before read back as written.
        for i in 0..u64::from(width.min(8)) {
            if let Some(b) = self.overlay.read(region, space, addr.wrapping_add(i), 1) {
                v = (v & !(0xFF << (8 * i))) | b << (8 * i);
            }
        }
        Some(v)
    }

    fn write(&mut self, region: NodeId, space: u8, addr: u64, width: u8, value: u64) -> bool {
        self.overlay.write(region, space, addr, width, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::pci::config::sim::SimConfig;
    use crate::physmem::SliceMemory;
    use crate::platform::namespace::{pci_config_address, SPACE_SYSTEM_IO};

    #[test]
    fn reads_config_and_ordinary_memory_writes_nothing() {
        let sim = SimConfig::default();
        let lpc = sim.add(Bdf::new(0, 0x1F, 0), 0x8086, 0x2918, 0x060100);
        sim.poke(lpc, 0x60, &[0x0B, 0x0A, 0x80, 0x0C]);
        let ram = [0u8, 1, 2, 3, 4, 5, 6, 7];
        let mem = SliceMemory::new(0x1000, &ram);
        let map = [
            MemRegion {
                addr: 0x1000,
                size: 4,
                kind: 4,
            },
            MemRegion {
                addr: 0x1004,
                size: 4,
                kind: 2,
            },
        ];
        let mut r = HardwareRegions::new(&sim, &mem, &map);
        let pirq = pci_config_address(0, 0, 0x1F, 0, 0x60);
        assert_eq!(r.read(0, SPACE_PCI_CONFIG, pirq, 4), Some(0x0C80_0A0B));
        assert_eq!(
            r.read(0, SPACE_SYSTEM_MEMORY, 0x1001, 2),
            Some(0x0201),
            "ACPI NVS is read"
        );
        assert_eq!(
            r.read(0, SPACE_SYSTEM_MEMORY, 0x1004, 1),
            None,
            "reserved memory (registers) is not"
        );
        assert_eq!(
            r.read(0, SPACE_SYSTEM_MEMORY, 0x1003, 2),
            None,
            "nor a read reaching into it"
        );
        // Ports are read (Linux's interpreter reads them; AMD's `\_PIC` needs them), in aligned units.
        fn ports(port: u16, width: u8) -> Option<u32> {
            Some(match (port, width) {
                (0xB2, 1) => 0x5A,
                (0xC00, 4) => 0x4433_2211,
                (0xC04, 1) => 0x55,
                _ => return None,
            })
        }
        r.io = ports;
        assert_eq!(r.read(0, SPACE_SYSTEM_IO, 0xB2, 1), Some(0x5A), "a port is read");
        assert_eq!(r.read(0, SPACE_SYSTEM_IO, 0xC00, 5), Some(0x55_4433_2211), "in aligned units");
        assert_eq!(r.read(0, SPACE_SYSTEM_IO, 0xB3, 1), None, "a port the reader refuses");
        assert_eq!(
            r.read(
                0,
                SPACE_PCI_CONFIG,
                pci_config_address(1, 0, 0x1F, 0, 0x60),
                1
            ),
            None,
            "segment 1"
        );
        // A write lands in the overlay only, and reads back over the hardware's bytes.
        assert!(r.write(0, SPACE_PCI_CONFIG, pirq + 1, 1, 0x05));
        assert_eq!(r.read(0, SPACE_PCI_CONFIG, pirq, 4), Some(0x0C80_050B));
        assert_eq!(
            sim.read8(Bdf::new(0, 0x1F, 0), 0x61),
            0x0A,
            "hardware unchanged"
        );
        assert!(r.write(0, SPACE_SYSTEM_IO, 0xB2, 1, 0xA0));
        assert_eq!(r.read(0, SPACE_SYSTEM_IO, 0xB2, 1), Some(0xA0));
        assert_eq!(r.hardware_reads, 5, "three before, and two port reads");
    }
}
