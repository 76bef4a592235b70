"""Every iceoryx2 node and service of the Python package is created or opened here, with the
same config and settings as the Rust side (crates/common/src/ipc.rs): iceoryx2 refuses to open
a service whose settings differ from its creator's.

`iceoryx2_settings()` is the one place where the deployment's iceoryx2 file prefix and folder
are derived. A test compares it with `ctl iox2-config --json`, so a change on either side that
the other does not follow fails CI.
"""

from __future__ import annotations

import ctypes
import os
import tempfile
import threading

import iceoryx2 as iox2

from ._abi import ControlReply, ControlRequest, FrameHeader, ResultRecord
from ._errors import IpcError

# Settings of the results and control services (Rust `ipc::RESULTS_*`, `CONTROL_MAX_CLIENTS`).
RESULTS_MAX_PUBLISHERS = 8
RESULTS_MAX_SUBSCRIBERS = 8
RESULTS_QUEUE = 64
CONTROL_MAX_CLIENTS = 32

IPC = iox2.ServiceType.Ipc


def iceoryx2_settings(deployment: str) -> dict:
    """THE derivation of a deployment's iceoryx2 settings (Rust `ipc::iceoryx_config`,
    `names::shm_prefix`, `ipc::deployment_root`): every file iceoryx2 creates for the
    deployment starts with `prefix` (in /dev/shm and below `root_path`), and its node and
    service files live in `root_path`. Everything else is iceoryx2's defaults."""
    prefix = f"framebus_{deployment}_"
    return {"prefix": prefix, "root_path": f"/tmp/iceoryx2/{prefix.rstrip('_')}/"}


def iceoryx_config(deployment: str):
    """The iceoryx2 config object of `deployment` (iceoryx2's defaults plus
    `iceoryx2_settings`)."""
    settings = iceoryx2_settings(deployment)
    config = iox2.config.default()
    try:
        # The whole `global_cfg` is not assignable: fields are set one by one.
        config.global_cfg.prefix = iox2.FileName.new(settings["prefix"])
        config.global_cfg.root_path = iox2.Path.new(settings["root_path"])
        # As the Rust side: dead nodes are looked for once per node creation (by framebus), not
        # again by iceoryx2 on creation and on every service open.
        config.global_cfg.node.cleanup_dead_nodes_on_creation = False
        config.global_cfg.service.cleanup_dead_nodes_on_open = False
    except Exception as e:  # iceoryx2 raises SemanticStringError for invalid names
        raise IpcError(f"deployment name `{deployment}` gives an invalid iceoryx2 prefix or folder", e) from None
    return config


_global_lock = threading.Lock()
_global_installed = False


def _install_global_config(deployment: str) -> None:
    """Makes the deployment's config iceoryx2's process-wide config too, once per process, as
    the Rust side does: iceoryx2 falls back to the global config in a few places (cleaning up a
    dead node whose details are gone) and would otherwise look for a config file, warn, and use
    another prefix and folder. The only way in is a file."""
    global _global_installed
    with _global_lock:
        if _global_installed:
            return
        _global_installed = True
        settings = iceoryx2_settings(deployment)
        text = f'[global]\nroot-path = "{settings["root_path"]}"\nprefix = "{settings["prefix"]}"\n'
        fd, path = tempfile.mkstemp(prefix=f"framebus-iceoryx2-{os.getpid()}-", suffix=".toml")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            iox2.config.setup_global_config_from_file(iox2.FilePath.new(path))
        except Exception:
            # Not fatal: nodes get the config explicitly; only the fallbacks would differ.
            pass
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass


def remove_dead_nodes(config) -> int:
    """Removes the stale resources of every dead node that used `config`; returns how many."""
    removed = 0
    try:
        states = iox2.Node.list(IPC, config)
    except Exception:
        return 0
    for state in states:
        if type(state).__name__ == "Dead":
            try:
                if state._0.try_remove_stale_resources():
                    removed += 1
            except Exception:
                pass
    return removed


def create_node(deployment: str, name: str):
    """Creates a node of `deployment` named `name` (shown by `iox2 node list`), after removing
    what dead processes of the deployment left behind. iceoryx2's own signal handling is off:
    the package owns SIGINT/SIGTERM (a SIGCONT after SIGSTOP must not end the reader)."""
    config = iceoryx_config(deployment)
    _install_global_config(deployment)
    remove_dead_nodes(config)
    try:
        node_name = iox2.NodeName.new(name)
    except Exception as e:
        raise IpcError(f"invalid node name `{name}`", e) from None
    try:
        return (
            iox2.NodeBuilder.new()
            .name(node_name)
            .config(config)
            .signal_handling_mode(iox2.SignalHandlingMode.Disabled)
            .create(IPC)
        )
    except Exception as e:
        raise IpcError(f"creating iceoryx2 node `{name}` of deployment `{deployment}`", e) from None


def release_if_last(deployment: str) -> None:
    """Removes what iceoryx2 keeps for a deployment between runs once its last process is
    gone (Rust `ipc::release_if_last`): the node-counter segment in /dev/shm and the empty
    folders. Does nothing while any node of the deployment is registered."""
    settings = iceoryx2_settings(deployment)
    try:
        if iox2.Node.list(IPC, iceoryx_config(deployment)):
            return
    except Exception:
        return
    prefix = settings["prefix"]
    try:
        for name in os.listdir("/dev/shm"):
            if name.startswith(prefix) and name.endswith(".global_mgmt"):
                try:
                    os.unlink(os.path.join("/dev/shm", name))
                except OSError:
                    pass
    except OSError:
        pass
    root = settings["root_path"]
    for sub in ("services", "nodes", "events", ""):
        try:
            os.rmdir(os.path.join(root, sub))
        except OSError:
            pass


def service_name(deployment: str, camera: str, kind: str, role: str | None = None) -> str:
    """The iceoryx2 service name (Rust `names::service_name`): kind is `frames`, `ready`,
    `results`, `control` or `control-ready`."""
    base = f"framebus/{deployment}/{camera}"
    return {
        "frames": f"{base}/frames",
        "ready": f"{base}/frames/ready",
        "results": f"{base}/results",
        "control": f"{base}/{role}/control",
        "control-ready": f"{base}/{role}/control/ready",
    }[kind]


def _service_name(name: str):
    try:
        return iox2.ServiceName.new(name)
    except Exception as e:
        raise IpcError(f"invalid service name `{name}`", e) from None


def open_frame_bus(node, deployment: str, camera):
    """Opens (or creates) the frames and frame-ready services of `camera` (a CameraConfig),
    with the settings capture uses (Rust `ipc::open_frame_bus`)."""
    layout = camera.slot_layout()
    frames_name = service_name(deployment, camera.name, "frames")
    try:
        frames = (
            node.service_builder(_service_name(frames_name))
            .publish_subscribe(iox2.Slice[ctypes.c_uint8])
            .user_header(FrameHeader)
            .max_publishers(1)
            .max_subscribers(layout.max_readers)
            .subscriber_max_buffer_size(layout.max_queue_depth)
            .subscriber_max_borrowed_samples(layout.reader_borrows)
            .history_size(0)
            .enable_safe_overflow(True)
            .max_nodes(layout.max_readers + 2)
            .open_or_create()
        )
    except Exception as e:
        raise IpcError(f"opening frame service `{frames_name}` of camera `{camera.name}`", e) from None
    ready_name = service_name(deployment, camera.name, "ready")
    try:
        ready = (
            node.service_builder(_service_name(ready_name))
            .event()
            .max_notifiers(2)
            .max_listeners(layout.max_readers)
            .max_nodes(layout.max_readers + 2)
            .open_or_create()
        )
    except Exception as e:
        raise IpcError(f"opening event service `{ready_name}` of camera `{camera.name}`", e) from None
    return frames, ready, frames_name


def open_results(node, deployment: str, camera: str):
    """Opens (or creates) the results service of `camera` (Rust `ipc::open_results`)."""
    name = service_name(deployment, camera, "results")
    try:
        return (
            node.service_builder(_service_name(name))
            .publish_subscribe(ResultRecord)
            .max_publishers(RESULTS_MAX_PUBLISHERS)
            .max_subscribers(RESULTS_MAX_SUBSCRIBERS)
            .subscriber_max_buffer_size(RESULTS_QUEUE)
            .subscriber_max_borrowed_samples(2)
            .history_size(0)
            .enable_safe_overflow(True)
            .max_nodes(RESULTS_MAX_PUBLISHERS + RESULTS_MAX_SUBSCRIBERS + 2)
            .open_or_create()
        )
    except Exception as e:
        raise IpcError(f"opening results service `{name}` of camera `{camera}`", e) from None


def _control_builder(node, name: str):
    return (
        node.service_builder(_service_name(name))
        .request_response(ControlRequest, ControlReply)
        .max_servers(1)
        .max_clients(CONTROL_MAX_CLIENTS)
        .max_nodes(CONTROL_MAX_CLIENTS + 2)
        .max_active_requests_per_client(2)
        .max_loaned_requests(2)
        .max_response_buffer_size(2)
        .max_borrowed_responses_per_pending_response(1)
        .enable_safe_overflow_for_requests(True)
        .enable_safe_overflow_for_responses(True)
        .enable_fire_and_forget_requests(True)
    )


def _control_ready_builder(node, name: str):
    return (
        node.service_builder(_service_name(name))
        .event()
        .max_notifiers(CONTROL_MAX_CLIENTS)
        .max_listeners(2)
        .max_nodes(CONTROL_MAX_CLIENTS + 2)
    )


def serve_control(node, deployment: str, camera: str, role: str):
    """Opens (or creates) the control services of `role` for `camera`, as their server does
    (Rust `ipc::serve_control`): (request/response factory, ready event factory, name)."""
    name = service_name(deployment, camera, "control", role)
    try:
        requests = _control_builder(node, name).open_or_create()
    except Exception as e:
        raise IpcError(f"opening control service `{name}` of {role} of camera `{camera}`", e) from None
    ready_name = service_name(deployment, camera, "control-ready", role)
    try:
        ready = _control_ready_builder(node, ready_name).open_or_create()
    except Exception as e:
        raise IpcError(f"opening event service `{ready_name}` of {role} of camera `{camera}`", e) from None
    return requests, ready, name


def connect_control(node, deployment: str, camera: str, role: str):
    """Opens the control services of `role` as a client; None when nothing serves them."""
    name = service_name(deployment, camera, "control", role)
    try:
        requests = _control_builder(node, name).open()
    except Exception as e:
        if _variant(e) in ("DoesNotExist", "IsMarkedForDestruction"):
            return None
        raise IpcError(f"opening control service `{name}`", e) from None
    ready_name = service_name(deployment, camera, "control-ready", role)
    try:
        ready = _control_ready_builder(node, ready_name).open()
    except Exception as e:
        if _variant(e) in ("DoesNotExist", "IsMarkedForDestruction"):
            ready = None
        else:
            raise IpcError(f"opening event service `{ready_name}`", e) from None
    return requests, ready, name


def _variant(error) -> str:
    """The iceoryx2 error variant (`ExceedsMaxBorrows`, `DoesNotExist`, ...)."""
    args = getattr(error, "args", ())
    return str(args[0]) if args else str(error)


def wait_interrupted(error) -> bool:
    """Whether a failed wait was only interrupted by a signal (look at the flags, go on)."""
    return "Interrupt" in _variant(error) or "Interrupt" in str(error)
