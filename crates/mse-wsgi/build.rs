//! pyo3 sets no rpath, so a binary built against one libpython (e.g. pyenv's 3.11.7) silently loads
//! another one with the same SONAME at run time (e.g. Debian's 3.11.2). We pin the library directory
//! of the interpreter pyo3 built against with an rpath for this package's binaries and tests, and
//! export it (links metadata) so that any dependent binary can do the same from its build script:
//! `println!("cargo:rustc-link-arg=-Wl,-rpath,{}", env::var("DEP_MSE_WSGI_PYTHON_LIBDIR")?)`.
//! At run time, `python::check_libpython` verifies the loaded library anyway.
fn main() {
    let config = pyo3_build_config::get();
    let lib_dir = config.lib_dir().unwrap_or_default().to_string();
    let lib_name = config.lib_name().unwrap_or_default().to_string();
    if config.shared() && !lib_dir.is_empty() {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib_dir}");
    }
    println!("cargo:libdir={lib_dir}");
    println!("cargo:rustc-env=MSE_WSGI_PYTHON_LIBDIR={lib_dir}");
    println!("cargo:rustc-env=MSE_WSGI_PYTHON_LIBNAME={lib_name}");
    println!(
        "cargo:rustc-env=MSE_WSGI_PYTHON_EXECUTABLE={}",
        config.executable().unwrap_or_default()
    );
    println!("cargo:rustc-env=MSE_WSGI_PYTHON_SHARED={}", config.shared());
    println!("cargo:rerun-if-env-changed=PYO3_PYTHON");
}
