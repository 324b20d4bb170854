//! MSI/MSI-X message composition for x86 (SDM Vol. 3A 11.11, "Message Signalled Interrupts"): one
//! function builds every message the firmware writes.

/// Base of the MSI address window (SDM 11.11.1: bits 31:20 = 0xFEE).
pub const MSI_ADDRESS_BASE: u32 = 0xFEE0_0000;

/// An MSI/MSI-X message: the address and data a function writes to interrupt a CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiMessage {
    /// Message address (upper 32 bits zero on x86 without remapping).
    pub address: u64,
    /// Message data.
    pub data: u32,
}

/// Why no message could be composed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageError {
    /// The destination APIC ID does not fit the 8-bit destination field (needs interrupt remapping or
    /// the extended destination ID).
    DestinationTooWide(u32),
    /// APIC ID 0xFF is the xAPIC physical-mode broadcast, not one CPU.
    Broadcast,
    /// A composed address outside the LAPIC window 0xFEEx_xxxx (checked before anything is written).
    OutsideMsiWindow(u64),
    /// Vectors 0-15 are illegal for fixed delivery (SDM 11.5.2) and 16-31 are exceptions.
    ReservedVector(u8),
    /// A logical destination with no bit set reaches no CPU.
    EmptyDestination,
}

impl core::fmt::Display for MessageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DestinationTooWide(id) => write!(f, "APIC ID {id} does not fit an 8-bit MSI destination"),
            Self::ReservedVector(v) => write!(f, "vector {v:#x} is reserved"),
            Self::Broadcast => write!(f, "APIC ID 0xff is the broadcast destination"),
            Self::OutsideMsiWindow(a) => write!(f, "message address {a:#x} outside the LAPIC window"),
            Self::EmptyDestination => write!(f, "logical destination 0 reaches no CPU"),
        }
    }
}

/// Where a message (or IOAPIC entry) is aimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Destination {
    /// One CPU by APIC ID, physical destination mode (SDM 11.6.2.1).
    Physical(u32),
    /// xAPIC logical flat model (DFR = 0xF): every CPU whose LDR[31:24] shares a bit with the mask
    /// (SDM 11.6.2.2).
    LogicalFlat(u8),
    /// x2APIC logical (cluster) destination, `(cluster << 16) | member bitmap` (SDM 11.12.10.2). An MSI
    /// or IOAPIC entry carries 8 destination bits only, which an x2APIC-mode LAPIC compares as cluster 0,
    /// members 7:0 (KVM's kvm_apic_match_logical_addr): wider destinations need interrupt remapping.
    LogicalCluster(u32),
}

/// How a message is delivered among its destination's CPUs (SDM 11.11.2, delivery mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// 000: every CPU of the destination.
    Fixed,
    /// 001: the one CPU of the destination with the lowest priority.
    LowestPriority,
}

/// MSI address bit 2 (SDM Figure 11-24): destination mode, 1 = logical.
pub const ADDRESS_DM_LOGICAL: u32 = 1 << 2;
/// MSI address bit 3: redirection hint.
pub const ADDRESS_RH: u32 = 1 << 3;
/// MSI data bits 10:8 (SDM Figure 11-25): delivery mode.
pub const DATA_DELIVERY_SHIFT: u32 = 8;
/// Delivery mode 001, lowest priority.
pub const DELIVERY_LOWEST_PRIORITY: u32 = 1;

/// The 8-bit destination field, logical-mode flag and delivery-mode value of `dest` / `delivery`: what
/// both an MSI (address 19:12) and an IOAPIC entry (bits 63:56) carry.
pub const fn destination_field(dest: Destination) -> Result<(u8, bool), MessageError> {
    match dest {
        Destination::Physical(id) => {
            if id > 0xFF {
                return Err(MessageError::DestinationTooWide(id));
            }
            if id == 0xFF {
                return Err(MessageError::Broadcast);
            }
            Ok((id as u8, false))
        }
        Destination::LogicalFlat(mask) => {
            if mask == 0 {
                return Err(MessageError::EmptyDestination);
            }
            Ok((mask, true))
        }
        Destination::LogicalCluster(ldr) => {
            if ldr > 0xFF {
                return Err(MessageError::DestinationTooWide(ldr));
            }
            if ldr == 0 {
                return Err(MessageError::EmptyDestination);
            }
            Ok((ldr as u8, true))
        }
    }
}

/// Composes a message to `dest` with `delivery` on `vector`, edge-triggered.
///
/// Address (SDM 11.11.1, Figure 11-24): 0xFEE in bits 31:20, destination ID in 19:12, redirection hint
/// (bit 3) set only for lowest-priority delivery and destination mode (bit 2) 1 = logical, as Linux's
/// msi_compose_msg did while it offered lowest priority (MSI_ADDR_REDIRECTION_LOWPRI). Data (11.11.2,
/// Figure 11-25): vector in 7:0, delivery mode in 10:8 (000 fixed, 001 lowest priority), level (bit 14)
/// and trigger mode (bit 15) 0 = edge. Upper address 0: no extended destination.
pub const fn compose_to(dest: Destination, delivery: Delivery, vector: u8) -> Result<MsiMessage, MessageError> {
    let (field, logical) = match destination_field(dest) {
        Ok(f) => f,
        Err(e) => return Err(e),
    };
    if vector < 0x20 {
        return Err(MessageError::ReservedVector(vector));
    }
    let (rh, mode) = match delivery {
        Delivery::Fixed => (0, 0),
        Delivery::LowestPriority => (ADDRESS_RH, DELIVERY_LOWEST_PRIORITY << DATA_DELIVERY_SHIFT),
    };
    let dm = if logical { ADDRESS_DM_LOGICAL } else { 0 };
    Ok(MsiMessage { address: (MSI_ADDRESS_BASE | (field as u32) << 12 | rh | dm) as u64, data: vector as u32 | mode })
}

/// Composes a fixed-delivery, edge-triggered message in physical destination mode to `apic_id`:
/// [`compose_to`] with [`Destination::Physical`] and [`Delivery::Fixed`] (address 0xFEE | ID << 12, data
/// = the vector), as Linux's __irq_msi_compose_msg. The same format serves x2APIC mode for IDs below 256.
pub const fn compose(apic_id: u32, vector: u8) -> Result<MsiMessage, MessageError> {
    compose_to(Destination::Physical(apic_id), Delivery::Fixed, vector)
}

/// An IOAPIC redirection table entry as two 32-bit halves (82093AA datasheet 3.2.4; ICH9 datasheet
/// 13.5.8): `low` = vector 7:0, delivery mode 10:8, destination mode 11 (1 = logical), polarity 13
/// (1 = active low), trigger mode 15 (1 = level), mask 16; `high` = destination in 63:56.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirection {
    /// Register 0x10 + 2n.
    pub low: u32,
    /// Register 0x11 + 2n.
    pub high: u32,
}

/// Redirection entry bit 16: masked.
pub const RTE_MASKED: u32 = 1 << 16;

/// Composes a redirection entry to `dest` with `delivery` on `vector` (the destination byte is the same
/// field an MSI carries: the IOAPIC turns the entry into one, QEMU's ioapic_entry_parse).
pub const fn compose_redirection(
    dest: Destination,
    delivery: Delivery,
    vector: u8,
    level: bool,
    active_low: bool,
    masked: bool,
) -> Result<Redirection, MessageError> {
    let (field, logical) = match destination_field(dest) {
        Ok(f) => f,
        Err(e) => return Err(e),
    };
    if vector < 0x20 {
        return Err(MessageError::ReservedVector(vector));
    }
    let mode = match delivery {
        Delivery::Fixed => 0,
        Delivery::LowestPriority => DELIVERY_LOWEST_PRIORITY << 8,
    };
    let low = vector as u32
        | mode
        | if logical { 1 << 11 } else { 0 }
        | if active_low { 1 << 13 } else { 0 }
        | if level { 1 << 15 } else { 0 }
        | if masked { RTE_MASKED } else { 0 };
    Ok(Redirection { low, high: (field as u32) << 24 })
}

/// Whether `address` lies in the LAPIC MSI window (checked before any message is written to a device).
pub const fn in_msi_window(address: u64) -> bool {
    address >> 20 == 0xFEE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composes_bit_for_bit() {
        let m = compose(0, 0x30).unwrap();
        assert_eq!(m.address, 0xFEE0_0000);
        assert_eq!(m.data, 0x0000_0030);
        let m = compose(0x12, 0xEF).unwrap();
        assert_eq!(m.address, 0xFEE1_2000, "destination in bits 19:12, physical mode, RH=0");
        assert_eq!(m.data, 0xEF, "fixed delivery, edge, vector only");
        assert_eq!(m.data & (1 << 15), 0, "edge triggered");
        assert_eq!(m.address & 0b1100, 0, "RH and DM clear");
        assert!(in_msi_window(m.address));
    }

    #[test]
    fn rejects_wide_ids_and_reserved_vectors() {
        assert_eq!(compose(256, 0x30), Err(MessageError::DestinationTooWide(256)));
        assert_eq!(compose(0xFF, 0x30), Err(MessageError::Broadcast));
        assert!(compose(0xFE, 0x30).is_ok());
        assert_eq!(compose(0, 0x0F), Err(MessageError::ReservedVector(0x0F)));
        assert!(!in_msi_window(0xFED0_0000));
        assert!(!in_msi_window(0));
    }

    #[test]
    fn every_destination_mode_and_delivery_bit_for_bit() {
        use Delivery::*;
        use Destination::*;
        // Physical fixed: the old compose, exactly.
        assert_eq!(compose_to(Physical(3), Fixed, 0x41), compose(3, 0x41));
        assert_eq!(compose_to(Physical(3), Fixed, 0x41).unwrap(), MsiMessage { address: 0xFEE0_3000, data: 0x41 });
        // Logical flat: DM (bit 2) set, mask in 19:12.
        assert_eq!(compose_to(LogicalFlat(0x0A), Fixed, 0x50).unwrap(), MsiMessage { address: 0xFEE0_A004, data: 0x50 });
        assert_eq!(compose_to(LogicalFlat(0xFF), Fixed, 0x50).unwrap().address, 0xFEEF_F004, "logical broadcast");
        // Lowest priority: delivery mode 001 in data 10:8 and RH (bit 3) set.
        assert_eq!(compose_to(LogicalFlat(0x06), LowestPriority, 0x72).unwrap(), MsiMessage { address: 0xFEE0_600C, data: 0x172 });
        assert_eq!(compose_to(Physical(1), LowestPriority, 0x72).unwrap(), MsiMessage { address: 0xFEE0_1008, data: 0x172 });
        // x2APIC cluster 0, members 0 and 2.
        assert_eq!(compose_to(LogicalCluster(0x0000_0005), Fixed, 0x60).unwrap(), MsiMessage { address: 0xFEE0_5004, data: 0x60 });
        for m in [compose_to(LogicalFlat(1), Fixed, 0x30).unwrap(), compose_to(LogicalCluster(1), LowestPriority, 0x30).unwrap()] {
            assert!(in_msi_window(m.address));
            assert_eq!(m.data & (1 << 15), 0, "edge");
            assert_eq!(m.address >> 32, 0, "no extended destination");
        }
    }

    #[test]
    fn destinations_a_message_cannot_carry_are_refused() {
        use Delivery::*;
        use Destination::*;
        assert_eq!(compose_to(LogicalFlat(0), Fixed, 0x30), Err(MessageError::EmptyDestination));
        assert_eq!(compose_to(LogicalCluster(0), Fixed, 0x30), Err(MessageError::EmptyDestination));
        // Cluster 1 (x2APIC IDs 16-31), or member bits 8-15: need interrupt remapping.
        assert_eq!(compose_to(LogicalCluster(0x0001_0001), Fixed, 0x30), Err(MessageError::DestinationTooWide(0x0001_0001)));
        assert_eq!(compose_to(LogicalCluster(0x100), Fixed, 0x30), Err(MessageError::DestinationTooWide(0x100)));
        assert_eq!(compose_to(Physical(0x100), LowestPriority, 0x30), Err(MessageError::DestinationTooWide(0x100)));
        assert_eq!(compose_to(Physical(0xFF), Fixed, 0x30), Err(MessageError::Broadcast));
        assert_eq!(compose_to(LogicalFlat(1), LowestPriority, 0x1F), Err(MessageError::ReservedVector(0x1F)));
    }

    #[test]
    fn redirection_entries_bit_for_bit() {
        use Delivery::*;
        use Destination::*;
        // Level, active low, physical APIC 2, vector 0xE0, masked: 0x1_A0E0 low, 0x0200_0000 high.
        let r = compose_redirection(Physical(2), Fixed, 0xE0, true, true, true).unwrap();
        assert_eq!(r, Redirection { low: 0x0001_A0E0, high: 0x0200_0000 });
        // Logical flat mask 0x0C, lowest priority, edge, active high, unmasked.
        let r = compose_redirection(LogicalFlat(0x0C), LowestPriority, 0x41, false, false, false).unwrap();
        assert_eq!(r, Redirection { low: 0x0000_0941, high: 0x0C00_0000 });
        assert_eq!(compose_redirection(Physical(0x1FF), Fixed, 0x41, true, true, false), Err(MessageError::DestinationTooWide(0x1FF)));
        assert_eq!(compose_redirection(LogicalFlat(0), Fixed, 0x41, true, true, false), Err(MessageError::EmptyDestination));
    }
}
