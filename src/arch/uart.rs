//! 16550 UART (COM1 text, COM2 defmt frames). Hand-written instead of `uart_16550` because the exit path
//! must wait for the transmitter to be empty (LSR.TEMT), which that crate does not expose.

use x86_64::instructions::port::Port;

/// A 16550-compatible UART at a fixed I/O base.
#[derive(Debug, Clone, Copy)]
pub struct Uart {
    base: u16,
}

/// COM1: human-readable text and report records.
pub const COM1: Uart = Uart { base: 0x3F8 };
/// COM2: raw defmt frames.
pub const COM2: Uart = Uart { base: 0x2F8 };

const THR: u16 = 0; // transmit holding register (DLAB=0, write)
const RBR: u16 = 0; // receive buffer register (DLAB=0, read)
const IER: u16 = 1; // interrupt enable (DLAB=0)
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const LSR_DR: u8 = 1 << 0;
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;

impl Uart {
    fn out(&self, reg: u16, value: u8) {
        // SAFETY: the base is one of the two standard PC COM ports, which only this module drives; a write
        // to a UART register has no effect on memory safety.
        unsafe { Port::<u8>::new(self.base + reg).write(value) }
    }

    fn inp(&self, reg: u16) -> u8 {
        // SAFETY: as in `out`; reading LSR/RBR has no memory effects.
        unsafe { Port::<u8>::new(self.base + reg).read() }
    }

    /// 115200 baud, 8N1, FIFOs on, UART interrupts off (we poll).
    pub fn init(&self) {
        self.out(IER, 0x00);
        self.out(LCR, 0x80); // DLAB
        self.out(0, 0x01); // divisor low: 115200
        self.out(1, 0x00); // divisor high
        self.out(LCR, 0x03); // 8N1
        self.out(FCR, 0xC7); // enable and clear FIFOs
        self.out(MCR, 0x03); // DTR | RTS, OUT2 off: no UART interrupt reaches the PIC
    }

    /// Whether a UART answers at this base (an absent port reads 0xFF).
    pub fn present(&self) -> bool {
        self.inp(LSR) != 0xFF
    }

    /// Writes one byte, waiting for room in the transmitter.
    pub fn write_byte(&self, byte: u8) {
        let mut spins = 0u32;
        while self.inp(LSR) & LSR_THRE == 0 {
            spins += 1;
            if spins > 1_000_000 {
                return; // no UART (real machine without COM2): drop rather than hang
            }
        }
        self.out(THR, byte);
    }

    /// Writes bytes.
    pub fn write_bytes(&self, bytes: &[u8]) {
        for &b in bytes {
            self.write_byte(b);
        }
    }

    /// The next received byte, if one is waiting (LSR.DR). An absent port reads 0xFF everywhere, so
    /// it is checked with [`Uart::present`] first.
    pub fn read_byte(&self) -> Option<u8> {
        (self.present() && self.inp(LSR) & LSR_DR != 0).then(|| self.inp(RBR))
    }

    /// Waits until every byte has left the shift register (LSR.TEMT).
    pub fn drain(&self) {
        let mut spins = 0u32;
        while self.inp(LSR) & LSR_TEMT == 0 && spins < 10_000_000 {
            spins += 1;
        }
    }
}
