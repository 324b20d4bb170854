//! INTx routing rules that do not need firmware tables: the PCI-to-PCI bridge swizzle, the q35 (ICH9)
//! chipset rule, and the i440fx/PIIX3 PIRQ route registers (qemu-7.2-facts.md section 6). Pure logic.

/// An interrupt pin: 0 = INTA .. 3 = INTD (the Interrupt Pin register holds this + 1).
pub type Pin = u8;

/// The pin a device's `pin` arrives on at its bridge's primary side (PCI-to-PCI Bridge 1.2, Table 9-1):
/// rotate by the device number on the secondary bus.
pub const fn swizzle(device: u8, pin: Pin) -> Pin {
    (pin + device) % 4
}

/// The GSI ICH9's APIC-mode routing gives a bus-0 `slot`/`pin` (ich9_lpc_map_irq with the chipset-config
/// defaults, and QEMU's DSDT PRTA): PIRQE-H rotated by slot for slots 0-24, PIRQE-H by pin for slot 30 (the
/// DMI-to-PCI bridge, hard-wired), PIRQA-D by pin for 25-29 and 31; PIRQn drives GSI 16 + n.
pub const fn q35_chipset_gsi(slot: u8, pin: Pin) -> u32 {
    let pirq = match slot {
        25..=29 | 31 => pin % 4,
        30 => 4 + pin % 4,
        _ => 4 + (slot + pin) % 4,
    };
    16 + pirq as u32
}

/// PIIX3 PIRQ routing: the PIRQ line a bus-0 `slot`/`pin` is wired to (pci_slot_get_pirq).
pub const fn piix_pirq(slot: u8, pin: Pin) -> u8 {
    (slot.wrapping_sub(1).wrapping_add(pin)) & 3
}

/// The ISA IRQ a PIIX3 PIRQ route register (PIRQRC, config 0x60-0x63 of 00:01.0) selects: bit 7 set
/// means routing disabled; IRQs 0-2, 8 and 13 are reserved (PIIX3 datasheet 2.2.7).
pub const fn piix_route_irq(pirqrc: u8) -> Option<u8> {
    if pirqrc & 0x80 != 0 {
        return None;
    }
    match pirqrc & 0x0F {
        0..=2 | 8 | 13 => None,
        irq => Some(irq),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q35_rule_matches_qemu_facts() {
        // Verified in qemu-7.2-facts.md: slot 2 -> 22, 3 -> 23, 4 -> 20, 5 -> 21, 6 -> 22, 24 -> 20 (INTA).
        for (slot, gsi) in [(2, 22), (3, 23), (4, 20), (5, 21), (6, 22), (24, 20)] {
            assert_eq!(q35_chipset_gsi(slot, 0), gsi, "slot {slot}");
        }
        assert_eq!(q35_chipset_gsi(31, 0), 16);
        assert_eq!(q35_chipset_gsi(25, 3), 19);
        assert_eq!(q35_chipset_gsi(30, 1), 21);
    }

    #[test]
    fn swizzle_behind_root_ports() {
        // edu (INTA) at 01:00.0 behind a root port at 00:07.0 -> GSI 23; behind 00:08.0 -> GSI 20.
        assert_eq!(q35_chipset_gsi(7, swizzle(0, 0)), 23);
        assert_eq!(q35_chipset_gsi(8, swizzle(0, 0)), 20);
        assert_eq!(swizzle(1, 3), 0);
        assert_eq!(swizzle(2, 1), 3);
    }

    #[test]
    fn piix_routing() {
        // With PIRQRC = 10, 10, 11, 11: slot 2 -> 10, 3 -> 11, 4 -> 11, 5 -> 10, 6 -> 10, 24 -> 11.
        let rc = [10u8, 10, 11, 11];
        for (slot, irq) in [(2, 10), (3, 11), (4, 11), (5, 10), (6, 10), (24, 11)] {
            assert_eq!(piix_route_irq(rc[piix_pirq(slot, 0) as usize]), Some(irq), "slot {slot}");
        }
        assert_eq!(piix_route_irq(0x80), None);
        assert_eq!(piix_route_irq(0x8B), None);
        assert_eq!(piix_route_irq(2), None);
        assert_eq!(piix_route_irq(13), None);
    }
}
