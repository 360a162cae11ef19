//! The heartbeat collector: one record every `every`, so a fresh install visibly does something.

use crate::events;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::json;
use std::time::Duration;

use crate::clock;
use crate::records::Record;
use crate::sink::RecordSink;
use crate::{tick_every, AbortOnDrop, Due};

#[derive(Clone)]
pub struct HeartbeatActor;

#[derive(Clone)]
pub struct HeartbeatArgs {
    /// Tree path, e.g. `collectors/heartbeat`.
    pub path: String,
    pub stream: String,
    pub node: String,
    pub every: Duration,
    pub sink: RecordSink,
}

pub enum HeartbeatMsg {
    Tick(Due),
}

pub struct HeartbeatState {
    args: HeartbeatArgs,
    beats: u64,
    _ticker: AbortOnDrop,
}

impl Actor for HeartbeatActor {
    type Msg = HeartbeatMsg;
    type State = HeartbeatState;
    type Arguments = HeartbeatArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HeartbeatMsg>,
        args: HeartbeatArgs,
    ) -> Result<HeartbeatState, ActorProcessingErr> {
        let ticker = tick_every(myself, args.every, HeartbeatMsg::Tick);
        Ok(HeartbeatState {
            args,
            beats: 0,
            _ticker: ticker,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<HeartbeatMsg>,
        HeartbeatMsg::Tick(_due): HeartbeatMsg,
        state: &mut HeartbeatState,
    ) -> Result<(), ActorProcessingErr> {
        state.beats += 1;
        let a = &state.args;
        tracing::info!(
            actor = a.path.as_str(),
            event = events::COLLECTOR_HEARTBEAT,
            stream = a.stream.as_str(),
            beat = state.beats,
            "heartbeat"
        );
        let record = Record {
            stream: a.stream.clone(),
            ts: clock::now_rfc3339(),
            data: json!({"node": a.node, "beat": state.beats}),
        };
        if let Err(e) = a.sink.submit(&a.path, vec![record]).await {
            // The gate stops this collector in a moment; the beat was never taken.
            tracing::debug!(
                actor = a.path.as_str(),
                event = events::COLLECTOR_HEARTBEAT,
                "beat {} not taken: {e}",
                state.beats
            );
        }
        Ok(())
    }
}
