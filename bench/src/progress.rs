//! Live progress of a load: counters the load tasks add to, and the bar on
//! stderr that shows them.

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use crate::report::MIB;

/// Progress counters shared by the load tasks, shown once a second.
#[derive(Default)]
pub struct Progress {
    pub produced_bytes: AtomicU64,
    pub consumed_bytes: AtomicU64,
    pub errors: AtomicU64,
}

/// A progress bar on stderr over the load's duration, redrawn every second
/// until dropped. It draws nothing when stderr is not a terminal (CI logs,
/// redirected output), so logs get no progress lines at all.
pub struct ProgressLine {
    bar: ProgressBar,
    tick: Option<tokio::task::JoinHandle<()>>,
}

const TEMPLATE: &str =
    "{prefix} [{bar:20}] {elapsed:>4}  produced {produced} MiB  consumed {consumed} MiB  errors {errors}";

impl ProgressLine {
    pub fn start(label: String, total: Duration, progress: Arc<Progress>) -> Self {
        Self::start_on(ProgressDrawTarget::stderr(), label, total, progress)
    }

    fn start_on(target: ProgressDrawTarget, label: String, total: Duration, progress: Arc<Progress>) -> Self {
        // The bar's position is elapsed milliseconds of `total`.
        let bar = ProgressBar::with_draw_target(Some(total.as_millis().max(1) as u64), target)
            .with_style(style(progress))
            .with_prefix(label);
        let tick = (!bar.is_hidden()).then(|| {
            let bar = bar.clone();
            tokio::spawn(async move {
                let mut every_second = tokio::time::interval(Duration::from_secs(1));
                loop {
                    every_second.tick().await;
                    show_elapsed(&bar);
                }
            })
        });
        Self { bar, tick }
    }
}

fn show_elapsed(bar: &ProgressBar) {
    bar.set_position(bar.elapsed().as_millis() as u64);
}

/// The template, with the counters read whenever the bar is drawn.
fn style(progress: Arc<Progress>) -> ProgressStyle {
    let mib = |counter: fn(&Progress) -> &AtomicU64| {
        let progress = progress.clone();
        move |_: &ProgressState, w: &mut dyn Write| {
            let _ = write!(w, "{:>8.1}", counter(&progress).load(Ordering::Relaxed) as f64 / MIB);
        }
    };
    let errors = {
        let progress = progress.clone();
        move |_: &ProgressState, w: &mut dyn Write| {
            let _ = write!(w, "{}", progress.errors.load(Ordering::Relaxed));
        }
    };
    // The template is a constant that the tests render, so it always parses;
    // the default style is only a fallback that keeps the bench from panicking.
    ProgressStyle::with_template(TEMPLATE)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("# ")
        .with_key("produced", mib(|p| &p.produced_bytes))
        .with_key("consumed", mib(|p| &p.consumed_bytes))
        .with_key("errors", errors)
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        if let Some(tick) = self.tick.take() {
            tick.abort();
        }
        // Leaves the final figures on the terminal (`finish` would fill the
        // bar whatever the time).
        show_elapsed(&self.bar);
        self.bar.abandon();
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use indicatif::TermLike;

    use super::*;

    /// A terminal that records what is written to it.
    #[derive(Clone, Debug, Default)]
    struct Screen(Arc<Mutex<String>>);

    impl TermLike for Screen {
        fn width(&self) -> u16 {
            200
        }
        fn move_cursor_up(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_down(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_right(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn move_cursor_left(&self, _: usize) -> io::Result<()> {
            Ok(())
        }
        fn write_line(&self, s: &str) -> io::Result<()> {
            self.write_str(&format!("{s}\n"))
        }
        fn write_str(&self, s: &str) -> io::Result<()> {
            self.0.lock().unwrap().push_str(s);
            Ok(())
        }
        fn clear_line(&self) -> io::Result<()> {
            Ok(())
        }
        fn flush(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn the_bar_shows_the_counters() {
        let screen = Screen::default();
        let progress = Arc::new(Progress::default());
        progress.produced_bytes.store(3 * MIB as u64 / 2, Ordering::Relaxed);
        progress.consumed_bytes.store(MIB as u64, Ordering::Relaxed);
        progress.errors.store(2, Ordering::Relaxed);
        let target = ProgressDrawTarget::term_like(Box::new(screen.clone()));
        let line = ProgressLine::start_on(target, "produce".into(), Duration::from_millis(5), progress);
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(line);
        // The last drawing: the time is up, so the bar is full.
        let shown = screen.0.lock().unwrap().clone();
        let last = shown.rsplit("produce [").next().unwrap_or_default();
        assert!(
            last.starts_with("####################]   0s  produced      1.5 MiB  consumed      1.0 MiB  errors 2"),
            "{shown:?}"
        );
    }

    #[tokio::test]
    async fn nothing_is_drawn_without_a_terminal() {
        let line = ProgressLine::start_on(
            ProgressDrawTarget::hidden(),
            "e2e".into(),
            Duration::from_secs(1),
            Arc::new(Progress::default()),
        );
        assert!(line.bar.is_hidden() && line.tick.is_none());
    }
}
