#![no_main]
//! Fuzz target `image`: see `fovea::fuzz` (the test suite replays `tests/data/fuzz/image/`).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (_, run) = fovea::fuzz::TARGETS.iter().find(|(name, _)| *name == "image").expect("a target of fovea::fuzz");
    run(data);
});
