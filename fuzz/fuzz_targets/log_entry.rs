//! A metadata log entry as read from the bucket: decoded, and when it
//! decodes, applied to an empty state (applying must refuse, never panic).
#![no_main]

use floe_broker::entry::LogObject;
use floe_broker::state::State;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(LogObject::Entry(entry)) = LogObject::decode(1, data) {
        let mut state = State::default();
        let _ = state.apply(1, &entry);
    }
});
