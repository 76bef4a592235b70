//! Camera controls changed while capturing.
