//! Pin the libpython that mse-wsgi (pyo3) was built against, as mse-wsgi's own binaries do: without
//! the rpath another libpython with the same SONAME could load at run time.
fn main() {
    if let Ok(dir) = std::env::var("DEP_MSE_WSGI_PYTHON_LIBDIR") {
        if !dir.is_empty() {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
    println!("cargo:rerun-if-env-changed=DEP_MSE_WSGI_PYTHON_LIBDIR");
}
