//! Integration tests: the real `fushi` binary, driven from outside as a user and systemd would.

#![allow(
    clippy::disallowed_methods,
    reason = "these tests drive the real daemon, a separate process, and wait on it in real time"
)]

mod util;

mod alert;
mod backpressure;
mod bundle;
mod cli;
mod cli_truth;
mod config;
mod control_all;
mod crash;
mod datapath;
mod fdflood;
mod health;
mod holes;
mod http;
mod http_collector;
mod leader;
mod leader_etcd;
mod messages;
mod metrics;
mod nesting;
mod outage;
mod package;
mod report;
mod restart;
mod slo;
mod stress;
mod systemd;
mod systemd_boot;
mod tail_collector;
mod top;
mod verify;
