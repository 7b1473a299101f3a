//! # greenmark-experiments
//!
//! Code the experiments in `scripts/` run that is not part of the library: what a
//! greenmark user embeds never pulls it in.
//!
//! - [`student`] trains a tiny causal transformer on a teacher's token ids, here on the CPU
//!   (the neural student of the radioactivity experiment, driven by
//!   `scripts/radioactivity/students.py` through the example `neural_student`).
#![deny(missing_docs)]

pub mod student;
