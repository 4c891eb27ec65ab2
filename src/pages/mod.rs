//! The pages people see, in their language: `strings` holds every word (the
//! built-in English, and the parser of `pages.strings` files), `lang` picks a
//! catalogue by `Accept-Language`, `render` makes the HTML. Pure: no I/O, no
//! network types. It sits below both `settings` (which loads the strings
//! files, so `check --settings` reports their errors) and `proxy` (whose
//! `respond` renders every page through it).

pub mod lang;
pub mod render;
pub mod strings;

pub use render::{Look, Stopped};
pub use strings::Catalogue;
