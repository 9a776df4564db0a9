//! A small pool of OS threads that stay attached to the interpreter for their whole life and
//! release the GIL only while waiting for work (no thread state created per request).

use std::sync::Mutex;

use pyo3::Python;

use crate::error::Error;

pub type Job = Box<dyn for<'py> FnOnce(Python<'py>) + Send>;

pub struct PythonPool {
    tx: Mutex<Option<crossbeam_channel::Sender<Job>>>,
    handles: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl PythonPool {
    pub fn start(threads: usize) -> Result<Self, Error> {
        if !(1..=256).contains(&threads) {
            return Err(Error::Threads(threads));
        }
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mse-python-{i}"))
                .spawn(move || {
                    Python::attach(|py| {
                        loop {
                            // Take queued work without giving up the GIL; block (GIL released)
                            // only when the queue is empty.
                            let job = match rx.try_recv() {
                                Ok(job) => job,
                                Err(_) => match py.detach(|| rx.recv()) {
                                    Ok(job) => job,
                                    Err(_) => break,
                                },
                            };
                            job(py);
                        }
                    })
                })
                .map_err(Error::Thread)?;
            handles.push(handle);
        }
        Ok(Self {
            tx: Mutex::new(Some(tx)),
            handles: Mutex::new(handles),
        })
    }

    /// Queues a job; false if the pool is shut down.
    pub fn submit(&self, job: Job) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }

    /// Stops accepting jobs and waits for the threads to finish what is queued.
    pub fn shutdown(&self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let handles = std::mem::take(&mut *self.handles.lock().unwrap_or_else(|p| p.into_inner()));
        for h in handles {
            let _ = h.join();
        }
    }
}
