//! QEMU's firmware configuration device (fw_cfg: QEMU docs/specs/fw_cfg.rst), read only for its signature,
//! to know that the machine's device models are QEMU's: the device-timer fence's order with them
//! (`time::fences_ordered`) and the drivers' bounds on their late messages are facts about QEMU.
//! Hand-written: one selector write and four data reads; no crate does only that.

use x86_64::instructions::port::Port;

/// The selector port (16-bit) and the data port (8-bit) on x86 (fw_cfg.rst, "Selector Register" and
/// "Data Register"; QEMU `FW_CFG_IO_BASE`).
const SELECTOR: u16 = 0x510;
const DATA: u16 = 0x511;
/// The signature item (`FW_CFG_SIGNATURE`), which reads "QEMU".
const SIGNATURE: u16 = 0x0000;

/// Whether QEMU's fw_cfg answers with its signature. Only asked under a hypervisor (CPUID.1:ECX bit 31):
/// on real hardware ports 0x510-0x511 may belong to something else. Read once.
pub fn qemu() -> bool {
    static KNOWN: spin::Once<bool> = spin::Once::new();
    *KNOWN.call_once(|| {
        super::cpu::under_hypervisor() && {
            let mut sig = [0u8; 4];
            // SAFETY: under a hypervisor, 0x510/0x511 are QEMU's fw_cfg ports or unassigned (reads 0xFF);
            // selecting the signature item changes nothing but fw_cfg's read position, which nothing else
            // in msifw uses.
            unsafe {
                Port::<u16>::new(SELECTOR).write(SIGNATURE);
                let mut data = Port::<u8>::new(DATA);
                for b in sig.iter_mut() {
                    *b = data.read();
                }
            }
            &sig == b"QEMU"
        }
    })
}
