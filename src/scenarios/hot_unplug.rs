//! `hot-unplug` (optional, by name: the host must remove a device): hot removal while interrupts are live.

use super::context::{push_problem, Context, Run, OUTCOMES};
use super::device_checks::live_devices_deliver;
use super::{Outcome, Verdict};
use crate::drivers::Active;
use crate::bus::pci::config::PlatformConfig;
use crate::bus::pci::enumerate::Enumeration;
use crate::drivers::pcie_port;
use crate::modes::IrqMode;
use crate::time;
use alloc::vec::Vec;

/// [`crate::scenarios::Stage::Live`].
pub(crate) fn step(ctx: &mut Context<'_>) {
    hot_unplug(ctx.run, ctx.cfg, ctx.pci, ctx.active);
}

/// How long `hot-unplug` waits for the host's `device_del` (the attention button), and then for the
/// function to vanish once its slot is powered off.
const UNPLUG_WAIT_US: u64 = 10_000_000;
const GONE_WAIT_US: u64 = 1_000_000;

/// Hot removal while interrupts are live (`scenario=hot-unplug`; the host sends QMP `device_del` when it
/// sees the `hot-unplug: waiting` line). On the attention button the slot is powered off; the function
/// then reads all-ones, and it is torn down (vectors freed) while every other device keeps delivering.
fn hot_unplug(run: &mut Run, cfg: &'static PlatformConfig, pci: &Enumeration, active: &mut [Active]) {
    let ports: Vec<usize> = pci
        .functions
        .iter()
        .enumerate()
        .filter(|(_, p)| pcie_port::is_hotplug_port(cfg, p))
        .filter(|(_, p)| {
            let Some((lo, hi)) = p.bridge_buses else { return false };
            active.iter().any(|a| a.mode != IrqMode::None && pci.functions.get(a.index).is_some_and(|c| (lo..=hi).contains(&c.bdf.bus)))
        })
        .map(|(i, _)| i)
        .collect();
    if ports.is_empty() {
        let v = Verdict::new(Outcome::Skip, format_args!("no driven device below a hot-plug port"));
        run.scenario("hot-unplug", None, &v);
        return;
    }
    crate::println!("msifw: hot-unplug: waiting for device_del below {} port(s)", ports.len());
    let t0 = time::now_us();
    let mut pressed = None;
    // Polled every millisecond, untraced (the Slot Status reads and the RW1C write of the button break
    // no ordering rule and would fill the trace).
    crate::bus::pci::trace::paused(|| {
        time::wait_until(UNPLUG_WAIT_US, || {
            pressed = ports.iter().copied().find(|&i| pcie_port::take_attention_button(cfg, &pci.functions[i]));
            if pressed.is_none() {
                time::delay_us(1000);
            }
            pressed.is_some()
        })
    });
    let Some(port_index) = pressed else {
        let v = Verdict::new(Outcome::Fail, format_args!("no attention button within {} s: the host sent no device_del", UNPLUG_WAIT_US / 1_000_000));
        run.scenario("hot-unplug", None, &v);
        return;
    };
    let port = &pci.functions[port_index];
    let button_us = time::now_us() - t0;
    let Some((lo, hi)) = port.bridge_buses else { return };
    let children: Vec<usize> = active
        .iter()
        .enumerate()
        .filter(|(_, a)| a.mode != IrqMode::None && pci.functions.get(a.index).is_some_and(|c| (lo..=hi).contains(&c.bdf.bus)))
        .map(|(i, _)| i)
        .collect();
    pcie_port::power_off_slot(cfg, port);
    let t1 = time::now_us();
    let gone = crate::bus::pci::trace::paused(|| {
        time::wait_until(GONE_WAIT_US, || {
            children.iter().all(|&i| crate::bus::pci::ConfigRegion::read32(cfg, pci.functions[active[i].index].bdf, 0) == u32::MAX)
        })
    });
    let gone_us = time::now_us() - t1;
    pcie_port::acknowledge_slot_events(cfg, port);
    // Torn down: the mode's shutdown writes to a function that is no longer there (the writes go nowhere),
    // and its vectors return to the allocator.
    let mut freed = 0;
    for &i in children.iter() {
        let a = &mut active[i];
        freed += a.irq.vectors().len();
        a.irq.shutdown();
        a.mode = IrqMode::None;
        if let Some(o) = OUTCOMES.lock().get_mut(a.index) {
            push_problem(o, format_args!("hot-removed during the run; its mode was shut down"));
        }
    }
    // The others keep working.
    let (others, failed) = live_devices_deliver(run, active, "hot-unplug");
    let v = if !gone {
        Verdict::new(Outcome::Fail, format_args!("slot of {} powered off, but its function still answers after {gone_us} us", port.bdf))
    } else if failed > 0 {
        Verdict::new(Outcome::Fail, format_args!("{failed} of {others} remaining devices stopped delivering after the removal"))
    } else {
        Verdict::new(
            Outcome::Pass,
            format_args!(
                "device_del below {}: attention button after {} ms, slot off, {} function(s) read all-ones after {gone_us} us, {freed} vectors freed; {others} other devices still deliver",
                port.bdf,
                button_us / 1000,
                children.len()
            ),
        )
    };
    run.scenario("hot-unplug", Some(port.bdf), &v);
}

