//! A native produce request: query string, content type and body, parsed as
//! the agent's handler parses them. The first byte picks the content type,
//! and the input up to its first newline is the query string.
#![no_main]

use libfuzzer_sys::fuzz_target;

const CONTENT_TYPES: [&str; 3] = ["application/json", "application/x-ndjson", "application/octet-stream"];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else { return };
    let content_type = CONTENT_TYPES[pick as usize % CONTENT_TYPES.len()];
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&[][..], rest),
    };
    let Ok(query) = std::str::from_utf8(query) else { return };
    let _ = floe_agent::api::fuzzing::produce_request(query, content_type, body);
});
