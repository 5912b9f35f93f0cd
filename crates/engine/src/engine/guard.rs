//! The blast-radius guard: at most so many actions per PF and per host within its window.

use vfguard_model::{Bdf, Millis};

use super::Engine;

impl Engine {
    pub(super) fn guard_ok(&mut self, pf: Option<Bdf>, now: Millis) -> Result<(), String> {
        let w = self.policy.guard_window;
        while self
            .recent
            .front()
            .is_some_and(|(t0, _)| t0.saturating_add(w) <= now)
        {
            self.recent.pop_front();
        }
        let host = self.recent.len();
        let on_pf = self
            .recent
            .iter()
            .filter(|(_, p)| *p == pf && pf.is_some())
            .count();
        if host >= usize::try_from(self.policy.max_actions_per_host).unwrap_or(usize::MAX) {
            return Err(format!(
                "guard: {host} actions on the host in the last {} ms",
                w
            ));
        }
        if pf.is_some()
            && on_pf >= usize::try_from(self.policy.max_actions_per_pf).unwrap_or(usize::MAX)
        {
            return Err(format!(
                "guard: {on_pf} actions on PF {} in the last {} ms",
                pf.map(|p| p.to_string()).unwrap_or_default(),
                w
            ));
        }
        Ok(())
    }
}
