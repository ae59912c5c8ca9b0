//! What the tests share: where the real test data is, and the `jalin` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace")
        .to_path_buf()
}

/// `$JALIN_SHARED_DATA`, else `../shared/data` beside the checkout. `None` (with one line
/// saying so) when it is missing, so a lone clone still passes; CI always has it.
pub fn shared_data() -> Option<PathBuf> {
    let dir = std::env::var_os("JALIN_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("..").join("shared").join("data"));
    if dir.join("marc").is_dir() {
        Some(dir)
    } else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the shared data at {}",
            dir.display()
        );
        eprintln!(
            "skipped: no shared test data at {} (set JALIN_SHARED_DATA)",
            dir.display()
        );
        None
    }
}

/// Returns early from a test when the shared data is missing.
#[macro_export]
macro_rules! shared_data_or_skip {
    () => {
        match $crate::support::shared_data() {
            Some(dir) => dir,
            None => return,
        }
    };
}

/// The `jalin` binary of this workspace, built if it is not there yet (it shares the
/// test build's profile and artifacts, so this builds nothing twice).
pub fn jalin_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = workspace_root();
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            let status = Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "jalin-cli", "--bin", "jalin"])
                .current_dir(&root)
                .status()
                .expect("cargo runs");
            assert!(status.success(), "building the jalin binary failed");
            target.join("debug").join("jalin")
        })
        .clone()
}

/// Whether a command can be run (for tools `.ci/run` installs: xmllint, python3 with
/// pymarc). Missing on CI is a failure; elsewhere the test says so and is skipped.
pub fn have_tool(program: &str, args: &[&str]) -> bool {
    let ok = Command::new(program)
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have `{program}` (see .ci/run)"
        );
        eprintln!(
            "skipped: `{program} {}` is not available here",
            args.join(" ")
        );
    }
    ok
}

/// A fresh library in a temporary directory, with `batch` records per import batch.
pub fn new_library(batch: usize) -> (tempfile::TempDir, jalin_node::config::DataDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut data =
        jalin_node::config::DataDir::init(dir.path(), "Perpustakaan Uji", "UJI").expect("init");
    data.config.limits.batch_records_max = batch;
    (dir, data)
}
