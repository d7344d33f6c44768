//! Runnable examples of embedding Ophion; see the `[[example]]` entries.
