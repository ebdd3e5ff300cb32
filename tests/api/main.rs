//! End-to-end tests: the real service over real HTTP on a random port, each test with its own
//! SQLite file. One binary with modules keeps linking fast.

mod concurrency;
mod crashes;
mod datasets;
mod features;
mod health;
mod helpers;
mod instances;
mod jobs;
mod journey;
mod keys;
mod limits;
mod models;
mod onnx;
mod openapi;
mod outcomes;
mod parquet;
mod predict;
mod process;
mod properties;
mod protocols;
mod registry;
mod restart;
mod scheduling;
mod scoring;
mod streaming;
mod tables;
mod triton;
