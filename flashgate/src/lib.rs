//! The `flashgate` program as a library: the command line, the wiring that runs any role
//! (or all of them in one process, with the Stripe emulator embedded), the operator
//! commands, the invariant checker and the demo. `main.rs` only dispatches; tests start
//! the same stack the binary does.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod shutdown;
pub mod stack;
pub mod verify;
