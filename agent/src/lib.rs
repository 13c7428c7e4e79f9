//! flintd library.
