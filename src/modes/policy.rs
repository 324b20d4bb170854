//! Which interrupt mode a driven function gets, and what is tried when it cannot be had: Linux's
//! `pci_alloc_irq_vectors` policy (drivers/pci/msi/api.c, `pci_alloc_irq_vectors_affinity`): MSI-X with
//! as many vectors as asked for, else with fewer, else MSI, else INTx; `pci=nomsi` and msifw's `nomsix`
//! and `irq.BDF=` words decide before it. Pure: the function's offers and the command line in, a mode
//! and a reason out.

use super::{IrqError, IrqMode};
use crate::bus::pci::caps;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::Bdf;
use crate::cmdline::Options;
use crate::irq::vector::VectorError;
use alloc::string::String;

/// The interrupt modes a function offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offers {
    /// An MSI-X capability.
    pub msix: bool,
    /// An MSI capability.
    pub msi: bool,
    /// Interrupt Pin (0: none, 1-4: INTA-INTD, anything else reserved).
    pub pin: u8,
}

impl Offers {
    /// What `f`'s capabilities and Interrupt Pin offer.
    pub fn of(f: &Function) -> Offers {
        Offers { msix: f.caps.find(caps::id::MSIX).is_some(), msi: f.caps.find(caps::id::MSI).is_some(), pin: f.interrupt_pin }
    }

    fn intx(self) -> bool {
        (1..=4).contains(&self.pin)
    }
}

/// The mode function `bdf` starts with: the best it offers unless the command line says otherwise, and
/// why when it is not the best (naming the command-line word that decided it). [`IrqMode::None`]: not
/// set up at all (`irq.BDF=none`, or no mode offered).
pub fn choose_mode(opts: &Options, bdf: Bdf, offers: Offers) -> (IrqMode, Option<String>) {
    if let Some(mode) = opts.override_for(bdf) {
        let lacks = match mode {
            IrqMode::Msix => !offers.msix,
            IrqMode::Msi => !offers.msi,
            IrqMode::Intx => !offers.intx(),
            IrqMode::None => false,
        };
        let why = if lacks {
            alloc::format!("irq.{bdf}={} on the command line, which the function does not offer", mode.name())
        } else {
            alloc::format!("irq.{bdf}={} on the command line", mode.name())
        };
        return (mode, Some(why));
    }
    if offers.msix && !opts.no_msix && !opts.no_msi {
        return (IrqMode::Msix, None);
    }
    if offers.msi && !opts.no_msi {
        return (IrqMode::Msi, offers.msix.then(|| String::from("MSI-X disabled on the command line (nomsix)")));
    }
    let why = if opts.no_msi && (offers.msi || offers.msix) {
        "MSI disabled on the command line"
    } else if opts.no_msix && offers.msix {
        "MSI-X disabled on the command line (nomsix), and no MSI capability"
    } else {
        "no MSI or MSI-X capability"
    };
    if !offers.intx() {
        return (IrqMode::None, Some(alloc::format!("{why}, and no INTx pin: not driven")));
    }
    (IrqMode::Intx, Some(String::from(why)))
}

/// After enabling MSI-X with `asked` vectors failed with `e`: how many to try next. Fewer only when the
/// CPU's vectors ran out (Linux's `__pci_enable_msix_range` retrying with the count the allocator can
/// give), down to one; any other error is the mode's.
pub fn fewer_msix(asked: u16, e: &IrqError) -> Option<u16> {
    match e {
        IrqError::Vector(VectorError::Exhausted { .. }) if asked > 1 => Some(asked - 1),
        _ => None,
    }
}

/// After `failed` could not be set up (at any vector count): the mode to try next, if the function
/// offers one (MSI-X, then MSI, then INTx; `pci_alloc_irq_vectors` with `PCI_IRQ_ALL_TYPES`). Only when
/// the mode was chosen automatically: a mode the command line asks for is not replaced.
pub fn next_mode(failed: IrqMode, offers: Offers) -> Option<IrqMode> {
    match failed {
        IrqMode::Msix if offers.msi => Some(IrqMode::Msi),
        // Any pin, as the fallback always tried: a reserved one fails INTx setup with its own error.
        IrqMode::Msix | IrqMode::Msi if offers.pin != 0 => Some(IrqMode::Intx),
        _ => None,
    }
}

/// Which CPU each of a device's `sources` interrupt sources goes to: source `j` of the `device`-th
/// driven device to `online[(device + j) % online.len()]`. Each device's sources cover the CPUs round
/// robin (each CPU gets ⌊sources/n⌋ or ⌈sources/n⌉ of them, as Linux's irq_create_affinity_masks spreads a
/// device's queues), and successive devices start one CPU further, so single-source devices cover the
/// CPUs too. No online CPU: nothing (the caller has nowhere to aim and says so).
pub fn spread(device: usize, sources: usize, online: &[usize]) -> alloc::vec::Vec<usize> {
    if online.is_empty() {
        return alloc::vec::Vec::new();
    }
    (0..sources).map(|j| online[(device % online.len() + j) % online.len()]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_covers_every_cpu_evenly_and_rotates_by_device() {
        let online = [0, 1, 2, 4]; // index 3 failed to start
        assert_eq!(spread(0, 4, &online), [0, 1, 2, 4]);
        assert_eq!(spread(1, 4, &online), [1, 2, 4, 0]);
        // More sources than CPUs: each CPU gets 2 or 3 of 10.
        let s = spread(2, 10, &online);
        for cpu in online {
            let n = s.iter().filter(|&&c| c == cpu).count();
            assert!((2..=3).contains(&n), "CPU {cpu} got {n}");
        }
        // Single-source devices land on successive CPUs.
        let firsts: std::vec::Vec<usize> = (0..5).map(|d| spread(d, 1, &online)[0]).collect();
        assert_eq!(firsts, [0, 1, 2, 4, 0]);
        // One CPU: everything on it; none: nowhere; a huge device index does not overflow.
        assert_eq!(spread(7, 3, &[0]), [0, 0, 0]);
        assert!(spread(0, 3, &[]).is_empty());
        assert_eq!(spread(usize::MAX, 2, &online), [online[usize::MAX % 4], online[(usize::MAX % 4 + 1) % 4]]);
        assert!(spread(3, 0, &online).is_empty());
        // Only CPUs from the list, never an index past it.
        let many: std::vec::Vec<usize> = (0..300).collect();
        assert!(spread(5, 1000, &many).iter().all(|c| *c < 300));
    }

    const ALL: Offers = Offers { msix: true, msi: true, pin: 1 };
    const BDF: Bdf = Bdf::new(0, 3, 0);

    fn opts(line: &str) -> Options {
        crate::cmdline::parse(line).0
    }

    #[test]
    fn best_mode_first() {
        assert_eq!(choose_mode(&opts(""), BDF, ALL), (IrqMode::Msix, None));
        assert_eq!(choose_mode(&opts(""), BDF, Offers { msix: false, ..ALL }), (IrqMode::Msi, None));
        let (m, why) = choose_mode(&opts(""), BDF, Offers { msix: false, msi: false, pin: 2 });
        assert_eq!((m, why.as_deref()), (IrqMode::Intx, Some("no MSI or MSI-X capability")));
        let (m, why) = choose_mode(&opts(""), BDF, Offers { msix: false, msi: false, pin: 0 });
        assert_eq!((m, why.as_deref()), (IrqMode::None, Some("no MSI or MSI-X capability, and no INTx pin: not driven")));
        // A reserved pin is no INTx.
        assert_eq!(choose_mode(&opts(""), BDF, Offers { msix: false, msi: false, pin: 5 }).0, IrqMode::None);
    }

    #[test]
    fn command_line_words() {
        let (m, why) = choose_mode(&opts("nomsix"), BDF, ALL);
        assert_eq!((m, why.as_deref()), (IrqMode::Msi, Some("MSI-X disabled on the command line (nomsix)")));
        assert_eq!(choose_mode(&opts("nomsix"), BDF, Offers { msix: false, ..ALL }), (IrqMode::Msi, None));
        let (m, why) = choose_mode(&opts("nomsi"), BDF, ALL);
        assert_eq!((m, why.as_deref()), (IrqMode::Intx, Some("MSI disabled on the command line")));
        let (m, why) = choose_mode(&opts("nomsix"), BDF, Offers { msi: false, ..ALL });
        assert_eq!((m, why.as_deref()), (IrqMode::Intx, Some("MSI-X disabled on the command line (nomsix), and no MSI capability")));
        let (m, why) = choose_mode(&opts("irq.00:03.0=msi"), BDF, ALL);
        assert_eq!((m, why.as_deref()), (IrqMode::Msi, Some("irq.00:03.0=msi on the command line")));
        let (m, why) = choose_mode(&opts("irq.00:03.0=msix"), BDF, Offers { msix: false, ..ALL });
        assert_eq!((m, why.as_deref()), (IrqMode::Msix, Some("irq.00:03.0=msix on the command line, which the function does not offer")));
        assert_eq!(choose_mode(&opts("irq.00:03.0=none"), BDF, ALL).0, IrqMode::None);
        // The last word for a function counts; another function's word changes nothing.
        assert_eq!(choose_mode(&opts("irq.00:03.0=msi irq.00:03.0=intx"), BDF, ALL).0, IrqMode::Intx);
        assert_eq!(choose_mode(&opts("irq.00:04.0=intx"), BDF, ALL), (IrqMode::Msix, None));
    }

    #[test]
    fn fewer_msix_vectors_only_when_vectors_run_out() {
        let out = IrqError::Vector(VectorError::Exhausted { requested: 5 });
        assert_eq!(fewer_msix(5, &out), Some(4));
        assert_eq!(fewer_msix(1, &out), None);
        assert_eq!(fewer_msix(5, &IrqError::ReadBack { entry: 0 }), None);
        assert_eq!(fewer_msix(5, &IrqError::NoCapability(IrqMode::Msix)), None);
    }

    #[test]
    fn msix_then_msi_then_intx() {
        assert_eq!(next_mode(IrqMode::Msix, ALL), Some(IrqMode::Msi));
        assert_eq!(next_mode(IrqMode::Msix, Offers { msi: false, ..ALL }), Some(IrqMode::Intx));
        assert_eq!(next_mode(IrqMode::Msi, ALL), Some(IrqMode::Intx));
        assert_eq!(next_mode(IrqMode::Msi, Offers { pin: 0, ..ALL }), None);
        assert_eq!(next_mode(IrqMode::Msix, Offers { msi: false, pin: 0, ..ALL }), None);
        assert_eq!(next_mode(IrqMode::Intx, ALL), None);
        assert_eq!(next_mode(IrqMode::None, ALL), None);
    }
}
