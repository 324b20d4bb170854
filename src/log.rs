//! Logging macros: defmt frames on COM2 in the firmware; compiled out in host builds (where the
//! arguments are still evaluated, so host tests run the same code paths).
//! Format strings use defmt syntax (`{=u8}`, `{:#x}`).

#[cfg(target_os = "none")]
#[doc(hidden)]
pub use defmt as backend;

/// defmt `trace!` on COM2 (nothing in host builds).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! trace {
    ($($t:tt)*) => { $crate::log::backend::trace!($($t)*) };
}
/// defmt `trace!` on COM2 (nothing in host builds).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! trace {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

/// defmt `debug!` on COM2 (nothing in host builds).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! debug {
    ($($t:tt)*) => { $crate::log::backend::debug!($($t)*) };
}
/// defmt `debug!` on COM2 (nothing in host builds).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! debug {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

/// defmt `info!` on COM2 (nothing in host builds).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::backend::info!($($t)*) };
}
/// defmt `info!` on COM2 (nothing in host builds).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! info {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

/// defmt `warn!` on COM2 (nothing in host builds).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::backend::warn!($($t)*) };
}
/// defmt `warn!` on COM2 (nothing in host builds).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! warn {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}

/// defmt `error!` on COM2 (nothing in host builds).
#[cfg(target_os = "none")]
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::backend::error!($($t)*) };
}
/// defmt `error!` on COM2 (nothing in host builds).
#[cfg(not(target_os = "none"))]
#[macro_export]
macro_rules! error {
    ($fmt:literal $(, $arg:expr)* $(,)?) => {{ $( let _ = &$arg; )* }};
}
