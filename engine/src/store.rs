//! The typed feature store on top of the engine.
