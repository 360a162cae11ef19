//! Integration tests: the real `fushi` binary, driven from outside as a user and systemd would.

mod util;

mod config;
mod crash;
mod restart;
mod systemd;
