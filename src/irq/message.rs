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
}

impl core::fmt::Display for MessageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::DestinationTooWide(id) => write!(f, "APIC ID {id} does not fit an 8-bit MSI destination"),
            Self::ReservedVector(v) => write!(f, "vector {v:#x} is reserved"),
            Self::Broadcast => write!(f, "APIC ID 0xff is the broadcast destination"),
            Self::OutsideMsiWindow(a) => write!(f, "message address {a:#x} outside the LAPIC window"),
        }
    }
}

/// Composes a fixed-delivery, edge-triggered message in physical destination mode to `apic_id`.
///
/// Address (SDM Figure 11-24): 0xFEE in bits 31:20, destination ID in 19:12, redirection hint (bit 3)
/// 0 and destination mode (bit 2) 0 = physical. Data (Figure 11-25): vector in 7:0, delivery mode 000 =
/// fixed in 10:8, level (bit 14) and trigger mode (bit 15) 0 = edge, as Linux's __irq_msi_compose_msg.
/// The same format serves x2APIC mode for IDs below 256.
pub const fn compose(apic_id: u32, vector: u8) -> Result<MsiMessage, MessageError> {
    if apic_id > 0xFF {
        return Err(MessageError::DestinationTooWide(apic_id));
    }
    if apic_id == 0xFF {
        return Err(MessageError::Broadcast);
    }
    if vector < 0x20 {
        return Err(MessageError::ReservedVector(vector));
    }
    Ok(MsiMessage { address: (MSI_ADDRESS_BASE | (apic_id << 12)) as u64, data: vector as u32 })
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
}
