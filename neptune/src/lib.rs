//! The `neptune` facade: the CLI (`local`, `driver`, `executor`, `apps`, `bench`), the built-in example
//! apps, and [`main_with`], the entry point a user's own app binary calls with its own registry:
//!
//! ```no_run
//! use neptune::core::{App, AppEntry, Dataset, Result};
//! fn my_app(app: &mut App) -> Result<()> {
//!     let ds = Dataset::from_fn(4, |ctx| Box::new(0..1_000u64 * u64::from(ctx.partition())));
//!     // A closure that can fail: any error it returns through `?` fails the task with it.
//!     let small = ds.try_map(|n| Ok(u16::try_from(n)?));
//!     app.batch("count", small.count());
//!     Ok(())
//! }
//! const APPS: &[AppEntry] = &[AppEntry { name: "mine", description: "my app", build: my_app }];
//! fn main() { neptune::main_with(APPS) }
//! ```

pub mod apps;
pub mod bench;
pub mod cli;
pub mod local;
pub mod reference;
pub mod report;
pub mod run;
pub mod shape;
pub mod supervise;

pub use neptune_core as core;
pub use run::main_with;
