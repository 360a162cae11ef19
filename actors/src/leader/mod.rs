//! Leader election (SPEC §4.4): one node of several collects, the others stand by; this holds the file backend's lock protocol, on which the leader actor is to be built.
//!
//! What is here: [`lock`], the lock file on the primary (exclusive create by `link(2)`,
//! renewal by atomic replace, take-over of a stale lock, staleness timed on the reader's own
//! clock), tested on real files with racing threads. Not here yet, and so `[leader] enabled`
//! still changes nothing: the actor that renews, fences itself and gates the collectors, the
//! epoch handed to storage, the etcd backend.

pub mod lock;
