#![no_main]
//! Fuzz target `config`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/config/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "config").expect("a target of fovea::fuzz");
    run(data);
});
