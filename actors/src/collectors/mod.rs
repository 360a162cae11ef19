//! Collectors: the actors that produce records, one per `[[collector]]`, children of the `collectors` supervisor.

pub mod command;
pub mod heartbeat;
