//! The demo binary and the test binaries embed CPython through mse-wsgi: pin the same libpython
//! directory with an rpath, as mse-wsgi's build script explains.
fn main() {
    let dir = std::env::var("DEP_MSE_WSGI_PYTHON_LIBDIR").unwrap_or_default();
    if !dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo:rerun-if-env-changed=DEP_MSE_WSGI_PYTHON_LIBDIR");
}
