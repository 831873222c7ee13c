//! The container engines' side of the image tests: a local registry, a
//! service a test started, and the podman images it made, each cleaned up
//! on drop (also when an assertion fails). Only what the test started is
//! signalled: its own child's pid.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A process the test started, stopped on drop: SIGTERM to that pid,
/// up to 15 s to exit, then SIGKILL.
pub struct Service(pub Child);

impl Drop for Service {
    fn drop(&mut self) {
        let c = &mut self.0;
        if let Some(pid) = rustix::process::Pid::from_raw(c.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = c.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `docker-registry` (distribution 2.8) serving on a free port of
/// 127.0.0.1, its storage under `dir`.
pub struct Registry {
    pub port: u16,
    /// Its filesystem storage (`docker/registry/v2/...` below it).
    pub storage: PathBuf,
    _service: Service,
}

impl Registry {
    /// Starts it (config `dir/registry.yml`, storage `dir/registry`) and
    /// waits, 60 s at most, until it accepts connections.
    pub fn start(dir: &Path) -> Registry {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let storage = dir.join("registry");
        let config = dir.join("registry.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n",
                storage.display()
            ),
        )
        .unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let registry = Registry {
            port,
            storage,
            _service: Service(child),
        };
        let t0 = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(t0.elapsed() < Duration::from_secs(60), "registry not up");
            std::thread::sleep(Duration::from_millis(200));
        }
        registry
    }
}

/// The podman images a test made, removed on drop.
#[derive(Default)]
pub struct PodmanImages(pub Vec<String>);

impl Drop for PodmanImages {
    fn drop(&mut self) {
        for img in &self.0 {
            let _ = Command::new("podman").args(["rmi", "-f", img]).output();
        }
    }
}
