//! A lab: its id, its record on disk (`<state>/labs/<id>/lab.json`), its secrets and its
//! backend. Owns the lifecycle: create → up → (use) → down, with cleanup on every exit path.

pub mod apt_proxy;
mod destroy;
mod gc;
mod leftovers;
mod lifecycle;
mod listen;
pub mod old_boxes;
pub mod pypi_proxy;
mod record;

pub use destroy::destroy;
pub use gc::gc;
pub use leftovers::leftovers;
pub use lifecycle::*;
pub use record::{list, read_record, LabRecord, UpOptions};
