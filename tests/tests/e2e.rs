//! End-to-end tests: every test starts the real binaries as separate processes, in its own
//! deployment (service names, shared-memory prefix and iceoryx2 folder), waits on their output
//! with deadlines, stops what it started and checks nothing is left in /dev/shm.

mod e2e {
    mod bridge;
    mod config_errors;
    mod contract;
    mod control;
    mod events;
    mod events_page;
    mod frame_bus;
    mod hardening;
    mod hardening_local;
    mod network;
    mod operations;
    mod operator;
    mod preview;
    mod production;
    mod readers;
    mod recorder;
    mod recorder_disk;
    mod recorder_events;
    mod recorder_stream;
    mod recorder_stream_events;
    mod scene;
    mod signals;
    mod status_metrics;
    mod stream_overlay;
    mod streamer;
    mod v4l2;
    mod webhooks;
    mod wiring;
}
