//! The JS thread pool (W-RUN-5): a small `async-task` executor whose threads run worker futures
//! and nothing else, so CPU-bound JavaScript never runs on the tokio threads that serve the network.
//!
//! Every spawned future is a task with a [`Priority`]. Each time it is woken, its `Runnable` is
//! queued again at that priority in one `ReadyQueue`; pool threads pop critical > high > normal >
//! low, except that a lower class that is behind its [`MinShares`] gets the next pick.
//!
//! Each pool thread enters the tokio runtime for its whole life, so tokio timers and I/O work in
//! the futures it polls (their wake-ups come back through the ready queue, not a tokio thread).
//!
//! What it is not: a work-stealing or preemptive scheduler. A future that computes without
//! returning `Pending` holds its thread until it does; the engine's interrupt handler bounds that
//! (W-RUN-6). Blocking I/O does not belong here either.

use std::collections::VecDeque;
use std::future::Future;
use std::panic::catch_unwind;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use async_task::{Builder, Runnable, Task};
use tokio::runtime::Handle;

use crate::workers::model::Priority;

/// One ready queue per [`Priority`], index 0 = critical.
const CLASSES: usize = 4;

/// Share counters are halved after this many picks, so picks long ago weigh nothing: the
/// shares are measured over roughly the last 2,048 picks.
const DECAY_PICKS: u32 = 1024;

/// Minimum share of pool time (as picks) each class gets while it has ready work.
///
/// A class's share is counted over the picks made while it had a task waiting, so a class that
/// was idle builds no debt and cannot burst when it comes back. Critical has no share: it is
/// first anyway. Each share is clamped to 0..=1 (NaN counts as 0); shares summing above 1 are
/// scaled down to sum 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinShares {
    /// Least share of the pool for the `high` class when lower classes wait.
    pub high: f64,
    /// Least share for the `normal` class.
    pub normal: f64,
    /// Least share for the `low` class.
    pub low: f64,
}

impl Default for MinShares {
    fn default() -> Self {
        MinShares {
            high: 0.15,
            normal: 0.10,
            low: 0.05,
        }
    }
}

impl MinShares {
    /// Sanitised shares by class index (critical's is 0).
    fn by_class(&self) -> [f64; CLASSES] {
        let clamp = |share: f64| {
            if share.is_nan() {
                0.0
            } else {
                share.clamp(0.0, 1.0)
            }
        };
        let shares = [0.0, clamp(self.high), clamp(self.normal), clamp(self.low)];
        let sum: f64 = shares.iter().sum();
        if sum > 1.0 {
            shares.map(|share| share / sum)
        } else {
            shares
        }
    }
}

/// Index of a class in the per-class arrays: critical 0 .. low 3.
fn class(priority: Priority) -> usize {
    match priority {
        Priority::Critical => 0,
        Priority::High => 1,
        Priority::Normal => 2,
        Priority::Low => 3,
    }
}

/// Chooses the class of each pick: the highest waiting class, unless a lower waiting class is
/// behind its minimum share (the lowest such class first).
#[derive(Debug)]
struct SharePolicy {
    /// Sanitised [`MinShares`] by class.
    shares: [f64; CLASSES],
    /// Recent picks given to each class (halved every [`DECAY_PICKS`]).
    given: [f64; CLASSES],
    /// Recent picks made while each class had a task waiting (halved with `given`).
    waited: [f64; CLASSES],
    /// Picks since the last halving.
    since_decay: u32,
}

impl SharePolicy {
    fn new(shares: MinShares) -> Self {
        SharePolicy {
            shares: shares.by_class(),
            given: [0.0; CLASSES],
            waited: [0.0; CLASSES],
            since_decay: 0,
        }
    }

    /// The class to serve, given which classes have a task waiting; `None` if none has.
    fn pick(&mut self, waiting: [bool; CLASSES]) -> Option<usize> {
        let top = waiting.iter().position(|&waits| waits)?;
        // Behind = even with this pick the class would not exceed its share of the picks it
        // waited through, so a class gets exactly its share and never runs ahead of it.
        let behind = (top + 1..CLASSES).rev().find(|&c| {
            match (
                waiting.get(c),
                self.given.get(c),
                self.shares.get(c),
                self.waited.get(c),
            ) {
                (Some(true), Some(given), Some(share), Some(waited)) => given + 1.0 <= share * (waited + 1.0),
                _ => false,
            }
        });
        let chosen = behind.unwrap_or(top);
        for (waited, _) in self.waited.iter_mut().zip(waiting).filter(|(_, waits)| *waits) {
            *waited += 1.0;
        }
        if let Some(given) = self.given.get_mut(chosen) {
            *given += 1.0;
        }
        self.since_decay += 1;
        if self.since_decay >= DECAY_PICKS {
            self.since_decay = 0;
            self.given
                .iter_mut()
                .chain(self.waited.iter_mut())
                .for_each(|count| *count /= 2.0);
        }
        Some(chosen)
    }
}

/// Four FIFO queues under one lock, popped by [`SharePolicy`]. Generic so the policy can be
/// tested on plain values; the pool holds `Runnable`s.
#[derive(Debug)]
struct ReadyQueue<T> {
    state: Mutex<QueueState<T>>,
    /// Signalled on every push (one waiter) and on close (all waiters).
    ready: Condvar,
}

#[derive(Debug)]
struct QueueState<T> {
    /// Ready items per class, oldest first.
    queues: [VecDeque<T>; CLASSES],
    policy: SharePolicy,
    /// Picks per class since start, never decayed (what [`JsPool::served`] reports).
    served: [u64; CLASSES],
    /// Set once by `close`: no more pushes or pops.
    closed: bool,
}

impl<T> ReadyQueue<T> {
    fn new(shares: MinShares) -> Self {
        ReadyQueue {
            state: Mutex::new(QueueState {
                queues: std::array::from_fn(|_| VecDeque::new()),
                policy: SharePolicy::new(shares),
                served: [0; CLASSES],
                closed: false,
            }),
            ready: Condvar::new(),
        }
    }

    /// Queues `item`; gives it back if the queue is closed. The caller drops what it gets back,
    /// outside the lock (dropping a task runs its future's destructors, which may wake others).
    fn push(&self, class: usize, item: T) -> Result<(), T> {
        {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(item);
            }
            match state.queues.get_mut(class) {
                Some(queue) => queue.push_back(item),
                None => return Err(item),
            }
        }
        self.ready.notify_one();
        Ok(())
    }

    /// Takes the next item without waiting, with its class.
    #[cfg(test)]
    fn try_pop(&self) -> Option<(usize, T)> {
        let mut state = lock(&self.state);
        if state.closed { None } else { state.pick() }
    }

    /// Waits for the next item; `None` once the queue is closed.
    fn pop(&self) -> Option<T> {
        let mut state = lock(&self.state);
        loop {
            if state.closed {
                return None;
            }
            if let Some((_, item)) = state.pick() {
                return Some(item);
            }
            state = self.ready.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Closes the queue, wakes every waiting thread and hands back what was queued.
    fn close(&self) -> [VecDeque<T>; CLASSES] {
        let drained = {
            let mut state = lock(&self.state);
            state.closed = true;
            std::mem::replace(&mut state.queues, std::array::from_fn(|_| VecDeque::new()))
        };
        self.ready.notify_all();
        drained
    }

    fn served(&self) -> [u64; CLASSES] {
        lock(&self.state).served
    }

    fn queued(&self) -> [usize; CLASSES] {
        lock(&self.state).queues.each_ref().map(VecDeque::len)
    }
}

impl<T> QueueState<T> {
    fn pick(&mut self) -> Option<(usize, T)> {
        let class = self
            .policy
            .pick(self.queues.each_ref().map(|queue| !queue.is_empty()))?;
        if let Some(served) = self.served.get_mut(class) {
            *served += 1;
        }
        self.queues.get_mut(class)?.pop_front().map(|item| (class, item))
    }
}

/// Only our own code runs under these locks and it leaves the state consistent at every
/// step, so a poisoned lock is still good to use.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fixed set of threads (`heterogen-js-N`) that poll worker futures by priority.
///
/// Dropping the pool closes it like [`JsPool::shutdown`] but does not wait for the threads.
#[derive(Debug)]
pub struct JsPool {
    /// Shared by the threads and by every task's schedule function.
    queue: Arc<ReadyQueue<Runnable>>,
    /// Join handles, taken by the first `shutdown`.
    workers: Mutex<Vec<JoinHandle<()>>>,
    /// Threads that started (fixed after `start`).
    threads: usize,
}

impl JsPool {
    /// Starts `threads` threads (at least 1), each inside the runtime of `handle`.
    ///
    /// A thread the OS refuses is logged and left out; [`JsPool::threads`] tells how many run.
    pub fn start(threads: usize, handle: Handle, shares: MinShares) -> JsPool {
        Self::start_niced(threads, handle, shares, 0)
    }

    /// [`JsPool::start`] with the threads' scheduling priority lowered by `nice` (Linux nice
    /// values, 0..=19), so busy JavaScript yields the cores to the network threads first.
    pub fn start_niced(threads: usize, handle: Handle, shares: MinShares, nice: i32) -> JsPool {
        let queue = Arc::new(ReadyQueue::new(shares));
        let mut workers = Vec::with_capacity(threads.max(1));
        for index in 0..threads.max(1) {
            let queue = Arc::clone(&queue);
            let handle = handle.clone();
            let spawned = thread::Builder::new()
                .name(format!("heterogen-js-{index}"))
                .spawn(move || {
                    lower_priority(nice);
                    serve(&queue, &handle)
                });
            match spawned {
                Ok(worker) => workers.push(worker),
                Err(error) => tracing::error!(thread = index, %error, "cannot start a JS pool thread"),
            }
        }
        tracing::debug!(threads = workers.len(), ?shares, "JS pool started");
        JsPool {
            queue,
            threads: workers.len(),
            workers: Mutex::new(workers),
        }
    }

    /// Runs `future` on the pool at `priority`. Each time it is woken it is queued again at the
    /// same priority.
    ///
    /// Dropping the returned task cancels the future (`detach` it to let it run). A panic in the
    /// future is caught on the pool and resumed where the task is awaited. A task dropped by
    /// [`JsPool::shutdown`] panics when awaited: await `task.fallible()` to get `None` instead.
    pub fn spawn<F>(&self, priority: Priority, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let queue = Arc::clone(&self.queue);
        let class = class(priority);
        let schedule = move |runnable: Runnable| {
            // Closed pool: dropping the runnable cancels the task.
            if let Err(runnable) = queue.push(class, runnable) {
                drop(runnable);
            }
        };
        let (runnable, task) = Builder::new()
            .propagate_panic(true)
            .spawn(move |()| future, schedule);
        runnable.schedule();
        task
    }

    /// Polls served per class since start, [critical, high, normal, low].
    pub fn served(&self) -> [u64; 4] {
        self.queue.served()
    }

    /// Ready tasks waiting now per class.
    pub fn queued(&self) -> [usize; 4] {
        self.queue.queued()
    }

    /// A reader of [`JsPool::queued`] that does not keep the pool's threads (for the metrics).
    pub fn queued_reader(&self) -> impl Fn() -> [usize; 4] + Send + Sync + 'static {
        let queue = Arc::clone(&self.queue);
        move || queue.queued()
    }

    /// Threads running JavaScript.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Stops the threads (tasks still queued are dropped, which cancels them); joins.
    ///
    /// A poll in progress finishes first. Tasks woken later are dropped as they are woken.
    /// Called from a task on the pool, it joins every thread but its own, which ends after that
    /// poll. Idempotent.
    pub fn shutdown(&self) {
        // Dropped here, outside the queue's lock.
        drop(self.queue.close());
        let workers = std::mem::take(&mut *lock(&self.workers));
        let current = thread::current().id();
        for worker in workers {
            if worker.thread().id() == current {
                continue;
            }
            if worker.join().is_err() {
                tracing::warn!("a JS pool thread panicked");
            }
        }
        tracing::debug!("JS pool stopped");
    }
}

impl Drop for JsPool {
    fn drop(&mut self) {
        drop(self.queue.close());
    }
}

/// The life of one pool thread: pop and run until the queue closes.
/// Lowers the calling thread's priority by `nice` (a no-op for 0 or off Linux).
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    #[cfg(target_os = "linux")]
    {
        let me = Some(rustix::thread::gettid());
        let current = rustix::process::getpriority_process(me).unwrap_or(0);
        if let Err(error) = rustix::process::setpriority_process(me, (current + nice.clamp(0, 19)).min(19)) {
            tracing::warn!(%error, nice, "cannot lower the priority of a JS pool thread");
        }
    }
}

fn serve(queue: &ReadyQueue<Runnable>, handle: &Handle) {
    let _runtime = handle.enter();
    while let Some(runnable) = queue.pop() {
        // Panics in a poll already go to the task (`propagate_panic`); this catches the rest,
        // so no task can end this thread.
        if catch_unwind(move || runnable.run()).is_err() {
            tracing::warn!("a JS pool task panicked outside its poll");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::pin::Pin;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::task::{Context, Poll};
    use std::time::{Duration, Instant};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const ALL: [Priority; CLASSES] = [
        Priority::Critical,
        Priority::High,
        Priority::Normal,
        Priority::Low,
    ];

    /// Returns `Pending` once after waking itself: the task goes back to the ready queue.
    struct YieldNow(bool);

    impl Future for YieldNow {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.0 {
                return Poll::Ready(());
            }
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn pool(threads: usize) -> JsPool {
        JsPool::start(threads, Handle::current(), MinShares::default())
    }

    fn thread_name() -> String {
        thread::current().name().unwrap_or_default().to_owned()
    }

    /// Spawns a task that blocks its pool thread until the returned sender sends (or drops).
    async fn block_one_thread(pool: &JsPool) -> (std::sync::mpsc::Sender<()>, Task<()>) {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = tokio::sync::oneshot::channel();
        let blocker = pool.spawn(Priority::Critical, async move {
            let _ = started.send(());
            let _ = released.recv();
        });
        is_started.await.unwrap();
        (release, blocker)
    }

    #[test]
    fn shares_are_sanitised() {
        let shares = MinShares {
            high: 0.9,
            normal: f64::NAN,
            low: 2.0,
        }
        .by_class();
        assert_eq!(shares[0], 0.0);
        assert_eq!(shares[2], 0.0);
        assert!((shares.iter().sum::<f64>() - 1.0).abs() < 1e-9);
        assert!(shares[3] > shares[1]);
    }

    #[test]
    fn policy_gives_each_waiting_class_its_share() {
        let mut policy = SharePolicy::new(MinShares::default());
        let mut given = [0u32; CLASSES];
        for _ in 0..100_000 {
            given[policy.pick([true; CLASSES]).unwrap()] += 1;
        }
        let expected = [0.70, 0.15, 0.10, 0.05];
        for class in 0..CLASSES {
            let share = f64::from(given[class]) / 100_000.0;
            assert!(
                (share - expected[class]).abs() < 0.005,
                "class {class}: {share} {given:?}"
            );
        }
    }

    #[test]
    fn policy_forgets_idle_time() {
        let mut policy = SharePolicy::new(MinShares::default());
        for _ in 0..100_000 {
            assert_eq!(policy.pick([true, false, false, false]), Some(0));
        }
        // Low was idle, so it has no debt: no burst when it comes back, just its share.
        let picks: Vec<usize> = (0..200).map(|_| policy.pick([true; CLASSES]).unwrap()).collect();
        let low: Vec<usize> = (0..picks.len()).filter(|&i| picks[i] == 3).collect();
        assert!((9..=11).contains(&low.len()), "{low:?}");
        assert!(low.windows(2).all(|pair| pair[1] - pair[0] >= 10), "{low:?}");
        assert_eq!(policy.pick([false; CLASSES]), None);
    }

    #[test]
    fn queue_is_fifo_within_a_class_and_closes() {
        let queue = ReadyQueue::new(MinShares {
            high: 0.0,
            normal: 0.0,
            low: 0.0,
        });
        for item in 0..3 {
            queue.push(2, item).unwrap();
            queue.push(1, 10 + item).unwrap();
        }
        assert_eq!(queue.queued(), [0, 3, 3, 0]);
        let popped: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(popped, [(1, 10), (1, 11), (1, 12), (2, 0), (2, 1), (2, 2)]);
        assert_eq!(queue.served(), [0, 3, 3, 0]);
        queue.push(0, 7).unwrap();
        assert_eq!(queue.close()[0], [7]);
        assert_eq!(queue.push(0, 8), Err(8));
        assert_eq!(queue.pop(), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pool_threads_run_at_a_lower_priority() {
        let nice_of_this_thread =
            || rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let base = nice_of_this_thread();
        let pool = JsPool::start_niced(1, Handle::current(), MinShares::default(), 7);
        let task = pool.spawn(Priority::Normal, async move { nice_of_this_thread() });
        let nice = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap();
        assert_eq!(nice, (base + 7).min(19), "the JS thread's nice value");
        assert_eq!(nice_of_this_thread(), base, "the caller's priority is untouched");
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tokio_timers_work_and_tasks_run_on_pool_threads() {
        let pool = pool(2);
        assert_eq!(pool.threads(), 2);
        let task = pool.spawn(Priority::Normal, async {
            let before = thread_name();
            tokio::time::sleep(Duration::from_millis(20)).await;
            (before, thread_name())
        });
        let (before, after) = tokio::time::timeout(Duration::from_secs(5), task).await.unwrap();
        assert!(before.starts_with("heterogen-js-"), "{before}");
        assert!(after.starts_with("heterogen-js-"), "{after}");
        assert!(!thread_name().starts_with("heterogen-js-"));
        assert_eq!(pool.served()[2], 2);
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn network_stays_responsive_while_pool_is_busy() {
        let pool = pool(2);
        let stop = Arc::new(AtomicBool::new(false));
        let busy = Arc::new(AtomicUsize::new(0));
        let loops: Vec<_> = (0..4)
            .map(|_| {
                let (stop, busy) = (Arc::clone(&stop), Arc::clone(&busy));
                pool.spawn(Priority::Critical, async move {
                    busy.fetch_add(1, Ordering::SeqCst);
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        while busy.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(pool.queued()[0], 2);

        let echo = async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buffer = [0u8; 4];
                socket.read_exact(&mut buffer).await.unwrap();
                socket.write_all(&buffer).await.unwrap();
            });
            let mut client = TcpStream::connect(address).await.unwrap();
            client.write_all(b"ping").await.unwrap();
            let mut reply = [0u8; 4];
            client.read_exact(&mut reply).await.unwrap();
            server.await.unwrap();
            tokio::time::sleep(Duration::from_millis(10)).await;
            reply
        };
        let reply = tokio::time::timeout(Duration::from_secs(2), echo).await;
        stop.store(true, Ordering::Relaxed);
        assert_eq!(reply.expect("the network waited for the JS pool"), *b"ping");
        for task in loops {
            task.await;
        }
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn saturated_pool_serves_by_priority_with_min_shares() {
        const PER_CLASS: usize = 200;
        let pool = pool(1);
        let (release, blocker) = block_one_thread(&pool).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        // Lowest first, so FIFO alone would give the reverse order.
        for priority in ALL.into_iter().rev() {
            for index in 0..PER_CLASS {
                let order = Arc::clone(&order);
                tasks.push(pool.spawn(priority, async move {
                    order.lock().unwrap().push((class(priority), index));
                }));
            }
        }
        assert_eq!(pool.queued(), [PER_CLASS; CLASSES]);
        release.send(()).unwrap();
        blocker.await;
        for task in tasks {
            task.await;
        }
        let order = order.lock().unwrap().clone();
        assert_eq!(order.len(), CLASSES * PER_CLASS);
        assert_eq!(order[0].0, 0);

        let shares = MinShares::default().by_class();
        let last = |c: usize| order.iter().rposition(|&(class, _)| class == c).unwrap();
        let mut count = [0usize; CLASSES];
        let mut next_index = [0usize; CLASSES];
        for (pick, &(c, index)) in order.iter().enumerate() {
            assert_eq!(index, next_index[c], "FIFO within class {c}");
            next_index[c] += 1;
            count[c] += 1;
            let picks = (pick + 1) as f64;
            for lower in 1..CLASSES {
                let got = count[lower] as f64;
                // While waiting, a class gets at least its share ...
                if pick <= last(lower) {
                    assert!(
                        got >= shares[lower] * picks - 2.0,
                        "class {lower} at pick {pick}: {got}"
                    );
                }
                // ... and no more than its share while a higher class waits.
                if (0..lower).any(|higher| pick <= last(higher)) {
                    assert!(
                        got <= shares[lower] * picks + 1.0,
                        "class {lower} at pick {pick}: {got}"
                    );
                }
            }
        }
        assert!(last(0) < last(1) && last(1) < last(2) && last(2) < last(3));
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn low_gets_its_share_against_endless_critical_work() {
        // One thread: low then waits at every pick but its own, whatever the OS does to threads.
        let pool = pool(1);
        let stop = Arc::new(AtomicBool::new(false));
        let spin = |priority| {
            let stop = Arc::clone(&stop);
            pool.spawn(priority, async move {
                let mut polls = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    polls += 1;
                    YieldNow(false).await;
                }
                polls
            })
        };
        let critical: Vec<_> = (0..4).map(|_| spin(Priority::Critical)).collect();
        let low = spin(Priority::Low);
        let deadline = Instant::now() + Duration::from_secs(60);
        while pool.served().iter().sum::<u64>() < 40_000 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        stop.store(true, Ordering::Relaxed);
        let low_polls = low.await;
        for task in critical {
            task.await;
        }
        let served = pool.served();
        let total = served.iter().sum::<u64>();
        assert!(total >= 40_000, "{served:?}");
        let low_share = served[3] as f64 / total as f64;
        assert!((0.04..=0.06).contains(&low_share), "{low_share} {served:?}");
        assert!(low_polls + 1 >= served[3] - 1, "{low_polls} {served:?}");
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_task_does_not_kill_its_thread() {
        let pool = pool(1);
        let before = pool.spawn(Priority::High, async { thread_name() }).await;
        let panicked = pool.spawn(Priority::High, async {
            panic!("boom");
        });
        let outcome = tokio::spawn(panicked).await;
        assert!(outcome.unwrap_err().is_panic());
        let after = pool.spawn(Priority::Low, async { thread_name() }).await;
        assert_eq!(before, after);
        pool.shutdown();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_cancels_queued_tasks_and_joins_threads() {
        thread_local! {
            static ON_EXIT: std::cell::RefCell<Option<ExitFlag>> = const { std::cell::RefCell::new(None) };
        }
        struct ExitFlag(Arc<AtomicBool>);
        impl Drop for ExitFlag {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }

        let pool = Arc::new(pool(1));
        let exited = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&exited);
        pool.spawn(Priority::Normal, async move {
            ON_EXIT.with(|slot| *slot.borrow_mut() = Some(ExitFlag(flag)))
        })
        .await;
        let (release, blocker) = block_one_thread(&pool).await;
        let queued = pool.spawn(Priority::Critical, async { 1 });
        assert_eq!(pool.queued(), [1, 0, 0, 0]);

        let stopping = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.shutdown())
        };
        while pool.queued() != [0; CLASSES] {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(queued.fallible().await, None);
        assert!(!exited.load(Ordering::SeqCst));
        release.send(()).unwrap();
        tokio::task::spawn_blocking(move || stopping.join().unwrap())
            .await
            .unwrap();
        assert!(
            exited.load(Ordering::SeqCst),
            "shutdown returned before the thread ended"
        );
        blocker.await;

        // Closed: new tasks are dropped at once; shutdown again is a no-op.
        assert_eq!(pool.spawn(Priority::Critical, async { 2 }).fallible().await, None);
        pool.shutdown();
    }
}
