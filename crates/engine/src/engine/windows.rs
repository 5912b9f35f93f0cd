//! Rule windows: each rule counts the faults it takes over its sliding window, per incident;
//! memory stays bounded by the threshold (only the newest `threshold` times are kept).

use std::collections::{HashMap, VecDeque};

use vfguard_model::{FaultKind, Millis};

use crate::attribute::Method;
use crate::policy::Rule;

/// Counts `n` faults of `kind` at `now` (a folded burst stands for `n` records) in the window of
/// every rule that takes them at this attribution; returns the rules whose threshold is reached,
/// with the count in their window.
pub(super) fn count(
    windows: &mut HashMap<usize, VecDeque<Millis>>,
    rules: &[Rule],
    kind: FaultKind,
    (method, confidence): (Method, f64),
    n: u64,
    now: Millis,
) -> Vec<(String, u32)> {
    let mut crossed = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        // Faults that blame no one (left on the PF, a requester several functions answer to)
        // count at any confidence: they are only ever notified.
        let blames_no_one = matches!(method, Method::Unattributed | Method::Ambiguous);
        if !rule.kinds.contains(&kind) || confidence < rule.min_confidence && !blames_no_one {
            continue;
        }
        let w = windows.entry(ri).or_default();
        let cap = usize::try_from(rule.threshold).unwrap_or(usize::MAX);
        // Every record of a burst is at `now`: more than `cap` of them would be trimmed.
        let pushes = usize::try_from(n).unwrap_or(usize::MAX).min(cap.max(1));
        w.extend(std::iter::repeat_n(now, pushes));
        while w
            .front()
            .is_some_and(|&t0| t0.saturating_add(rule.window) < now)
        {
            w.pop_front();
        }
        while w.len() > cap {
            w.pop_front();
        }
        if w.len() >= cap {
            crossed.push((
                rule.name.clone(),
                u32::try_from(w.len()).unwrap_or(u32::MAX),
            ));
        }
    }
    crossed
}
