//! The JS pool saturated by CPU-bound tasks of all four priorities (issue #3, (b)): iterations
//! per second per class, next to the class's guaranteed minimum share (W-RUN-5).
//!
//! Run with `cargo bench --bench pool`. The pool gets `BENCH_THREADS` threads (cores by
//! default) and `BENCH_TASKS_PER_CLASS` tasks per class (2 × threads by default, so every class
//! always has a task waiting). Each iteration of a task is `BENCH_WORK_US` µs (1,000) of busy
//! work, then a yield that queues it again. Counted over `BENCH_SECS` (5) after 0.5 s of warm-up.
//!
//! A second, shorter run (`BENCH_OVERHEAD_SECS`, 2; 0 skips it) does the same with no work per
//! iteration: the cost of one pick (ready queue lock, pop, poll, re-queue).
//!
//! Expected: critical gets what the lower classes' minimum shares leave (70 % by default), each
//! lower class its share, and the iterations add up to about threads × 1 s / work.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use heterogen::runtime::pool::{JsPool, MinShares};
use heterogen::workers::Priority;
use support::env_or_lenient as env_or;

const CLASSES: [Priority; 4] = [
    Priority::Critical,
    Priority::High,
    Priority::Normal,
    Priority::Low,
];
const WARMUP: Duration = Duration::from_millis(500);

/// Returns `Pending` once after waking itself: the task goes back to the pool's ready queue.
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

/// Spins for `duration` (a stand-in for a worker's JavaScript).
fn busy(duration: Duration) -> u64 {
    let start = Instant::now();
    let mut state = 1u64;
    while start.elapsed() < duration {
        for _ in 0..64 {
            state = std::hint::black_box(state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
    }
    state
}

struct Outcome {
    /// Iterations per class over the measured span.
    iterations: [u64; 4],
    /// Pool picks per class over the measured span.
    picks: [u64; 4],
    span: Duration,
}

fn saturate(
    runtime: &tokio::runtime::Runtime,
    threads: usize,
    per_class: usize,
    work: Duration,
    span: Duration,
) -> Outcome {
    let pool = JsPool::start(threads, runtime.handle().clone(), MinShares::default());
    let stop = Arc::new(AtomicBool::new(false));
    let counters: Arc<[AtomicU64; 4]> = Arc::new(Default::default());
    let mut tasks = Vec::new();
    for (class, priority) in CLASSES.into_iter().enumerate() {
        for _ in 0..per_class {
            let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
            tasks.push(pool.spawn(priority, async move {
                while !stop.load(Ordering::Relaxed) {
                    if !work.is_zero() {
                        busy(work);
                    }
                    counters[class].fetch_add(1, Ordering::Relaxed);
                    YieldNow(false).await;
                }
            }));
        }
    }
    let snapshot = |counters: &[AtomicU64; 4]| counters.each_ref().map(|count| count.load(Ordering::Relaxed));

    std::thread::sleep(WARMUP);
    let (iterations_before, picks_before, start) = (snapshot(&counters), pool.served(), Instant::now());
    std::thread::sleep(span);
    let (iterations_after, picks_after, span) = (snapshot(&counters), pool.served(), start.elapsed());

    stop.store(true, Ordering::Relaxed);
    runtime.block_on(async {
        for task in tasks {
            task.await;
        }
    });
    pool.shutdown();
    Outcome {
        iterations: std::array::from_fn(|c| iterations_after[c] - iterations_before[c]),
        picks: std::array::from_fn(|c| picks_after[c] - picks_before[c]),
        span,
    }
}

fn print_table(outcome: &Outcome) {
    let shares = MinShares::default();
    let minimum = [None, Some(shares.high), Some(shares.normal), Some(shares.low)];
    let secs = outcome.span.as_secs_f64();
    let total: u64 = outcome.iterations.iter().sum();
    let total_picks: u64 = outcome.picks.iter().sum();
    println!("| class    | iterations/s | share of iterations | min share | picks/s    |");
    println!("|----------|-------------:|--------------------:|----------:|-----------:|");
    for (class, priority) in CLASSES.into_iter().enumerate() {
        let share = outcome.iterations[class] as f64 / total.max(1) as f64;
        let minimum =
            minimum[class].map_or_else(|| "-".to_owned(), |share| format!("{:.1} %", share * 100.0));
        println!(
            "| {:<8} | {:>12.1} | {:>17.2} % | {:>9} | {:>10.1} |",
            format!("{priority:?}").to_lowercase(),
            outcome.iterations[class] as f64 / secs,
            share * 100.0,
            minimum,
            outcome.picks[class] as f64 / secs,
        );
    }
    println!(
        "| total    | {:>12.1} |            100.00 % |           | {:>10.1} |",
        total as f64 / secs,
        total_picks as f64 / secs
    );
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = env_or("BENCH_THREADS", cores);
    let per_class = env_or("BENCH_TASKS_PER_CLASS", 2 * threads);
    let work = Duration::from_micros(env_or("BENCH_WORK_US", 1000));
    let span = Duration::from_secs_f64(env_or("BENCH_SECS", 5.0));
    let overhead_span = Duration::from_secs_f64(env_or("BENCH_OVERHEAD_SECS", 2.0));

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start tokio: {error}");
            std::process::exit(1);
        }
    };

    println!(
        "JS pool saturated: {threads} threads, {per_class} tasks per class, {} µs of work per iteration, {:.1} s",
        work.as_micros(),
        span.as_secs_f64()
    );
    let outcome = saturate(&runtime, threads, per_class, work, span);
    print_table(&outcome);
    let ideal = threads as f64 / work.as_secs_f64();
    let total: u64 = outcome.iterations.iter().sum();
    println!(
        "pool throughput: {:.1} % of {ideal:.0} iterations/s (threads × 1 s / work)",
        total as f64 / outcome.span.as_secs_f64() / ideal * 100.0
    );

    if !overhead_span.is_zero() {
        println!();
        println!(
            "Scheduling overhead: same with no work per iteration, {:.1} s",
            overhead_span.as_secs_f64()
        );
        let outcome = saturate(&runtime, threads, per_class, Duration::ZERO, overhead_span);
        print_table(&outcome);
        let picks: u64 = outcome.picks.iter().sum();
        println!(
            "{:.0} ns of thread time per pick (lock, pop, poll, re-queue)",
            outcome.span.as_secs_f64() * threads as f64 / picks.max(1) as f64 * 1e9
        );
    }
}
