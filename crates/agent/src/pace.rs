//! The one paced loop: steps the agent at the times a [`Clock`] gives, and lets the caller do
//! its duties around each step ([`Duties`]).
//!
//! Every way the agent runs goes through [`run_until`]: `vfguard run` on a host ([`WallClock`]:
//! a step every period of real time), `vfguard run --sim` ([`VirtualClock`] paced to real time,
//! `--speed`), scenario runs (`vfguard simulate`, `vfguard demo`, [`crate::simrun`]: virtual
//! time as fast as possible, or paced), the tests and the benchmarks.
//!
//! # Design
//! - A clock says what time a step is at and, when it is paced, when in real time it is due;
//!   the virtual clock also brings the simulated host to the step's time before the step.
//! - Between two steps, until the next is due, [`Duties::between`] has the time: the daemon
//!   answers operator requests, reloads and stops there, as they come, so a request waits for no
//!   step. What it leaves of the wait is slept by the loop.
//! - After each step, [`Duties::stepped`] has its report: the daemon counts it, logs it,
//!   publishes the state to the API and pings the watchdog; a scenario run collects the
//!   decisions. Either may stop the loop ([`Flow::Stop`]).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use vfguard_model::Millis;
use vfguard_sim::SimHost;

use crate::agent::{Agent, StepReport};

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Go,
    /// Stop now (after the step in flight: its journal transaction is committed).
    Stop,
}

/// Why [`run_until`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The clock ran out (a scenario's end).
    ClockEnded,
    /// The duties asked to stop.
    Stopped,
}

/// Where the loop's time comes from, and when its steps are due.
pub trait Clock {
    /// The time now, on this clock (what a request between two steps is stamped with).
    fn now(&self) -> Millis;
    /// When the next step is due, in real time; `None`: at once (unpaced virtual time).
    fn due(&self) -> Option<Instant>;
    /// Whether the clock has run out: there is no next step.
    fn ended(&self) -> bool;
    /// Begins the next step: its time (the host brought up to it).
    fn tick(&mut self) -> Millis;
}

/// Real time: a step every period, at the wall clock's time (ms since the epoch). The period
/// runs from the start of one step to the start of the next; a step that overran its period is
/// followed by the next at once. Never ends.
#[derive(Debug)]
pub struct WallClock {
    period: Duration,
    next: Instant,
}

impl WallClock {
    /// A step every `period_ms`, the first one period from now.
    pub fn new(period_ms: Millis) -> WallClock {
        let period = Duration::from_millis(period_ms);
        WallClock {
            period,
            next: Instant::now() + period,
        }
    }
}

/// The wall clock's time, ms since the epoch.
pub fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Clock for WallClock {
    fn now(&self) -> Millis {
        wall_ms()
    }

    fn due(&self) -> Option<Instant> {
        Some(self.next)
    }

    fn ended(&self) -> bool {
        false
    }

    fn tick(&mut self) -> Millis {
        self.next = Instant::now() + self.period;
        wall_ms()
    }
}

/// Virtual time on the simulated host, from one time to another, a step every `step_ms`: as
/// fast as possible, or paced so that virtual time runs `speed` times as fast as real time.
/// Each step first brings the simulated host to its time (the last one to `until`).
pub struct VirtualClock<'a> {
    sim: &'a mut SimHost,
    from: Millis,
    now: Millis,
    until: Millis,
    step_ms: Millis,
    /// Real time when virtual time was at `from`, and the speed, when paced.
    paced: Option<(Instant, f64)>,
}

impl<'a> VirtualClock<'a> {
    /// Steps from `from` (the time of the last step; the first is one step later) to `until`,
    /// a step every `step_ms` (at least 1), as fast as possible.
    pub fn new(sim: &'a mut SimHost, from: Millis, until: Millis, step_ms: Millis) -> Self {
        VirtualClock {
            sim,
            from,
            now: from,
            until,
            step_ms: step_ms.max(1),
            paced: None,
        }
    }

    /// The whole of `sim`'s scenario, from its start (`sim` not advanced yet) to its end.
    pub fn scenario(sim: &'a mut SimHost, step_ms: Millis) -> Self {
        let until = sim.scenario().scenario.duration_ms;
        VirtualClock::new(sim, 0, until, step_ms)
    }

    /// Paced: `speed` virtual seconds per real second, from now; 0 (or less): as fast as
    /// possible.
    #[must_use]
    pub fn paced(mut self, speed: f64) -> Self {
        self.paced = (speed > 0.0).then(|| (Instant::now(), speed));
        self
    }

    fn next(&self) -> Millis {
        self.now.saturating_add(self.step_ms).min(self.until)
    }
}

impl Clock for VirtualClock<'_> {
    fn now(&self) -> Millis {
        self.now
    }

    fn due(&self) -> Option<Instant> {
        let (started, speed) = self.paced?;
        let virtual_ms = self.next().saturating_sub(self.from);
        Some(started + Duration::from_secs_f64(virtual_ms as f64 / 1000.0 / speed))
    }

    fn ended(&self) -> bool {
        self.now >= self.until
    }

    fn tick(&mut self) -> Millis {
        self.now = self.next();
        self.sim.advance_to(self.now);
        self.now
    }
}

/// What the caller does around the steps. [`each_step`] makes one of a closure that only sees
/// each step's report.
pub trait Duties {
    /// Between two steps, until `due` (the next step's time in real time; `None`: at once):
    /// answer what comes (the loop sleeps what is left of the wait). `clock` gives the time
    /// to stamp it with. The default does nothing.
    fn between(
        &mut self,
        agent: &mut Agent,
        clock: &dyn Clock,
        due: Option<Instant>,
    ) -> anyhow::Result<Flow> {
        let _ = (agent, clock, due);
        Ok(Flow::Go)
    }

    /// After the step at `at`, with its report.
    fn stepped(
        &mut self,
        agent: &mut Agent,
        at: Millis,
        report: StepReport,
    ) -> anyhow::Result<Flow>;
}

/// No duties: the loop only steps.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDuties;

impl Duties for NoDuties {
    fn stepped(&mut self, _: &mut Agent, _: Millis, _: StepReport) -> anyhow::Result<Flow> {
        Ok(Flow::Go)
    }
}

/// [`Duties`] that only see each step's report: see [`each_step`].
pub struct EachStep<F>(F);

/// Duties of `f`, called after each step with the agent, the step's time and its report.
pub fn each_step<F>(f: F) -> EachStep<F>
where
    F: FnMut(&mut Agent, Millis, StepReport) -> anyhow::Result<Flow>,
{
    EachStep(f)
}

impl<F> Duties for EachStep<F>
where
    F: FnMut(&mut Agent, Millis, StepReport) -> anyhow::Result<Flow>,
{
    fn stepped(
        &mut self,
        agent: &mut Agent,
        at: Millis,
        report: StepReport,
    ) -> anyhow::Result<Flow> {
        (self.0)(agent, at, report)
    }
}

/// Steps `agent` at `clock`'s times until the clock runs out or `duties` stop it; an error of a
/// step (the journal) or of the duties ends the loop with it.
pub fn run_until<C: Clock, D: Duties + ?Sized>(
    agent: &mut Agent,
    clock: &mut C,
    duties: &mut D,
) -> anyhow::Result<Ended> {
    while !clock.ended() {
        let due = clock.due();
        if duties.between(agent, clock, due)? == Flow::Stop {
            return Ok(Ended::Stopped);
        }
        if let Some(wait) = due.and_then(|d| d.checked_duration_since(Instant::now())) {
            std::thread::sleep(wait);
        }
        let at = clock.tick();
        let report = agent.step(at)?;
        if duties.stepped(agent, at, report)? == Flow::Stop {
            return Ok(Ended::Stopped);
        }
    }
    Ok(Ended::ClockEnded)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use vfguard_act::MemoryNotifier;
    use vfguard_sim::scenario::Scenario;

    use super::*;
    use crate::agent::{AgentConfig, AgentHost};

    fn sim(duration_ms: u64) -> SimHost {
        let text = format!(
            "[scenario]\nname = \"pace\"\nseed = 1\nduration_ms = {duration_ms}\n\n[[pf]]\nbdf = \"0000:08:00.0\"\ndriver = \"ixgbe\"\nnetdev = \"ens3f0\"\nnumvfs = 2\n"
        );
        SimHost::new(Scenario::parse("pace.toml", &text).unwrap()).unwrap()
    }

    fn agent(sim: &SimHost) -> Agent {
        let host = AgentHost::simulated(sim, Arc::new(MemoryNotifier::default()));
        Agent::start(AgentConfig::default(), host, None, 0)
            .unwrap()
            .0
    }

    #[test]
    fn virtual_time_steps_to_its_end_and_brings_the_host_along() {
        let mut sim = sim(250);
        let mut a = agent(&sim);
        let mut times = Vec::new();
        let mut clock = VirtualClock::scenario(&mut sim, 100);
        assert_eq!(clock.due(), None, "unpaced: at once");
        let mut steps = each_step(|_, at, _| {
            times.push(at);
            Ok(Flow::Go)
        });
        let ended = run_until(&mut a, &mut clock, &mut steps).unwrap();
        assert_eq!(ended, Ended::ClockEnded);
        assert!(clock.ended());
        assert_eq!(clock.now(), 250);
        assert_eq!(times, [100, 200, 250]);
        assert_eq!(sim.now_ms(), 250);
        // Another stretch goes on from where the last one ended.
        let mut clock = VirtualClock::new(&mut sim, 250, 400, 100);
        let mut times = Vec::new();
        let mut steps = each_step(|_, at, _| {
            times.push(at);
            Ok(Flow::Go)
        });
        run_until(&mut a, &mut clock, &mut steps).unwrap();
        assert_eq!(times, [350, 400]);
    }

    #[test]
    fn the_duties_stop_the_loop_between_steps_or_after_one() {
        struct StopAfter(usize, Vec<&'static str>);
        impl Duties for StopAfter {
            fn between(
                &mut self,
                _: &mut Agent,
                clock: &dyn Clock,
                due: Option<Instant>,
            ) -> anyhow::Result<Flow> {
                assert!(due.is_none());
                self.1.push("between");
                Ok(if clock.now() >= 300 {
                    Flow::Stop
                } else {
                    Flow::Go
                })
            }
            fn stepped(&mut self, _: &mut Agent, _: Millis, _: StepReport) -> anyhow::Result<Flow> {
                self.1.push("stepped");
                self.0 -= 1;
                Ok(if self.0 == 0 { Flow::Stop } else { Flow::Go })
            }
        }
        let mut sim = sim(10_000);
        let mut a = agent(&sim);
        let mut clock = VirtualClock::scenario(&mut sim, 100);
        let mut d = StopAfter(2, Vec::new());
        assert_eq!(
            run_until(&mut a, &mut clock, &mut d).unwrap(),
            Ended::Stopped
        );
        assert_eq!(d.1, ["between", "stepped", "between", "stepped"]);
        assert_eq!(clock.now(), 200);
        let mut d = StopAfter(100, Vec::new());
        run_until(&mut a, &mut clock, &mut d).unwrap();
        assert_eq!(clock.now(), 300, "stopped before the step at 400");
    }

    #[test]
    fn paced_virtual_time_waits_for_real_time() {
        let mut sim = sim(400);
        let mut a = agent(&sim);
        let started = Instant::now();
        let mut clock = VirtualClock::scenario(&mut sim, 100).paced(10.0);
        let due = clock.due().unwrap();
        assert!(due >= started + Duration::from_millis(10), "100 ms at 10x");
        run_until(&mut a, &mut clock, &mut NoDuties).unwrap();
        assert!(
            started.elapsed() >= Duration::from_millis(40),
            "400 ms at 10x"
        );
    }

    #[test]
    fn the_wall_clock_is_due_a_period_after_each_step_began() {
        let mut clock = WallClock::new(100);
        let before = wall_ms();
        assert!(!clock.ended());
        let t0 = Instant::now();
        let at = clock.tick();
        assert!(at >= before && at <= wall_ms());
        let due = clock.due().unwrap();
        assert!(due >= t0 + Duration::from_millis(100));
        assert!(due <= Instant::now() + Duration::from_millis(100));
    }
}
