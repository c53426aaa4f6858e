#![no_main]
//! Fuzz target `safetensors`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/safetensors/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "safetensors").expect("a target of fovea::fuzz");
    run(data);
});
