//! Known deviations of the platforms msifw runs on (like kvm-unit-tests' errata): where a platform is
//! known to break a promise of the SDM or the PCI spec, the check that meets it fails, which is msifw
//! doing its job. A row of [`DEVIATIONS`] names the check (scenario name, optionally a piece of its
//! detail), the platform (QEMU version range, accelerator, machine family, facts of the CPU topology the
//! firmware reported) and why, with a reference. After a run the host holds each scenario record against
//! the table ([`apply`]):
//!
//! - a `fail` a row covers becomes `xfail`, with the row's reason and reference (an expected failure:
//!   the exit status counts it as passed);
//! - a `pass` a row covers becomes `xpass`: the platform did what the row says it cannot, so either it
//!   was fixed (the row's version range is too wide) or the check did not reach the case the row is
//!   about. Either needs a person, so an `xpass` fails the run, as kvm-unit-tests counts XPASS as a
//!   failure (README "Known deviations");
//! - anything else stays as it is: a `fail` on a platform no row covers is a failure.
//!
//! The platform is what the host knows for certain: it launched QEMU itself, so it knows QEMU's version
//! (`qemu-system-x86_64 --version`), the accelerator and the machine type it asked for
//! ([`HostPlatform::of_run`]). A capture decoded from a machine, a Bochs run or a QEMU run whose
//! accelerator the verbatim `--qemu-arg`s may have changed is of a platform the host does not know for
//! certain: no row with that condition applies there, and the report says which row was not applied and
//! why. Topology facts come from the firmware's `platform` record (its `cpus`); without a CPU list a row
//! that needs a topology fact does not apply.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::qemu::{Accel, MachineFamily, MachineType, RunConfig};
use crate::report::{Platform, Report, Scenario, ScenarioResult};

/// A QEMU version, `major.minor.micro`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QemuVersion(pub u32, pub u32, pub u32);

impl QemuVersion {
    /// From the first line of `qemu-system-x86_64 --version`: `QEMU emulator version 7.2.22 (Debian ...)`
    /// (a missing micro is 0: `8.0` is `8.0.0`). `None` when the text holds no version.
    pub fn parse(text: &str) -> Option<QemuVersion> {
        let line = text.lines().find(|l| l.contains("version"))?;
        let rest = &line[line.find("version")? + "version".len()..];
        let word = rest.split_whitespace().next()?;
        let mut parts = word.split('.').map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = parts.next()??;
        let minor = parts.next()??;
        let micro = parts.next().flatten().unwrap_or(0);
        Some(QemuVersion(major, minor, micro))
    }
}

impl fmt::Display for QemuVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// QEMU versions `from` (inclusive) up to `before` (exclusive; `None`: no upper end known).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionRange {
    /// The first version covered.
    pub from: QemuVersion,
    /// The first version not covered.
    pub before: Option<QemuVersion>,
}

impl VersionRange {
    /// Whether `v` is in the range.
    pub fn contains(&self, v: QemuVersion) -> bool {
        v >= self.from && self.before.is_none_or(|b| v < b)
    }
}

impl fmt::Display for VersionRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.before {
            Some(b) => write!(f, "{} to before {b}", self.from),
            None => write!(f, "{} and later", self.from),
        }
    }
}

/// A fact of the CPU topology, from the firmware's `platform` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fact {
    /// One of the first n CPUs (index order, the ones a check covers: logical flat reaches CPUs 0-7) has
    /// an APIC ID above an ID no listed CPU has (`-smp 6,sockets=2,cores=3` gives 0,1,2,4,5,6: CPUs 3-5
    /// lie above the hole at 3; `-smp 18,sockets=2,cores=9` gives 0-8,16-24: its first 8 CPUs do not).
    ApicIdHoleWithin(usize),
    /// At least this many CPUs are listed.
    CpusAtLeast(usize),
    /// The host's kvm module has `vector_hashing` on (`/sys/module/kvm/parameters/vector_hashing`; a
    /// host fact, not the firmware's).
    KvmVectorHashing,
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::ApicIdHoleWithin(n) => write!(f, "one of the first {n} CPUs above a hole in the APIC IDs"),
            Fact::KvmVectorHashing => f.write_str("the kvm module's vector_hashing on"),
            Fact::CpusAtLeast(n) => write!(f, "at least {n} CPUs"),
        }
    }
}

/// One row of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deviation {
    /// A short stable name (`tcg-logical-apic-id-hole`), shown with the verdict.
    pub id: &'static str,
    /// The scenario names it covers.
    pub scenarios: &'static [&'static str],
    /// Only scenario records whose detail contains this text (`None`: any detail).
    pub detail: Option<&'static str>,
    /// Only controls (`true`) or only checks that are not controls (`false`).
    pub control: bool,
    /// QEMU versions.
    pub qemu: VersionRange,
    /// Accelerator (`None`: any).
    pub accel: Option<Accel>,
    /// Machine family (`None`: any).
    pub machine: Option<MachineFamily>,
    /// Topology facts that must all hold.
    pub facts: &'static [Fact],
    /// What the platform does, in a sentence.
    pub reason: &'static str,
    /// Where it is shown: smp-ir.md section, the platform's source file and lines.
    pub reference: &'static str,
}

const QEMU_7_2: VersionRange = VersionRange { from: QemuVersion(7, 2, 0), before: Some(QemuVersion(7, 3, 0)) };

/// The known deviations. QEMU rows cover the versions in which they were seen or read in the source
/// (7.2.0 source, 7.2.22 verified: shared/platform/smp-ir.md); widen a range only after checking the
/// other version, since a row that holds where the platform was fixed turns its pass into an `xpass`.
pub const DEVIATIONS: &[Deviation] = &[
    Deviation {
        id: "tcg-logical-apic-id-hole",
        scenarios: &["dest-logical-flat", "dest-logical-cluster"],
        detail: None,
        control: false,
        qemu: QEMU_7_2,
        accel: Some(Accel::Tcg),
        machine: None,
        // The checks cover CPUs 0-7 (flat: one LDR bit each; cluster: x2APIC IDs up to 7).
        facts: &[Fact::ApicIdHoleWithin(8)],
        reason: "QEMU TCG's logical-destination match stops at the first APIC ID no CPU has: a CPU whose \
                 APIC ID lies above a hole never receives a logical-mode MSI or IPI (flat and cluster)",
        reference: "smp-ir.md §2.3 bug 1; QEMU 7.2 hw/intc/apic.c apic_get_delivery_bitmask l.470-489 \
                    (`else break` l.485-486)",
    },
    Deviation {
        id: "tcg-cluster-broadcast",
        scenarios: &["dest-logical-cluster"],
        detail: Some("broadcast"),
        control: false,
        qemu: QEMU_7_2,
        accel: Some(Accel::Tcg),
        machine: None,
        facts: &[],
        reason: "QEMU TCG matches the xAPIC cluster destination 0xFF (broadcast) against cluster 0xF, which \
                 no CPU has: a cluster broadcast reaches nobody",
        reference: "smp-ir.md §2.3 bug 2; QEMU 7.2 hw/intc/apic.c l.470-489",
    },
    Deviation {
        id: "tcg-lowest-priority-lowest-id",
        scenarios: &["dest-lowest-priority"],
        detail: None,
        control: false,
        qemu: QEMU_7_2,
        accel: Some(Accel::Tcg),
        machine: None,
        // With one CPU the check has no arbitration to see, and passes: not an xpass.
        facts: &[Fact::CpusAtLeast(2)],
        reason: "QEMU TCG delivers a lowest-priority interrupt to the lowest-numbered APIC of the destination \
                 set and ignores the TPR (no arbitration): every tie went to CPU 0, and so did every message \
                 while CPU 0's TPR held the vector's class and another CPU was at priority 0",
        reference: "smp-ir.md §2.4; QEMU 7.2 hw/intc/apic.c apic_bus_deliver APIC_DM_LOWPRI l.222-240",
    },
    Deviation {
        id: "kvm-lowest-priority-vector-hashing",
        scenarios: &["dest-lowest-priority"],
        detail: None,
        control: false,
        qemu: QEMU_7_2,
        accel: Some(Accel::Kvm),
        machine: None,
        // With one CPU the check has no arbitration to see; with vector_hashing off KVM arbitrates.
        facts: &[Fact::CpusAtLeast(2), Fact::KvmVectorHashing],
        reason: "KVM's in-kernel local APIC gives a lowest-priority interrupt to the (vector mod n)-th CPU of \
                 the destination set while the kvm module's vector_hashing is on (its default), whatever the \
                 TPRs: vectors 0x33 and 0xdf to 4 CPUs always went to CPU 3, also while CPU 3's TPR held the \
                 class (host kernel 6.18, nested, xAPIC and x2APIC)",
        reference: "smp-ir.md §2.4; Linux arch/x86/kvm/lapic.c kvm_vector_to_index and \
                    kvm_apic_map_get_dest_lapic, arch/x86/kvm/x86.c vector_hashing",
    },
];

/// What the host knows of the platform of a QEMU run it launched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuPlatform {
    /// QEMU's version, or why it is not known (`--version` failed or said nothing readable).
    pub version: Result<QemuVersion, String>,
    /// The accelerator, or why it is not known for certain.
    pub accel: Result<Accel, String>,
    /// The machine type QEMU built.
    pub machine: MachineType,
    /// Under KVM, whether the host's kvm module hashes lowest-priority vectors
    /// (`/sys/module/kvm/parameters/vector_hashing`), or why it is not known.
    pub kvm_vector_hashing: Result<bool, String>,
}

/// The platform a report came from, as far as the host knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostPlatform {
    /// A QEMU run this host launched.
    Qemu(QemuPlatform),
    /// Not known (a capture from a machine, a Bochs run): why.
    Unknown(String),
}

impl fmt::Display for HostPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostPlatform::Qemu(q) => {
                match &q.version {
                    Ok(v) => write!(f, "QEMU {v}")?,
                    Err(_) => f.write_str("QEMU (version unknown)")?,
                }
                match &q.accel {
                    Ok(a) => write!(f, " {a}")?,
                    Err(_) => f.write_str(" (accelerator unknown)")?,
                }
                write!(f, " {}", q.machine.name)
            }
            HostPlatform::Unknown(why) => write!(f, "unknown ({why})"),
        }
    }
}

/// How long `qemu --version` may take.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The first line of `qemu --version`, asked once per binary (killed after [`VERSION_TIMEOUT`]).
pub fn qemu_version_line(qemu: &Path) -> Result<String, String> {
    static CACHE: OnceLock<Mutex<HashMap<PathBuf, Result<String, String>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(known) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(qemu) {
        return known.clone();
    }
    let answer = ask_version(qemu);
    cache.lock().unwrap_or_else(|e| e.into_inner()).insert(qemu.to_path_buf(), answer.clone());
    answer
}

fn ask_version(qemu: &Path) -> Result<String, String> {
    let what = format!("{} --version", qemu.display());
    let mut child = Command::new(qemu)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    // Read on a thread: a child that never ends its output (or leaves a grandchild holding the pipe)
    // costs the timeout, not a hang.
    let mut stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let answer = rx.recv_timeout(VERSION_TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    let out = answer.map_err(|_| format!("{what} did not answer within {} s", VERSION_TIMEOUT.as_secs()))?;
    out.lines().next().map(str::to_string).ok_or_else(|| format!("{what} printed nothing"))
}

impl HostPlatform {
    /// The platform of a QEMU run of `cfg`: QEMU's version from `--version`, the accelerator asked for
    /// (not known when a verbatim QEMU argument names one too: `-accel`, `-enable-kvm`, `accel=` in
    /// `-machine`), the machine type QEMU builds ([`MachineType::of`]).
    pub fn of_run(cfg: &RunConfig) -> HostPlatform {
        let version = qemu_version_line(&cfg.qemu).and_then(|line| QemuVersion::parse(&line).ok_or_else(|| format!("no version in `{line}`")));
        HostPlatform::Qemu(QemuPlatform { version, accel: accel_of(cfg), machine: MachineType::of(cfg), kvm_vector_hashing: kvm_vector_hashing() })
    }
}

/// The host kvm module's `vector_hashing` parameter (`Y`/`N`).
pub fn kvm_vector_hashing() -> Result<bool, String> {
    const PATH: &str = "/sys/module/kvm/parameters/vector_hashing";
    match std::fs::read_to_string(PATH).map(|t| t.trim().to_string()) {
        Ok(t) if t == "Y" || t == "1" => Ok(true),
        Ok(t) if t == "N" || t == "0" => Ok(false),
        Ok(t) => Err(format!("{PATH} says `{t}`")),
        Err(e) => Err(format!("{PATH}: {e}")),
    }
}

/// The accelerator of a run: `cfg.accel`, unless a verbatim QEMU argument may name another.
pub fn accel_of(cfg: &RunConfig) -> Result<Accel, String> {
    let other = cfg.qemu_args.iter().find(|a| matches!(a.trim_start_matches('-'), "accel" | "enable-kvm"));
    // `-machine ...,accel=...`: the value follows `-M`/`-machine`.
    let in_machine = cfg.qemu_args.windows(2).find(|w| {
        matches!(w[0].trim_start_matches('-'), "M" | "machine") && w[1].split(',').any(|i| i.starts_with("accel="))
    });
    match (other, in_machine) {
        (Some(a), _) => Err(format!("the QEMU argument `{a}` may choose another accelerator than --accel {}", cfg.accel)),
        (None, Some(w)) => Err(format!("the QEMU argument `{} {}` may choose another accelerator than --accel {}", w[0], w[1], cfg.accel)),
        (None, None) => Ok(cfg.accel),
    }
}

/// The topology facts of a `platform` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// The listed CPUs' APIC IDs, in index order; `None` without a CPU list (no `platform` record, a
    /// firmware that does not list its CPUs, no MADT).
    pub apic_ids: Option<Vec<u32>>,
}

impl Topology {
    /// From the report's `platform` record.
    pub fn of(platform: Option<&Platform>) -> Topology {
        let apic_ids = platform.map(|p| p.cpus.iter().map(|c| c.apic_id).collect::<Vec<_>>()).filter(|ids| !ids.is_empty());
        Topology { apic_ids }
    }

    /// Whether one of the first `n` CPUs (index order) has an APIC ID above the lowest ID no listed CPU
    /// has (`None` without a CPU list).
    pub fn apic_id_hole_within(&self, n: usize) -> Option<bool> {
        let ids = self.apic_ids.as_ref()?;
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        let first_missing = sorted.iter().enumerate().find(|&(i, &id)| id as usize != i).map_or(sorted.len(), |(i, _)| i);
        Some(ids.iter().take(n).any(|&id| id as usize > first_missing))
    }

    /// Whether a topology `fact` holds (`None`: not known; `KvmVectorHashing` is the host's, not a
    /// topology fact: `None` here).
    pub fn holds(&self, fact: Fact) -> Option<bool> {
        match fact {
            Fact::ApicIdHoleWithin(n) => self.apic_id_hole_within(n),
            Fact::CpusAtLeast(n) => self.apic_ids.as_ref().map(|ids| ids.len() >= n),
            Fact::KvmVectorHashing => None,
        }
    }

    /// `APIC IDs 0,1,2,4,5,6`, or `no CPU list`.
    pub fn describe(&self) -> String {
        match &self.apic_ids {
            Some(ids) => format!("APIC IDs {}", ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")),
            None => "no CPU list".into(),
        }
    }
}

impl Deviation {
    /// Whether the row is about this scenario record (name, control, detail), whatever the platform.
    pub fn covers_check(&self, s: &Scenario) -> bool {
        self.scenarios.contains(&s.name.as_str()) && self.control == s.control && self.detail.is_none_or(|d| s.detail.contains(d))
    }

    /// `Ok` when the row holds on this platform and topology, else the first condition that is not met
    /// or not known, in words.
    pub fn holds_on(&self, platform: &HostPlatform, topology: &Topology) -> Result<(), String> {
        let q = match platform {
            HostPlatform::Qemu(q) => q,
            HostPlatform::Unknown(why) => return Err(format!("the platform is not known: {why}")),
        };
        match &q.version {
            Ok(v) if self.qemu.contains(*v) => {}
            Ok(v) => return Err(format!("QEMU {v} is outside the row's versions ({})", self.qemu)),
            Err(why) => return Err(format!("QEMU's version is not known ({why})")),
        }
        if let Some(want) = self.accel {
            match &q.accel {
                Ok(a) if *a == want => {}
                Ok(a) => return Err(format!("the accelerator is {a}, the row is about {want}")),
                Err(why) => return Err(format!("the accelerator is not known for certain: {why}")),
            }
        }
        if let Some(want) = self.machine {
            if q.machine.family != want {
                return Err(format!("the machine is {}, the row is about {want:?}", q.machine.name));
            }
        }
        for &fact in self.facts {
            if fact == Fact::KvmVectorHashing {
                match &q.kvm_vector_hashing {
                    Ok(true) => continue,
                    Ok(false) => return Err(format!("the row needs {fact}; this host has it off")),
                    Err(why) => return Err(format!("the row needs {fact}, not known: {why}")),
                }
            }
            match topology.holds(fact) {
                Some(true) => {}
                Some(false) => return Err(format!("the row needs {fact}; the platform record lists {}", topology.describe())),
                None => return Err(format!("the row needs {fact}, and the platform record has no CPU list")),
            }
        }
        Ok(())
    }
}

/// What the report's scenario record says about the row that turned it into `xfail` or `xpass` (JSON
/// `"deviation": {...}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviationNote {
    /// The row's id.
    pub id: String,
    /// What the platform does.
    pub reason: String,
    /// Where it is shown.
    pub reference: String,
    /// The platform it was judged on (`QEMU 7.2.22 tcg q35, APIC IDs 0,1,2,4,5,6`).
    pub platform: String,
}

/// What [`apply`] did, kept in the report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// The platform the report was judged on; `None` when no scenario of the run is one a row is about,
    /// so the platform was not asked for ([`apply_for_run`]).
    pub platform: Option<HostPlatform>,
    /// Rows about a failed or passed scenario that did not hold on this platform, and why (for the
    /// reader: why a failure stayed a failure).
    pub not_applied: Vec<String>,
}

/// Holds every scenario record of `report` against [`DEVIATIONS`] ([`apply_table`]).
pub fn apply(report: &mut Report, platform: &HostPlatform) {
    apply_table(report, platform, DEVIATIONS)
}

/// [`apply`] for a QEMU run of `cfg`: QEMU is asked for its version ([`HostPlatform::of_run`]) only
/// when a scenario of the report passed or failed that a row is about ([`apply_if_relevant`]).
pub fn apply_for_run(report: &mut Report, cfg: &RunConfig) {
    apply_if_relevant(report, || HostPlatform::of_run(cfg))
}

/// [`apply`] on the platform `platform()` gives, asked only when a scenario of the report passed or
/// failed that a row is about; otherwise the report records that no platform was needed, the same
/// for a QEMU run and a capture of it.
pub fn apply_if_relevant(report: &mut Report, platform: impl FnOnce() -> HostPlatform) {
    let relevant = report
        .scenarios
        .iter()
        .any(|s| matches!(s.result, ScenarioResult::Pass | ScenarioResult::Fail) && DEVIATIONS.iter().any(|d| d.covers_check(s)));
    if relevant {
        apply(report, &platform());
    } else {
        report.deviations = Some(Applied { platform: None, not_applied: Vec::new() });
    }
}

/// Holds every scenario record of `report` against `table` on `platform`: a `fail` a row covers becomes
/// `xfail`, a `pass` one covers `xpass`, each with the row's [`DeviationNote`]. The first row that
/// holds decides. Records already judged (`xfail`, `xpass`) and skips are left alone. Applying twice
/// changes nothing more.
pub fn apply_table(report: &mut Report, platform: &HostPlatform, table: &[Deviation]) {
    let topology = Topology::of(report.platform.as_ref());
    let where_ = match platform {
        HostPlatform::Qemu(_) => format!("{platform}, {}", topology.describe()),
        HostPlatform::Unknown(_) => platform.to_string(),
    };
    let mut not_applied = Vec::new();
    for s in &mut report.scenarios {
        let new = match s.result {
            ScenarioResult::Fail => ScenarioResult::Xfail,
            ScenarioResult::Pass => ScenarioResult::Xpass,
            _ => continue,
        };
        let mut rows = table.iter().filter(|d| d.covers_check(s)).peekable();
        if rows.peek().is_none() {
            continue;
        }
        let mut misses = Vec::new();
        let hit = rows.find(|d| match d.holds_on(platform, &topology) {
            Ok(()) => true,
            Err(why) => {
                misses.push(format!("{}: {}", d.id, why));
                false
            }
        });
        match hit {
            Some(d) => {
                s.result = new;
                s.deviation = Some(DeviationNote {
                    id: d.id.into(),
                    reason: d.reason.into(),
                    reference: d.reference.into(),
                    platform: where_.clone(),
                });
            }
            // A pass no row holds for is simply a pass: only a failure needs the reader told why it stayed one.
            None if s.result == ScenarioResult::Fail => {
                for m in misses {
                    not_applied.push(format!(
                        "{} {}{}: known deviation {m}",
                        s.name,
                        s.bdf.as_deref().unwrap_or("-"),
                        if s.control { " (control)" } else { "" }
                    ));
                }
            }
            None => {}
        }
    }
    report.deviations = Some(Applied { platform: Some(platform.clone()), not_applied });
}

/// The `--json` document's `deviations`: the platform the report was judged on (`null` when it is not
/// known or was not needed, with `note` saying which), and the rows about a failure that did not hold,
/// with why.
pub fn to_json(applied: Option<&Applied>) -> serde_json::Value {
    let (platform, note, not_applied) = match applied {
        None => (None, Some("the table was not applied".to_string()), &[][..]),
        Some(Applied { platform: None, .. }) => {
            (None, Some("no scenario of the run is one a known deviation is about".to_string()), &[][..])
        }
        Some(Applied { platform: Some(HostPlatform::Unknown(why)), not_applied }) => {
            (None, Some(format!("the platform is not known: {why}")), &not_applied[..])
        }
        Some(Applied { platform: Some(platform), not_applied }) => (Some(platform.to_string()), None, &not_applied[..]),
    };
    serde_json::json!({"platform": platform, "note": note, "not_applied": not_applied})
}
