//! Encrypted, integrity-protected FUSE filesystem for the app's $HOME.
