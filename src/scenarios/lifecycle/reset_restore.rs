//! Reset wipes the MSI-X table (seed 001, "vfio/pci: Restore MSIx message prior to enabling"): a reset of
//! the function (FLR, or the parent bridge's Secondary Bus Reset) clears its BARs, Command and MSI-X table.
//! A configuration-space save holds the header and the capability registers but not the table, which
//! lives in BAR memory, so restoring only that leaves every entry zeroed and masked: interrupts are dead.
//! The guard rewrites the entries from the firmware's own cache of each message before enabling, as
//! Linux's __pci_restore_msix_state does.
//!
//! The control restores only what a configuration-space save holds; it passes when it sees the interrupts
//! stay dead (the failure the guard prevents).

use crate::scenarios::{delivery, Outcome, Provoked, Verdict};
use crate::scenarios::context::{Context, Run};
use crate::drivers::{Active, Device};
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::modes::IrqMode;
use crate::bus::pci::enumerate::Function;
use crate::bus::pci::reset::{self, SavedHeader};
use crate::bus::pci::ConfigRegion;
use crate::drivers::InterruptSource;
use crate::modes::msix::Restore;
use crate::modes::DeviceIrq;

/// How the function is reset.
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    /// Function Level Reset.
    Flr,
    /// Secondary Bus Reset of this bridge (the function is alone below it).
    SecondaryBusReset(&'a Function),
}

/// Resets `f`, restores it (fully, or as a configuration-space save would with `control`), brings the
/// device back and checks whether its interrupts flow.
pub fn run<C: ConfigRegion>(
    cfg: &C,
    f: &Function,
    method: Method<'_>,
    source: &mut dyn InterruptSource,
    irq: &mut DeviceIrq<'_, C>,
    control: bool,
) -> (Verdict, Provoked) {
    let nothing = Provoked::default();
    let saved = SavedHeader::save(cfg, f);
    let how = match method {
        Method::Flr => "FLR",
        Method::SecondaryBusReset(_) => "secondary bus reset",
    };
    let done = match method {
        Method::Flr => reset::function_level_reset(cfg, f),
        Method::SecondaryBusReset(bridge) => reset::secondary_bus_reset(cfg, bridge, f.bdf),
    };
    if let Err(e) = done {
        return (Verdict::new(Outcome::Fail, format_args!("{how}: {e}")), nothing);
    }
    let bars_wiped = !saved.bars_intact(cfg);
    saved.restore(cfg);
    let Some((entry, addr, data)) = irq.table_mismatch() else {
        return (
            // Not a failure of the device or of msifw: this reset does not wipe the table, so there is
            // nothing to restore (and nothing for the control to provoke).
            Verdict::new(
                Outcome::Skip,
                format_args!("{how} left the MSI-X table as it was (BARs {}); nothing to restore", if bars_wiped { "cleared" } else { "kept" }),
            ),
            nothing,
        );
    };
    // The control's provocation: every entry in use now holds what the reset left, not its message.
    let provoked = Provoked { live_messages: irq.vectors().len() as u32, ..Provoked::default() };
    let restored = irq.restore(if control { Restore::ConfigOnly } else { Restore::Full });
    if let Err(e) = source.reinitialize(irq.vectors().len()) {
        return (Verdict::new(Outcome::Fail, format_args!("device did not come back after the {how}: {e}")), provoked);
    }
    let delivery = delivery::run(source, irq, 1);
    if control {
        // The control's provocation undone: the device stopped, its table rewritten from the cache and
        // the device brought back, so what runs next finds it as the guard left it.
        let _ = source.stop();
        let _ = irq.restore(Restore::Full);
        let _ = source.reinitialize(irq.vectors().len());
    }
    let wiped = |v: &Verdict| {
        let mut s: heapless::String<512> = heapless::String::new();
        let _ = core::fmt::Write::write_fmt(
            &mut s,
            format_args!(
                "{how} wiped the table (entry {entry} read {addr:#x}/{data:#x}){}: {}",
                if bars_wiped { " and the BARs" } else { "" },
                v.detail
            ),
        );
        s
    };
    let verdict = match (control, delivery.outcome) {
        (false, Outcome::Pass) if restored => {
            Verdict::new(Outcome::Pass, format_args!("{}; table rewritten from the cache", wiped(&delivery)))
        }
        (false, _) => Verdict::new(Outcome::Fail, format_args!("after restoring from the cache: {}", wiped(&delivery))),
        (true, Outcome::Fail) => Verdict::new(
            Outcome::Pass,
            format_args!("detected: with only a configuration-space restore, {}", wiped(&delivery)),
        ),
        (true, _) => Verdict::new(
            Outcome::Fail,
            format_args!("interrupts still arrive after a configuration-space-only restore: the control shows nothing ({})", delivery.detail),
        ),
    };
    (verdict, provoked)
}

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    reset_restore(ctx.run, ctx.cfg, ctx.pci, ctx.active);
}

/// The reset-wipes-the-table scenario and its control on every MSI-X device that can be reset on its
/// own: by FLR, or by the Secondary Bus Reset of a bridge it is alone below.
fn reset_restore(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, active: &mut [Active]) {
    for dev in active.iter_mut().filter(|d| d.mode == IrqMode::Msix && !matches!(d.dev, Device::PciePort(_))) {
        let Some(f) = pci.functions.get(dev.index) else { continue };
        let method = if reset::has_flr(cfg, f) {
            Some(Method::Flr)
        } else {
            reset::private_bridge(&pci.functions, f).map(Method::SecondaryBusReset)
        };
        let Some(method) = method else {
            let v = Verdict::new(Outcome::Skip, format_args!("no FLR, and no bridge it is alone below for a secondary bus reset"));
            run.scenario("reset-restore", Some(f.bdf), &v);
            continue;
        };
        let (verdict, _) = self::run(cfg, f, method, dev.dev.source(), &mut dev.irq, false);
        run.scenario("reset-restore", Some(f.bdf), &verdict);
        let (verdict, provoked) = self::run(cfg, f, method, dev.dev.source(), &mut dev.irq, true);
        run.control("reset-restore", Some(f.bdf), &verdict, provoked, "the reset left the MSI-X table as it was: no entry lost its message");
    }
}

