//! Embedding CPython: one interpreter per process, initialised with an isolated `PyConfig` whose
//! `executable` is the app venv's `bin/python`, so that CPython's own path computation finds
//! `pyvenv.cfg` and the venv's site-packages (no `sys.path` hacks, `PYTHON*` variables ignored).

use std::ffi::{CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyModule};

use crate::error::Error;

/// Directory and file name of the libpython this crate was built against (see build.rs).
const BUILT_LIBDIR: &str = env!("MSE_WSGI_PYTHON_LIBDIR");
const BUILT_LIBNAME: &str = env!("MSE_WSGI_PYTHON_LIBNAME");
const BUILT_EXECUTABLE: &str = env!("MSE_WSGI_PYTHON_EXECUTABLE");
const BUILT_SHARED: &str = env!("MSE_WSGI_PYTHON_SHARED");

/// The venv the process-wide interpreter was initialised with (None = the build interpreter).
static INITIALISED: OnceLock<Option<PathBuf>> = OnceLock::new();
static INIT_LOCK: Mutex<()> = Mutex::new(());

/// Checks that the libpython mapped into this process is the one pyo3 linked against, not another
/// library with the same SONAME found first by the dynamic loader.
pub fn check_libpython() -> Result<(), Error> {
    if BUILT_SHARED != "true" || BUILT_LIBDIR.is_empty() {
        return Ok(());
    }
    let mut info = libc::Dl_info {
        dli_fname: std::ptr::null(),
        dli_fbase: std::ptr::null_mut(),
        dli_sname: std::ptr::null(),
        dli_saddr: std::ptr::null_mut(),
    };
    let symbol = ffi::Py_InitializeFromConfig as *const libc::c_void;
    // SAFETY: dladdr only reads the loader's tables for an address inside this process and fills
    // `info`, which lives for the whole call.
    let found = unsafe { libc::dladdr(symbol, &mut info) };
    if found == 0 || info.dli_fname.is_null() {
        return Ok(());
    }
    // SAFETY: dladdr returned a NUL-terminated path owned by the loader, valid while mapped.
    let loaded = unsafe { CStr::from_ptr(info.dli_fname) }
        .to_string_lossy()
        .into_owned();
    let loaded_dir = Path::new(&loaded)
        .parent()
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_default();
    let built_dir = Path::new(BUILT_LIBDIR)
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from(BUILT_LIBDIR));
    if loaded_dir == built_dir {
        Ok(())
    } else {
        Err(Error::LibpythonMismatch {
            loaded,
            expected: format!("{BUILT_LIBDIR}/lib{BUILT_LIBNAME}.so"),
        })
    }
}

/// Initialises the interpreter once per process. A second call with the same venv is a no-op; with
/// a different venv it fails (one interpreter cannot switch site-packages).
pub fn initialize(venv: Option<&Path>) -> Result<(), Error> {
    let _guard = INIT_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let wanted = match venv {
        Some(v) => Some(v.canonicalize().map_err(|e| Error::Venv {
            path: v.to_path_buf(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    if let Some(existing) = INITIALISED.get() {
        if *existing == wanted {
            return Ok(());
        }
        return Err(Error::AlreadyInitialised {
            existing: existing.clone(),
            requested: wanted,
        });
    }
    check_libpython()?;
    let executable = match &wanted {
        Some(v) => {
            check_venv_version(v)?;
            v.join("bin").join("python")
        }
        None => PathBuf::from(BUILT_EXECUTABLE),
    };
    // SAFETY: guarded by INIT_LOCK and INITIALISED (once per process); Python may also have been
    // initialised by someone else (e.g. pyo3's auto-initialize), which we detect and refuse.
    if unsafe { ffi::Py_IsInitialized() } != 0 {
        return Err(Error::PythonInit(
            "the interpreter was initialised outside mse-wsgi".into(),
        ));
    }
    init_from_config(&executable)?;
    let _ = INITIALISED.set(wanted);
    Ok(())
}

/// `X.Y` of the libpython this process runs (readable before initialisation).
fn runtime_version() -> String {
    // SAFETY: Py_GetVersion returns a static NUL-terminated string; callable before init.
    let full = unsafe { CStr::from_ptr(ffi::Py_GetVersion()) }.to_string_lossy();
    let number = full.split_whitespace().next().unwrap_or_default();
    number.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// A venv made by another Python X.Y has site-packages the embedded interpreter cannot use
/// (wrong directory, incompatible C extensions): refuse it clearly.
fn check_venv_version(venv: &Path) -> Result<(), Error> {
    let cfg_path = venv.join("pyvenv.cfg");
    let cfg = std::fs::read_to_string(&cfg_path).map_err(|e| Error::Venv {
        path: venv.to_path_buf(),
        reason: format!("cannot read pyvenv.cfg: {e}"),
    })?;
    let version = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    });
    let runtime = runtime_version();
    match version {
        Some(v) if v == runtime || v.starts_with(&format!("{runtime}.")) => Ok(()),
        Some(v) => Err(Error::Venv {
            path: venv.to_path_buf(),
            reason: format!("created by Python {v}, but mse-wsgi embeds Python {runtime}"),
        }),
        None => Err(Error::Venv {
            path: venv.to_path_buf(),
            reason: "pyvenv.cfg has no version".into(),
        }),
    }
}

fn init_from_config(executable: &Path) -> Result<(), Error> {
    let exe = CString::new(executable.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::PythonInit("venv path contains a NUL byte".into()))?;
    let mut preconfig = std::mem::MaybeUninit::<ffi::PyPreConfig>::uninit();
    let mut config = std::mem::MaybeUninit::<ffi::PyConfig>::uninit();
    // SAFETY: PyPreConfig_InitIsolatedConfig and PyConfig_InitIsolatedConfig fully initialise
    // their structs before any field is written; Py_PreInitialize runs once, before
    // Py_InitializeFromConfig (the caller checked Py_IsInitialized); the string setters copy their
    // argument; the config is cleared on every path; on success PyEval_SaveThread releases the GIL
    // taken by initialisation so that pyo3's `Python::attach` works from any thread.
    unsafe {
        // An isolated interpreter would take the C locale's ASCII for open(), print() and
        // read_text(): an app reading a UTF-8 secrets.json would fail. UTF-8 mode (PEP 540), as
        // `python -X utf8`, makes text I/O UTF-8 whatever the host's locale.
        let pre = preconfig.as_mut_ptr();
        ffi::PyPreConfig_InitIsolatedConfig(pre);
        (*pre).utf8_mode = 1;
        let status = ffi::Py_PreInitialize(pre);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(Error::PythonInit(status_message(&status)));
        }
        let cfg = config.as_mut_ptr();
        ffi::PyConfig_InitIsolatedConfig(cfg);
        (*cfg).install_signal_handlers = 0;
        (*cfg).buffered_stdio = 0;
        let mut status = ffi::PyConfig_SetBytesString(cfg, &mut (*cfg).executable, exe.as_ptr());
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::PyConfig_SetBytesString(cfg, &mut (*cfg).program_name, exe.as_ptr());
        }
        if ffi::PyStatus_Exception(status) == 0 {
            status = ffi::Py_InitializeFromConfig(cfg);
        }
        ffi::PyConfig_Clear(cfg);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(Error::PythonInit(status_message(&status)));
        }
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

/// The message of a failed PyStatus.
fn status_message(status: &ffi::PyStatus) -> String {
    if status.err_msg.is_null() {
        return "unknown error".to_string();
    }
    // SAFETY: a non-null err_msg of a PyStatus is a static NUL-terminated C string.
    unsafe { CStr::from_ptr(status.err_msg) }
        .to_string_lossy()
        .into_owned()
}

/// Formats a Python exception with its traceback, for the log only (never for a response).
pub fn format_exception(py: Python<'_>, err: &PyErr) -> String {
    let formatted = (|| -> PyResult<String> {
        let tb = py.import("traceback")?;
        let lines = tb.call_method1(
            "format_exception",
            (err.get_type(py), err.value(py), err.traceback(py)),
        )?;
        let joined: String = lines
            .cast::<PyList>()?
            .iter()
            .map(|l| l.extract::<String>().unwrap_or_default())
            .collect();
        Ok(joined)
    })();
    formatted.unwrap_or_else(|_| err.to_string())
}

/// Runs the caller's startup code (e.g. the enclave's audit hook) in a fresh namespace.
pub fn run_startup_code(py: Python<'_>, code: &str) -> Result<(), Error> {
    let source = CString::new(code)
        .map_err(|_| Error::StartupCode("the source contains a NUL byte".into()))?;
    let run = || -> PyResult<()> {
        let globals = pyo3::types::PyDict::new(py);
        globals.set_item("__builtins__", py.import("builtins")?)?;
        globals.set_item("__name__", "__mse_startup__")?;
        py.run(&source, Some(&globals), None)
    };
    run().map_err(|e| Error::StartupCode(format_exception(py, &e)))
}

/// Imports `module:variable` (dotted attribute path allowed after the colon) with `app_dir` first
/// on `sys.path`.
pub fn load_app(py: Python<'_>, spec: &str, app_dir: &Path) -> Result<Py<PyAny>, Error> {
    let (module, attr) = spec
        .split_once(':')
        .filter(|(m, a)| !m.is_empty() && !a.is_empty())
        .ok_or_else(|| Error::AppSpec(spec.to_string()))?;
    let dir = app_dir.canonicalize().map_err(|e| Error::AppDir {
        path: app_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let load = || -> PyResult<Py<PyAny>> {
        let sys = py.import("sys")?;
        let path = sys.getattr("path")?.cast_into::<PyList>()?;
        let dir_str = dir.to_string_lossy().into_owned();
        if !path.contains(&dir_str)? {
            path.insert(0, dir_str)?;
        }
        let mut obj = py.import(module)?.into_any();
        for part in attr.split('.') {
            obj = obj.getattr(part)?;
        }
        Ok(obj.unbind())
    };
    load().map_err(|e| Error::AppImport {
        spec: spec.to_string(),
        reason: format_exception(py, &e),
    })
}

/// Compiles one of our embedded Python helper modules.
pub fn helper_module<'py>(
    py: Python<'py>,
    source: &CStr,
    file: &CStr,
    name: &CStr,
) -> PyResult<Bound<'py, PyModule>> {
    PyModule::from_code(py, source, file, name)
}
