//! Names shared by firmware and host: scenarios (and which need a boot of their own), interrupt modes,
//! outcomes.
