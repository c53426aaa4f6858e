#![no_main]
//! Fuzz target `idx`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/idx/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "idx").expect("a target of fovea::fuzz");
    run(data);
});
