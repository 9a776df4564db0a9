//! Pin the libpython that mse-wsgi (pyo3) was built against, as mse-wsgi's own binaries do: without
//! the rpath another libpython with the same SONAME could load at run time.
//! The directory is also exported to the crate (`MSE_ENCLAVE_PYTHON_LIBDIR`): in guest mode the
//! VM's init makes that path lead to the image's libpython (see `guest::boot::python_paths`).
fn main() {
    let dir = std::env::var("DEP_MSE_WSGI_PYTHON_LIBDIR").unwrap_or_default();
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rustc-env=MSE_ENCLAVE_PYTHON_LIBDIR={dir}");
    println!("cargo:rerun-if-env-changed=DEP_MSE_WSGI_PYTHON_LIBDIR");
}
