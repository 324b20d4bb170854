//! The firmware command line (QEMU `-append`): space-separated words, like Linux's `pci=nomsi`.
//!
//! - `nomsi`: no MSI or MSI-X anywhere; `nomsix`: no MSI-X;
//! - `irq.BB:DD.F=msix|msi|intx|none`: the mode for one function;
//! - `x2apic=on|off`: use x2APIC when the CPU has it (default on);
//! - `rounds=N`: interrupts per source in the delivery checks (1-1000, default 2);
//! - `soak=N`: drive N interrupts (1-100,000,000) across every live device and report lost and duplicated;
//! - `selftest=exception|panic|stack-overflow`: raise a CPU exception (ud2), a panic, or run into the
//!   stack's guard page right after the IDT is up, to check that the fatal paths report on COM1 and exit
//!   with the crash code; `selftest=ap-panic` panics on the last CPU (through its mailbox) once the CPUs
//!   are up, `selftest=ap-no-sipi` sends the last CPU its INIT but no SIPI, so that it must be reported
//!   as not started while the run goes on; `selftest=ap-cycle` takes the last CPU offline and brings it
//!   back, checking its mailbox refuses and then serves again;
//! - `bench`: report the configuration and MMIO accesses per function and the time of each phase
//!   (`cargo run --release -- bench` sets it);
//! - `dispatch=N`: the interrupt-dispatch benchmark, N interrupts (1-100,000) per source and path;
//! - `bar_windows=crs|memmap`: where the windows come from when msifw assigns BARs (default `crs`: the
//!   DSDT's `PCI0._CRS`, the memory map only without it; `memmap`: the memory map's holes regardless);
//! - `scenario=NAME[,NAME...]` (repeatable): run optional scenarios as well (see [`SCENARIOS`]); `all` runs
//!   every one that can share a run (`msifw_proto::names::Selection::in_all`).
//! - `oracle`: once bus numbers are final, wait briefly for the host to take QEMU's `query-pci` (the
//!   launcher adds it; docs/protocol.md).
//!
//! Anything else is reported as a problem and otherwise ignored.

use crate::bus::pci::Bdf;
use crate::modes::IrqMode;
use heapless::Vec;

/// The words `scenario=` accepts, defined once for firmware and host in `msifw-proto`.
pub use msifw_proto::names::SELECTABLE as SCENARIOS;
use msifw_proto::names::Control;

// Every scenario fits in `Options::scenarios` (each index is kept once).
const _: () = assert!(SCENARIOS.len() <= 32);
// The run keeps which of them gave a verdict in one u32.
const _: () = assert!(SCENARIOS.len() <= 32);

/// The index in [`SCENARIOS`] of the optional scenario a report record named `name` belongs to: a
/// control's record counts for the scenario's own `-control` entry where one exists (`shutdown-control`,
/// `crash-restart-control`), else for the scenario (`reenable`'s control runs with `reenable`).
pub fn scenario_index(name: &str, control: bool) -> Option<usize> {
    let own = |control: bool| SCENARIOS.iter().position(|s| s.scenario.name() == name && s.control == control);
    let scenario = msifw_proto::names::Scenario::from_name(name)?;
    if control && scenario.control() == Control::OwnBoot {
        return own(true);
    }
    own(false)
}

/// Parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `nomsi`.
    pub no_msi: bool,
    /// `nomsix`.
    pub no_msix: bool,
    /// `x2apic=`.
    pub x2apic: bool,
    /// `rounds=`.
    pub rounds: u32,
    /// Per-function modes, as many as the line names (parsed once the heap exists: no fixed capacity).
    pub overrides: alloc::vec::Vec<(Bdf, IrqMode)>,
    /// `selftest=`.
    pub selftest: Option<SelfTest>,
    /// `scenario=`: indexes into [`SCENARIOS`], each once (so it never fills: see the assertion below).
    pub scenarios: Vec<u8, 32>,
    /// `soak=N`: interrupts to drive across every live device (0 = no soak).
    pub soak: u64,
    /// `bench`: report access counts and phase times.
    pub bench: bool,
    /// `dispatch=N`: interrupts per source and path in the dispatch benchmark (0 = not run).
    pub dispatch: u32,
    /// `bar_windows=memmap`: BAR windows from the memory map even where `PCI0._CRS` gives them.
    pub bar_windows_memmap: bool,
    /// `oracle`: wait for the host's `query-pci` once bus numbers are final (the launcher adds it).
    pub oracle: bool,
}

/// A deliberate failure, to check the fatal paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelfTest {
    /// Execute ud2 (#UD, vector 6).
    Exception,
    /// `panic!`.
    Panic,
    /// Unbounded recursion into the stack's guard page.
    StackOverflow,
    /// `panic!` on the last CPU, run there through its mailbox.
    ApPanic,
    /// The last CPU gets INIT but no SIPI: it never starts.
    ApNoSipi,
    /// The last CPU is taken offline and brought back online.
    ApCycle,
}

impl Default for Options {
    fn default() -> Self {
        Options { no_msi: false, no_msix: false, x2apic: true, rounds: 2, overrides: alloc::vec::Vec::new(), selftest: None, scenarios: Vec::new(), soak: 0, bench: false, dispatch: 0, bar_windows_memmap: false, oracle: false }
    }
}

/// A word that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineError {
    /// Not a known option.
    Unknown(heapless::String<64>),
    /// A known option with a bad value.
    BadValue(heapless::String<64>),
    /// `irq.BDF=` given again for a function already named: the last word is used.
    RepeatedOverride(Bdf, IrqMode),
    /// A `scenario=` list naming an unknown scenario: that name is ignored, the rest of the list is used.
    UnknownScenario {
        /// The unknown name.
        name: heapless::String<64>,
        /// The whole word.
        word: heapless::String<64>,
    },
    /// More bad words than are kept; the count of those not listed.
    MoreErrors(u32),
}

impl core::fmt::Display for CmdlineError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Unknown(w) => write!(f, "unknown option '{w}' ignored"),
            Self::BadValue(w) => write!(f, "bad value in '{w}' ignored"),
            Self::RepeatedOverride(bdf, mode) => {
                write!(f, "irq.{bdf}= given more than once; the last one (irq.{bdf}={}) is used", mode.name())
            }
            Self::UnknownScenario { name, word } => {
                write!(f, "unknown scenario '{name}' in '{word}' ignored; the other names in it are used")
            }
            Self::MoreErrors(n) => write!(f, "{n} more bad words, not listed"),
        }
    }
}

fn clip(word: &str) -> heapless::String<64> {
    let mut s = heapless::String::new();
    for c in word.chars() {
        if s.push(c).is_err() {
            break;
        }
    }
    s
}

/// Parses `BB:DD.F` (hex bus and device, decimal function).
pub fn parse_bdf(s: &str) -> Option<Bdf> {
    let (bus, rest) = s.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let bus = u8::from_str_radix(bus, 16).ok()?;
    let dev = u8::from_str_radix(dev, 16).ok()?;
    let func: u8 = func.parse().ok()?;
    (dev < 32 && func < 8).then_some(Bdf::new(bus, dev, func))
}

/// Parses the command line. Never fails: bad words come back as errors next to the options.
pub fn parse(line: &str) -> (Options, Vec<CmdlineError, MAX_ERRORS>) {
    let mut opts = Options::default();
    let mut errors = Vec::new();
    for word in line.split_ascii_whitespace() {
        let err = match word.split_once('=') {
            None => match word {
                "nomsi" => {
                    opts.no_msi = true;
                    None
                }
                "nomsix" => {
                    opts.no_msix = true;
                    None
                }
                "bench" => {
                    opts.bench = true;
                    None
                }
                "oracle" => {
                    opts.oracle = true;
                    None
                }
                _ => Some(CmdlineError::Unknown(clip(word))),
            },
            Some(("bar_windows", v)) => match v {
                "crs" => {
                    opts.bar_windows_memmap = false;
                    None
                }
                "memmap" => {
                    opts.bar_windows_memmap = true;
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some(("x2apic", v)) => match v {
                "on" => {
                    opts.x2apic = true;
                    None
                }
                "off" => {
                    opts.x2apic = false;
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some(("selftest", v)) => match v {
                "exception" => {
                    opts.selftest = Some(SelfTest::Exception);
                    None
                }
                "panic" => {
                    opts.selftest = Some(SelfTest::Panic);
                    None
                }
                "stack-overflow" => {
                    opts.selftest = Some(SelfTest::StackOverflow);
                    None
                }
                "ap-panic" => {
                    opts.selftest = Some(SelfTest::ApPanic);
                    None
                }
                "ap-no-sipi" => {
                    opts.selftest = Some(SelfTest::ApNoSipi);
                    None
                }
                "ap-cycle" => {
                    opts.selftest = Some(SelfTest::ApCycle);
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some(("scenario", list)) => {
                let mut bad = None;
                for name in list.split(',') {
                    if name == "all" {
                        for i in 0..SCENARIOS.len() as u8 {
                            if SCENARIOS[i as usize].in_all() && !opts.scenarios.contains(&i) {
                                let _ = opts.scenarios.push(i);
                            }
                        }
                    } else if let Some((i, _)) = msifw_proto::names::selection(name) {
                        if !opts.scenarios.contains(&(i as u8)) {
                            let _ = opts.scenarios.push(i as u8);
                        }
                    } else if bad.is_none() {
                        bad = Some(CmdlineError::UnknownScenario { name: clip(name), word: clip(word) });
                    } else {
                        // A second unknown name in the same word: reported on its own.
                        push_error(&mut errors, CmdlineError::UnknownScenario { name: clip(name), word: clip(word) });
                    }
                }
                bad
            }
            Some(("soak", v)) => match v.parse::<u64>() {
                Ok(n) if (1..=100_000_000).contains(&n) => {
                    opts.soak = n;
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some(("dispatch", v)) => match v.parse::<u32>() {
                Ok(n) if (1..=100_000).contains(&n) => {
                    opts.dispatch = n;
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some(("rounds", v)) => match v.parse::<u32>() {
                Ok(n) if (1..=1000).contains(&n) => {
                    opts.rounds = n;
                    None
                }
                _ => Some(CmdlineError::BadValue(clip(word))),
            },
            Some((key, v)) if key.starts_with("irq.") => {
                let mode = match v {
                    "msix" => Some(IrqMode::Msix),
                    "msi" => Some(IrqMode::Msi),
                    "intx" => Some(IrqMode::Intx),
                    "none" => Some(IrqMode::None),
                    _ => None,
                };
                match (key.strip_prefix("irq.").and_then(parse_bdf), mode) {
                    (Some(bdf), Some(mode)) => match opts.overrides.iter_mut().find(|(b, _)| *b == bdf) {
                        Some(kept) => {
                            kept.1 = mode;
                            Some(CmdlineError::RepeatedOverride(bdf, mode))
                        }
                        None => {
                            opts.overrides.push((bdf, mode));
                            None
                        }
                    },
                    _ => Some(CmdlineError::BadValue(clip(word))),
                }
            }
            Some(_) => Some(CmdlineError::Unknown(clip(word))),
        };
        match err {
            // A function named a third time: its one problem names the word now used.
            Some(CmdlineError::RepeatedOverride(bdf, mode)) if errors.iter().any(|e| matches!(e, CmdlineError::RepeatedOverride(b, _) if *b == bdf)) => {
                for e in errors.iter_mut() {
                    if let CmdlineError::RepeatedOverride(b, m) = e {
                        if *b == bdf {
                            *m = mode;
                        }
                    }
                }
            }
            Some(e) => push_error(&mut errors, e),
            None => {}
        }
    }
    (opts, errors)
}

/// Most bad words listed one by one; beyond them the last entry counts the rest.
pub const MAX_ERRORS: usize = 8;

/// Keeps `e`, or counts it in a last [`CmdlineError::MoreErrors`] entry when the list is full.
fn push_error(errors: &mut Vec<CmdlineError, MAX_ERRORS>, e: CmdlineError) {
    if errors.push(e).is_err() {
        match errors.last_mut() {
            Some(CmdlineError::MoreErrors(n)) => *n += 1,
            _ => {
                // The last one listed and this one are counted instead.
                errors.pop();
                let _ = errors.push(CmdlineError::MoreErrors(2));
            }
        }
    }
}

impl Options {
    /// Whether the optional scenario `name` was asked for.
    pub fn wants(&self, name: &str) -> bool {
        self.scenarios.iter().any(|&i| SCENARIOS.get(i as usize).is_some_and(|s| s.name == name))
    }

    /// Whether `scenario` was asked for (`control`: its control, asked for on its own as `NAME-control`).
    pub fn wants_scenario(&self, scenario: msifw_proto::names::Scenario, control: bool) -> bool {
        self.scenarios.iter().any(|&i| SCENARIOS.get(i as usize).is_some_and(|s| s.scenario == scenario && s.control == control))
    }

    /// The mode forced for `bdf`, if any.
    pub fn override_for(&self, bdf: Bdf) -> Option<IrqMode> {
        self.overrides.iter().rev().find(|(b, _)| *b == bdf).map(|(_, m)| *m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_named_three_times_is_one_problem_naming_the_last_word() {
        // `irq.1:0.0` is the same function as `irq.01:00.0`.
        let (o, e) = parse("irq.01:00.0=intx irq.01:00.0=msi irq.1:0.0=msix");
        assert_eq!(o.override_for(Bdf::new(1, 0, 0)), Some(IrqMode::Msix));
        assert_eq!(e.as_slice(), &[CmdlineError::RepeatedOverride(Bdf::new(1, 0, 0), IrqMode::Msix)]);
        assert_eq!(format!("{}", e[0]), "irq.01:00.0= given more than once; the last one (irq.01:00.0=msix) is used");
    }

    #[test]
    fn records_map_to_their_optional_scenario() {
        let idx = |n: &str| SCENARIOS.iter().position(|s| s.name == n);
        assert_eq!(scenario_index("reenable", false), idx("reenable"));
        // A control without an entry of its own belongs to its scenario.
        assert_eq!(scenario_index("reenable", true), idx("reenable"));
        assert_eq!(scenario_index("shutdown", true), idx("shutdown-control"));
        assert_eq!(scenario_index("shutdown", false), idx("shutdown"));
        assert_eq!(scenario_index("crash-restart", true), idx("crash-restart-control"));
        // Default checks are not optional scenarios.
        assert_eq!(scenario_index("msix-delivery", false), None);
        assert_eq!(scenario_index("write-order", true), None);
    }

    #[test]
    fn parses_known_options() {
        let (o, e) = parse("  nomsix irq.00:03.0=intx irq.01:1f.7=msi x2apic=off rounds=5 selftest=panic bench dispatch=10000 bar_windows=memmap");
        assert!(o.bar_windows_memmap);
        assert!(!parse("").0.bar_windows_memmap);
        assert_eq!(parse("bar_windows=acpi").1.len(), 1, "a bad value is reported");
        assert_eq!(o.selftest, Some(SelfTest::Panic));
        assert!(o.bench);
        assert_eq!(o.dispatch, 10_000);
        assert_eq!(parse("dispatch=0").1.len(), 1);
        assert_eq!(parse("dispatch=100001").0.dispatch, 0);
        assert!(e.is_empty(), "{e:?}");
        assert!(o.no_msix && !o.no_msi && !o.x2apic);
        assert_eq!(o.rounds, 5);
        assert_eq!(o.override_for(Bdf::new(0, 3, 0)), Some(IrqMode::Intx));
        assert_eq!(o.override_for(Bdf::new(1, 0x1f, 7)), Some(IrqMode::Msi));
        assert_eq!(o.override_for(Bdf::new(0, 2, 0)), None);
    }

    #[test]
    fn oracle_word() {
        assert!(!parse("nomsi").0.oracle);
        let (o, e) = parse("oracle nomsi");
        assert!(o.oracle && o.no_msi && e.is_empty(), "{e:?}");
        assert_eq!(parse("oracle=1").1.len(), 1, "the word takes no value");
    }

    #[test]
    fn scenarios_by_name_list_and_all() {
        let (o, e) = parse("scenario=intx-storm");
        assert!(e.is_empty() && o.wants("intx-storm"));
        let (o, e) = parse("scenario=all");
        assert!(e.is_empty() && SCENARIOS.iter().filter(|s| s.in_all()).all(|s| o.wants(s.name)));
        assert!(!o.wants("hot-unplug") && !o.wants("crash-restart-control"));
        assert!(!o.wants("crash-restart") && !o.wants("shutdown-control"));
        let (o, e) = parse("scenario=nope,intx-storm");
        assert!(o.wants("intx-storm"));
        assert!(matches!(&e[0], CmdlineError::UnknownScenario { name, .. } if name == "nope"));
        assert!(!parse("").0.wants("intx-storm"));
    }

    #[test]
    fn an_unknown_scenario_name_is_named_and_the_rest_of_the_list_used() {
        let (o, e) = parse("scenario=nope,reenable,bad2");
        assert!(o.wants("reenable"));
        assert_eq!(e.len(), 2, "{e:?}");
        let text = format!("{}", e[1]);
        assert!(text.contains("'nope'") || format!("{}", e[0]).contains("'nope'"), "{e:?}");
        assert!(e.iter().any(|e| format!("{e}").contains("'bad2'")), "{e:?}");
        assert!(format!("{}", e[0]).contains("the other names in it are used"), "{}", e[0]);
    }

    #[test]
    fn a_repeated_override_is_reported_and_the_last_one_used() {
        let (o, e) = parse("irq.00:02.0=msi irq.00:03.0=intx irq.00:02.0=intx");
        assert_eq!(o.override_for(Bdf::new(0, 2, 0)), Some(IrqMode::Intx));
        assert_eq!(o.overrides.len(), 2, "one entry per function");
        assert_eq!(e.as_slice(), &[CmdlineError::RepeatedOverride(Bdf::new(0, 2, 0), IrqMode::Intx)]);
        assert_eq!(format!("{}", e[0]), "irq.00:02.0= given more than once; the last one (irq.00:02.0=intx) is used");
    }

    #[test]
    fn every_override_a_long_line_names_is_kept() {
        // 16 were kept once and the rest dropped: a 4 KiB line holds about 200.
        let line: std::string::String = (0..200).map(|i| format!("irq.{:02x}:{:02x}.0=intx ", i / 32, i % 32)).collect();
        let (o, e) = parse(&line);
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(o.overrides.len(), 200);
        assert_eq!(o.override_for(Bdf::new(6, 7, 0)), Some(IrqMode::Intx));
    }

    #[test]
    fn more_bad_words_than_listed_are_counted_not_dropped() {
        let line: std::string::String = (0..20).map(|i| format!("bad{i} ")).collect();
        let (_, e) = parse(&line);
        assert_eq!(e.len(), MAX_ERRORS);
        assert_eq!(e[MAX_ERRORS - 1], CmdlineError::MoreErrors(20 - (MAX_ERRORS as u32 - 1)));
        let line: std::string::String = (0..MAX_ERRORS).map(|i| format!("bad{i} ")).collect();
        let (_, e) = parse(&line);
        assert!(matches!(&e[MAX_ERRORS - 1], CmdlineError::Unknown(w) if w.as_str() == "bad7"), "{e:?}");
    }

    #[test]
    fn bad_words_are_reported_not_fatal() {
        let (o, e) = parse("nomsi bogus irq.00:03.0=fast irq.zz:00.0=msi irq.00:20.0=msi rounds=0 x2apic=maybe a=b");
        assert!(o.no_msi);
        assert_eq!(e.len(), 7);
        assert!(matches!(&e[0], CmdlineError::Unknown(w) if w == "bogus"));
        assert!(matches!(&e[1], CmdlineError::BadValue(_)));
        assert_eq!(o.rounds, 2);
        let long = "x".repeat(300);
        let (_, e) = parse(&long);
        assert!(matches!(&e[0], CmdlineError::Unknown(w) if w.len() == 64));
    }
}
