//! sealbox (CLI library).
