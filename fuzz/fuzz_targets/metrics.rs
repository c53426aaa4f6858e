#![no_main]
//! Fuzz target `metrics`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/metrics/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "metrics").expect("a target of fovea::fuzz");
    run(data);
});
