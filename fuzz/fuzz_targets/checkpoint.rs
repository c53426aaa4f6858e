#![no_main]
//! Fuzz target `checkpoint`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/checkpoint/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "checkpoint").expect("a target of fovea::fuzz");
    run(data);
});
