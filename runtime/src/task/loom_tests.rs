//! Model tests of the task state word (run with `RUSTFLAGS="--cfg loom"`).
