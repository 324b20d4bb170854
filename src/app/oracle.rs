//! The host's oracle (`oracle` on the command line; the launcher adds it to every QEMU run): once bus
//! numbers are final (after the boot firmware's and msifw's own numbering and BAR assignment), the
//! firmware says so on COM1 and waits for one byte on COM1's input. Meanwhile the host asks the live
//! VM for QEMU's own list of PCI functions (QMP `query-pci`), which it holds against the report's
//! function records (docs/protocol.md). QEMU exits the moment the firmware writes the exit port, so
//! the question must be asked while the firmware waits.

use crate::arch::uart::COM1;
use crate::cmdline::Options;
use crate::time;

/// The line the host waits for (`host/src/oracle.rs` `MARKER`).
const MARKER: &str = "msifw: oracle: bus numbers final, waiting for the host's query-pci";
/// How long the firmware waits for the host's byte. The host answers in milliseconds; the margin is
/// for a loaded host.
const WAIT_US: u64 = 10_000_000;

/// With `oracle` on the command line: prints [`MARKER`] and waits up to [`WAIT_US`] for a byte on
/// COM1's input. Without an answer it says so and goes on (the host then fails its check).
pub(super) fn wait_for_host(opts: &Options) {
    if !opts.oracle {
        return;
    }
    // Whatever arrived earlier is not this answer.
    while COM1.read_byte().is_some() {}
    crate::println!("{MARKER}");
    let t0 = time::now_us();
    if time::wait_until(WAIT_US, || COM1.read_byte().is_some()) {
        crate::info!(
            "oracle: the host answered in {=u64} us",
            time::now_us() - t0
        );
    } else {
        crate::println!(
            "msifw: oracle: no answer from the host within {} s; going on",
            WAIT_US / 1_000_000
        );
    }
}
