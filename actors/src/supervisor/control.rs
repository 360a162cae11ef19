//! Operator verbs on a supervisor's children (start, stop, restart, add, remove, replace), by tree path, checked before anything is done and refused for the daemon's essential actors.

use super::{ChildInfo, ControlError, SupervisorMsg, SupervisorState, Verb};
use ractor::ActorRef;

use crate::board::ActorState;

impl SupervisorState {
    pub(super) fn resolve(&self, names: &[String]) -> Result<Vec<usize>, ControlError> {
        let mut out = Vec::new();
        for name in names {
            if name == "all" || name == "*" {
                out.extend(0..self.children.len());
                continue;
            }
            match self.index(name) {
                Some(i) => out.push(i),
                None => {
                    return Err(ControlError::UnknownChild {
                        name: name.clone(),
                        supervisor: if self.path.is_empty() {
                            "fushi".into()
                        } else {
                            self.path.clone()
                        },
                        known: self.children.iter().map(|c| c.spec.name.clone()).collect(),
                    })
                }
            }
        }
        // Keep the first occurrence of each child: `dedup` alone only drops adjacent repeats, so
        // `restart a b a` (or `all a`) restarted `a` twice.
        let mut seen = std::collections::HashSet::new();
        out.retain(|&i| seen.insert(i));
        Ok(out)
    }

    /// Applies `verb` to children named by tree path; `head/rest` is handed to child supervisor
    /// `head`. Names are checked before anything is done, so a typo changes nothing.
    pub(super) async fn control(
        &mut self,
        myself: &ActorRef<SupervisorMsg>,
        verb: Verb,
        names: Vec<String>,
    ) -> Result<(), ControlError> {
        let (nested, local): (Vec<String>, Vec<String>) =
            names.into_iter().partition(|n| n.contains('/'));
        let idxs = self.resolve(&local)?;
        self.check_essential(verb, &idxs)?;
        let mut routes: Vec<(usize, String)> = Vec::new();
        for name in nested {
            let (head, rest) = name.split_once('/').unwrap_or((&name, ""));
            let idx = self.resolve(&[head.to_string()])?[0];
            let c = &self.children[idx];
            if !c.spec.supervisor {
                return Err(ControlError::NotASupervisor {
                    path: c.path.clone(),
                });
            }
            if c.cell.is_none() {
                return Err(ControlError::NotRunning {
                    path: c.path.clone(),
                });
            }
            routes.push((idx, rest.to_string()));
        }
        for (idx, rest) in routes {
            let c = &self.children[idx];
            let Some(cell) = c.cell.clone() else {
                return Err(ControlError::NotRunning {
                    path: c.path.clone(),
                });
            };
            let sub: ActorRef<SupervisorMsg> = cell.into();
            let path = c.path.clone();
            match ractor::call!(sub, |reply| SupervisorMsg::Control(verb, vec![rest], reply)) {
                Ok(res) => res?,
                Err(e) => {
                    return Err(ControlError::Unreachable {
                        path,
                        error: e.to_string(),
                    })
                }
            }
        }
        match verb {
            Verb::Stop => {
                for &i in idxs.iter().rev() {
                    self.children[i].spec.hold(true);
                    self.stop_child(i, "requested").await;
                }
            }
            Verb::Start => {
                for &i in &idxs {
                    let c = &mut self.children[i];
                    c.spec.hold(false);
                    if matches!(c.state, ActorState::Stopped | ActorState::Fatal) {
                        // A manual start is a fresh start: the failure streak is forgiven.
                        c.consecutive = 0;
                        c.escalated = false;
                        self.start_child(myself, i, false).await;
                    }
                }
            }
            Verb::Restart => {
                for &i in idxs.iter().rev() {
                    self.stop_child(i, "restart requested").await;
                }
                for &i in &idxs {
                    // The operator starts it again: what they stopped before is forgiven.
                    self.children[i].spec.hold(false);
                    self.start_child(myself, i, true).await;
                }
            }
        }
        Ok(())
    }

    /// Refuses a stop of the daemon's own actors, and a restart of several at once: with
    /// `control` or `storage` down the request that asked for it could not even be answered.
    fn check_essential(&self, verb: Verb, idxs: &[usize]) -> Result<(), ControlError> {
        let essential: Vec<String> = idxs
            .iter()
            .map(|&i| &self.children[i])
            .filter(|c| c.spec.essential)
            .map(|c| c.path.clone())
            .collect();
        match (verb, &essential[..]) {
            (Verb::Stop, [path, ..]) => Err(ControlError::Essential { path: path.clone() }),
            (Verb::Restart, [_, _, ..]) => {
                Err(ControlError::EssentialTogether { paths: essential })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn info(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                name: c.spec.name.clone(),
                path: c.path.clone(),
                state: c.state,
                consecutive_failures: c.consecutive,
                escalated: c.escalated,
                generation: c.generation,
                held: c.spec.held(),
            })
            .collect()
    }
}
