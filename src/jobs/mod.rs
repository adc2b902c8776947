//! The one background-job mechanism (ARCHITECTURE.md, "Jobs"), for the GUI and the CLI alike: each job is a
//! named thread that reports events through a bounded channel, can be cancelled, and wakes its
//! owner when it reports (the GUI passes a repaint request). A `Latest` slot keeps only the newest
//! job of a kind: starting another cancels the one before (slider-driven work, latest wins).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::time::Instant;

/// Called after each event a job sends (e.g. `egui::Context::request_repaint`).
pub type Wake = Arc<dyn Fn() + Send + Sync>;

/// A wake that does nothing, for owners that block on the events (the CLI).
#[must_use]
pub fn no_wake() -> Wake {
    Arc::new(|| {})
}

/// Events a job may have in flight before it waits for its owner (back-pressure).
const CAPACITY: usize = 64;

/// Makes rayon's global pool (where every parallel loop of the crate runs: decoding, resampling,
/// the CPU backend's kernels) start its threads below the UI thread's priority. For the GUI
/// process, before any parallel work; later calls (the pool already exists) do nothing.
pub fn background_thread_pool() {
    // Err: the global pool was built already (e.g. by a test harness); it keeps its priority.
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("fixres-worker-{i}"))
        .start_handler(|_| lower_priority())
        .build_global();
}

/// Lowers the calling thread's CPU priority (nice +10), so background work never starves the UI
/// thread: on a 2-core machine a model running at full speed would otherwise stall the frames.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers and touches no memory of ours; on Linux, `who = 0`
    // with PRIO_PROCESS names the calling thread. Failing (e.g. in a sandbox) only keeps the
    // default priority.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// A shared stop flag.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// Asks the job to stop at its next check.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether the job was asked to stop.
    #[must_use]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// The job's side: sends events, sees cancellation.
pub struct Reporter<E> {
    tx: SyncSender<E>,
    cancel: Cancel,
    wake: Wake,
}

impl<E> Reporter<E> {
    /// Sends an event (waiting while the owner is `CAPACITY` events behind). False when the job
    /// should stop: it was cancelled or its owner is gone.
    pub fn send(&self, event: E) -> bool {
        if self.cancel.is_cancelled() {
            return false;
        }
        let delivered = self.tx.send(event).is_ok();
        (self.wake)();
        delivered
    }

    /// Sends a job's last word even when it was cancelled (e.g. a cancelled run's kept
    /// weights), as long as its owner still listens. False when nobody does.
    pub fn send_final(&self, event: E) -> bool {
        let delivered = self.tx.send(event).is_ok();
        (self.wake)();
        delivered
    }

    /// Whether the job should stop.
    #[must_use]
    pub fn cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The flag itself, for code that polls it.
    #[must_use]
    pub fn cancel_flag(&self) -> &Cancel {
        &self.cancel
    }
}

/// The owner's side of one running job. Dropping it cancels the job.
pub struct Job<E> {
    name: String,
    rx: Receiver<E>,
    cancel: Cancel,
    started: Instant,
    finished: bool,
}

impl<E: Send + 'static> Job<E> {
    /// Starts `work` on a thread named `fixres-{name}`.
    pub fn spawn(name: &str, wake: Wake, work: impl FnOnce(Reporter<E>) + Send + 'static) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel(CAPACITY);
        let cancel = Cancel::default();
        let reporter = Reporter {
            tx,
            cancel: cancel.clone(),
            wake: wake.clone(),
        };
        let thread_name = format!("fixres-{name}");
        std::thread::Builder::new().name(thread_name.clone()).spawn(move || {
            lower_priority();
            // A panic must not vanish: the owner sees the job end (the channel closes) and
            // the message goes to stderr, naming the job.
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(reporter)));
            if let Err(panic) = outcome {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                eprintln!("error: background job {thread_name} failed: {message}");
            }
            // The reporter is dropped now: the owner sees the channel close, and wakes to see it.
            wake();
        })?;
        Ok(Self {
            name: name.to_owned(),
            rx,
            cancel,
            started: Instant::now(),
            finished: false,
        })
    }
}

impl<E> Job<E> {
    /// The events sent since the last call, without waiting.
    pub fn drain(&mut self) -> Vec<E> {
        let mut out = Vec::new();
        loop {
            match self.rx.try_recv() {
                Ok(e) => out.push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.finished = true;
                    break;
                }
            }
        }
        out
    }

    /// Waits for the next event; `None` once the job has ended (for blocking owners like the CLI).
    pub fn recv(&mut self) -> Option<E> {
        let e = self.rx.recv().ok();
        self.finished |= e.is_none();
        e
    }

    /// Whether the job's thread has ended and every event was drained.
    #[must_use]
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Asks the job to stop.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The job's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Seconds since the job started.
    #[must_use]
    pub fn elapsed_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

impl<E> Drop for Job<E> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// At most one job of a kind: starting a new one cancels the previous (latest wins), and each
/// start gets a new generation number so late results can be told apart.
pub struct Latest<E> {
    job: Option<Job<E>>,
    generation: u64,
}

impl<E> Default for Latest<E> {
    fn default() -> Self {
        Self {
            job: None,
            generation: 0,
        }
    }
}

impl<E: Send + 'static> Latest<E> {
    /// Cancels the running job, if any, and starts `work`. Returns the new generation.
    pub fn start(
        &mut self,
        name: &str,
        wake: Wake,
        work: impl FnOnce(Reporter<E>) + Send + 'static,
    ) -> std::io::Result<u64> {
        self.cancel();
        self.job = Some(Job::spawn(name, wake, work)?);
        self.generation += 1;
        Ok(self.generation)
    }
}

impl<E> Latest<E> {
    /// Events of the current job; forgets it once it has ended.
    pub fn drain(&mut self) -> Vec<E> {
        let Some(job) = &mut self.job else {
            return Vec::new();
        };
        let events = job.drain();
        if job.is_finished() {
            self.job = None;
        }
        events
    }

    /// Cancels the running job (its thread ends at its next check; its events are dropped).
    pub fn cancel(&mut self) {
        self.job = None;
    }

    /// The running job, if any.
    #[must_use]
    pub fn running(&self) -> Option<&Job<E>> {
        self.job.as_ref()
    }

    /// The generation of the latest start.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_arrive_in_order_and_the_job_finishes() {
        let mut job = Job::spawn("test", no_wake(), |r| {
            for i in 0..200 {
                assert!(r.send(i));
            }
        })
        .unwrap();
        let mut got = Vec::new();
        while let Some(e) = job.recv() {
            got.push(e);
        }
        assert_eq!(got, (0..200).collect::<Vec<_>>());
        assert!(job.is_finished());
    }

    #[test]
    fn a_newer_job_cancels_the_older() {
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let mut slot = Latest::<u32>::default();
        let first = slot
            .start("first", no_wake(), move |r| {
                // Runs until cancelled; reports how it ended.
                while !r.cancelled() {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                seen_tx.send("cancelled").unwrap();
            })
            .unwrap();
        let second = slot
            .start("second", no_wake(), |r| {
                r.send(7);
            })
            .unwrap();
        assert_eq!((first, second), (1, 2));
        assert_eq!(
            seen_rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap(),
            "cancelled"
        );
        let mut events = Vec::new();
        while slot.running().is_some() {
            events.extend(slot.drain());
            std::thread::yield_now();
        }
        assert_eq!(events, vec![7]);
    }

    #[test]
    fn dropping_the_owner_stops_a_sending_job() {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let job = Job::spawn("dropped", no_wake(), move |r| {
            let mut sent = 0u64;
            while r.send(sent) {
                sent += 1;
            }
            done_tx.send(sent).unwrap();
        })
        .unwrap();
        drop(job);
        let sent = done_rx.recv_timeout(std::time::Duration::from_secs(10)).unwrap();
        assert!(sent <= CAPACITY as u64 + 1, "sent {sent} events to nobody");
    }
}
