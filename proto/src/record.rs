//! The report's record types, as the firmware sends them and the host decodes them.
